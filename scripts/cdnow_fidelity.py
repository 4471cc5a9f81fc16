"""CDNOW holdout fidelity of the calibrated simulator, as a Markdown table.

Run:  .venv/bin/python scripts/cdnow_fidelity.py [--seeds 5]

Standard protocol: calibrate on weeks 1-39 (1997-01-01 to 1997-09-30), compare weeks 40-78.
The simulator draws fresh customers from the calibrated population, acquired on the real
first-purchase days, with no offers; the classic Pareto/NBD is conditioned on each customer's
own calibration history. Simulator figures are means over seeds with the range across seeds.
"""

from __future__ import annotations

import argparse

import numpy as np

from offerpilot.envs.calibration import calibrate, holdout_fidelity
from offerpilot.envs.cdnow import load_cdnow
from offerpilot.envs.pareto_nbd import ParetoNBD
from offerpilot.envs.rfm import summarise_purchases

CAL_END, HOLD_END, HORIZON = "1997-09-30", "1998-06-30", 273


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    events = load_cdnow()
    params = calibrate(events, CAL_END).params
    runs = [holdout_fidelity(events, params, CAL_END, HOLD_END, seed=s) for s in range(args.seeds)]
    rfm = summarise_purchases(events, CAL_END, HOLD_END, unit_days=1.0)
    classic = ParetoNBD().fit(rfm["x"], rfm["t_x"], rfm["T"])
    classic_mean = float(classic.expected_purchases(HORIZON, rfm["x"], rfm["t_x"], rfm["T"]).mean())
    classic_zero = float(classic.prob_no_purchase(HORIZON, rfm["x"], rfm["t_x"], rfm["T"]).mean())
    real = runs[0]

    def sim(attr: str, fmt: str) -> str:
        values = np.array([getattr(r, attr) for r in runs])
        return f"{values.mean():{fmt}} ({values.min():{fmt}}-{values.max():{fmt}})"

    print(f"CDNOW, {len(rfm):,} customers, weeks 40-78; simulator over {args.seeds} seeds (min-max)\n")
    print("| holdout statistic | real | simulator | classic Pareto/NBD |")
    print("| --- | --- | --- | --- |")
    print(f"| purchase days per customer | {real.real_mean_purchases:.3f} | {sim('sim_mean_purchases', '.3f')} | {classic_mean:.3f} |")
    print(f"| share with no purchase | {real.real_zero_share:.3f} | {sim('sim_zero_share', '.3f')} | {classic_zero:.3f} |")
    print(f"| spend per buyer ($) | {real.real_mean_spend_per_buyer:.1f} | {sim('sim_mean_spend_per_buyer', '.1f')} | |")
    print(f"| spend per purchase day ($) | {real.real_spend_per_purchase:.1f} | {sim('sim_spend_per_purchase', '.1f')} | |")
    shares = np.array([r.sim_repeat_share for r in runs]).mean(axis=0)
    labels = [str(k) for k in range(len(shares) - 1)] + [f"{len(shares) - 1}+"]
    print("\n| purchase days in holdout | " + " | ".join(labels) + " |")
    print("| --- |" + " --- |" * len(labels))
    print("| real | " + " | ".join(f"{v:.3f}" for v in real.real_repeat_share) + " |")
    print("| simulator | " + " | ".join(f"{v:.3f}" for v in shares) + " |")
    tvd = [0.5 * np.abs(r.sim_repeat_share - r.real_repeat_share).sum() for r in runs]
    print(f"\ntotal variation distance: {np.mean(tvd):.3f} (range {min(tvd):.3f}-{max(tvd):.3f})")


if __name__ == "__main__":
    main()
