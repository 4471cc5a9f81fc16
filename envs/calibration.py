"""Fit the population's purchase, dropout and spend heterogeneity to a real purchase log.

Maximum likelihood on the calibration period: Pareto/NBD (Schmittlein, Morrison & Colombo 1987)
for purchase rates ``lam ~ Gamma(r, alpha)`` and dropout hazards ``mu ~ Gamma(s, beta)``, and
Gamma-Gamma (Fader, Hardie & Lee 2005) for spend, all in days. Behavioural effects that a plain
purchase log cannot identify (offer response, fatigue, habituation) keep their defaults.
:func:`holdout_fidelity` then simulates the same customers, acquired on their real first-purchase
days with no offers, and compares the holdout period with what really happened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from offerpilot.catalog import default_catalog
from offerpilot.envs.day_kernel import DayKernel
from offerpilot.envs.gamma_gamma import GammaGamma
from offerpilot.envs.history import simulate_lives
from offerpilot.envs.pareto_nbd import ParetoNBD
from offerpilot.envs.population import PopulationParams, sample_traits
from offerpilot.envs.rfm import summarise_purchases
from offerpilot.errors import InputError

FITTED = ("r", "alpha", "s", "beta", "spend_p", "spend_q", "spend_gamma")
"""The population parameters a purchase log identifies; the behavioural ones keep their defaults."""


@dataclass(frozen=True)
class Calibration:
    """Fitted population parameters and the fits they came from."""

    params: PopulationParams
    n_customers: int
    n_zero_spend_repeaters: int
    """Repeat buyers whose repeat purchases were all free: kept for the purchase model, left out of
    the spend fit (Gamma-Gamma needs positive spend)."""
    calibration_end: str
    pareto_nbd_log_likelihood: float
    gamma_gamma_log_likelihood: float

    def to_dict(self) -> dict:
        """The fitted parameters (the rest of the population keeps offerpilot's defaults) and fit facts."""
        fitted = {k: v for k, v in asdict(self.params).items() if k in FITTED}
        return {
            "population": fitted,
            "fit": {
                "n_customers": self.n_customers,
                "n_zero_spend_repeaters": self.n_zero_spend_repeaters,
                "calibration_end": self.calibration_end,
                "pareto_nbd_log_likelihood": self.pareto_nbd_log_likelihood,
                "gamma_gamma_log_likelihood": self.gamma_gamma_log_likelihood,
                "time_unit": "day",
            },
        }


def calibrate(
    events: pd.DataFrame,
    calibration_end: str | pd.Timestamp | None = None,
    base: PopulationParams | None = None,
) -> Calibration:
    """Fit ``base``'s heterogeneity parameters to the purchases in ``events`` up to ``calibration_end``
    (default: the last purchase in the log). Customers need at least one purchase; spend is fitted on
    the customers with a repeat purchase (Gamma-Gamma needs two or more transactions)."""
    base = base or PopulationParams()
    purchases = events[events["event"] == "purchase"]
    if purchases.empty:
        raise InputError("the log has no purchase events to calibrate on")
    end = pd.Timestamp(calibration_end) if calibration_end is not None else purchases["ts"].max().normalize()
    rfm = summarise_purchases(purchases, calibration_end=end, unit_days=1.0)
    if (rfm["x"] > 0).sum() < 20:
        raise InputError(f"only {(rfm['x'] > 0).sum()} customers bought twice or more before {end.date()}: too few to fit spend")
    pnbd = ParetoNBD().fit(rfm["x"], rfm["t_x"], rfm["T"])
    repeat = rfm[(rfm["x"] > 0) & (rfm["monetary"] > 0)]
    n_zero_spend = int(((rfm["x"] > 0) & (rfm["monetary"] <= 0)).sum())
    gg = GammaGamma().fit(repeat["x"], repeat["monetary"])
    params = base.replace(
        r=float(pnbd.r_), alpha=float(pnbd.alpha_), s=float(pnbd.s_), beta=float(pnbd.beta_),
        spend_p=float(gg.p_), spend_q=float(gg.q_), spend_gamma=float(gg.gamma_),
    )
    return Calibration(
        params, len(rfm), n_zero_spend, str(end.date()), float(pnbd.log_likelihood_), float(gg.log_likelihood_)
    )


@dataclass(frozen=True)
class HoldoutComparison:
    """Real against simulated holdout behaviour of one cohort."""

    real_repeat_share: np.ndarray  # share of customers with 0, 1, ..., k-1, >= k purchase days
    sim_repeat_share: np.ndarray
    real_zero_share: float
    sim_zero_share: float
    real_mean_spend_per_buyer: float
    sim_mean_spend_per_buyer: float
    real_mean_purchases: float
    sim_mean_purchases: float
    real_spend_per_purchase: float
    sim_spend_per_purchase: float


def holdout_fidelity(
    events: pd.DataFrame,
    params: PopulationParams,
    calibration_end: str | pd.Timestamp,
    holdout_end: str | pd.Timestamp,
    seed: int = 0,
    max_count: int = 7,
) -> HoldoutComparison:
    """Simulate the cohort of ``events`` (each customer acquired on their real first-purchase day,
    no offers) through the holdout period and compare purchase days and spend with the real ones."""
    purchases = events[events["event"] == "purchase"]
    cal_end, hold_end = pd.Timestamp(calibration_end), pd.Timestamp(holdout_end)
    rfm = summarise_purchases(purchases, calibration_end=cal_end, holdout_end=hold_end, unit_days=1.0)
    n = len(rfm)
    rng = np.random.default_rng(seed)
    traits = sample_traits(params, n, rng)
    first_day = -(rfm["T"].to_numpy().round().astype(np.int64))  # day 0 = calibration end
    horizon = int((hold_end.normalize() - cal_end.normalize()).days)
    count = np.zeros(n, np.int64)
    spend = np.zeros(n)

    def on_day(customers: np.ndarray, state, out) -> None:
        in_holdout = state.day[0] - 1 >= 1  # days 1..horizon follow the calibration end
        if in_holdout:
            count[customers] += out.purchased
            spend[customers] += out.list_value

    simulate_lives(DayKernel(params, default_catalog()), traits, first_day, horizon + 1, on_day=on_day)
    real_x, real_spend = rfm["x_holdout"].to_numpy(), rfm["spend_holdout"].to_numpy()
    bins = np.arange(max_count + 1)

    def share(x: np.ndarray) -> np.ndarray:
        return np.bincount(np.minimum(x, max_count), minlength=max_count + 1)[bins] / x.size

    return HoldoutComparison(
        real_repeat_share=share(real_x),
        sim_repeat_share=share(count),
        real_zero_share=float((real_x == 0).mean()),
        sim_zero_share=float((count == 0).mean()),
        real_mean_spend_per_buyer=float(real_spend[real_x > 0].mean()),
        sim_mean_spend_per_buyer=float(spend[count > 0].mean()),
        real_mean_purchases=float(real_x.mean()),
        sim_mean_purchases=float(count.mean()),
        real_spend_per_purchase=float(real_spend.sum() / max(real_x.sum(), 1)),
        sim_spend_per_purchase=float(spend.sum() / max(count.sum(), 1)),
    )
