"""Embed customers from an events table with a trained encoder: the batch path to Parquet."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from offerpilot.encoders.inputs import history_inputs
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import EventTokenizer


def embed_customers(
    model: CustomerEncoderModel,
    tokenizer: EventTokenizer,
    events: pd.DataFrame,
    as_of: pd.Timestamp | str,
    user_ids: Sequence[str] | np.ndarray | None = None,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """One row per customer: ``user_id``, ``churn_probability``, ``expected_clv`` and ``emb_0`` ...
    ``emb_{d-1}`` (float32), from the history strictly before ``as_of``. ``user_ids`` defaults to every
    customer with an event before ``as_of``, in order of first appearance."""
    if user_ids is None:
        before = events[events["ts"] < pd.Timestamp(as_of)]
        user_ids = pd.unique(before["user_id"])
    if model.config.backbone == "events":
        batch = tokenizer.encode(events, as_of, user_ids=user_ids)
    else:
        batch = history_inputs(events, as_of, user_ids, tokenizer, "text", tokenizer.max_len, text_model_path=model.config.text_model_path)
    encoded = model.encode(batch, batch_size=batch_size)
    frame = pd.DataFrame({"user_id": np.asarray(user_ids, dtype=object)})
    frame["churn_probability"] = encoded.churn_probability
    frame["expected_clv"] = encoded.expected_clv
    embedding = pd.DataFrame(encoded.embedding, columns=[f"emb_{i}" for i in range(encoded.embedding.shape[1])])
    return pd.concat([frame, embedding], axis=1)
