"""The encoder's model folder: the one place that writes and reads it (``save_pretrained`` of model and tokenizer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers.utils import logging as hf_logging

from offerpilot.atomic import atomic_directory, plain_permissions, safetensors_write_errors
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import EventTokenizer


def save_encoder(model: CustomerEncoderModel, tokenizer: EventTokenizer, model_dir: Path) -> None:
    """Write the model and tokenizer to ``model_dir`` all or nothing (see :func:`atomic_directory`)."""
    check_model_target(model_dir)
    with atomic_directory(model_dir) as tmp, no_hub_progress_bars(), safetensors_write_errors():
        model.save_pretrained(tmp)
        plain_permissions(tmp / "model.safetensors")
        tokenizer.save_pretrained(tmp)


def load_encoder(model_dir: str | Path) -> tuple[CustomerEncoderModel, EventTokenizer]:
    """The model (eval mode, CPU) and event tokenizer that :func:`train_encoder` wrote to ``model_dir``.

    Weights load from ``model.safetensors`` only (``use_safetensors=True``): no pickle is ever unpickled.
    """
    with no_hub_progress_bars():
        model = CustomerEncoderModel.from_pretrained(model_dir, use_safetensors=True)
    return model.eval(), EventTokenizer.from_pretrained(model_dir)


@contextmanager
def no_hub_progress_bars() -> Iterator[None]:
    """Silence transformers' bars while a small model loads or saves (they would print on every load)."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def check_model_target(model_dir: Path) -> None:
    """Raise ``FileExistsError`` if something other than a folder (a previous model) is at ``model_dir``."""
    if model_dir.exists() and not model_dir.is_dir():
        raise FileExistsError(f"{model_dir} exists and is not a model folder; move it away or choose another out_dir")
