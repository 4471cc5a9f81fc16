"""The whole loop on the built-in defaults: ``offerpilot demo``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add 'demo' to the ``offerpilot`` command."""
    demo = sub.add_parser("demo", help="run the whole loop on the built-in defaults and write a report (about 15 minutes on 2 cores; --quick: 2)",
                          description="Simulate a shop's logs under random offers, train the customer encoder on them, train "
                          "PPO (and the frontier's other lam, and the oracle), evaluate every policy against tuned baselines on "
                          "held-out customers, estimate the trained policy off-policy on the logs beside its simulated truth, "
                          "export a bundle, score every logged customer with it, and write a report (report.html and report.md "
                          "with PNG plots). Each step's outputs stay in a folder of their own under --out.")
    demo.add_argument("--out", type=Path, default=Path("offerpilot-demo"),
                      help="demo folder; replaced if an earlier demo wrote it, refused if it holds anything else (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="every step at a small size: under 2 minutes, rough numbers")
    demo.add_argument("--seed", type=int, default=0, help="random seed of every step (default: %(default)s)")
    demo.add_argument("--no-progress", action="store_true", help="no step headings or progress bars")
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from offerpilot.app.demo import DemoConfig, run_demo

    config = DemoConfig.quick(args.seed) if args.quick else DemoConfig(seed=args.seed)
    result = run_demo(config, args.out, progress=not args.no_progress)
    print((result.out / "report" / "report.md").read_text().split("## 2.")[0].split("## 1.")[1].strip())
    print(f"\nreport: {result.report} (and report.md beside it); everything the demo made: {result.out}/ "
          f"({sum(result.timings.values()) / 60:.1f} minutes)")
    return 0
