"""How the customer encoder is trained: :class:`EncoderTrainingConfig` and its per-backbone defaults."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from offerpilot.encoders.configuration import BACKBONES
from offerpilot.errors import InputError

_BACKBONE_DEFAULTS: dict[str, dict[str, float]] = {
    "events": {"pretrain_epochs": 5, "finetune_epochs": 30, "batch_size": 256, "learning_rate": 1e-3, "head_learning_rate": 1e-3},
    "text": {"pretrain_epochs": 0, "finetune_epochs": 2, "batch_size": 32, "learning_rate": 5e-5, "head_learning_rate": 1e-3},
}


@dataclass(frozen=True)
class EncoderTrainingConfig:
    """How :func:`train_encoder` trains; ``None`` fields take their backbone's default (see :meth:`resolved`)."""

    backbone: str = "events"
    """``"events"``: a transformer over event tokens; ``"text"``: the packaged all-MiniLM-L6-v2 over rendered histories."""
    max_len: int = 64
    """Most recent events per customer the model reads (the text backbone renders as many)."""
    hidden_size: int = 32
    """Width of the events transformer. The defaults (32 wide, 1 layer, 2 heads) matched a 64-wide 2-layer
    model's held-out churn AUC and CLV Spearman on 20,000 simulated customers at 3.5x less training time."""
    intermediate_size: int | None = None
    """Width of each layer's feed-forward block; None: twice ``hidden_size``."""
    num_layers: int = 1
    """Transformer layers (events backbone)."""
    num_heads: int = 2
    """Attention heads (events backbone); must divide ``hidden_size``."""
    embedding_dim: int = 32
    """Size of the customer embedding the heads and the agent read."""
    dropout: float = 0.1
    """Dropout of the events transformer while training."""
    pretrain_epochs: int | None = None
    """Masked event modelling epochs; None: 5 for events, 0 for text (which has no masked pre-training)."""
    finetune_epochs: int | None = None
    """Most churn + CLV epochs (early stopping may end sooner); None: 30 for events, 2 for text (slow on CPU)."""
    batch_size: int | None = None
    """Customers per optimiser step; None: 256 for events, 32 for text."""
    learning_rate: float | None = None
    """AdamW learning rate of the backbone; None: 1e-3 for events, 5e-5 for the pretrained text model."""
    head_learning_rate: float | None = None
    """AdamW learning rate of the projection and the heads; None: 1e-3."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global L2 norm."""
    mask_probability: float = 0.15
    """Share of real event positions masked in pre-training."""
    validation_fraction: float = 0.2
    """Share of the labelled customers held out for validation and early stopping."""
    patience: int = 3
    """Fine-tuning stops after this many epochs without a lower validation loss."""
    seed: int = 0
    """Seeds the split, the initialisation, dropout, the batch order and the masks."""
    device: str = "auto"
    """``"auto"`` (CUDA when available, else CPU), or a torch device such as ``"cpu"`` or ``"cuda:1"``."""
    num_threads: int | None = None
    """CPU threads torch may use during training (restored afterwards); None: leave torch's setting. On cores
    shared with other busy processes, 1 avoids OpenMP threads waiting on each other (seen 20x slower with 2 of 2)."""
    text_max_tokens: int = 256
    """Text backbone: rendered histories are cut to their last this many tokens."""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise InputError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "text" and self.pretrain_epochs:
            raise InputError("the text backbone has no masked pre-training: set pretrain_epochs to 0 or None")
        if self.hidden_size % self.num_heads:
            raise InputError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        if not 0.0 < self.validation_fraction < 1.0:
            raise InputError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0.0 < self.mask_probability < 1.0:
            raise InputError(f"mask_probability must be in (0, 1), got {self.mask_probability}")
        positive = ("max_len", "hidden_size", "intermediate_size", "num_layers", "embedding_dim", "batch_size", "finetune_epochs", "patience", "num_threads", "text_max_tokens")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"{name} must be >= 1, got {value}")
        if self.pretrain_epochs is not None and self.pretrain_epochs < 0:
            raise InputError(f"pretrain_epochs must be >= 0, got {self.pretrain_epochs}")
        for name in ("learning_rate", "head_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"{name} must be > 0, got {value}")

    def resolved(self) -> EncoderTrainingConfig:
        """This config with every ``None`` default filled in for its backbone and ``device="auto"`` resolved."""
        defaults = {k: v for k, v in _BACKBONE_DEFAULTS[self.backbone].items() if getattr(self, k) is None}
        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else str(torch.device(self.device))
        return replace(self, **defaults, device=device)
