"""The events backbone's transformer: pre-norm layers whose last one can be read at one position only.

A customer's embedding is read from their newest event (:attr:`EventTransformer.forward` with
``newest_only=True``): every layer but the last runs at all positions, the last one only at the newest, which
attends over the whole history. With the default single layer, that is one query per customer instead of
``L`` query, feed-forward and normalisation passes, and it is what the simulator's encoder observer pays each
time a customer acts. Masked-event pre-training needs every position and reads them all (``newest_only=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EventTransformerLayer(nn.Module):
    """``x + attention(LN(x))``, then ``+ feed_forward(LN(.))`` (pre-norm, GELU), at the ``queries`` positions."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention_norm = nn.LayerNorm(hidden_size)
        self.query_key_value = nn.Linear(hidden_size, 3 * hidden_size)
        self.attention_output = nn.Linear(hidden_size, hidden_size)
        self.feed_forward_norm = nn.LayerNorm(hidden_size)
        self.feed_forward = nn.Sequential(nn.Linear(hidden_size, intermediate_size), nn.GELU(), nn.Dropout(dropout), nn.Linear(intermediate_size, hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, query_index: torch.Tensor | None = None) -> torch.Tensor:
        """(n, L, h) inputs, (n, L) bool keys to attend -> (n, L, h), or (n, 1, h) at ``query_index`` (n,).

        Each row must have at least one key to attend.
        """
        n, length, width = x.shape
        heads, head_width = self.num_heads, width // self.num_heads
        normed = self.attention_norm(x)
        if query_index is None:
            q, k, v = self.query_key_value(normed).split(width, dim=-1)
            residual = x
        else:
            rows = torch.arange(n, device=x.device)
            w_q, w_kv = self.query_key_value.weight.split((width, 2 * width))
            b_q, b_kv = self.query_key_value.bias.split((width, 2 * width))
            q = F.linear(normed[rows, query_index].unsqueeze(1), w_q, b_q)
            k, v = F.linear(normed, w_kv, b_kv).split(width, dim=-1)
            residual = x[rows, query_index].unsqueeze(1)
        q, k, v = (t.reshape(n, -1, heads, head_width).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask[:, None, None, :], dropout_p=self.attention_dropout if self.training else 0.0
        )
        h = residual + self.dropout(self.attention_output(attended.transpose(1, 2).reshape(n, -1, width)))
        return h + self.dropout(self.feed_forward(self.feed_forward_norm(h)))


class EventTransformer(nn.Module):
    """A stack of :class:`EventTransformerLayer` and a final LayerNorm over embedded event tokens."""

    def __init__(self, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EventTransformerLayer(hidden_size, num_heads, intermediate_size, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, newest: torch.Tensor, newest_only: bool) -> torch.Tensor:
        """(n, L, h) embedded tokens, (n, L) bool real events, (n,) position of each row's newest event ->
        (n, h) hidden state at the newest event if ``newest_only``, else (n, L, h) at every position."""
        for layer in self.layers[:-1]:
            x = layer(x, key_mask)
        if newest_only:
            return self.norm(self.layers[-1](x, key_mask, newest)).squeeze(1)
        return self.norm(self.layers[-1](x, key_mask))
