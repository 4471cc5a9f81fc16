"""The zero-inflated lognormal (ZILN) distribution of customer lifetime value.

From Wang, Liu & Miao (2019), "A Deep Probabilistic Model for Customer Lifetime Value Prediction"
(arXiv:1912.07753): many customers never spend again, and the spend of those who do is heavy-tailed. A
future value ``y >= 0`` is modelled as

    y = 0                          with probability 1 - p
    y ~ LogNormal(mu, sigma)       with probability p,   p = sigmoid(logit)

and the network predicts ``clv_params = (logit, mu, sigma)`` per customer, shape (n, 3). As in the paper's
reference code, ``sigma = max(softplus(raw), sqrt(1e-7))`` (applied by the model's head).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_SIGMA = math.sqrt(1e-7)
"""Floor on sigma, as in the paper's code (``sqrt`` of Keras' epsilon)."""
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def ziln_sigma(raw: torch.Tensor) -> torch.Tensor:
    """``sigma = max(softplus(raw), MIN_SIGMA)``: the positive scale from an unconstrained output."""
    return F.softplus(raw).clamp_min(MIN_SIGMA)


def ziln_loss(clv_params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``target`` under ZILN(p, mu, sigma) (Wang, Liu & Miao 2019).

    Per customer, with ``z = 1[y > 0]``::

        nll = BCE(logit, z) + z * (log y + log sigma + log(2 pi) / 2 + (log y - mu)^2 / (2 sigma^2))

    i.e. ``-log(1 - p)`` for ``y = 0`` and ``-log p - log LogNormal(y; mu, sigma)`` for ``y > 0``; the loss
    is the mean over customers (the classification and regression terms both averaged over all of them).

    :param clv_params: (n, 3) float, ``(logit, mu, sigma)`` with ``sigma > 0``.
    :param target: (n,) float, observed values ``>= 0`` (money).
    :returns: scalar tensor.
    """
    if clv_params.shape[-1] != 3 or clv_params.shape[:-1] != target.shape:
        raise ValueError(f"clv_params must have shape (n, 3) and target (n,), got {tuple(clv_params.shape)} and {tuple(target.shape)}")
    if bool((target < 0).any()):
        raise ValueError("ZILN targets are values >= 0; got negative ones")
    logit, mu, sigma = clv_params.unbind(-1)
    positive = target > 0
    bce = F.binary_cross_entropy_with_logits(logit, positive.to(logit.dtype), reduction="none")
    log_y = torch.log(torch.where(positive, target, torch.ones_like(target)))
    lognormal_nll = log_y + torch.log(sigma) + _HALF_LOG_2PI + (log_y - mu) ** 2 / (2.0 * sigma**2)
    return (bce + torch.where(positive, lognormal_nll, torch.zeros_like(lognormal_nll))).mean()


def ziln_expected_value(clv_params: torch.Tensor) -> torch.Tensor:
    """Mean of ZILN(p, mu, sigma): ``E[y] = p * exp(mu + sigma^2 / 2)`` (Wang, Liu & Miao 2019).

    :param clv_params: (n, 3) float, ``(logit, mu, sigma)``.
    :returns: (n,) float.
    """
    logit, mu, sigma = clv_params.unbind(-1)
    return torch.sigmoid(logit) * torch.exp(mu + 0.5 * sigma**2)


def churn_and_spend_loss(churn_logit: torch.Tensor, clv_params: torch.Tensor, churn: torch.Tensor, spend: torch.Tensor) -> torch.Tensor:
    """``BCEWithLogits(churn_logit, churn) + ZILN-NLL(clv_params, spend)``, both means over customers.

    :param churn_logit: (n,); :param clv_params: (n, 3); :param churn, spend: (n,) float32.
    """
    churn, spend = churn.to(churn_logit.device), spend.to(churn_logit.device)
    return F.binary_cross_entropy_with_logits(churn_logit, churn) + ziln_loss(clv_params, spend)
