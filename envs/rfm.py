"""Recency-frequency-monetary summaries of a purchase log, and what the "buy till you die" models share.

A customer's calibration-period history is summarised, in the notation of Fader, Hardie & Lee (2005),
by ``x`` (repeat purchases), ``t_x`` (time of the last purchase, measured from the first) and ``T``
(time from the first purchase to the end of calibration). :func:`summarise_purchases` builds that
table from an events log; :func:`check_rfm` validates it at the boundary of every model; and
:func:`maximise_log_likelihood` is the optimiser the models are fitted with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from offerpilot.errors import InputError

ArrayLike = np.ndarray | pd.Series | float | int


def summarise_purchases(
    events: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    holdout_end: str | pd.Timestamp | None = None,
    unit_days: float = 7.0,
    merge_same_day: bool = True,
) -> pd.DataFrame:
    """Summarise each customer's purchases as ``(x, t_x, T, monetary)`` over a calibration period.

    Rows of ``events`` whose ``event`` is not ``"purchase"`` are ignored. A purchase belongs to the
    calibration period when its time is ``<= calibration_end`` and to the holdout period when it is
    in ``(calibration_end, holdout_end]``. With ``merge_same_day`` a purchase's time is its day
    (``ts`` floored to midnight) and all purchases of a customer on one day count as one
    transaction whose value is their sum. Only customers whose first purchase falls in the
    calibration period are summarised (customers acquired later are not part of the cohort).

    Standard CDNOW protocol: ``calibration_end="1997-09-30"``, ``holdout_end="1998-06-30"``,
    ``unit_days=7`` (39 + 39 weeks).

    :param events: events table with columns ``user_id``, ``ts`` (datetime64), ``event``, ``amount``.
    :param calibration_end: last instant of the calibration period.
    :param holdout_end: last instant of the holdout period; ``None`` for no holdout columns.
    :param unit_days: length of one time unit in days (7 = weeks).
    :param merge_same_day: count one transaction per customer-day (see above); otherwise every
        purchase row is a transaction.
    :return: one row per customer, indexed by ``user_id``, with columns ``x`` (int64, transactions
        in calibration minus 1), ``t_x`` (float64, last minus first transaction time, in units),
        ``T`` (float64, ``calibration_end`` minus first transaction time, in units), ``monetary``
        (float64, mean value of the ``x`` repeat transactions, 0 when ``x == 0``) and, when
        ``holdout_end`` is given, ``x_holdout`` (int64, transactions in the holdout period) and
        ``spend_holdout`` (float64, their total value).
    :raises ValueError: on missing columns, non-datetime or missing ``ts``, missing ``amount`` on a
        purchase, ``unit_days <= 0`` or ``holdout_end <= calibration_end``.
    """
    missing = {"user_id", "ts", "event", "amount"} - set(events.columns)
    if missing:
        raise InputError(f"events lacks column(s) {sorted(missing)}")
    if not pd.api.types.is_datetime64_any_dtype(events["ts"]):
        raise InputError(f"events['ts'] must be datetime64, got {events['ts'].dtype}")
    if unit_days <= 0:
        raise InputError(f"unit_days must be > 0, got {unit_days}")
    calibration_end = pd.Timestamp(calibration_end)
    if holdout_end is not None:
        holdout_end = pd.Timestamp(holdout_end)
        if holdout_end <= calibration_end:
            raise InputError(f"holdout_end {holdout_end} must be after calibration_end {calibration_end}")

    purchases = events.loc[events["event"] == "purchase", ["user_id", "ts", "amount"]]
    bad = purchases["ts"].isna() | purchases["amount"].isna()
    if bad.any():
        rows = purchases.index[bad][:10].tolist()
        raise InputError(f"{int(bad.sum())} purchase row(s) lack ts or amount, e.g. at index {rows}")

    time = purchases["ts"].dt.floor("D") if merge_same_day else purchases["ts"]
    tx = pd.DataFrame({"user_id": purchases["user_id"], "time": time, "amount": purchases["amount"]})
    if merge_same_day:
        tx = tx.groupby(["user_id", "time"], sort=False, as_index=False)["amount"].sum()
    tx = tx.sort_values(["user_id", "time"], kind="stable")

    cal = tx[tx["time"] <= calibration_end]
    by_user = cal.groupby("user_id", sort=True)
    first = by_user["time"].min()
    unit = pd.Timedelta(days=unit_days)
    x = by_user.size() - 1
    repeat = cal[by_user.cumcount().to_numpy() > 0]
    monetary = repeat.groupby("user_id")["amount"].mean().reindex(first.index, fill_value=0.0)
    summary = pd.DataFrame(
        {
            "x": x.astype(np.int64),
            "t_x": ((by_user["time"].max() - first) / unit).astype(np.float64),
            "T": ((calibration_end - first) / unit).astype(np.float64),
            "monetary": monetary.astype(np.float64),
        }
    )
    if holdout_end is not None:
        hold = tx[(tx["time"] > calibration_end) & (tx["time"] <= holdout_end)].groupby("user_id")["amount"]
        summary["x_holdout"] = hold.size().reindex(summary.index, fill_value=0).astype(np.int64)
        summary["spend_holdout"] = hold.sum().reindex(summary.index, fill_value=0.0).astype(np.float64)
    summary.index.name = "user_id"
    return summary


def check_rfm(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and broadcast an RFM summary to three float64 arrays of one shape.

    :raises ValueError: unless every ``x`` is a finite whole number ``>= 0``, ``0 <= t_x <= T``,
        ``T > 0``, and ``t_x == 0`` where ``x == 0``.
    """
    x, t_x, T = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, t_x, T)))
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        raise InputError("x, t_x and T must be finite")
    if (x < 0).any() or (x != np.round(x)).any():
        raise InputError("x (repeat purchases) must be whole numbers >= 0")
    if (t_x < 0).any():
        raise InputError("t_x (time of last purchase) must be >= 0")
    if (T <= 0).any():
        raise InputError("T (time since first purchase) must be > 0")
    if (t_x > T).any():
        raise InputError(f"t_x must be <= T; {int((t_x > T).sum())} customer(s) have t_x > T")
    if ((x == 0) & (t_x != 0)).any():
        raise InputError("t_x must be 0 where x == 0 (no repeat purchase)")
    return x, t_x, T


def check_horizon(t: ArrayLike) -> np.ndarray:
    """Validate a prediction horizon: finite and ``>= 0``; returns it as float64."""
    t = np.asarray(t, dtype=np.float64)
    if not np.isfinite(t).all() or (t < 0).any():
        raise InputError("the horizon t must be finite and >= 0")
    return t


def maximise_log_likelihood(
    mean_log_likelihood: Callable[[np.ndarray], float], n_params: int
) -> tuple[np.ndarray, float]:
    """Maximise a mean log-likelihood over positive parameters with L-BFGS-B on their logarithms.

    :param mean_log_likelihood: maps the positive parameter vector, shape ``(n_params,)``, to the
        mean per-customer log-likelihood (may return ``-inf``/``nan`` outside the model's support).
    :return: the maximising parameters ``(n_params,)`` and the mean log-likelihood there.
    :raises RuntimeError: when the optimiser reports failure.
    """

    def objective(log_params: np.ndarray) -> float:
        value = mean_log_likelihood(np.exp(log_params))
        return -value if np.isfinite(value) else 1e10

    result = minimize(
        objective,
        np.zeros(n_params),
        method="L-BFGS-B",
        bounds=[(-15.0, 15.0)] * n_params,
        options={"ftol": 1e-13, "gtol": 1e-6, "maxiter": 10_000},
    )
    if not result.success:
        raise RuntimeError(f"maximum-likelihood fit did not converge: {result.message}")
    return np.exp(result.x), -float(result.fun)
