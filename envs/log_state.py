"""What the shop knew about each customer at each logged decision, rebuilt from the logs alone.

The simulator's observers read a :class:`CustomerState`; this module builds the observable part of
that state from an events table and a decisions table, as of each decision's timestamp (only
events and decisions strictly before it count). So a policy trained in simulation sees the same
features on real logs, which is what off-policy evaluation and batch scoring need. Latent fields
(alive, satisfaction, engagement, habituation, fatigue) are not observable and are left at zero.

Days follow the simulator: day ``t`` of the decision period starts ``t`` days after
``period_start``; "days since" counters are 1 on the day after the event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from offerpilot.catalog import OfferCatalog
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.observers import RawFeatureObserver
from offerpilot.envs.population import F32, MAX_DAYS, NO_CONTACT, CustomerState

_DAY = pd.Timedelta(days=1)


def _day(ts: pd.Series, origin: pd.Timestamp) -> np.ndarray:
    return np.floor((ts - origin) / _DAY).to_numpy(np.int64)


def _last_before(
    queries: pd.DataFrame, table: pd.DataFrame, columns: list[str], on: str = "ts"
) -> pd.DataFrame:
    """For each query row (``user_id``, ``on``), the columns of ``table``'s latest row of the same user
    strictly before it (NaN when none), in the queries' row order."""
    left = queries[["user_id", on]].reset_index(names="_row").sort_values(on, kind="stable")
    right = table[["user_id", "ts", *columns]].rename(columns={"ts": on}).sort_values(on, kind="stable")
    merged = pd.merge_asof(left, right, on=on, by="user_id", allow_exact_matches=False)
    return merged.sort_values("_row").set_index("_row")[columns]


def observable_state_from_logs(
    events: pd.DataFrame,
    decisions: pd.DataFrame,
    catalog: OfferCatalog,
    period_start: str | pd.Timestamp,
) -> CustomerState:
    """The observable state at every row of ``decisions`` (one 'customer' per decision row).

    :param events: events in the data contract (``read_events``).
    :param decisions: decisions in the data contract (``read_decisions``); their ``ts`` are the
        moments the state is taken at, and the messages they sent (``offer_id != 'none'``) are the
        contact history.
    :param period_start: day 0 of the decision period (``state.day`` counts from it).
    """
    origin = pd.Timestamp(period_start).normalize()
    n = len(decisions)
    queries = decisions[["user_id", "ts"]].reset_index(drop=True)
    today = _day(queries["ts"], origin)
    events = events.sort_values(["user_id", "ts"], kind="stable")

    def days_since(ts: pd.Series) -> np.ndarray:
        """Days from each event time to the decision day; MAX_DAYS when there was none."""
        known = ts.notna().to_numpy()
        days = np.full(n, MAX_DAYS, np.int64)
        days[known] = today[known] - _day(ts[known], origin)
        return np.minimum(days, MAX_DAYS).astype(np.int16)

    first_ts = events.groupby("user_id")["ts"].min()
    acquired = queries["user_id"].map(first_ts)
    acquired = acquired.where(acquired < queries["ts"])

    purchases = events[events["event"] == "purchase"].copy()
    purchases["n_purchases"] = purchases.groupby("user_id").cumcount() + 1
    purchases["spent"] = purchases.groupby("user_id")["amount"].cumsum()
    discount = purchases["discount"] if "discount" in purchases else pd.Series(0.0, index=purchases.index)
    purchases["given"] = discount.fillna(0.0).groupby(purchases["user_id"]).cumsum()
    purchases["purchase_ts"] = purchases["ts"]
    last_buy = _last_before(queries, purchases, ["n_purchases", "spent", "given", "purchase_ts"])

    visits = events[events["event"] == "visit"].assign(visit_ts=lambda d: d["ts"])
    last_visit = _last_before(queries, visits, ["visit_ts"])
    reviews = events[(events["event"] == "review")]
    reviews = reviews[reviews["rating"].notna()] if "rating" in reviews else reviews.iloc[:0].assign(rating=np.nan)
    last_review = _last_before(queries, reviews, ["rating"])
    unsubscribes = events[events["event"] == "unsubscribe"].assign(gone=1.0)
    unsubscribed = _last_before(queries, unsubscribes, ["gone"])["gone"].notna().to_numpy()

    sent, n_messages, contact_age = _contact_history(decisions, queries, today, origin, catalog)
    live_offer, left = _live_offer(sent, purchases, queries, today, origin, catalog)

    zeros = np.zeros(n, F32)
    return CustomerState(
        alive=np.zeros(n, bool),
        subscribed=~unsubscribed,
        day=today.astype(np.int16),
        age=days_since(acquired),
        recency=days_since(last_buy["purchase_ts"]),
        n_purchases=last_buy["n_purchases"].fillna(0).to_numpy(np.int16),
        total_spend=last_buy["spent"].fillna(0).to_numpy(F32),
        discount_received=last_buy["given"].fillna(0).to_numpy(F32),
        n_messages=n_messages.astype(np.int16),
        contact_age=contact_age,
        days_since_visit=days_since(last_visit["visit_ts"]),
        last_rating=last_review["rating"].fillna(0).to_numpy(np.int8),
        offer=live_offer.astype(np.int8),
        offer_days_left=left.astype(np.int16),
        offer_discount=zeros.copy(),
        satisfaction=zeros.copy(),
        engagement=zeros.copy(),
        habituation=zeros.copy(),
        fatigue=zeros.copy(),
    )


def _contact_history(decisions: pd.DataFrame, queries: pd.DataFrame, today: np.ndarray, origin: pd.Timestamp,
                     catalog: OfferCatalog) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The messages sent (decision rows with an offer), and for each query the number sent before it and the
    ages in days of its ``max_messages`` latest ones (``NO_CONTACT`` where fewer were sent)."""
    n = len(queries)
    sent = decisions[decisions["offer_id"] != "none"].sort_values(["user_id", "ts"], kind="stable").copy()
    sent["n_messages"] = sent.groupby("user_id").cumcount() + 1
    sent["sent_ts"] = sent["ts"]
    last_sent = _last_before(queries, sent, ["n_messages"])
    n_messages = last_sent["n_messages"].fillna(0).to_numpy(np.int64)
    by_number = sent.set_index(["user_id", "n_messages"])["sent_ts"]
    k = catalog.caps.max_messages
    contact_age = np.full((n, k), NO_CONTACT, np.int16)
    for j in range(k):  # the (j+1)-th latest message
        number = n_messages - j
        has = number >= 1
        keys = pd.MultiIndex.from_arrays([queries["user_id"][has], number[has]])
        ts = pd.Series(by_number.reindex(keys).to_numpy(), dtype="datetime64[us]")
        contact_age[has, j] = np.minimum(today[has] - _day(ts, origin), NO_CONTACT)
    return sent, n_messages, contact_age


def _live_offer(sent: pd.DataFrame, purchases: pd.DataFrame, queries: pd.DataFrame, today: np.ndarray, origin: pd.Timestamp,
                catalog: OfferCatalog) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the catalog index of the offer still live (sent, not expired, not redeemed since; 0: none)
    and its days left."""
    n = len(queries)
    offer_index = {offer_id: i for i, offer_id in enumerate(catalog.ids)}
    offers = sent[catalog.is_offer[sent["offer_id"].map(offer_index).to_numpy(np.int64)]]
    offers = offers.assign(offer_ts=offers["ts"], validity=offers["offer_id"].map(dict(zip(catalog.ids, catalog.validity_days))))
    live = _last_before(queries, offers, ["offer_id", "offer_ts", "validity"])
    redemptions = purchases[purchases["offer_id"].notna()] if "offer_id" in purchases else purchases.iloc[:0]
    last_redemption = _last_before(queries, redemptions.assign(redeemed_ts=redemptions["ts"]), ["redeemed_ts"])
    has_offer = live["offer_ts"].notna().to_numpy()
    used = has_offer & (last_redemption["redeemed_ts"] >= live["offer_ts"]).to_numpy()
    left = np.zeros(n, np.int64)
    left[has_offer] = live["validity"].to_numpy()[has_offer] - (today[has_offer] - _day(live["offer_ts"][has_offer], origin))
    left = np.where(used, 0, np.maximum(left, 0))
    live_offer = np.where(left > 0, live["offer_id"].map(offer_index).fillna(0).to_numpy(np.int64), 0)
    return live_offer, left


def raw_features_from_logs(
    events: pd.DataFrame,
    decisions: pd.DataFrame,
    catalog: OfferCatalog,
    period_start: str | pd.Timestamp,
    objective: ObjectiveConfig | None = None,
) -> np.ndarray:
    """The raw observer's features (n_decisions, n_features) float32 at every logged decision."""
    state = observable_state_from_logs(events, decisions, catalog, period_start)
    return RawFeatureObserver(catalog, objective or ObjectiveConfig()).observe(None, state)
