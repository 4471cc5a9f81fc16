"""The Gamma-Gamma model of spend per transaction (Colombo & Jiang 1999; Fader, Hardie & Lee 2005)."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from offerpilot.envs.rfm import ArrayLike, maximise_log_likelihood
from offerpilot.errors import InputError


class GammaGamma:
    """Gamma-Gamma model of the average value of a customer's repeat transactions.

    Colombo, R. & Jiang, W. (1999), "A stochastic RFM model", *Journal of Interactive Marketing*
    13(3), 2-12; Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "RFM and CLV: Using Iso-Value
    Curves for Customer Base Analysis", *Journal of Marketing Research* 42(4), 415-430; notation of
    Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".

    Each transaction value is ``z ~ Gamma(p, rate=nu)``, the customer's ``nu ~ Gamma(q, rate=gamma)``,
    independent of the purchase process. The mean ``mbar`` of ``x`` transactions has
    ``x mbar ~ Gamma(p x, rate=nu)``, so the likelihood of one customer is::

        L = G(p x + q) / (G(p x) G(q)) * gamma^q * mbar^(p x - 1) * x^(p x) / (gamma + x mbar)^(p x + q)

    Derived quantities (``q > 1`` for the mean to exist)::

        E[Z]                = p gamma / (q - 1)                                  (population mean spend)
        E[Z | mbar, x]      = p (gamma + x mbar) / (p x + q - 1)
                            = (q - 1)/(p x + q - 1) * E[Z] + p x/(p x + q - 1) * mbar

    Fitted attributes: ``p_``, ``q_``, ``gamma_``, ``log_likelihood_`` (summed over the customers
    fitted on), ``n_customers_`` (how many customers had ``x > 0``).
    """

    p_: float
    q_: float
    gamma_: float
    log_likelihood_: float
    n_customers_: int

    @classmethod
    def from_params(cls, p: float, q: float, gamma: float) -> GammaGamma:
        """A model with the given parameters, as if fitted (``log_likelihood_`` is nan)."""
        if min(p, q, gamma) <= 0:
            raise InputError(f"Gamma-Gamma parameters must be > 0, got p={p}, q={q}, gamma={gamma}")
        model = cls()
        model.p_, model.q_, model.gamma_ = float(p), float(q), float(gamma)
        model.log_likelihood_ = float("nan")
        model.n_customers_ = 0
        return model

    def fit(self, x: ArrayLike, monetary: ArrayLike) -> GammaGamma:
        """Fit ``(p, q, gamma)`` by maximum likelihood on the customers with ``x > 0``.

        Customers with ``x == 0`` carry no repeat transaction and are skipped (``n_customers_``
        counts the others).

        :param x: repeat transactions per customer, shape ``(n,)``, whole numbers ``>= 0``.
        :param monetary: mean value of those transactions, ``(n,)``; must be ``> 0`` where ``x > 0``.
        :raises ValueError: on invalid input or when no customer has ``x > 0``.
        """
        x, monetary = _check(x, monetary)
        repeat = x > 0
        if not repeat.any():
            raise InputError("no customer has a repeat transaction (x > 0): nothing to fit")
        x, monetary = x[repeat], monetary[repeat]
        params, mean_ll = maximise_log_likelihood(lambda p: _log_likelihood(p, x, monetary).mean(), 3)
        self.p_, self.q_, self.gamma_ = (float(v) for v in params)
        self.log_likelihood_ = mean_ll * x.size
        self.n_customers_ = int(x.size)
        return self

    def conditional_expected_spend(self, x: ArrayLike, monetary: ArrayLike) -> np.ndarray:
        """``E[Z | mbar, x] = p (gamma + x mbar) / (p x + q - 1)``, float64, broadcast shape.

        At ``x == 0`` it is the population mean ``E[Z]`` (``monetary`` is then ignored).
        """
        x, monetary = _check(x, monetary)
        p, q, gamma = self._params()
        return p * (gamma + x * monetary) / (p * x + q - 1.0)

    def mean_spend(self) -> float:
        """Population mean spend per transaction ``E[Z] = p gamma / (q - 1)``; ``inf`` when ``q <= 1``."""
        p, q, gamma = self._params()
        return float(p * gamma / (q - 1.0)) if q > 1.0 else float("inf")

    def _params(self) -> np.ndarray:
        if not hasattr(self, "log_likelihood_"):
            raise RuntimeError("GammaGamma is not fitted: call fit(...) or from_params(...) first")
        return np.array([self.p_, self.q_, self.gamma_])


def _check(x: ArrayLike, monetary: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast to float64 arrays; whole ``x >= 0``, finite ``monetary``, ``> 0`` where ``x > 0``."""
    x, monetary = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(monetary, dtype=np.float64))
    if not (np.isfinite(x).all() and np.isfinite(monetary).all()):
        raise InputError("x and monetary must be finite")
    if (x < 0).any() or (x != np.round(x)).any():
        raise InputError("x (repeat transactions) must be whole numbers >= 0")
    if ((x > 0) & (monetary <= 0)).any():
        raise InputError("monetary must be > 0 where x > 0 (the Gamma-Gamma model has positive spend)")
    return x, monetary


def _log_likelihood(params: np.ndarray, x: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of ``(x, mbar)`` at ``(p, q, gamma)``, ``x > 0``."""
    p, q, gamma = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * np.log(monetary)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * monetary)
    )
