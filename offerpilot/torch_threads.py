"""torch's CPU thread count for one piece of work, put back afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: leave the count alone), then restore the count.

    Training sets it per run: a seed reproduces weights bit for bit only at the same thread count, and a library
    caller's own setting must survive the call."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
