"""The Pareto/NBD model of repeat buying (Schmittlein, Morrison & Colombo 1987)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, exprel, gammaln, hyp2f1

from offerpilot.envs.rfm import ArrayLike, check_horizon, check_rfm, maximise_log_likelihood
from offerpilot.errors import InputError


class ParetoNBD:
    """Pareto/NBD model of repeat purchasing with unobserved dropout in continuous time.

    Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987), "Counting Your Customers: Who Are
    They and What Will They Do Next?", *Management Science* 33(1), 1-24; likelihood and derived
    expressions as in Fader, P. S. & Hardie, B. G. S. (2005), "A Note on Deriving the Pareto/NBD
    Model and Related Expressions".

    While alive, a customer buys at Poisson rate ``lam ~ Gamma(r, rate=alpha)``; the lifetime is
    exponential with rate ``mu ~ Gamma(s, rate=beta)``, independent of ``lam``. Time is measured
    from the first purchase in the unit of ``t_x`` and ``T``. With ``x`` repeat purchases, the last
    at ``t_x``, observed over ``(0, T]``, the likelihood is::

        L = G(r+x) alpha^r beta^s / G(r) * ( 1 / ((alpha+T)^(r+x) (beta+T)^s) + s/(r+s+x) A0 )

    with, for ``alpha >= beta`` (``k = r+s+x``, ``2F1`` the Gauss hypergeometric function)::

        A0 = 2F1(k, s+1; k+1; (alpha-beta)/(alpha+t_x)) / (alpha+t_x)^k
           - 2F1(k, s+1; k+1; (alpha-beta)/(alpha+T))   / (alpha+T)^k

    and, for ``alpha < beta``::

        A0 = 2F1(k, r+x; k+1; (beta-alpha)/(beta+t_x)) / (beta+t_x)^k
           - 2F1(k, r+x; k+1; (beta-alpha)/(beta+T))   / (beta+T)^k

    For ``alpha < beta`` the hypergeometric term is evaluated after Euler's transformation,
    ``2F1(k, r+x; k+1; z) = (1-z)^(1-r-x) 2F1(1, s+1; k+1; z)``, so that it cannot overflow for
    large ``x``. ``A0 >= 0`` is the probability mass of dying in ``(t_x, T]``; it is computed in log space as
    ``log A0 = l1 + log(-expm1(l2 - l1))`` and combined with the "alive at T" term by ``logaddexp``.

    Derived quantities::

        P(alive | x, t_x, T) = 1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A0)
        E[Y(t) | x, t_x, T]  = (r+x)(beta+T) / ((alpha+T)(s-1)) * (1 - ((beta+T)/(beta+T+t))^(s-1)) * P(alive)
        P(Y(t) = 0 | x, t_x, T) = L(x, t_x, T+t) / L(x, t_x, T)

    The last line holds because "the observed history and no purchase in ``(T, T+t]``" is exactly
    the history observed over ``(0, T+t]``; equivalently it is
    ``1 - P(alive) + P(alive) E[(mu + lam exp(-(lam+mu) t)) / (lam+mu)]`` under the posterior
    ``lam ~ Gamma(r+x, rate=alpha+T)``, ``mu ~ Gamma(s, rate=beta+T)`` of an alive customer.

    Fitted attributes: ``r_``, ``alpha_``, ``s_``, ``beta_``, ``log_likelihood_`` (summed over customers).
    """

    r_: float
    alpha_: float
    s_: float
    beta_: float
    log_likelihood_: float

    @classmethod
    def from_params(cls, r: float, alpha: float, s: float, beta: float) -> ParetoNBD:
        """A model with the given parameters, as if fitted (``log_likelihood_`` is nan)."""
        if min(r, alpha, s, beta) <= 0:
            raise InputError(f"Pareto/NBD parameters must be > 0, got r={r}, alpha={alpha}, s={s}, beta={beta}")
        model = cls()
        model.r_, model.alpha_, model.s_, model.beta_ = float(r), float(alpha), float(s), float(beta)
        model.log_likelihood_ = float("nan")
        return model

    def fit(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> ParetoNBD:
        """Fit ``(r, alpha, s, beta)`` by maximum likelihood (L-BFGS-B on log-parameters).

        :param x: repeat purchases per customer, shape ``(n,)``, whole numbers ``>= 0``.
        :param t_x: time of the last purchase since the first, ``(n,)``, ``0 <= t_x <= T``.
        :param T: time from the first purchase to the end of calibration, ``(n,)``, ``> 0``.
        """
        x, t_x, T = check_rfm(x, t_x, T)
        params, mean_ll = maximise_log_likelihood(lambda p: _log_likelihood(p, x, t_x, T).mean(), 4)
        self.r_, self.alpha_, self.s_, self.beta_ = (float(v) for v in params)
        self.log_likelihood_ = mean_ll * x.size
        return self

    def log_likelihood(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """Per-customer log-likelihood ``log L(r, alpha, s, beta | x, t_x, T)``, float64, broadcast shape."""
        return _log_likelihood(self._params(), *check_rfm(x, t_x, T))

    def prob_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """``P(alive at T | x, t_x, T)``, float64 in ``[0, 1]``, broadcast shape of the inputs."""
        alive, dead = _log_terms(self._params(), *check_rfm(x, t_x, T))
        return expit(alive - dead)

    def expected_purchases(self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """``E[Y(t) | x, t_x, T]``: expected purchases in the next ``t`` units, float64.

        ``(1 - u^(s-1)) / (s-1)`` with ``u = (beta+T)/(beta+T+t)`` is evaluated as
        ``-log(u) exprel((s-1) log(u))``, which is exact at ``s = 1`` too.
        """
        t = check_horizon(t)
        x, t_x, T = check_rfm(x, t_x, T)
        params = self._params()
        r, alpha, s, beta = params
        alive, dead = _log_terms(params, x, t_x, T)
        log_u = np.log((beta + T) / (beta + T + t))
        return (r + x) * (beta + T) / (alpha + T) * -log_u * exprel((s - 1.0) * log_u) * expit(alive - dead)

    def prob_no_purchase(self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """``P(Y(t) = 0 | x, t_x, T) = L(x, t_x, T+t) / L(x, t_x, T)``, float64 in ``[0, 1]``."""
        t = check_horizon(t)
        x, t_x, T = check_rfm(x, t_x, T)
        t, x, t_x, T = np.broadcast_arrays(t, x, t_x, T)
        params = self._params()
        return np.minimum(np.exp(_log_likelihood(params, x, t_x, T + t) - _log_likelihood(params, x, t_x, T)), 1.0)

    def _params(self) -> np.ndarray:
        if not hasattr(self, "log_likelihood_"):
            raise RuntimeError("ParetoNBD is not fitted: call fit(...) or from_params(...) first")
        return np.array([self.r_, self.alpha_, self.s_, self.beta_])


def _log_terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of the likelihood's bracket, in logs: ``log(1/((alpha+T)^(r+x) (beta+T)^s))``
    ("alive at T") and ``log(s/(r+s+x) A0)`` ("died in (t_x, T]", ``-inf`` where ``t_x == T``)."""
    r, alpha, s, beta = params
    k = r + s + x

    def log_term(y: np.ndarray) -> np.ndarray:
        """``log(2F1(...; z(y)) / (shift+y)^k)`` for the case at hand."""
        if alpha >= beta:
            return np.log(hyp2f1(k, s + 1.0, k + 1.0, (alpha - beta) / (alpha + y))) - k * np.log(alpha + y)
        log_1mz = np.log((alpha + y) / (beta + y))
        z = (beta - alpha) / (beta + y)
        return (1.0 - r - x) * log_1mz + np.log(hyp2f1(1.0, s + 1.0, k + 1.0, z)) - k * np.log(beta + y)

    log_last, log_end = log_term(t_x), log_term(T)
    with np.errstate(divide="ignore"):
        log_a0 = log_last + np.log(-np.expm1(np.minimum(log_end - log_last, 0.0)))
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    return alive, np.log(s / k) + log_a0


def _log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer Pareto/NBD log-likelihood at ``(r, alpha, s, beta)``."""
    r, alpha, s, beta = params
    alive, dead = _log_terms(params, x, t_x, T)
    return gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + np.logaddexp(alive, dead)
