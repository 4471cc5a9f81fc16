"""What is each hidden variable worth? Oracles that see part of the simulator's latent state, against the full oracle.

Run:  .venv/bin/python scripts/oracle_information.py [--out oracle_information] [--timesteps 6000000]
          [--oracle RUN] [--customers 200000] [--variants alive rates price stable dynamic traits]

Each variant is ``offerpilot train --observation latent --latent-features ...`` (raw features plus those latent
variables; seed 0), then one ``offerpilot evaluate`` puts every variant, no offer and the full oracle on the same
held-out customers, so each variant's share of the full oracle's CLV gain comes with a paired 95 % interval. The
full oracle is trained here at the same budget unless ``--oracle`` names an existing run. The gap between a
policy that reads the shop's logs and the oracle is the value of what the logs cannot show; the variants say which
hidden variables that value sits in. Resumable: finished runs are kept, interrupted ones continue.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "alive": ("alive",),
    "rates": ("log_purchase_rate", "log_dropout_rate", "log_spend_scale"),
    "price": ("price_sensitivity",),
    "stable": ("log_purchase_rate", "log_dropout_rate", "log_spend_scale", "price_sensitivity"),
    "dynamic": ("satisfaction", "engagement", "habituation", "fatigue"),
    "traits": ("log_purchase_rate", "log_dropout_rate", "log_spend_scale", "price_sensitivity", "satisfaction", "engagement", "habituation", "fatigue"),
}
"""Variant name -> the latent variables its oracle sees (``traits``: everything but whether the customer is still active)."""


def offerpilot(*args: str) -> None:
    """Run one ``offerpilot`` command in a process of its own; stop if it fails."""
    print("$ offerpilot " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "offerpilot.cli", *args], check=True)


def train(run: Path, timesteps: int, flags: list[str]) -> None:
    """Train ``run`` to ``timesteps``, or continue it from its checkpoint."""
    state = run / "checkpoint" / "state.json"
    if state.is_file():
        if json.loads(state.read_text())["num_timesteps"] < timesteps:
            offerpilot("train", "--out", str(run), "--resume", "--total-timesteps", str(timesteps), "--no-progress")
        return
    offerpilot("train", "--out", str(run), "--observation", "latent", *flags, "--total-timesteps", str(timesteps), "--seed", "0", "--no-progress")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("oracle_information"), help="study folder (default: %(default)s)")
    parser.add_argument("--timesteps", type=int, default=6_000_000, help="timesteps per oracle (default: %(default)s)")
    parser.add_argument("--oracle", type=Path, default=None, help="an existing full-oracle run (default: train one into OUT/oracle_all)")
    parser.add_argument("--customers", type=int, default=200_000, help="held-out customers per policy (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="variants to train (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in args.variants:
        run = args.out / f"oracle_{name}"
        train(run, args.timesteps, ["--latent-features", *VARIANTS[name]])
        runs.append(run)
    oracle = args.oracle
    if oracle is None:
        oracle = args.out / "oracle_all"
        train(oracle, args.timesteps, [])
    offerpilot("evaluate", "--runs", *map(str, runs), str(oracle), "--baselines", "no_offer", "--customers", str(args.customers),
               "--out", str(args.out / "report"), "--no-progress")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
