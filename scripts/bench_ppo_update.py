"""Benchmark one PPO minibatch step of the default actor-critic: what a step costs per sample, and whether the
minibatch size, bfloat16 autocast, ReLU instead of tanh or ``torch.compile`` change it.

Run:  .venv/bin/python scripts/bench_ppo_update.py [--features 13] [--steps 60] [--threads N]

The step is MaskablePPO's: ``evaluate_actions`` with masks, the clipped surrogate, value and entropy losses,
backward, gradient clipping and an Adam step, on random inputs (their values do not change the cost). Prints
microseconds per sample; the update of a default run is ``n_epochs`` of these per collected step.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

sys.path.insert(0, str(Path(__file__).parent))
from bench_simulator import cpu_name  # noqa: E402


def seconds_per_step(n_features: int, batch: int, activation: type[torch.nn.Module], bf16: bool, compile_: bool, steps: int) -> float:
    """Mean wall seconds of one minibatch step, after warm-up (and compilation)."""
    torch.manual_seed(0)
    policy = MaskableActorCriticPolicy(gym.spaces.Box(-10, 10, (n_features,), np.float32), gym.spaces.Discrete(7), lambda _: 1e-3,
                                       net_arch={"pi": [64, 64], "vf": [64, 64]}, activation_fn=activation)
    if compile_:
        policy.mlp_extractor = torch.compile(policy.mlp_extractor)
    obs, actions = torch.randn(batch, n_features), torch.randint(0, 7, (batch,))
    masks = np.ones((batch, 7), bool)
    old_log_prob, advantages, returns = torch.randn(batch) * 0.1 - 2, torch.randn(batch), torch.randn(batch)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            values, log_prob, entropy = policy.evaluate_actions(obs, actions, action_masks=masks)
        ratio = torch.exp(log_prob.float() - old_log_prob)
        surrogate = torch.min(advantages * ratio, advantages * torch.clamp(ratio, 0.8, 1.2)).mean()
        loss = -surrogate + 0.5 * torch.nn.functional.mse_loss(returns, values.float().flatten()) - 0.001 * entropy.float().mean()
        policy.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
        policy.optimizer.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=13, help="observation width (default: %(default)s, the raw features)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, Python {platform.python_version()}")
    variants = itertools.product((torch.nn.Tanh, torch.nn.ReLU), (8192, 16384), (False, True))
    for activation, batch, bf16 in variants:
        per_sample = seconds_per_step(args.features, batch, activation, bf16, False, args.steps) / batch
        print(f"{activation.__name__:4s}  minibatch {batch:6,d}  {'bfloat16' if bf16 else 'float32 '}  {per_sample * 1e6:.3f} us/sample")
    per_sample = seconds_per_step(args.features, 8192, torch.nn.Tanh, False, True, args.steps) / 8192
    print(f"Tanh  minibatch  8,192  float32, torch.compile  {per_sample * 1e6:.3f} us/sample")


if __name__ == "__main__":
    main()
