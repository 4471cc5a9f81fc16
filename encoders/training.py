"""Training the customer encoder: masked event modelling, then churn and CLV fine-tuning.

Given an events table, a cutoff ``as_of`` and :class:`~offerpilot.encoders.labels.Labels` for the
window after it, :func:`train_encoder`

1. splits the labelled customers into train and validation at random (``seed``, ``validation_fraction``);
2. pre-trains the events backbone with masked event modelling: each real event position is masked with
   probability ``mask_probability`` (its ``event_ids`` and ``amount_ids`` become ``MASK_ID``) and the
   model predicts the originals, ``L_mlm = CE(event logits, event) + CE(amount logits, amount bucket)``,
   each averaged over the masked positions only (as BERT, Devlin et al. 2019, without the 80/10/10 split);
3. fine-tunes on the labels, ``L = BCEWithLogits(churn_logit, churn) + ZILN-NLL(clv_params, spend)``
   (Wang, Liu & Miao 2019), with the heads' biases first set to the train split's constant predictor;
4. stops when the validation loss has not improved for ``patience`` epochs and keeps the best weights;
5. logs ``pretrain/*`` and ``finetune/*`` scalars to ``out_dir/tensorboard`` and shows tqdm bars;
6. writes ``out_dir/model`` (``save_pretrained`` of the model and the event tokenizer) atomically,
   ``out_dir/training_config.json`` (the resolved config) and ``out_dir/metrics.json``.

The text backbone renders each history with :meth:`EventTokenizer.render_text`, tokenises it with the text
model's own tokenizer (the packaged all-MiniLM-L6-v2, local files only) and is fine-tuned directly.

Every random choice derives from ``seed``: the split (a numpy ``Generator``), the initialisation and dropout
(``torch.manual_seed``), the batch order (the ``DataLoader``'s ``torch.Generator``) and the masks (another
``torch.Generator``). On CPU the same seed, data and thread count give bit-identical weights; CUDA
kernels with atomic adds (the embedding backward) may differ in the last bits.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from offerpilot.atomic import write_text_atomic
from offerpilot.catalog import default_catalog
from offerpilot.encoders.configuration import CustomerEncoderConfig
from offerpilot.encoders.encoder_folder import check_model_target, save_encoder
from offerpilot.encoders.inputs import history_inputs
from offerpilot.encoders.labels import Labels, check_labels
from offerpilot.encoders.losses import churn_and_spend_loss, ziln_expected_value
from offerpilot.encoders.modeling import SEQUENCE_INPUTS, CustomerEncoderModel, CustomerEncoderOutput
from offerpilot.encoders.tokenizer import EventTokenizer
from offerpilot.encoders.training_batches import Tensors, length_bucketed_batches, mask_events
from offerpilot.encoders.training_config import EncoderTrainingConfig
from offerpilot.errors import InputError
from offerpilot.torch_threads import torch_threads

_HEADS = ("projection", "head_trunk", "churn_head", "clv_head", "mlm_event_head", "mlm_amount_head")


@dataclass(frozen=True)
class TrainingMetrics:
    """What a run measured on its validation customers (written to ``metrics.json``)."""

    val_churn_auc: float
    """ROC AUC of the churn logit at the best epoch (a constant scores 0.5); NaN if one class only."""
    val_clv_spearman: float
    """Spearman correlation of the ZILN expected value with the actual spend, at the best epoch."""
    best_val_loss: float
    """Lowest validation fine-tuning loss (BCE + ZILN NLL, mean per customer)."""
    best_epoch: int
    """Fine-tuning epoch (1-based) of the kept weights."""
    seed: int
    """The run's seed."""
    n_train: int
    """Customers trained on."""
    n_validation: int
    """Customers held out."""
    pretrain_loss: tuple[float, ...]
    """Masked event modelling loss per pre-training epoch, train split."""
    pretrain_val_loss: tuple[float, ...]
    """The same on the validation split (one fixed mask)."""
    finetune_train_loss: tuple[float, ...]
    """Fine-tuning loss per epoch, train split (mean over batches, dropout on)."""
    finetune_val_loss: tuple[float, ...]
    """Fine-tuning loss per epoch, validation split (eval mode)."""
    finetune_val_churn_auc: tuple[float, ...]
    """Validation churn AUC per epoch."""
    pretrain_seconds_per_epoch: float
    """Mean wall time of a pre-training epoch, its validation included; NaN without pre-training."""
    finetune_seconds_per_epoch: float
    """Mean wall time of a fine-tuning epoch, its validation included."""


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train_encoder` returns: the best model (eval mode, on the training device) and where it went."""

    model: CustomerEncoderModel
    tokenizer: EventTokenizer
    config: EncoderTrainingConfig
    """The resolved config."""
    metrics: TrainingMetrics
    model_dir: Path
    """``out_dir/model``: load it with :func:`load_encoder`."""


def train_encoder(
    events: pd.DataFrame,
    as_of: pd.Timestamp | str,
    labels: Labels,
    config: EncoderTrainingConfig,
    out_dir: str | Path,
    progress: bool = True,
    tokenizer: EventTokenizer | None = None,
) -> TrainingResult:
    """Train a customer encoder on the histories before ``as_of`` of ``labels.user_ids`` (module docstring).

    :param events: the events table (data contract), each user's rows in ``ts`` order.
    :param as_of: the cutoff: histories are the events strictly before it, ``labels`` describe what follows.
    :param labels: (n,) churn and spend of the customers to train on, e.g. from ``window_labels``.
    :param config: hyperparameters; ``None`` fields are resolved per backbone.
    :param out_dir: run folder; receives ``model/``, ``tensorboard/``, ``training_config.json``, ``metrics.json``.
    :param progress: show tqdm progress bars.
    :param tokenizer: the event tokenizer; None: the default catalog's offers, the categories found in
        ``events`` (sorted) and ``config.max_len``.
    :raises ValueError: fewer than 2 labelled customers, labels that are not churn in {0, 1} and spend >= 0, or a
        tokenizer keeping more than ``config.max_len`` events.
    :raises FileExistsError: ``out_dir/model`` exists and is not a folder (checked before training).
    """
    config = config.resolved()
    out_dir = Path(out_dir)
    model_dir = out_dir / "model"
    check_model_target(model_dir)
    check_labels(labels)
    if tokenizer is None:
        categories = sorted(events["category"].dropna().astype(str).unique()) if "category" in events.columns else []
        tokenizer = EventTokenizer(default_catalog().ids, [c for c in categories if c], max_len=config.max_len)
    elif tokenizer.max_len > config.max_len:
        raise InputError(f"the tokenizer keeps {tokenizer.max_len} events but the model reads at most max_len={config.max_len}")

    split_seed, loader_seed, mask_seed = (int(s) for s in np.random.SeedSequence(config.seed).generate_state(3))
    order = np.random.default_rng(split_seed).permutation(len(labels))
    n_val = min(max(1, round(config.validation_fraction * len(labels))), len(labels) - 1)
    inputs = _model_inputs(events, as_of, labels, tokenizer, config)
    lengths = inputs["attention_mask"].sum(1).numpy()
    train_rows = np.sort(order[n_val:])
    val_rows = order[:n_val][np.argsort(lengths[order[:n_val]], kind="stable")]  # in-order batches of similar lengths
    targets = {"churn": torch.as_tensor(labels.churn, dtype=torch.float32), "spend": torch.as_tensor(labels.spend, dtype=torch.float32)}
    train = {k: v[train_rows] for k, v in {**inputs, **targets}.items()}
    val = {k: v[val_rows] for k, v in {**inputs, **targets}.items()}

    write_text_atomic(out_dir / "training_config.json", json.dumps(asdict(config), indent=2) + "\n")
    writer = SummaryWriter(str(out_dir / "tensorboard"))
    try:
        with torch_threads(config.num_threads):
            torch.manual_seed(config.seed)
            model = CustomerEncoderModel(_model_config(config, tokenizer)).to(config.device)
            loader_generator = torch.Generator().manual_seed(loader_seed)
            pretrain = _pretrain(model, train, val, config, loader_generator, torch.Generator().manual_seed(mask_seed), writer, progress)
            _init_heads_at_base_rates(model, train["churn"], train["spend"])
            finetune = _finetune(model, train, val, config, loader_generator, writer, progress)
    finally:
        writer.close()

    model.eval()
    metrics = TrainingMetrics(seed=config.seed, n_train=len(train_rows), n_validation=len(val_rows), **pretrain, **finetune)
    save_encoder(model, tokenizer, model_dir)
    write_text_atomic(out_dir / "metrics.json", json.dumps(_json_ready(asdict(metrics)), indent=2, allow_nan=False) + "\n")
    return TrainingResult(model=model, tokenizer=tokenizer, config=config, metrics=metrics, model_dir=model_dir)


# -- data ---------------------------------------------------------------------------------------------


def _model_inputs(events: pd.DataFrame, as_of: pd.Timestamp | str, labels: Labels, tokenizer: EventTokenizer, config: EncoderTrainingConfig) -> Tensors:
    """``forward`` inputs of every labelled customer: (n, L) int64 each, right-padded, and ``elapsed_days``."""
    return history_inputs(events, as_of, labels.user_ids, tokenizer, config.backbone, config.max_len, config.text_max_tokens)


# -- losses and metrics -------------------------------------------------------------------------------


def _forward(model: CustomerEncoderModel, batch: Tensors, output_mlm_logits: bool = False) -> CustomerEncoderOutput:
    """The model on ``batch``'s ``forward`` inputs, moved to the model's device."""
    keys = (*SEQUENCE_INPUTS, "elapsed_days")
    return model(**{k: batch[k].to(model.device) for k in keys if k in batch}, output_mlm_logits=output_mlm_logits)


def _mlm_loss(out: CustomerEncoderOutput, original: Tensors, selected: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the original event kind plus that of the amount bucket, each a mean over masked positions."""
    selected = selected.to(out.mlm_event_logits.device)
    count = selected.sum().clamp_min(1)
    loss = torch.zeros((), device=selected.device)
    for logits, name in ((out.mlm_event_logits, "event_ids"), (out.mlm_amount_logits, "amount_ids")):
        target = original[name].to(selected.device)
        loss = loss + F.cross_entropy(logits[selected], target[selected], reduction="sum") / count
    return loss


@torch.no_grad()
def _validate(model: CustomerEncoderModel, val: Tensors, batch_size: int) -> dict[str, float]:
    """Fine-tuning loss, churn AUC and CLV Spearman on ``val``, in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    outputs = [_forward(model, batch) for batch in length_bucketed_batches(val, batch_size, None)]
    model.train(was_training)
    churn_logit = torch.cat([o.churn_logit for o in outputs]).float()
    clv_params = torch.cat([o.clv_params for o in outputs]).float()
    churn, spend = val["churn"].numpy(), val["spend"].numpy()
    expected = ziln_expected_value(clv_params).cpu().numpy()
    one_class = churn.min() == churn.max()
    return {
        "loss": float(churn_and_spend_loss(churn_logit, clv_params, val["churn"], val["spend"])),
        "churn_auc": math.nan if one_class else float(roc_auc_score(churn, churn_logit.cpu().numpy())),
        "clv_spearman": math.nan if np.ptp(spend) == 0 or np.ptp(expected) == 0 else float(spearmanr(expected, spend).statistic),
    }


# -- the two phases -----------------------------------------------------------------------------------


def _pretrain(
    model: CustomerEncoderModel,
    train: Tensors,
    val: Tensors,
    config: EncoderTrainingConfig,
    loader_generator: torch.Generator,
    mask_generator: torch.Generator,
    writer: SummaryWriter,
    progress: bool,
) -> dict[str, object]:
    """Masked event modelling for ``config.pretrain_epochs`` epochs; the validation mask is drawn once."""
    if not config.pretrain_epochs:
        return {"pretrain_loss": (), "pretrain_val_loss": (), "pretrain_seconds_per_epoch": math.nan}
    optimizer = _optimizer(model, config)
    val_masked = [(batch, *mask_events(batch, config.mask_probability, mask_generator)) for batch in length_bucketed_batches(val, config.batch_size, None)]
    losses: list[float] = []
    val_losses: list[float] = []
    seconds: list[float] = []
    n_train = len(train["churn"])
    n_batches = math.ceil(n_train / config.batch_size)
    bar = tqdm(total=config.pretrain_epochs * n_batches, desc="pretrain", unit="batch", disable=not progress)
    for epoch in range(1, config.pretrain_epochs + 1):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for batch in length_bucketed_batches(train, config.batch_size, loader_generator):
            masked, selected = mask_events(batch, config.mask_probability, mask_generator)
            loss = _mlm_loss(_forward(model, masked, output_mlm_logits=True), batch, selected)
            _step(model, optimizer, loss, config.max_grad_norm)
            total += loss.item() * len(batch["churn"])
            bar.update()
        model.eval()
        with torch.no_grad():
            val_loss = sum(_mlm_loss(_forward(model, masked, output_mlm_logits=True), batch, selected).item() * len(batch["churn"]) for batch, masked, selected in val_masked)
        seconds.append(time.perf_counter() - start)
        losses.append(total / n_train)
        val_losses.append(val_loss / len(val["churn"]))
        writer.add_scalar("pretrain/loss", losses[-1], epoch)
        writer.add_scalar("pretrain/val_loss", val_losses[-1], epoch)
        writer.add_scalar("pretrain/customers_per_s", n_train / seconds[-1], epoch)
        bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}", val_loss=f"{val_losses[-1]:.3f}")
    bar.close()
    return {"pretrain_loss": tuple(losses), "pretrain_val_loss": tuple(val_losses), "pretrain_seconds_per_epoch": float(np.mean(seconds))}


def _finetune(
    model: CustomerEncoderModel,
    train: Tensors,
    val: Tensors,
    config: EncoderTrainingConfig,
    loader_generator: torch.Generator,
    writer: SummaryWriter,
    progress: bool,
) -> dict[str, object]:
    """Churn + CLV epochs until ``patience`` epochs pass without a lower validation loss; loads the best weights."""
    optimizer = _optimizer(model, config)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_churn_auc": []}
    seconds: list[float] = []
    best: dict[str, object] = {"val_loss": math.inf, "epoch": 0}
    best_state: dict[str, torch.Tensor] = {}
    n_train = len(train["churn"])
    n_batches = math.ceil(n_train / config.batch_size)
    bar = tqdm(total=config.finetune_epochs * n_batches, desc="finetune", unit="batch", disable=not progress)
    for epoch in range(1, config.finetune_epochs + 1):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for batch in length_bucketed_batches(train, config.batch_size, loader_generator):
            out = _forward(model, batch)
            loss = churn_and_spend_loss(out.churn_logit, out.clv_params, batch["churn"], batch["spend"])
            _step(model, optimizer, loss, config.max_grad_norm)
            total += loss.item() * len(batch["churn"])
            bar.update()
        scores = _validate(model, val, config.batch_size)
        seconds.append(time.perf_counter() - start)
        history["train_loss"].append(total / n_train)
        history["val_loss"].append(scores["loss"])
        history["val_churn_auc"].append(scores["churn_auc"])
        writer.add_scalar("finetune/train_loss", history["train_loss"][-1], epoch)
        writer.add_scalar("finetune/customers_per_s", n_train / seconds[-1], epoch)
        for name, value in scores.items():
            writer.add_scalar(f"finetune/val_{name}", value, epoch)
        bar.set_postfix(epoch=epoch, loss=f"{history['train_loss'][-1]:.3f}", val_loss=f"{scores['loss']:.3f}", val_auc=f"{scores['churn_auc']:.3f}")
        if scores["loss"] < best["val_loss"]:
            best = {"val_loss": scores["loss"], "epoch": epoch, **scores}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best["epoch"] >= config.patience:
            break
    bar.close()
    if not best_state:
        raise FloatingPointError(f"the validation loss was never finite ({history['val_loss']}); lower the learning rates")
    model.load_state_dict(best_state)
    return {
        "val_churn_auc": best["churn_auc"],
        "val_clv_spearman": best["clv_spearman"],
        "best_val_loss": best["val_loss"],
        "best_epoch": best["epoch"],
        "finetune_train_loss": tuple(history["train_loss"]),
        "finetune_val_loss": tuple(history["val_loss"]),
        "finetune_val_churn_auc": tuple(history["val_churn_auc"]),
        "finetune_seconds_per_epoch": float(np.mean(seconds)),
    }


def _step(model: CustomerEncoderModel, optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float) -> None:
    """One clipped optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()


# -- model set-up ---------------------------------------------------------------------------------------


def _model_config(config: EncoderTrainingConfig, tokenizer: EventTokenizer) -> CustomerEncoderConfig:
    """The encoder's ``transformers`` config for a resolved training config and its tokenizer."""
    return CustomerEncoderConfig(
        backbone=config.backbone,
        **tokenizer.vocab_sizes(),
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        intermediate_size=config.intermediate_size or 2 * config.hidden_size,
        dropout=config.dropout,
        max_len=config.max_len,
        embedding_dim=config.embedding_dim,
    )


def _optimizer(model: CustomerEncoderModel, config: EncoderTrainingConfig) -> torch.optim.AdamW:
    """AdamW with ``head_learning_rate`` on the projection and heads, ``learning_rate`` on the backbone."""
    heads = [p for name, p in model.named_parameters() if name.split(".")[0] in _HEADS]
    head_ids = {id(p) for p in heads}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": backbone, "lr": config.learning_rate}, {"params": heads, "lr": config.head_learning_rate}]
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


@torch.no_grad()
def _init_heads_at_base_rates(model: CustomerEncoderModel, churn: torch.Tensor, spend: torch.Tensor) -> None:
    """Set the heads' biases so that, before fine-tuning, every customer gets the best constant prediction.

    ``churn bias = logit(mean churn)``; ZILN ``(logit p, mu, raw sigma)`` biases from the share of positive
    spend and the mean and standard deviation of its log (``raw = softplus^-1(sigma)``). The heads' small
    random weights then only learn the deviations from these rates.

    :param churn, spend: (n_train,) float32 labels of the train split.
    """
    positive = torch.log(spend[spend > 0].double())
    p_churn = churn.double().mean().clamp(1e-3, 1 - 1e-3)
    p_spend = (spend > 0).double().mean().clamp(1e-3, 1 - 1e-3)
    mu = positive.mean() if len(positive) else torch.tensor(0.0, dtype=torch.float64)
    sigma = positive.std().clamp_min(0.1) if len(positive) > 1 else torch.tensor(1.0, dtype=torch.float64)
    model.churn_head.bias.fill_(float(torch.logit(p_churn)))
    model.clv_head.bias.copy_(torch.stack([torch.logit(p_spend), mu, torch.log(torch.expm1(sigma))]).to(model.clv_head.bias))


# -- checks and output ----------------------------------------------------------------------------------


def _json_ready(value: object) -> object:
    """``value`` with tuples as lists and NaN floats as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
