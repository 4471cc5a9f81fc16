"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting your customers the easy way")."""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, expit, gammaln, hyp2f1

from offerpilot.envs.rfm import ArrayLike, check_horizon, check_rfm, maximise_log_likelihood
from offerpilot.errors import InputError


class BetaGeoNBD:
    """Beta-geometric / negative binomial distribution (BG/NBD) model of repeat purchasing.

    Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "'Counting Your Customers' the Easy Way:
    An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275-284.

    While alive, a customer buys at Poisson rate ``lam ~ Gamma(r, rate=alpha)``; after every
    purchase the customer becomes inactive with probability ``p ~ Beta(a, b)``. Time is measured
    from the first purchase, in whatever unit ``t_x`` and ``T`` use (``alpha`` has that unit).
    With ``x`` repeat purchases, the last at ``t_x``, observed over ``(0, T]``, the likelihood is::

        L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
          + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

    (``G`` the gamma function, ``B`` the beta function); the first term is "alive at T", the
    second "dropped out after the last purchase". It is evaluated in log space with ``logaddexp``.

    Derived quantities::

        P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
        E[Y(t) | x, t_x, T]  = (a+b+x-1)/(a-1)
                               * (1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t)))
                               / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))   (eq. 10)
        P(Y(t) = 0 | x, t_x, T) = L(x, t_x, T+t) / L(x, t_x, T)
                                = 1 - P(alive) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x)

    The last line holds because "the observed history and no purchase in ``(T, T+t]``" is the
    history observed over ``(0, T+t]``: a dead customer buys nothing, and an alive one, who can
    only drop out right after a purchase, buys nothing with probability ``E[exp(-lam t)]`` under
    the posterior ``lam ~ Gamma(r+x, rate=alpha+T)``.

    Fitted attributes: ``r_``, ``alpha_``, ``a_``, ``b_``, ``log_likelihood_`` (summed over customers).
    """

    r_: float
    alpha_: float
    a_: float
    b_: float
    log_likelihood_: float

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float) -> BetaGeoNBD:
        """A model with the given parameters, as if fitted (``log_likelihood_`` is nan)."""
        if min(r, alpha, a, b) <= 0:
            raise InputError(f"BG/NBD parameters must be > 0, got r={r}, alpha={alpha}, a={a}, b={b}")
        model = cls()
        model.r_, model.alpha_, model.a_, model.b_ = float(r), float(alpha), float(a), float(b)
        model.log_likelihood_ = float("nan")
        return model

    def fit(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BetaGeoNBD:
        """Fit ``(r, alpha, a, b)`` by maximum likelihood (L-BFGS-B on log-parameters).

        :param x: repeat purchases per customer, shape ``(n,)``, whole numbers ``>= 0``.
        :param t_x: time of the last purchase since the first, ``(n,)``, ``0 <= t_x <= T``.
        :param T: time from the first purchase to the end of calibration, ``(n,)``, ``> 0``.
        """
        x, t_x, T = check_rfm(x, t_x, T)
        params, mean_ll = maximise_log_likelihood(lambda p: _log_likelihood(p, x, t_x, T).mean(), 4)
        self.r_, self.alpha_, self.a_, self.b_ = (float(v) for v in params)
        self.log_likelihood_ = mean_ll * x.size
        return self

    def log_likelihood(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """Per-customer log-likelihood ``log L(r, alpha, a, b | x, t_x, T)``, float64, broadcast shape."""
        return _log_likelihood(self._params(), *check_rfm(x, t_x, T))

    def prob_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """``P(alive at T | x, t_x, T)``, float64 in ``[0, 1]``, broadcast shape of the inputs."""
        return expit(-self._log_odds_dead(*check_rfm(x, t_x, T)))

    def expected_purchases(self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """``E[Y(t) | x, t_x, T]``: expected purchases in the next ``t`` units (eq. 10), float64.

        The hypergeometric term is evaluated after Euler's transformation,
        ``(1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)`` with
        ``c = a+b+x-1`` and ``z = t/(alpha+T+t)``, which stays finite for large ``x``.
        """
        t = check_horizon(t)
        x, t_x, T = check_rfm(x, t_x, T)
        r, alpha, a, b = self._params()
        c = a + b + x - 1.0
        z = t / (alpha + T + t)
        tail = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        return c / (a - 1.0) * tail * expit(-self._log_odds_dead(x, t_x, T))

    def prob_no_purchase(self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """``P(Y(t) = 0 | x, t_x, T)``: no purchase in the next ``t`` units, float64 in ``[0, 1]``."""
        t = check_horizon(t)
        x, t_x, T = check_rfm(x, t_x, T)
        r, alpha, _, _ = self._params()
        p_alive = expit(-self._log_odds_dead(x, t_x, T))
        return 1.0 - p_alive * -np.expm1((r + x) * np.log((alpha + T) / (alpha + T + t)))

    def _log_odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``log(P(dead) / P(alive))`` given the history; ``-inf`` where ``x == 0`` (alive for sure)."""
        r, alpha, a, b = self._params()
        repeat = x > 0
        b_x = np.where(repeat, b + x - 1.0, 1.0)
        log_odds = np.log(a / b_x) + (r + x) * np.log((alpha + T) / (alpha + t_x))
        return np.where(repeat, log_odds, -np.inf)

    def _params(self) -> np.ndarray:
        if not hasattr(self, "log_likelihood_"):
            raise RuntimeError("BetaGeoNBD is not fitted: call fit(...) or from_params(...) first")
        return np.array([self.r_, self.alpha_, self.a_, self.b_])


def _log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood at ``params = (r, alpha, a, b)``."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    dead = np.full_like(x, -np.inf)
    dead[repeat] = betaln(a + 1.0, b + x[repeat] - 1.0) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    return common + np.logaddexp(alive, dead)
