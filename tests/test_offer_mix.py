"""Who gets which offer: segments, quintiles and shares on small hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from offerpilot.deployment.offer_mix import SEGMENTS, offer_mix, quintiles, recency_segments

OFFERS = ("none", "pct10", "content")


def test_recency_segments_count_days_since_the_last_purchase_before_the_scoring_time():
    as_of = pd.Timestamp("2025-06-30")
    events = pd.DataFrame({
        "user_id": ["a", "a", "b", "c", "d", "e"],
        "ts": pd.to_datetime(["2025-01-01", "2025-06-01", "2025-02-01", "2024-01-01", "2025-06-29", "2025-07-01"]),
        "event": ["purchase", "purchase", "purchase", "purchase", "visit", "purchase"],
    })
    segments = recency_segments(events, as_of, np.array(["a", "b", "c", "d", "e"]))
    # a: 29 days; b: 149 days; c: 546 days; d: only a visit; e: bought after the scoring time only
    assert list(segments) == [SEGMENTS[0], SEGMENTS[1], SEGMENTS[2], SEGMENTS[3], SEGMENTS[3]]


def test_quintiles_hold_a_fifth_each_even_with_ties_and_name_their_ranges():
    values = np.array([0.5] * 6 + [1.0, 2.0, 3.0, 4.0])
    q = quintiles(values)
    assert list(pd.Series(q).value_counts(sort=False)) == [2, 2, 2, 2, 2]
    assert list(q.categories) == ["Q1: 0.5 to 0.5", "Q2: 0.5 to 0.5", "Q3: 0.5 to 0.5", "Q4: 1 to 2", "Q5: 3 to 4"]


def test_offer_mix_shares_sum_to_one_per_group_and_leave_out_empty_groups():
    groups = pd.Categorical(["x", "x", "x", "y"], categories=["x", "y", "z"])
    table = offer_mix(np.array(["none", "pct10", "pct10", "content"]), groups, OFFERS)
    assert list(table.index) == ["x", "y"]
    assert list(table["customers"]) == [3, 1]
    assert table.loc["x", list(OFFERS)].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert table.loc["y", list(OFFERS)].tolist() == pytest.approx([0.0, 0.0, 1.0])
