"""Benchmark off-policy estimators on 10 million logged decisions: time and peak memory.

Run:  .venv/bin/python scripts/bench_ope.py [--decisions 10000000] [--actions 7] [--seed 0]

Synthetic logs (uniform logging over n_actions, a random target policy, a reward model), float32
inputs as a column store would hand them over. Times IPS and DR point estimates, then their 95 %
intervals from 200 bootstrap replicates; reports the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np

from offerpilot.ope import DoublyRobust, InverseProbabilityWeighting


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=10_000_000)
    parser.add_argument("--actions", type=int, default=7)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, k = args.decisions, args.actions
    rng = np.random.default_rng(args.seed)
    action = rng.integers(0, k, n)
    pscore = np.full(n, 1.0 / k, np.float32)
    logits = rng.standard_normal((n, k), dtype=np.float32)
    target = np.exp(logits)
    target /= target.sum(axis=1, keepdims=True)
    estimated = rng.random((n, k), dtype=np.float32)
    reward = (estimated[np.arange(n), action] + rng.standard_normal(n, dtype=np.float32) * 0.1).astype(np.float32)
    del logits
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    print(f"{n:,} decisions x {k} actions (float32 inputs: {(reward.nbytes + pscore.nbytes + action.nbytes + target.nbytes + estimated.nbytes) / 1e9:.2f} GB)")
    for estimator in (InverseProbabilityWeighting(), DoublyRobust()):
        kwargs = dict(reward=reward, action=action, pscore=pscore, action_dist=target, estimated_rewards=estimated)
        start = time.perf_counter()
        value = estimator.estimate(**kwargs)
        point = time.perf_counter() - start
        start = time.perf_counter()
        ci = estimator.estimate_interval(**kwargs, n_bootstrap=args.bootstrap, random_state=args.seed)
        interval = time.perf_counter() - start
        print(f"{estimator.name:4s} estimate {value:.5f} in {point:5.2f} s; 95% interval [{ci.low:.5f}, {ci.high:.5f}] "
              f"({args.bootstrap} bootstrap replicates) in {interval:5.2f} s; peak memory so far {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
