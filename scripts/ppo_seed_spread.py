"""How reliably does a training configuration learn? Train it at several seeds and compare every run, paired on the
same held-out customers (common random numbers), with no offer and the tuned fixed schedule.

Run:  .venv/bin/python scripts/ppo_seed_spread.py [--out seed_spread] [--seeds 3] [--observation raw]
          [--timesteps 6000000] [--customers 20000] [--threads 1]
          [--variant default={}] [--variant 'ent01={"ent_coef": 0.01}'] ...

One run is a draw from a wide distribution of policies, so a configuration is judged by the spread of its seeds:
per run, the CLV gain over no offer and the paired difference from the best tuned baseline in the objective and in
CLV (mean [95 % CI] per customer); per variant, the mean, worst and best gain and their spread. Runs are kept in
OUT/VARIANT/seed_<S> and reused when the script runs again; OUT/results.json holds every number.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from offerpilot.envs.objective import DEFAULT_LAM


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, options = text.partition("=")
    try:
        overrides = json.loads(options or "{}")
    except json.JSONDecodeError as e:
        raise SystemExit(f"--variant {text!r}: the options after '=' must be a JSON object of training options ({e})") from None
    if not name or not isinstance(overrides, dict):
        raise SystemExit(f"--variant {text!r}: expected NAME or NAME={{JSON training options}}")
    return name, overrides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("seed_spread"), help="study folder (default: %(default)s)")
    parser.add_argument("--variant", action="append", default=None, metavar="NAME[=JSON]",
                        help="a configuration: the defaults with these training options (default: one variant, 'default')")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 per variant (default: %(default)s)")
    parser.add_argument("--observation", default="raw", choices=("raw", "encoder"), help="what the policies see (default: %(default)s)")
    parser.add_argument("--timesteps", type=int, default=6_000_000, help="timesteps per run (default: %(default)s)")
    parser.add_argument("--lam", type=float, default=DEFAULT_LAM, help="the objective's trade-off (default: %(default)s)")
    parser.add_argument("--customers", type=int, default=20_000, help="held-out customers (default: %(default)s)")
    parser.add_argument("--tuning-customers", type=int, default=5_000, help="customers per tuning seed of the fixed schedule (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default: %(default)s)")
    args = parser.parse_args()

    from offerpilot.agents.ppo_training import train_ppo
    from offerpilot.agents.train_config import TrainConfig
    from offerpilot.evaluation.comparison import arena_for, compare, load_run, tuned_baselines
    from offerpilot.seeds import HELD_OUT_SEED

    variants = dict(parse_variant(v) for v in (args.variant or ["default"]))
    encoder = None
    runs = {}
    for name, overrides in variants.items():
        for seed in range(args.seeds):
            folder = args.out / name / f"seed_{seed}"
            runs[f"{name} seed {seed}"] = folder
            if (folder / "policy").is_dir():
                continue
            config = TrainConfig(observation=args.observation, lam=args.lam, total_timesteps=args.timesteps, eval_every=args.timesteps // 4,
                                 eval_customers=4_000, checkpoint_every=args.timesteps, seed=seed, threads=args.threads,
                                 encoder=None if encoder is None else str(encoder))
            config = config.with_overrides(**overrides)
            started = time.perf_counter()
            train_ppo(config, folder, progress=True)
            print(f"{name} seed {seed}: trained in {time.perf_counter() - started:.0f} s", flush=True)
            if args.observation == "encoder" and encoder is None and config.encoder is None:
                encoder = (folder / "encoder" / "model").resolve()  # every later run shares the first run's encoder

    arena = arena_for(args.lam)
    baselines = tuned_baselines(arena, ("no_offer", "fixed_schedule"), None, args.tuning_customers, progress=True)
    contenders = baselines + [load_run(folder, name) for name, folder in runs.items()]
    comparison = compare(arena, contenders, args.customers, HELD_OUT_SEED, progress=True)
    by_name = {c.name: e for c, e in zip(comparison.contenders, comparison.evaluations)}
    results = {"baselines": {b.name: {"objective": by_name[b.name].objective.mean, "clv": by_name[b.name].clv.mean, "params": b.params}
                             for b in baselines}, "runs": {}, "variants": {}}
    print(f"\n{args.customers:,} held-out customers (seed {HELD_OUT_SEED}), lam {args.lam}; per customer, mean [95 % CI]\n")
    print("| run | CLV gain over no offer | objective minus fixed schedule | CLV minus fixed schedule | offers sent |")
    print("| --- | --- | --- | --- | --- |")
    for name in runs:
        gain = comparison.paired_difference(name, "no_offer", "clv")
        objective = comparison.paired_difference(name, "fixed_schedule")
        clv = comparison.paired_difference(name, "fixed_schedule", "clv")
        results["runs"][name] = {k: [e.mean, float(e.low), float(e.high)] for k, e in (("clv_gain", gain), ("objective_vs_fixed", objective), ("clv_vs_fixed", clv))}
        print(f"| {name} | {_cell(gain)} | {_cell(objective)} | {_cell(clv)} | {by_name[name].offers_sent.mean:.1f} |")
    print("\n| variant | mean CLV gain | worst | best | spread | seeds beating the schedule on both (CI > 0) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for variant in variants:
        mine = [r for n, r in results["runs"].items() if n.startswith(f"{variant} seed ")]
        gains = np.array([r["clv_gain"][0] for r in mine])
        wins = sum(r["objective_vs_fixed"][1] > 0 and r["clv_vs_fixed"][1] > 0 for r in mine)
        results["variants"][variant] = {"overrides": variants[variant], "mean_gain": gains.mean(), "worst": gains.min(), "best": gains.max(), "wins": wins}
        print(f"| {variant} | {gains.mean():.3f} | {gains.min():.3f} | {gains.max():.3f} | {gains.max() - gains.min():.3f} | {wins} of {len(mine)} |")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _cell(e) -> str:
    return f"{e.mean:+.3f} [{float(e.low):+.3f}, {float(e.high):+.3f}]"


if __name__ == "__main__":
    raise SystemExit(main())
