"""How much of each hidden trait can a shop read from its own logs? The ceiling on any policy that reads them.

Run:  .venv/bin/python scripts/trait_recoverability.py [--customers 40000] [--steps 0 13 26 52] [--seed 0]

The oracle knows each customer's purchase, dropout and spend rates and price sensitivity; a shop sees only what
they did. This script simulates customers for a year of weekly decisions under uniformly random offers (the
logging that reveals the most about how each customer answers discounts: about 36 offers a year, of every kind),
and at several decision steps fits a gradient-boosted regressor from what the shop knows then to each trait:

* the raw features every policy sees (RFM, contact history, the time in the period), and
* the customer's answers to offers so far, which the raw features leave out: offers received, the share of weeks
  with a live offer in which they bought, the share of the other weeks in which they bought, and the discount
  they took;
* their shopping funnel in the event log since they were acquired: days with a visit, days with a cart, and
  carts left without a purchase (in the simulator, price-sensitive customers abandon more carts).

It reports the held-out R^2 per trait and step, from the raw features alone, with the answers to offers, and
with the funnel too (fit on ``--customers``, scored on as many fresh ones, seeds ``seed`` and ``seed + 1``), with a 95 % bootstrap
interval over the held-out customers (the fitted model held fixed). A trait whose R^2 stays
near 0 after a year cannot be told apart from the logs, and the oracle's gain from knowing it is out of reach
for any policy that reads them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from offerpilot.envs.policy import UniformRandomPolicy, act
from offerpilot.envs.population import FUNNEL, CustomerState, DayOutcome
from offerpilot.envs.simulator import PopulationSimulator

TRAITS = {
    "log purchase rate": lambda t: np.log(t.purchase_rate),
    "log dropout rate": lambda t: np.log(t.dropout_rate),
    "log spend scale": lambda t: np.log(t.spend_scale),
    "log price sensitivity": lambda t: np.log(t.price_sensitivity),
}
"""The oracle's stable traits, on the log scale their effects act on."""


def shop_view(sim: PopulationSimulator, n: int, seed: int, steps: list[int]) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """What the shop knows at each of ``steps`` (decision index, before that decision) about ``n`` customers
    logged under uniformly random offers, and their true traits."""
    rng = np.random.default_rng(seed)
    funnel = np.zeros((n, 3))  # days with a visit, with a cart, with a cart but no purchase

    def on_day(customers: np.ndarray, state: CustomerState, out: DayOutcome) -> None:
        cart = out.stage >= FUNNEL.index("cart")
        funnel[customers] += np.column_stack([out.stage >= FUNNEL.index("visit"), cart, cart & ~out.purchased])

    traits, state = sim.new_customers(n, rng, on_day=on_day)
    policy = UniformRandomPolicy()
    is_offer = sim.catalog.is_offer
    offer_weeks, bought_offer_weeks, other_weeks, bought_other_weeks, discount = (np.zeros(n) for _ in range(5))
    views = {}
    for t in range(max(steps) + 1):
        if t in steps:
            answers = np.column_stack([
                offer_weeks,
                (bought_offer_weeks + 0.5) / (offer_weeks + 1.0),
                (bought_other_weeks + 0.5) / (other_weeks + 1.0),
                discount,
            ])
            abandoned = (funnel[:, 2] + 0.5) / (funnel[:, 1] + 1.0)
            views[t] = np.concatenate([sim.observe(traits, state), answers, np.log1p(funnel), abandoned[:, None]], axis=1)
        if t == sim.config.n_decisions:
            break
        actions, _ = act(policy, sim.observe(traits, state), sim.action_mask(state), rng=rng)
        state, out = sim.advance(traits, state, actions, on_day=on_day)
        offered = out.sent & is_offer[out.action]
        bought = out.purchases > 0
        offer_weeks = offer_weeks + offered
        bought_offer_weeks = bought_offer_weeks + (offered & bought)
        other_weeks = other_weeks + ~offered
        bought_other_weeks = bought_other_weeks + (~offered & bought)
        discount = discount + out.discount
    return views, {name: f(traits).astype(np.float64) for name, f in TRAITS.items()}


def r2_interval(y: np.ndarray, pred: np.ndarray, rng: np.random.Generator, n_boot: int = 200) -> tuple[float, float, float]:
    """Held-out R^2 and its 95 % percentile bootstrap interval over customers."""
    def r2(idx: np.ndarray) -> float:
        yi = y[idx]
        return 1.0 - float(((yi - pred[idx]) ** 2).sum() / ((yi - yi.mean()) ** 2).sum())

    everyone = np.arange(y.size)
    boots = [r2(rng.integers(0, y.size, y.size)) for _ in range(n_boot)]
    low, high = np.quantile(boots, [0.025, 0.975])
    return r2(everyone), float(low), float(high)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=40_000, help="customers to fit on, and as many to score (default: %(default)s)")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 13, 26, 52], help="decision steps to read the logs at (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fitting customers; the held-out ones use seed + 1 (default: %(default)s)")
    args = parser.parse_args()
    sim = PopulationSimulator()
    if min(args.steps) < 0 or max(args.steps) > sim.config.n_decisions:
        parser.error(f"--steps must lie in [0, {sim.config.n_decisions}]")
    start = time.perf_counter()
    fit_views, fit_traits = shop_view(sim, args.customers, args.seed, args.steps)
    test_views, test_traits = shop_view(sim, args.customers, args.seed + 1, args.steps)
    rng = np.random.default_rng(args.seed)
    print(f"held-out R^2 of each trait from the logs ({args.customers:,} customers to fit, {args.customers:,} held out; "
          "uniformly random offers; 95 % bootstrap intervals)\n")
    n_raw = sim.n_features
    print("| trait | the shop reads | " + " | ".join(f"after {t} weeks" for t in args.steps) + " |")
    print("| --- | --- |" + " --- |" * len(args.steps))
    for name in TRAITS:
        views = (("raw features", slice(0, n_raw)), ("+ answers to offers", slice(0, n_raw + 4)), ("+ answers + shopping funnel", slice(None)))
        for label, columns in views:
            cells = []
            for t in args.steps:
                model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.1, random_state=args.seed)
                model.fit(fit_views[t][:, columns], fit_traits[name])
                r2, low, high = r2_interval(test_traits[name], model.predict(test_views[t][:, columns]), rng)
                cells.append(f"{r2:.2f} [{low:.2f}, {high:.2f}]")
            print(f"| {name} | {label} | " + " | ".join(cells) + " |")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
