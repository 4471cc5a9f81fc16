"""Advantages with a common-random-numbers baseline: each copy of a customer is judged against its other copies.

Copies of a customer meet the same luck (the same purchase, dropout and spend draws), so what separates their
advantages is mostly what their actions did. Subtracting the mean advantage of the other copies removes the luck
the critic cannot predict, and keeps the policy gradient unbiased: the other copies' actions are drawn
independently of this copy's action. (The leave-one-out baseline of RLOO, with the luck held fixed as well.)
"""

from __future__ import annotations

import numpy as np


def leave_one_out(advantages: np.ndarray, copies: int) -> np.ndarray:
    """``advantages`` (steps, slots) minus, for each slot, the mean over the other copies of its customer.

    Slots are laid out copy by copy (copy ``k`` of customer ``j`` at ``k * slots / copies + j``); ``copies`` 1
    returns the advantages unchanged.
    """
    if copies == 1:
        return advantages
    steps, slots = advantages.shape
    grouped = advantages.reshape(steps, copies, slots // copies)
    others = (grouped.sum(axis=1, keepdims=True) - grouped) / (copies - 1)
    return (grouped - others).reshape(steps, slots)
