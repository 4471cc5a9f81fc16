"""Benchmark batch scoring with an exported bundle: decisions per second.

Run:  .venv/bin/python scripts/bench_scoring.py --bundle BUNDLE [--decisions 2000000] [--batch 100000]
      [--customers 20000] [--threads 0] [--seed 0] [--json out.json]

Measures
  * policy only, features given: ``Bundle.decide`` on batches of random features around the normaliser's mean and
    random legal masks (onnxruntime graph, epsilon exploration, seeded sampling), and the graph alone;
  * end to end from raw histories: ``--customers`` simulated customers' events and past decisions, in memory, to a
    decisions table (features and caps rebuilt from the logs, the encoder graph for encoder bundles, decisions); and
    the same from files (read and validate the Parquet events and decisions, score, write the Parquet output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pandas as pd  # noqa: E402
from bench_simulator import cpu_name  # noqa: E402

from offerpilot.deployment.bundle import Bundle, Exploration  # noqa: E402
from offerpilot.deployment.scoring import ScoringConfig, score_customers, score_file  # noqa: E402
from offerpilot.envs.log_generation import simulate_logs  # noqa: E402
from offerpilot.envs.policy import UniformRandomPolicy  # noqa: E402
from offerpilot.envs.simulator import PopulationSimulator  # noqa: E402
from offerpilot.tables import write_table  # noqa: E402

START = pd.Timestamp("2025-01-01")


def bench_policy(bundle: Bundle, n_decisions: int, batch: int, seed: int) -> dict:
    """Decisions per second of ``decide`` (and of the graph alone) on random features, ``batch`` rows per call."""
    rng = np.random.default_rng(seed)
    normalizer = bundle.manifest.features.normalizer
    mean, std = np.asarray(normalizer["mean"]), np.sqrt(normalizer["var"])
    features = (mean + std * rng.standard_normal((batch, bundle.n_features))).astype(np.float32)
    mask = rng.random((batch, bundle.n_actions)) < 0.6
    mask[:, 0] = True
    exploration = Exploration(epsilon=0.05)
    bundle.decide(features, mask, exploration, rng)  # warm-up: onnxruntime allocates its buffers
    calls = max(1, n_decisions // batch)
    start = time.perf_counter()
    for _ in range(calls):
        bundle.run(features, mask)
    graph = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(calls):
        bundle.decide(features, mask, exploration, rng)
    decide = time.perf_counter() - start
    return {"decisions": calls * batch, "batch": batch, "graph_decisions_per_s": calls * batch / graph, "decide_decisions_per_s": calls * batch / decide}


def bench_end_to_end(bundle: Bundle, n_customers: int, seed: int) -> dict:
    """Customers per second from simulated histories (half a year of decisions logged) to decisions."""
    logs = simulate_logs(PopulationSimulator(), UniformRandomPolicy(), n_customers, seed=seed, start=START, progress=False)
    as_of = START + pd.Timedelta(days=182, hours=9)
    events = logs.events[logs.events["ts"] < as_of].reset_index(drop=True)
    decisions = logs.decisions[logs.decisions["ts"] < as_of].reset_index(drop=True)
    config = ScoringConfig(as_of=as_of, period_start=START, seed=seed)
    start = time.perf_counter()
    table = score_customers(bundle, events, decisions, config)
    memory = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        events_file, decisions_file, out = Path(folder, "events.parquet"), Path(folder, "decisions.parquet"), Path(folder, "scored.parquet")
        write_table(events, events_file)
        write_table(decisions, decisions_file)
        start = time.perf_counter()
        score_file(bundle, events_file, out, decisions_file, config)
        files = time.perf_counter() - start
    return {"customers": len(table), "events": len(events), "past_decisions": len(decisions),
            "in_memory_customers_per_s": len(table) / memory, "from_files_customers_per_s": len(table) / files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder from 'offerpilot export'")
    parser.add_argument("--decisions", type=int, default=2_000_000, help="policy-only decisions to time")
    parser.add_argument("--batch", type=int, default=100_000, help="customers per policy call")
    parser.add_argument("--customers", type=int, default=20_000, help="simulated customers for the end-to-end figure")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    bundle = Bundle(args.bundle, threads=args.threads)
    threads = args.threads or os.cpu_count()
    machine = (f"{cpu_name()}, {os.cpu_count()} cores, onnxruntime {ort.__version__} ({threads} threads), "
               f"numpy {np.__version__}, pandas {pd.__version__}, Python {platform.python_version()}")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    policy = bench_policy(bundle, args.decisions, args.batch, args.seed)
    end_to_end = bench_end_to_end(bundle, args.customers, args.seed)
    print(f"machine: {machine}")
    print(f"command: {command}")
    print(f"bundle: {bundle.policy_id} ({bundle.manifest.observation} observation, {bundle.n_features} features, {bundle.n_actions} actions)")
    print(f"policy only, features given ({policy['decisions']:,} decisions, batches of {policy['batch']:,}): "
          f"{policy['decide_decisions_per_s']:,.0f} decisions/s with exploration and sampling; graph alone {policy['graph_decisions_per_s']:,.0f}/s")
    print(f"end to end from raw histories ({end_to_end['customers']:,} customers, {end_to_end['events']:,} events, "
          f"{end_to_end['past_decisions']:,} past decisions): {end_to_end['in_memory_customers_per_s']:,.0f} customers/s in memory, "
          f"{end_to_end['from_files_customers_per_s']:,.0f} customers/s from Parquet files (read, validate, score, write)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "policy_id": bundle.policy_id, "policy_only": policy, "end_to_end": end_to_end}, f, indent=2)


if __name__ == "__main__":
    main()
