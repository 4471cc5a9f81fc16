"""Benchmark PPO training speed: offerpilot's MaskablePPO on the batched simulator against SB3's default PPO
on CartPole-v1 with a DummyVecEnv of 8 envs, measured in the same run.

Run:  .venv/bin/python scripts/bench_ppo.py [--timesteps 1000000] [--cartpole-timesteps 50000] [--threads N]
          [--observations raw encoder] [--encoder DIR] [--net-arch 64 64] [--n-epochs 10] [--n-envs 1024]
          [--batch-size 8192] [--json out.json]
      .venv/bin/python scripts/bench_ppo.py --time-to-beat [--chunk 500000] [--max-timesteps 6000000]
          [--customers 20000] [--seed 0]

Each steps/s figure is environment steps (decisions) per second of wall time over the whole ``learn`` call:
rollouts and updates together, with no evaluation or checkpoints. Without ``--encoder`` the encoder observation
uses a freshly initialised default-size encoder (its weights do not change the cost).

``--time-to-beat`` measures what a user waits for instead: the default ``offerpilot train`` (encoder features,
its encoder trained on simulated customers first) is trained ``--chunk`` steps at a time (``--resume``); after
each chunk its policy meets the best tuned baseline on the same ``--customers`` held-out customers, and the clock
(training only: encoder and PPO, not the baselines' tuning or the evaluations) stops at the first chunk whose
paired 95 % interval of the objective difference lies above zero on the objective and on CLV.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from offerpilot.agents.ppo_training import resolve_device, train_ppo
from offerpilot.agents.train_config import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from bench_simulator import cpu_name  # noqa: E402


def cartpole_steps_per_second(timesteps: int, seed: int) -> float:
    """SB3's default PPO (n_steps 2048, batch 64, 10 epochs) on CartPole-v1, 8 envs in a DummyVecEnv, on CPU."""
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed, vec_env_cls=DummyVecEnv)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu")
    start = time.perf_counter()
    model.learn(timesteps)
    return model.num_timesteps / (time.perf_counter() - start)


def fresh_encoder(folder: Path) -> str:
    """A default-size events encoder with random weights, saved where ``TrainConfig.encoder`` can load it."""
    from offerpilot.catalog import default_catalog
    from offerpilot.encoders.configuration import CustomerEncoderConfig
    from offerpilot.encoders.modeling import CustomerEncoderModel
    from offerpilot.encoders.tokenizer import EventTokenizer
    from offerpilot.envs.population import CATEGORIES

    tokenizer = EventTokenizer(default_catalog().ids, CATEGORIES)
    torch.manual_seed(0)
    model = CustomerEncoderModel(CustomerEncoderConfig(**tokenizer.vocab_sizes()))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def offerpilot_steps_per_second(observation: str, timesteps: int, encoder: str | None, seed: int, device: str, **options) -> tuple[float, int]:
    """Steps per second of ``train_ppo`` with the default config but the :class:`TrainConfig` ``options`` (no
    evaluation, checkpoints only at the end)."""
    config = TrainConfig(observation=observation, encoder=encoder, total_timesteps=timesteps, eval_every=0, checkpoint_every=0, seed=seed, device=device, **options)
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        result = train_ppo(config, Path(run) / "run", progress=False)
        return result.num_timesteps / (time.perf_counter() - start), result.num_timesteps


def time_to_beat(chunk: int, max_timesteps: int, n_customers: int, seed: int) -> list[dict]:
    """Train the default configuration ``chunk`` steps at a time until it beats the best tuned baseline on held-out
    customers (paired 95 % CI above zero on objective and CLV); one row per chunk, with cumulative training seconds."""
    from offerpilot.agents.baselines import COMPARED_BASELINES
    from offerpilot.evaluation.comparison import arena_for, compare, load_run, tuned_baselines
    from offerpilot.seeds import HELD_OUT_SEED

    config = TrainConfig(seed=seed, eval_every=0, checkpoint_every=0)
    arena = arena_for(config.lam)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        seconds, best = 0.0, None
        for timesteps in range(chunk, max_timesteps + 1, chunk):
            start = time.perf_counter()
            train_ppo(replace(config, total_timesteps=timesteps), run, resume=timesteps > chunk, progress=False)
            seconds += time.perf_counter() - start
            if best is None:  # tuned once, after the first chunk has trained the encoder the churn rule reads
                start = time.perf_counter()
                baselines = tuned_baselines(arena, COMPARED_BASELINES, run / "encoder" / "model", 5_000)
                name = compare(arena, baselines, n_customers, HELD_OUT_SEED, progress=False).best_baseline()
                best = next(b for b in baselines if b.name == name)
                print(f"baselines tuned in {time.perf_counter() - start:.0f} s; the best on held-out customers: {name}", flush=True)
            comparison = compare(arena, [best, load_run(run, "ppo")], n_customers, HELD_OUT_SEED, progress=False)
            objective, clv = comparison.paired_difference("ppo", best.name), comparison.paired_difference("ppo", best.name, "clv")
            row = {"timesteps": timesteps, "train_seconds": seconds, "objective_diff": [objective.mean, objective.low, objective.high],
                   "clv_diff": [clv.mean, clv.low, clv.high]}
            rows.append(row)
            print(f"{timesteps:>10,} steps  {seconds:6.0f} s of training  ppo - {best.name}: objective {objective}, CLV {clv}", flush=True)
            if objective.low > 0 and clv.low > 0:
                break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=1_000_000, help="offerpilot timesteps per observation (default: %(default)s)")
    parser.add_argument("--cartpole-timesteps", type=int, default=50_000, help="CartPole timesteps (default: %(default)s)")
    parser.add_argument("--observations", nargs="+", choices=("raw", "encoder", "latent"), default=["raw", "encoder"])
    parser.add_argument("--encoder", default=None, help="trained encoder folder (default: a fresh default-size one)")
    parser.add_argument("--net-arch", type=int, nargs="+", default=list(TrainConfig.net_arch), help="hidden widths (default: %(default)s)")
    parser.add_argument("--n-epochs", type=int, default=TrainConfig.n_epochs, help="PPO epochs per rollout (default: %(default)s)")
    parser.add_argument("--n-envs", type=int, default=TrainConfig.n_envs, help="customer slots (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="minibatch size (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="auto", help="device of offerpilot's PPO (default: auto); CartPole runs on CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--time-to-beat", action="store_true", help="measure training time to a policy that beats the best baseline instead")
    parser.add_argument("--chunk", type=int, default=500_000, help="--time-to-beat: steps between evaluations (default: %(default)s)")
    parser.add_argument("--max-timesteps", type=int, default=TrainConfig.total_timesteps, help="--time-to-beat: give up after (default: %(default)s)")
    parser.add_argument("--customers", type=int, default=20_000, help="--time-to-beat: held-out customers (default: %(default)s)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, Python {platform.python_version()}, device {device}")
    if args.time_to_beat:
        rows = time_to_beat(args.chunk, args.max_timesteps, args.customers, args.seed)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return
    cartpole = cartpole_steps_per_second(args.cartpole_timesteps, args.seed)
    print(f"SB3 PPO, CartPole-v1, DummyVecEnv of 8 envs:  {cartpole:10,.0f} steps/s")
    options = {"net_arch": tuple(args.net_arch), "n_epochs": args.n_epochs, "n_envs": args.n_envs, "batch_size": args.batch_size}
    figures = {"cartpole_steps_per_s": cartpole, "device": device, "threads": torch.get_num_threads(), **options}
    with tempfile.TemporaryDirectory() as folder:
        encoder = args.encoder or (fresh_encoder(Path(folder) / "encoder") if "encoder" in args.observations else None)
        for observation in args.observations:
            rate, steps = offerpilot_steps_per_second(observation, args.timesteps, encoder if observation == "encoder" else None, args.seed, device, **options)
            figures[f"{observation}_steps_per_s"] = rate
            print(f"offerpilot MaskablePPO {args.net_arch}, {args.n_epochs} epochs, {args.n_envs} slots, minibatch {args.batch_size}, "
                  f"{observation:7s} observation:  {rate:10,.0f} steps/s = {rate / cartpole:5.1f}x CartPole ({steps:,} steps)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
