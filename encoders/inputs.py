"""Model inputs for customers' histories, for either backbone: what training and embedding both feed the model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from offerpilot.encoders.minilm import minilm_path
from offerpilot.encoders.tokenizer import EventTokenizer


def history_inputs(
    events: pd.DataFrame,
    as_of: pd.Timestamp | str,
    user_ids: Sequence[str] | np.ndarray,
    tokenizer: EventTokenizer,
    backbone: str,
    max_events: int,
    text_max_tokens: int = 256,
    text_model_path: str | None = None,
) -> dict[str, torch.Tensor]:
    """``forward`` inputs of each customer in ``user_ids``: (n, L) int64 each, right-padded, and ``elapsed_days``.

    ``events``: event tokens of the last ``tokenizer.max_len`` events before ``as_of``. ``text``: the
    history rendered as English (last ``max_events`` events), tokenised by the text model's own tokenizer
    (local files only), truncated from the left so the most recent events are kept.
    """
    batch = tokenizer.encode(events, as_of, user_ids=user_ids)
    if backbone == "events":
        return {k: torch.as_tensor(v) for k, v in batch.model_inputs().items()}
    from transformers import AutoTokenizer

    texts = tokenizer.render_text(events, as_of, user_ids=user_ids, max_events=max_events)
    text_tokenizer = AutoTokenizer.from_pretrained(text_model_path or minilm_path(), local_files_only=True)
    text_tokenizer.padding_side, text_tokenizer.truncation_side = "right", "left"
    encoded = text_tokenizer(texts, padding=True, truncation=True, max_length=text_max_tokens, return_tensors="pt")
    text_inputs = {k: encoded[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded}
    return {**text_inputs, "elapsed_days": torch.as_tensor(batch.elapsed_days)}
