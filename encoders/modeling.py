"""The customer encoder: a customer's history -> an embedding, a churn logit and ZILN CLV parameters.

Events backbone, for tokens from :class:`~offerpilot.encoders.tokenizer.EventTokenizer` (shapes (n, L))::

    x_j = E_event[e_j] + E_category[c_j] + E_amount[a_j] + E_offer[o_j] + E_gap[g_j] + E_pos[r_j]
    h   = EventTransformer(dropout(x), keys = attention_mask)    # pre-norm layers, final LayerNorm

where ``r_j`` is the event's recency rank (0 = the customer's most recent event), read from
``attention_mask``, so neither the padding side nor the amount of padding changes a customer's outputs.
Nothing in the tokens depends on the present moment: the embedding changes only when the history does.

Text backbone, for a history rendered by ``EventTokenizer.render_text`` and tokenised by the text model's
own tokenizer: ``h = AutoModel.from_pretrained(text_model_path)(input_ids, attention_mask).last_hidden_state``.

The events backbone reads the customer from their newest event, whose hidden state attends over the whole
history (so its last layer runs at that one position, see ``event_transformer.py``); the text backbone
averages its tokens::

    pooled             = W_p h_newest + b_p   or   W_p mean_{j: mask_j} h_j + b_p    (n, embedding_dim)

Both then share the heads, which also read how long ago the customer's last event of each kind was
(``elapsed_days``, see :func:`elapsed_features`)::

    z                  = GELU(W_z [pooled, elapsed_features] + b_z)         (n, embedding_dim)
    churn_logit        = w_c . z + b_c                       (n,)
    (logit, mu, raw)   = W_v z + b_v
    clv_params         = (logit, mu, max(softplus(raw), MIN_SIGMA))   (n, 3)

So a customer's embedding can be cached until they act again, while churn and CLV, which depend on how
long they have been quiet, are re-read from the cheap heads (:meth:`CustomerEncoderModel.predict`).

``clv_params`` are the zero-inflated lognormal parameters of Wang, Liu & Miao (2019), see ``losses.py``.
The events backbone adds masked-event modelling heads for pre-training: logits over event kinds and
amount buckets at every position, read where the input holds ``MASK_ID``. A customer without events (an
all-padding row) pools to zeros, so their embedding is the projection's bias.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from offerpilot.encoders.configuration import CustomerEncoderConfig
from offerpilot.encoders.event_transformer import EventTransformer
from offerpilot.encoders.losses import ziln_expected_value, ziln_sigma
from offerpilot.encoders.minilm import minilm_path
from offerpilot.encoders.tokenizer import PAD_ID, HistoryBatch
from offerpilot.schema import EVENT_KINDS

N_ELAPSED_FEATURES = 2 * len(EVENT_KINDS)
"""Width of :func:`elapsed_features`: a scaled time and a never-seen flag per event kind."""


def elapsed_features(elapsed_days: torch.Tensor, cap_days: float) -> torch.Tensor:
    """(n, K) days since the last event of each kind (NaN: never) -> (n, 2K) features in [0, 1].

    ``log1p(min(days, cap)) / log1p(cap)``, with never-seen kinds at 1 (as long ago as the cap), then one
    0/1 flag per kind for never-seen.
    """
    never = torch.isnan(elapsed_days)
    days = elapsed_days.float().nan_to_num(cap_days).clamp(0.0, cap_days)
    return torch.cat([torch.log1p(days) / math.log1p(cap_days), never.float()], dim=-1)


@dataclass
class CustomerEncoderOutput(ModelOutput):
    """What :meth:`CustomerEncoderModel.forward` returns (float32 unless the model is cast)."""

    last_hidden_state: torch.FloatTensor | None = None
    """(n, L, width): the backbone's output per position (width = ``hidden_size``, or the text model's)."""
    pooled: torch.FloatTensor | None = None
    """(n, embedding_dim): the customer embedding."""
    churn_logit: torch.FloatTensor | None = None
    """(n,): logit of the probability that the customer churns."""
    clv_params: torch.FloatTensor | None = None
    """(n, 3): ``(logit of P(value > 0), mu, sigma)`` of the zero-inflated lognormal CLV."""
    mlm_event_logits: torch.FloatTensor | None = None
    """(n, L, event_vocab_size): masked-event modelling, event kind (events backbone, on request)."""
    mlm_amount_logits: torch.FloatTensor | None = None
    """(n, L, amount_vocab_size): masked-event modelling, amount bucket (events backbone, on request)."""


@dataclass(frozen=True)
class EncodedCustomers:
    """What :meth:`CustomerEncoderModel.encode` returns for ``n`` customers, in the order of the batch."""

    embedding: np.ndarray
    """(n, embedding_dim) float32."""
    churn_probability: np.ndarray
    """(n,) float32 in (0, 1)."""
    expected_clv: np.ndarray
    """(n,) float32 >= 0: the ZILN mean ``P(value > 0) * exp(mu + sigma^2 / 2)``."""

    def __len__(self) -> int:
        return len(self.embedding)


class CustomerEncoderModel(PreTrainedModel):
    """Customer history -> embedding, churn logit and CLV distribution (see the module docstring).

    ``model(**history_batch_tensors)`` or ``model(input_ids=..., attention_mask=...)`` for training;
    :meth:`encode` for batched inference; ``save_pretrained`` / ``from_pretrained`` (or ``AutoModel``) to persist.
    """

    config_class = CustomerEncoderConfig
    base_model_prefix = "customer_encoder"

    def __init__(self, config: CustomerEncoderConfig) -> None:
        super().__init__(config)
        if config.backbone == "events":
            h = config.hidden_size
            self.event_embedding = nn.Embedding(config.event_vocab_size, h, padding_idx=PAD_ID)
            self.category_embedding = nn.Embedding(config.category_vocab_size, h, padding_idx=PAD_ID)
            self.amount_embedding = nn.Embedding(config.amount_vocab_size, h, padding_idx=PAD_ID)
            self.offer_embedding = nn.Embedding(config.offer_vocab_size, h, padding_idx=PAD_ID)
            self.gap_embedding = nn.Embedding(config.gap_vocab_size, h, padding_idx=PAD_ID)
            self.position_embedding = nn.Embedding(config.max_len, h)
            self.embedding_dropout = nn.Dropout(config.dropout)
            self.encoder = EventTransformer(h, config.num_layers, config.num_heads, config.intermediate_size, config.dropout)
            self.mlm_event_head = nn.Linear(h, config.event_vocab_size)
            self.mlm_amount_head = nn.Linear(h, config.amount_vocab_size)
            width = h
        else:
            self.text_model = _text_backbone(config.text_model_path)
            width = self.text_model.config.hidden_size
        self.projection = nn.Linear(width, config.embedding_dim)
        self.head_trunk = nn.Sequential(nn.Linear(config.embedding_dim + N_ELAPSED_FEATURES, config.embedding_dim), nn.GELU())
        self.churn_head = nn.Linear(config.embedding_dim, 1)
        self.clv_head = nn.Linear(config.embedding_dim, 3)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range) weights, zero biases and padding rows, unit LayerNorms.

        The pretrained text backbone is a ``PreTrainedModel`` of its own: ``transformers`` initialises it
        with its own rule, and only the weights it did not load.
        """
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def forward(
        self,
        event_ids: torch.LongTensor | None = None,
        category_ids: torch.LongTensor | None = None,
        amount_ids: torch.LongTensor | None = None,
        offer_ids: torch.LongTensor | None = None,
        gap_ids: torch.LongTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        elapsed_days: torch.Tensor | None = None,
        output_mlm_logits: bool = False,
    ) -> CustomerEncoderOutput:
        """Encode a batch of ``n`` histories of ``L`` positions.

        :param event_ids, category_ids, amount_ids, offer_ids, gap_ids: (n, L) int64 event tokens
            (events backbone; ``HistoryBatch.model_inputs()``).
        :param input_ids, token_type_ids: (n, L) int64 text tokens (text backbone).
        :param attention_mask: (n, L) bool or int, true on real events / text tokens.
        :param elapsed_days: (n, len(EVENT_KINDS)) float, days since the last event of each kind, NaN for never.
        :param output_mlm_logits: also return the masked-event modelling logits (events backbone).
        """
        if attention_mask is None:
            raise ValueError("attention_mask is required: it tells real events (or text tokens) from padding")
        if elapsed_days is None:
            raise ValueError("elapsed_days is required: the heads read how long ago each kind of event was")
        mlm = output_mlm_logits and self.config.backbone == "events"
        hidden, pooled = self._embed(event_ids, category_ids, amount_ids, offer_ids, gap_ids, input_ids, token_type_ids, attention_mask, every_position=mlm)
        churn_logit, clv_params = self.predict(pooled, elapsed_days)
        return CustomerEncoderOutput(
            last_hidden_state=hidden,
            pooled=pooled,
            churn_logit=churn_logit,
            clv_params=clv_params,
            mlm_event_logits=self.mlm_event_head(hidden) if mlm else None,
            mlm_amount_logits=self.mlm_amount_head(hidden) if mlm else None,
        )

    def predict(self, pooled: torch.Tensor, elapsed_days: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The heads alone: ``(churn_logit (n,), clv_params (n, 3))`` from embeddings and ``elapsed_days``."""
        z = self.head_trunk(torch.cat([pooled, elapsed_features(elapsed_days.to(pooled.device), self.config.elapsed_cap_days).to(pooled.dtype)], dim=-1))
        clv_raw = self.clv_head(z)
        return self.churn_head(z).squeeze(-1), torch.cat([clv_raw[:, :2], ziln_sigma(clv_raw[:, 2:])], dim=-1)

    def _embed(
        self, event_ids, category_ids, amount_ids, offer_ids, gap_ids, input_ids, token_type_ids, attention_mask, every_position: bool = False
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(last_hidden_state, pooled)``. Events backbone: pooled from the newest event's hidden state, and
        ``last_hidden_state`` only if ``every_position`` (else ``None``: the last layer runs at the newest
        event alone). Text backbone: the mean over tokens, and always ``last_hidden_state``."""
        mask = attention_mask.bool()
        if self.config.backbone == "text":
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}  # not every text model takes them
            hidden = self.text_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            mean = hidden.masked_fill(~mask.unsqueeze(-1), 0.0).sum(1) / mask.sum(1, keepdim=True).clamp_min(1).to(hidden.dtype)
            return hidden, self.projection(mean)
        n_kept = mask.sum(1)
        if bool((n_kept > self.config.max_len).any()):
            raise ValueError(f"a history has {int(n_kept.max())} events; this model reads at most max_len={self.config.max_len}")
        recency = (mask.flip(1).long().cumsum(1).flip(1) - 1).clamp_min(0)  # 0 = the most recent event
        x = (
            self.event_embedding(event_ids)
            + self.category_embedding(category_ids)
            + self.amount_embedding(amount_ids)
            + self.offer_embedding(offer_ids)
            + self.gap_embedding(gap_ids)
            + self.position_embedding(recency)
        )
        empty = n_kept == 0
        newest = torch.where(empty, 0, (mask & (recency == 0)).long().argmax(1))
        # A row without events attends its first slot rather than nothing (which would give NaN), then pools to zeros.
        key_mask = mask | ((torch.arange(mask.shape[1], device=mask.device) == 0) & empty.unsqueeze(1))
        out = self.encoder(self.embedding_dropout(x), key_mask, newest, newest_only=not every_position)
        at_newest = out if not every_position else out[torch.arange(len(out), device=out.device), newest]
        return (out if every_position else None), self.projection(at_newest.masked_fill(empty.unsqueeze(1), 0.0))

    def policy_features(self, pooled: torch.Tensor, elapsed_days: torch.Tensor) -> torch.Tensor:
        """What a policy reads of each customer: the embedding, then the churn probability and ``log1p`` of the
        expected CLV (:data:`POLICY_HEADS`). The one definition: the simulator's encoder observer, the exported ONNX
        graph and the features of logged customers in off-policy evaluation all come from here."""
        churn_logit, clv_params = self.predict(pooled, elapsed_days)
        heads = torch.stack([torch.sigmoid(churn_logit), torch.log1p(ziln_expected_value(clv_params))], dim=1)
        return torch.cat([pooled, heads.to(pooled.dtype)], dim=1)

    def policy_feature_names(self) -> tuple[str, ...]:
        """The names of :meth:`policy_features`' columns."""
        return (*(f"emb_{i}" for i in range(self.config.embedding_dim)), *POLICY_HEADS)

    @torch.inference_mode()
    def encode(self, batch: HistoryBatch | Mapping[str, Any], batch_size: int = 256) -> EncodedCustomers:
        """Embeddings, churn probabilities and expected CLV of ``n`` customers, in eval mode, without gradients.

        :param batch: a :class:`HistoryBatch` (events backbone), or, for the text backbone, a mapping with the
            text model tokenizer's ``input_ids`` and ``attention_mask`` (n, L) and ``elapsed_days`` (n, K).
        :param batch_size: customers per forward pass (see :meth:`embed`).
        """
        pooled, elapsed = self._embed_batch(batch, batch_size)
        with _eval_mode(self):
            churn_logit, clv_params = self.predict(pooled.to(self.device), elapsed)
        return EncodedCustomers(pooled.numpy(), torch.sigmoid(churn_logit).float().cpu().numpy(), ziln_expected_value(clv_params).float().cpu().numpy())

    @torch.inference_mode()
    def encode_policy_features(self, batch: HistoryBatch | Mapping[str, Any], batch_size: int = 256) -> np.ndarray:
        """(n, len(policy_feature_names())) float32: :meth:`policy_features` of the histories in ``batch`` (as :meth:`encode`)."""
        pooled, elapsed = self._embed_batch(batch, batch_size)
        with _eval_mode(self):
            return self.policy_features(pooled.to(self.device), elapsed).float().cpu().numpy()

    def _embed_batch(self, batch: HistoryBatch | Mapping[str, Any], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings, elapsed_days)`` of a batch, after checking it suits the backbone."""
        if isinstance(batch, HistoryBatch) != (self.config.backbone == "events"):
            expected = "a HistoryBatch" if self.config.backbone == "events" else "tokenised text (input_ids, attention_mask, elapsed_days)"
            raise TypeError(f"the {self.config.backbone} backbone encodes {expected}, got {type(batch).__name__}")
        inputs = batch.model_inputs() if isinstance(batch, HistoryBatch) else dict(batch)
        if "elapsed_days" not in inputs:
            raise ValueError("the batch has no elapsed_days: the heads read how long ago each kind of event was")
        elapsed = torch.as_tensor(inputs.pop("elapsed_days"))
        return self.embed(inputs, batch_size), elapsed

    @torch.inference_mode()
    def embed(self, inputs: Mapping[str, Any], batch_size: int = 256) -> torch.Tensor:
        """(n, embedding_dim) float32 CPU embeddings of the histories in ``inputs`` (token arrays and
        ``attention_mask``, (n, L) each), in eval mode; the model's train/eval mode is restored afterwards.

        Customers are chunked by history length and each chunk drops its all-padding columns, which changes
        no output (positions are recency ranks) and saves most of the work on short histories.
        """
        tensors = {k: torch.as_tensor(v) for k, v in inputs.items() if k in SEQUENCE_INPUTS}
        mask = tensors["attention_mask"].bool()
        n = mask.shape[0]
        order = torch.argsort(mask.sum(1), stable=True)
        embedding = torch.empty(n, self.config.embedding_dim)
        with _eval_mode(self):
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                columns = mask[rows].any(0)
                columns[0] = True  # keep one column for a chunk of customers without history
                chunk = {k: v[rows][:, columns].to(self.device) for k, v in tensors.items()}
                embedding[rows] = self._embed(**{k: chunk.get(k) for k in SEQUENCE_INPUTS})[1].float().cpu()
        return embedding


POLICY_HEADS = ("churn_probability", "log_expected_clv")
"""The heads' columns of :meth:`CustomerEncoderModel.policy_features`, after the embedding's."""


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block, its train/eval mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


SEQUENCE_INPUTS = ("event_ids", "category_ids", "amount_ids", "offer_ids", "gap_ids", "input_ids", "token_type_ids", "attention_mask")
"""``forward`` inputs with a position axis, in ``_embed``'s argument order."""


def _text_backbone(path: str | None) -> PreTrainedModel:
    """The pretrained text model in the local folder ``path`` (``None``: the packaged all-MiniLM-L6-v2).

    ``from_pretrained`` of the encoder first builds it on the meta device, then loads the encoder's own
    checkpoint, which holds the (possibly fine-tuned) backbone weights: there only the architecture is built.
    """
    folder = str(minilm_path() if path is None else path)
    if torch.empty(0).is_meta:
        return AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
    return AutoModel.from_pretrained(folder, local_files_only=True)


AutoModel.register(CustomerEncoderConfig, CustomerEncoderModel, exist_ok=True)
