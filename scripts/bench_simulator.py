"""Benchmark the batched simulator: customer-days per second and memory per customer.

Run:  .venv/bin/python scripts/bench_simulator.py [--customers 100000] [--seed 0] [--json out.json]

Pins itself to one CPU core. Measures
  * the day kernel: computing the masks and stepping one day, with random legal actions drawn
    outside the timed region (what one simulated day costs),
  * the SB3 VecEnv end to end (weekly decisions: masks, observations, rewards, auto-reset with
    the replacement customers' histories simulated in batches), counting decision-period days,
  * bytes of simulator state per customer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from offerpilot.envs.policy import (
    UniformRandomPolicy,  # noqa: E402
    act,  # noqa: E402
)
from offerpilot.envs.population import nbytes_per_customer  # noqa: E402
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig  # noqa: E402
from offerpilot.envs.vec_env import RetentionVecEnv  # noqa: E402


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_kernel(n: int, days: int, seed: int) -> dict:
    sim = PopulationSimulator()
    rng = np.random.default_rng(seed)
    traits, state = sim.new_customers(n, rng)
    policy = UniformRandomPolicy()
    obs = sim.observe(traits, state)
    for _ in range(5):  # warm-up
        actions, _ = act(policy, obs, sim.action_mask(state), rng=rng)
        state, _ = sim.kernel.step(traits, state, actions, sim.action_mask(state))
    seconds = 0.0
    for _ in range(days):
        start = time.perf_counter()
        mask = sim.action_mask(state)
        seconds += time.perf_counter() - start
        actions, _ = act(policy, obs, mask, rng=rng)  # the policy's cost is not the simulator's
        start = time.perf_counter()
        state, _ = sim.kernel.step(traits, state, actions, mask)
        seconds += time.perf_counter() - start
    return {
        "customer_days_per_s": n * days / seconds,
        "bytes_per_customer_state": nbytes_per_customer(state),
        "bytes_per_customer_traits": nbytes_per_customer(traits),
    }


def bench_vec_env(n: int, decisions: int, seed: int) -> dict:
    config = SimulatorConfig()
    env = RetentionVecEnv(n, config, seed=seed)
    obs = env.reset()
    policy = UniformRandomPolicy()
    rng = np.random.default_rng(seed)
    for _ in range(3):  # warm-up, fills the replacement pool once
        actions, _ = act(policy, obs, env.action_masks(), rng=rng)
        obs, *_ = env.step_arrays(actions)
    started = env.customers_started
    start = time.perf_counter()
    for _ in range(decisions):
        actions, _ = act(policy, obs, env.action_masks(), rng=rng)
        obs, *_ = env.step_arrays(actions)
    seconds = time.perf_counter() - start
    return {
        "customer_days_per_s": n * decisions * config.decision_interval_days / seconds,
        "decision_steps_per_s": n * decisions / seconds,
        "replacements": env.customers_started - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=100, help="kernel days to time")
    parser.add_argument("--decisions", type=int, default=30, help="VecEnv decision steps to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    machine = f"{cpu_name()}, {os.cpu_count()} cores (1 used), numpy {np.__version__}, Python {platform.python_version()}"
    kernel = bench_kernel(args.customers, args.days, args.seed)
    vec = bench_vec_env(args.customers, args.decisions, args.seed)
    print(f"machine: {machine}")
    print(f"N = {args.customers:,} customers, seed {args.seed}")
    print(f"day kernel (mask + step, random legal actions): {kernel['customer_days_per_s'] / 1e6:6.2f} M customer-days/s")
    print(f"SB3 VecEnv, weekly decisions, auto-reset:  {vec['customer_days_per_s'] / 1e6:6.2f} M customer-days/s "
          f"({vec['decision_steps_per_s'] / 1e3:,.0f} k decision steps/s, {vec['replacements']:,} replacements)")
    print(f"state per customer: {kernel['bytes_per_customer_state']:.0f} B dynamic + "
          f"{kernel['bytes_per_customer_traits']:.0f} B latent traits = "
          f"{kernel['bytes_per_customer_state'] + kernel['bytes_per_customer_traits']:.0f} B")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "customers": args.customers, "kernel": kernel, "vec_env": vec}, f, indent=2)


if __name__ == "__main__":
    main()
