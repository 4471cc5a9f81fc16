"""The encoder's training batches: length-bucketed batches of customers, and the masks of masked event modelling."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, TensorDataset

from offerpilot.encoders.modeling import SEQUENCE_INPUTS
from offerpilot.encoders.tokenizer import MASK_ID

Tensors = dict[str, torch.Tensor]

_BUCKET_BATCHES = 50
"""Shuffled training rows are sorted by history length in chunks of this many batches (length bucketing)."""


def length_bucketed_batches(data: Tensors, batch_size: int, generator: torch.Generator | None) -> Iterator[Tensors]:
    """Batches of ``data``'s rows, each cut to its longest history; ``generator`` None: in row order.

    With a generator, batches are bucketed by length: the rows are shuffled, every ``_BUCKET_BATCHES``
    batches' worth is sorted by history length and cut into batches, and the batches are shuffled. Rows are
    right-padded and the model reads positions as recency, so dropping the all-padding columns changes no
    output; with most histories far shorter than ``max_len`` it saves most of the work.
    """
    names = list(data)
    dataset = TensorDataset(*data.values())
    lengths = data["attention_mask"].sum(1)
    if generator is None:
        batches = list(torch.arange(len(lengths)).split(batch_size))
    else:
        shuffled = torch.randperm(len(lengths), generator=generator)
        batches = []
        for chunk in shuffled.split(batch_size * _BUCKET_BATCHES):
            batches += chunk[torch.argsort(lengths[chunk], stable=True)].split(batch_size)
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    for values in DataLoader(dataset, sampler=batches, batch_size=None):
        batch = dict(zip(names, values))
        width = max(1, int(batch["attention_mask"].sum(1).max()))
        yield {k: v[:, :width] if k in SEQUENCE_INPUTS else v for k, v in batch.items()}


def mask_events(batch: Tensors, probability: float, generator: torch.Generator) -> tuple[Tensors, torch.Tensor]:
    """Replace the event and amount tokens of a random share of real positions by ``MASK_ID``.

    :returns: the masked batch and ``selected``, (n, L) bool, True where a token was masked.
    """
    real = batch["attention_mask"].bool()
    selected = (torch.rand(real.shape, generator=generator) < probability) & real
    masked = {**batch, "event_ids": batch["event_ids"].masked_fill(selected, MASK_ID), "amount_ids": batch["amount_ids"].masked_fill(selected, MASK_ID)}
    return masked, selected
