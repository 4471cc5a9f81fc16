"""Off-policy evaluation on a real randomized log that offerpilot did not make: the Open Bandit Dataset's small sample.

Run:  .venv/bin/python scripts/obd_ope.py [--out obd_ope] [--bootstrap 1000] [--n-sim 100000] [--seed 12345]

The Open Bandit Dataset (Saito et al. 2021; ZOZOTOWN, November 2019) logs which of 80 fashion items was shown in
each of 3 positions and whether it was clicked, under two logging policies: uniform random (``random/all/all.csv``,
propensity 1/80) and Bernoulli Thompson sampling (``bts/all/all.csv``). Its 10,000-row samples ship inside the
``obp`` wheel on PyPI; ``scripts/setup.sh`` installs that wheel without its dependencies and nothing imports it (it
does not run on numpy 2): the files are read by path.

The target is the BTS policy as Open Bandit Pipeline defines it for this evaluation: Thompson sampling from the
production prior that ZOZOTOWN's BTS started the collection period with (``obp/policy/conf/prior_bts.yaml``),
each item's probability at each position by Monte Carlo (``--n-sim`` rankings). Its true value is the BTS log's mean
click. The random log goes through ``offerpilot ope`` as it is: ``--outcome click``, ``--action-column item_id``,
``--propensity-column propensity_score``, ``--slot position``, ``--context-prefix user_feature_``, and the target as a
table of probabilities keyed by ``position``.

Why not read the target from the BTS log's ``propensity_score`` column: the BTS posterior moved during the log, so
one item at one position carries many propensities (up to 244 distinct values; the median coefficient of variation
within an item-position is 0.8), and their means do not sum to 1 over the items of a position (1.31 to 1.71).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

OBP_RELATIVE_ERRORS = {"ips": 0.084, "dm": 0.194, "dr": 0.106}
"""Relative errors Open Bandit Pipeline's quickstart notebook reports on this sample (IPW, DM, DR)."""
N_ITEMS, N_POSITIONS = 80, 3
INTERVAL_METHODS = ("percentile", "studentized")
"""Both bootstrap intervals: with 38 clicks in 10,000 rows the studentized one, validated on simulated logs, is unstable."""
INSTALL_HINT = "the Open Bandit Dataset's sample ships in the obp wheel: `.venv/bin/pip install --no-deps obp==0.4.1` (scripts/setup.sh does)"


def obd_folder() -> Path:
    """The ``obp`` package folder (found without importing it), holding ``dataset/obd`` and ``policy/conf``."""
    spec = importlib.util.find_spec("obp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package 'obp' is not installed; {INSTALL_HINT}")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / "dataset" / "obd" / "random" / "all" / "all.csv").is_file():
        raise FileNotFoundError(f"{folder} has no dataset/obd/random/all/all.csv; {INSTALL_HINT}")
    return folder


def bts_target(prior: Path, n_sim: int = 100_000, seed: int = 12345, chunk: int = 10_000) -> pd.DataFrame:
    """The production-prior BTS policy as a target table: one row per position (1-3), ``prob_<item>`` the share of
    ``n_sim`` Thompson draws (a Beta sample per item, items ranked by it) that put the item at that position."""
    params = yaml.safe_load(prior.read_text())["all"]
    alpha, beta = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    rng = np.random.default_rng(seed)
    counts = np.zeros((N_POSITIONS, N_ITEMS))
    for start in range(0, n_sim, chunk):
        ranked = np.argsort(-rng.beta(alpha, beta, size=(min(chunk, n_sim - start), N_ITEMS)), axis=1)[:, :N_POSITIONS]
        for position in range(N_POSITIONS):
            counts[position] += np.bincount(ranked[:, position], minlength=N_ITEMS)
    table = pd.DataFrame(counts / n_sim, columns=[f"prob_{i}" for i in range(N_ITEMS)])
    table.insert(0, "position", np.arange(1, N_POSITIONS + 1))
    return table


def ope_arguments(random_log: Path, target: Path, out: Path, bootstrap: int, seed: int) -> list[str]:
    """The ``offerpilot ope`` command line of the random log against the target table."""
    return ["ope", "--decisions", str(random_log), "--outcome", "click", "--action-column", "item_id", "--propensity-column", "propensity_score",
            "--slot", "position", "--context-prefix", "user_feature_", "--policy", str(target), "--bootstrap", str(bootstrap), "--seed", str(seed),
            "--out", str(out)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("obd_ope"), help="folder for the target table, the ope reports and summary.json (default: %(default)s)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (default: %(default)s)")
    parser.add_argument("--n-sim", type=int, default=100_000, help="Thompson draws behind the target's probabilities (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the draws and the bootstrap (default: %(default)s)")
    args = parser.parse_args()
    from offerpilot.app.cli import main as offerpilot

    folder = obd_folder()
    obd = folder / "dataset" / "obd"
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "bts_target.csv"
    bts_target(folder / "policy" / "conf" / "prior_bts.yaml", args.n_sim, args.seed).to_csv(target, index=False)
    reports = {}
    for method in INTERVAL_METHODS:
        argv = [*ope_arguments(obd / "random" / "all" / "all.csv", target, args.out / method, args.bootstrap, args.seed), "--interval-method", method]
        print("$ offerpilot " + " ".join(argv), flush=True)
        if offerpilot(argv) != 0:
            return 1
        reports[method] = {e["estimator"]: e for e in json.loads((args.out / method / "ope.json").read_text())["estimates"]}

    clicks = pd.read_csv(obd / "bts" / "all" / "all.csv", usecols=["click"])["click"].to_numpy(float)
    truth, truth_se = clicks.mean(), clicks.std(ddof=1) / np.sqrt(clicks.size)
    rows = []
    for name, e in reports[INTERVAL_METHODS[0]].items():
        intervals = {m: [reports[m][name]["low"], reports[m][name]["high"]] for m in INTERVAL_METHODS}
        rows.append({"estimator": name, "value": e["value"], "relative_error": abs(e["value"] - truth) / truth, "intervals": intervals,
                     "covers_truth": {m: bool(lo <= truth <= hi) for m, (lo, hi) in intervals.items()}, "obp_relative_error": OBP_RELATIVE_ERRORS.get(name)})
    summary = {"truth": float(truth), "truth_ci": [float(truth - 1.96 * truth_se), float(truth + 1.96 * truth_se)], "n_bts_rows": int(clicks.size), "estimates": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\ntrue value (BTS log's mean click, {clicks.size:,} rows): {truth:.5f} [{truth - 1.96 * truth_se:.5f}, {truth + 1.96 * truth_se:.5f}]")
    print("| estimator | estimate | relative error | obp's relative error | 95 % CI, percentile | 95 % CI, studentized |\n|---|---|---|---|---|---|")
    for r in rows:
        obp = "" if r["obp_relative_error"] is None else f"{r['obp_relative_error']:.3f}"
        ci = {m: f"[{lo:.5f}, {hi:.5f}]" + ("" if r["covers_truth"][m] else " (misses)") for m, (lo, hi) in r["intervals"].items()}
        print(f"| {r['estimator']} | {r['value']:.5f} | {r['relative_error']:.3f} | {obp} | {ci['percentile']} | {ci['studentized']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
