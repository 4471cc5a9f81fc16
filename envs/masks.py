"""Action masks: which offers each customer may receive today (contact caps and eligibility)."""

from __future__ import annotations

import numpy as np

from offerpilot.catalog import OfferCatalog
from offerpilot.envs.population import CustomerState


def action_mask(state: CustomerState, catalog: OfferCatalog) -> np.ndarray:
    """Bool array (n, n_actions): True where the action is allowed.

    'none' is always allowed. A message needs a subscribed customer, at least ``min_gap_days``
    since the last message and fewer than ``max_messages`` in the last ``window_days`` (the k-th
    latest message is older than the window); an offer also needs its eligibility rules to hold on
    what the shop observes (days since purchase, number of purchases).
    """
    caps = catalog.caps
    ages = state.contact_age
    can_contact = state.subscribed & (ages[:, 0] >= caps.min_gap_days) & (ages[:, -1] >= caps.window_days)
    recency = state.recency[:, None].astype(np.int32)
    eligible = (
        (recency >= catalog.min_days_since_purchase)
        & (recency <= catalog.max_days_since_purchase)
        & (state.n_purchases[:, None] >= catalog.min_purchases)
    )
    mask = eligible & (can_contact[:, None] | ~catalog.is_message)
    mask[:, 0] = True
    return mask
