"""Boundary checks for off-policy evaluation inputs: every failure is a ``ValueError`` that names the
argument, the problem, how many rows (or ``(trajectory, step)`` entries) have it and the first few.

Each check takes an optional ``where`` bool mask of the array's leading shape; only entries where it
is True are checked (padding after a trajectory's end may hold anything).
"""

from __future__ import annotations

import numpy as np

N_SHOWN = 5
SUM_TOL = 1e-6


def fail_rows(name: str, bad: np.ndarray, problem: str) -> None:
    """Raise if any entry of ``bad`` (n,) or (n, horizon) bool is True, naming the first few."""
    bad = np.asarray(bad, bool)
    where = np.argwhere(bad)
    if where.shape[0] == 0:
        return
    if bad.ndim == 1:
        label, shown = "rows", [str(int(i)) for i in where[:N_SHOWN, 0]]
    else:
        label, shown = "(trajectory, step) entries", [str(tuple(int(j) for j in ij)) for ij in where[:N_SHOWN]]
    more = ", ..." if where.shape[0] > N_SHOWN else ""
    raise ValueError(f"{name}: {where.shape[0]} of {bad.size} {label} {problem} ({label} {', '.join(shown)}{more})")


def as_float_array(name: str, value: object, shape: tuple[int, ...] | None = None, ndim: int | None = None) -> np.ndarray:
    """``value`` as a float array (missing entries such as ``None`` become NaN), checked against
    ``shape`` (exact) or ``ndim``. float32 input stays float32, so 10 million x n_actions matrices are
    not copied; everything else becomes float64."""
    if value is None:
        raise ValueError(f"{name} is missing")
    arr = np.asarray(value)
    if arr.dtype != np.float32:
        arr = np.asarray(arr, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    return arr


def as_actions(name: str, value: object, shape: tuple[int, ...], n_actions: int, where: np.ndarray | None = None) -> np.ndarray:
    """Action indices as int64 of ``shape``; each checked entry must be an integer in [0, n_actions).
    Unchecked (padding) entries become 0."""
    arr = as_float_array(name, value, shape)
    keep = np.ones(shape, bool) if where is None else where
    fail_rows(name, keep & ~(np.isfinite(arr) & (arr == np.round(arr))), "are missing or not integers")
    fail_rows(name, keep & ((arr < 0) | (arr >= n_actions)), f"are outside the action range [0, {n_actions})")
    return np.where(keep, arr, 0).astype(np.int64)


def check_finite(name: str, arr: np.ndarray, where: np.ndarray | None = None) -> None:
    """Every checked entry (a row counts as bad if any of its trailing entries is) is finite."""
    finite = np.isfinite(arr).reshape(*arr.shape[: 1 if where is None else where.ndim], -1).all(axis=-1)
    fail_rows(name, ~finite if where is None else where & ~finite, "are missing or not finite")


def check_propensities(name: str, p: np.ndarray, where: np.ndarray | None = None) -> None:
    """Every checked entry lies in (0, 1]."""
    bad = ~((p > 0) & (p <= 1))
    fail_rows(name, bad if where is None else where & bad, "are missing, <= 0 or > 1")


def check_probabilities(name: str, p: np.ndarray, where: np.ndarray | None = None) -> None:
    """Every checked entry lies in [0, 1]."""
    bad = ~((p >= 0) & (p <= 1))
    fail_rows(name, bad if where is None else where & bad, "are missing, < 0 or > 1")


def check_distributions(name: str, dist: np.ndarray, where: np.ndarray | None = None) -> None:
    """Every checked row of ``dist`` (..., n_actions) is non-negative and sums to 1 within 1e-6."""
    keep = np.ones(dist.shape[:-1], bool) if where is None else where
    fail_rows(name, keep & ~np.all(dist >= 0, axis=-1), "have missing or negative probabilities")
    fail_rows(name, keep & ~(np.abs(dist.sum(axis=-1) - 1.0) <= SUM_TOL), "do not sum to 1")


def as_mask(value: object, shape: tuple[int, ...]) -> np.ndarray:
    """A trajectory mask (n, horizon) bool: True on real steps, then False for padding, no gaps."""
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"mask has shape {arr.shape}, expected {shape}")
    if arr.dtype != bool:
        fail_rows("mask", ~np.isin(arr, (0, 1)).all(axis=1), "hold values other than True/False")
        arr = arr.astype(bool)
    fail_rows("mask", (arr[:, 1:] & ~arr[:, :-1]).any(axis=1), "have a real step after padding")
    return arr
