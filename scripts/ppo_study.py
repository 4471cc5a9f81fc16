"""The PPO study behind README's policy table: train PPO (encoder features, several seeds), PPO on raw features,
the oracle and a lam frontier, then compare them with the tuned baselines on held-out customers.

Run:  .venv/bin/python scripts/ppo_study.py [--out ppo_study] [--timesteps 6000000] [--oracle-timesteps 18000000] [--seeds 3]
          [--frontier-lams 0 0.25 0.75 1] [--customers 200000]

Every step is an ``offerpilot`` command (printed before it runs), so each can be rerun alone. The study resumes:
finished runs are kept, interrupted ones continue from their checkpoint, and the evaluation is redone at the end.
Writes OUT/timings.json (wall seconds per training run) and OUT/report/ (``offerpilot evaluate``'s table and plots).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from offerpilot.envs.objective import DEFAULT_LAM


def offerpilot(*args: str) -> None:
    """Run one ``offerpilot`` command in a process of its own; stop the study if it fails."""
    print("$ offerpilot " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "offerpilot", *args], check=True)


def finished(run: Path, timesteps: int) -> bool:
    state = run / "checkpoint" / "state.json"
    return state.is_file() and json.loads(state.read_text())["num_timesteps"] >= timesteps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("ppo_study"), help="study folder (default: %(default)s)")
    parser.add_argument("--timesteps", type=int, default=6_000_000, help="timesteps per training run (default: %(default)s)")
    parser.add_argument("--oracle-timesteps", type=int, default=None, help="timesteps of the oracle (default: 3 x --timesteps: "
                        "the yardstick of what is achievable should not be held back by its training budget)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of the main PPO configuration (default: %(default)s)")
    parser.add_argument("--lam", type=float, default=DEFAULT_LAM, help="the trade-off of the main runs and the table (default: %(default)s)")
    parser.add_argument("--frontier-lams", type=float, nargs="*", default=[0.0, 0.25, 0.75, 1.0], help="further lam values for the frontier, one seed each")
    parser.add_argument("--customers", type=int, default=200_000, help="held-out customers per policy (default: %(default)s)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    oracle_timesteps = args.oracle_timesteps or 3 * args.timesteps

    first = args.out / f"ppo_encoder_lam{args.lam}_seed0"
    encoder = first / "encoder" / "model"  # the first run trains the encoder every encoder run then shares
    steps = args.timesteps
    runs: list[tuple[Path, int, list[str]]] = [(first, steps, ["--observation", "encoder", "--lam", str(args.lam), "--seed", "0"])]
    runs += [(args.out / f"ppo_encoder_lam{args.lam}_seed{s}", steps, ["--observation", "encoder", "--encoder", str(encoder), "--lam", str(args.lam), "--seed", str(s)]) for s in range(1, args.seeds)]
    runs += [(args.out / f"ppo_raw_lam{args.lam}_seed0", steps, ["--observation", "raw", "--lam", str(args.lam), "--seed", "0"])]
    runs += [(args.out / f"oracle_lam{args.lam}_seed0", oracle_timesteps, ["--observation", "latent", "--lam", str(args.lam), "--seed", "0"])]
    runs += [(args.out / f"ppo_encoder_lam{lam}_seed0", steps, ["--observation", "encoder", "--encoder", str(encoder), "--lam", str(lam), "--seed", "0"]) for lam in args.frontier_lams]

    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for run, timesteps, flags in runs:
        if finished(run, timesteps):
            continue
        resume = (run / "checkpoint" / "state.json").is_file()
        start = time.perf_counter()
        if resume:
            offerpilot("train", "--out", str(run), "--resume", "--total-timesteps", str(timesteps), "--no-progress")
        else:
            offerpilot("train", "--out", str(run), *flags, "--total-timesteps", str(timesteps), "--eval-every", "1500000", "--eval-customers", "20000", "--no-progress")
        timings[run.name] = timings.get(run.name, 0.0) * resume + time.perf_counter() - start
        timings_path.write_text(json.dumps(timings, indent=2) + "\n")

    offerpilot("evaluate", "--runs", *(str(r) for r, _, _ in runs), "--lam", str(args.lam), "--customers", str(args.customers),
               "--out", str(args.out / "report"), "--no-progress")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
