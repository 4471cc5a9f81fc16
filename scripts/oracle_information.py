"""What is each hidden variable worth? Oracles that see part of the simulator's latent state, against the full oracle.

Run:  .venv/bin/python scripts/oracle_information.py [--out oracle_information] [--timesteps 6000000]
          [--oracle RUN] [--customers 200000] [--variants alive rates price ...] [--seeds 1]

Each variant is ``offerpilot train --observation latent --latent-features ...`` (raw features plus those latent
variables; seed 0, or seeds 0 to N-1 with ``--seeds N``), then one ``offerpilot evaluate`` puts every variant, no offer and the full oracle on the same
held-out customers, so each variant's share of the full oracle's CLV gain comes with a paired 95 % interval. The
full oracle is trained here at the same budget unless ``--oracle`` names an existing run. The gap between a
policy that reads the shop's logs and the oracle is the value of what the logs cannot show; the variants say which
hidden variables that value sits in; the oracles that see the stable traits through noise (``NAME@R2``) measure
how far a policy can get that knows them only as well as the logs do. Resumable: finished runs are kept,
interrupted ones continue.
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
    "stable_as_logs_tell_at_start": ("log_purchase_rate@0.43", "log_dropout_rate@0.17", "log_spend_scale@0.73", "price_sensitivity@0.23"),
    "stable_as_logs_tell_after_a_year": ("log_purchase_rate@0.51", "log_dropout_rate@0.49", "log_spend_scale@0.76", "price_sensitivity@0.32"),
    "all_but_price": ("alive", "log_purchase_rate", "log_dropout_rate", "log_spend_scale", "satisfaction", "engagement", "habituation", "fatigue"),
    "all_price_as_logs_tell": ("alive", "log_purchase_rate", "log_dropout_rate", "log_spend_scale", "price_sensitivity@0.32", "satisfaction", "engagement",
                               "habituation", "fatigue"),
    "all_price_at_r2_60": ("alive", "log_purchase_rate", "log_dropout_rate", "log_spend_scale", "price_sensitivity@0.6", "satisfaction", "engagement",
                           "habituation", "fatigue"),
    "all_price_at_r2_85": ("alive", "log_purchase_rate", "log_dropout_rate", "log_spend_scale", "price_sensitivity@0.85", "satisfaction", "engagement",
                           "habituation", "fatigue"),
}
"""Variant name -> the latent variables its oracle sees (``traits``: everything but whether the customer is still active).
The ``stable_as_logs_tell_*`` oracles see the four stable traits through noise, each as well as the shop's logs tell it at
the first decision and after a year of random offers (held-out R^2 of ``scripts/trait_recoverability.py`` with every
feature, funnel included): the most a policy that reads the logs could know of them. ``all_price_as_logs_tell`` knows
every other hidden variable exactly and the price sensitivity only that well; ``all_price_at_r2_*`` know it better
than any log does, to see how well it must be known for the full oracle's gain."""


def offerpilot(*args: str) -> None:
    """Run one ``offerpilot`` command in a process of its own; stop if it fails."""
    print("$ offerpilot " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "offerpilot", *args], check=True)


def train(run: Path, timesteps: int, seed: int, flags: list[str]) -> None:
    """Train ``run`` to ``timesteps`` with ``seed``, or continue it from its checkpoint."""
    state = run / "checkpoint" / "state.json"
    if state.is_file():
        if json.loads(state.read_text())["num_timesteps"] < timesteps:
            offerpilot("train", "--out", str(run), "--resume", "--total-timesteps", str(timesteps), "--no-progress")
        return
    offerpilot("train", "--out", str(run), "--observation", "latent", *flags, "--total-timesteps", str(timesteps), "--seed", str(seed), "--no-progress")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("oracle_information"), help="study folder (default: %(default)s)")
    parser.add_argument("--timesteps", type=int, default=6_000_000, help="timesteps per oracle (default: %(default)s)")
    parser.add_argument("--oracle", type=Path, default=None, help="an existing full-oracle run (default: train one into OUT/oracle_all)")
    parser.add_argument("--customers", type=int, default=200_000, help="held-out customers per policy (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="variants to train (default: all)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds 0..N-1 of every variant and of the full oracle (default: %(default)s); "
                        "the shares are against seed 0's full oracle")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    def folder(name: str, seed: int) -> Path:
        return args.out / (f"oracle_{name}" if seed == 0 else f"oracle_{name}_seed{seed}")

    runs = []
    for name in args.variants:
        for seed in range(args.seeds):
            train(folder(name, seed), args.timesteps, seed, ["--latent-features", *VARIANTS[name]])
            runs.append(folder(name, seed))
    if args.oracle is None:
        train(folder("all", 0), args.timesteps, 0, [])
    runs.append(args.oracle or folder("all", 0))  # the first full oracle in the list is the yardstick of the shares
    for seed in range(1, args.seeds):
        train(folder("all", seed), args.timesteps, seed, [])
        runs.append(folder("all", seed))
    offerpilot("evaluate", "--runs", *map(str, runs), "--baselines", "no_offer", "--customers", str(args.customers),
               "--out", str(args.out / "report"), "--no-progress")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
