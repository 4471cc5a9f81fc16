"""Importance-weight diagnostics: can the logged decisions say anything about the target policy at all?

With ``w_i = pi(a_i | x_i) / mu(a_i | x_i)`` for n logged decisions,

- effective sample size ``ESS = (sum_i w_i)^2 / sum_i w_i^2`` (Kong 1992; Owen 2013, ch. 9): about how
  many decisions an importance-weighted average really rests on; ``ESS / n`` is its share;
- support: where the logging policy's full distribution mu(. | x_i) is known, decision i is unsupported
  when pi(a | x_i) > 0 for some a with mu(a | x_i) = 0, and ``(1/n) sum_i sum_{a: mu(a|x_i)=0} pi(a | x_i)``
  is the target probability mass no importance-weighted estimator can see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerpilot.ope.checks import (
    SUM_TOL,
    as_actions,
    as_float_array,
    check_distributions,
    check_propensities,
    fail_rows,
)

ESS_SHARE_WARNING = 0.01
MAX_WEIGHT_WARNING = 100.0


@dataclass(frozen=True)
class WeightDiagnostics:
    """Summary of the importance weights of one batch of logged decisions."""

    n: int
    """Number of decisions."""
    ess: float
    """Effective sample size (sum w)^2 / sum w^2; 0 when every weight is 0."""
    ess_share: float
    """ESS / n."""
    max_weight: float
    mean_weight: float
    """About 1 when the target is supported by the logging policy (its expectation under mu is 1)."""
    unsupported_share: float | None
    """Share of decisions where pi puts probability on an action mu never takes; None without mu."""
    unsupported_mass: float | None
    """Mean target probability on actions mu never takes; None without mu."""
    warnings: tuple[str, ...]
    """Plain-English problems, empty when none."""


def weight_diagnostics(
    pscore: object,
    action_dist: object,
    action: object,
    logging_action_dist: object | None = None,
) -> WeightDiagnostics:
    """Diagnose the importance weights of a target policy on logged decisions.

    :param pscore: (n,) float in (0, 1], mu(a_i | x_i).
    :param action_dist: (n, n_actions) float, pi(. | x_i), rows summing to 1.
    :param action: (n,) int, the logged actions.
    :param logging_action_dist: optional (n, n_actions) float, mu(. | x_i); must agree with ``pscore``
        at the logged actions (within 1e-6).
    """
    action_dist = as_float_array("action_dist", action_dist, ndim=2)
    n, n_actions = action_dist.shape
    if n == 0:
        raise ValueError("no logged decisions (action_dist is empty)")
    pscore = as_float_array("pscore", pscore, (n,))
    action = as_actions("action", action, (n,), n_actions)
    check_propensities("pscore", pscore)
    check_distributions("action_dist", action_dist)
    weight = action_dist[np.arange(n), action] / pscore
    total, total_sq = weight.sum(), (weight**2).sum()
    ess = float(total**2 / total_sq) if total_sq > 0 else 0.0
    max_weight = float(weight.max())
    warnings = []
    if ess / n < ESS_SHARE_WARNING:
        warnings.append(
            f"effective sample size is {ess:.1f} of {n} decisions ({ess / n:.2%}): the importance-weighted "
            "estimates rest on a handful of decisions, so expect wide intervals and lean on DR-type estimators"
        )
    if max_weight > MAX_WEIGHT_WARNING:
        warnings.append(
            f"the largest importance weight is {max_weight:.1f}: single decisions dominate IPS and DR; "
            "consider SNIPS, switch-DR or DRos"
        )
    unsupported_share = unsupported_mass = None
    if logging_action_dist is not None:
        logging_action_dist = as_float_array("logging_action_dist", logging_action_dist, (n, n_actions))
        check_distributions("logging_action_dist", logging_action_dist)
        fail_rows(
            "pscore",
            np.abs(logging_action_dist[np.arange(n), action] - pscore) > SUM_TOL,
            "differ from logging_action_dist at the logged action",
        )
        unseen = np.where(logging_action_dist == 0, action_dist, 0.0)
        unsupported_share = float((unseen > 0).any(axis=1).mean())
        unsupported_mass = float(unseen.sum(axis=1).mean())
        if unsupported_mass > 0:
            warnings.append(
                f"the target policy puts {unsupported_mass:.2%} of its probability (on {unsupported_share:.1%} "
                "of decisions) on actions the logging policy never took there: no importance-weighted "
                "estimator can see those actions, so IPS, SNIPS and DR are biased and only the reward model speaks for them"
            )
    return WeightDiagnostics(
        n=n,
        ess=ess,
        ess_share=ess / n,
        max_weight=max_weight,
        mean_weight=float(weight.mean()),
        unsupported_share=unsupported_share,
        unsupported_mass=unsupported_mass,
        warnings=tuple(warnings),
    )
