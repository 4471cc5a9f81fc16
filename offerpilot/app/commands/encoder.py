"""The customer encoder: ``offerpilot encoder train`` and ``encoder embed``."""

from __future__ import annotations

import argparse
from pathlib import Path

from offerpilot.app.commands.options import timestamp
from offerpilot.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add 'encoder' to the ``offerpilot`` command."""
    enc = sub.add_parser("encoder", help="train the customer encoder, or embed customers with it",
                         description="The transformer that turns a customer's history into an embedding, a churn "
                         "probability and an expected CLV.", epilog="Run 'offerpilot encoder train --help' or "
                         "'offerpilot encoder embed --help'.")
    enc.set_defaults(run=lambda _: (enc.print_help(), 2)[1])
    enc_sub = enc.add_subparsers(title="encoder commands", metavar="ENCODER_COMMAND")
    train = enc_sub.add_parser("train", help="pre-train and fine-tune on an events log",
                               description="Masked-event pre-training, then churn (no purchase in the window after "
                               "--as-of) and CLV (spend in that window, zero-inflated lognormal) fine-tuning, with a "
                               "validation split, early stopping, tensorboard logs and progress bars.")
    train.add_argument("--events", type=Path, required=True, help="events file in the data contract")
    train.add_argument("--as-of", type=timestamp, default=None, help="cutoff: history before it, labels after it "
                       "(default: --window-days before the last event)")
    train.add_argument("--window-days", type=int, default=90, help="label window after the cutoff (default: %(default)s)")
    train.add_argument("--backbone", choices=("events", "text"), default="events",
                       help="events: a small transformer over event tokens; text: the packaged all-MiniLM-L6-v2 "
                       "over the history written as text (default: %(default)s)")
    train.add_argument("--finetune-epochs", type=int, default=None, help="most fine-tuning epochs (early stopping may end sooner)")
    train.add_argument("--pretrain-epochs", type=int, default=None, help="masked-event pre-training epochs")
    train.add_argument("--embedding-dim", type=int, default=32, help="size of the customer embedding (default: %(default)s)")
    train.add_argument("--hidden-size", type=int, default=None, help="width of the events transformer (default: the library's)")
    train.add_argument("--num-layers", type=int, default=None, help="layers of the events transformer (default: the library's)")
    train.add_argument("--num-heads", type=int, default=None, help="attention heads; must divide --hidden-size (default: the library's)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train.add_argument("--out", type=Path, required=True, help="run folder: model/, tensorboard/, metrics.json")
    train.set_defaults(run=run_encoder_train)
    embed = enc_sub.add_parser("embed", help="embed customers to Parquet",
                               description="Write user_id, churn_probability, expected_clv and emb_* per customer.")
    embed.add_argument("--model", type=Path, required=True, help="the model folder written by 'encoder train' (RUN/model)")
    embed.add_argument("--events", type=Path, required=True, help="events file in the data contract")
    embed.add_argument("--as-of", type=timestamp, default=None, help="embed the history before this time (default: after the last event)")
    embed.add_argument("--out", type=Path, required=True, help="Parquet (or CSV) file to write")
    embed.set_defaults(run=run_encoder_embed)


def run_encoder_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from offerpilot.encoders.labels import window_labels
    from offerpilot.encoders.training import train_encoder
    from offerpilot.encoders.training_config import EncoderTrainingConfig
    from offerpilot.tables import read_events

    events = read_events(args.events)
    as_of = args.as_of if args.as_of is not None else (events["ts"].max() - pd.Timedelta(days=args.window_days)).normalize()
    users = pd.unique(events.loc[events["ts"] < as_of, "user_id"])
    if len(users) < 50:
        raise InputError(f"only {len(users)} customers have history before {as_of.date()}: too few to train on")
    labels = window_labels(events, as_of, args.window_days, users)
    architecture = {k: getattr(args, k) for k in ("hidden_size", "num_layers", "num_heads") if getattr(args, k) is not None}
    config = EncoderTrainingConfig(
        backbone=args.backbone, finetune_epochs=args.finetune_epochs, pretrain_epochs=args.pretrain_epochs,
        embedding_dim=args.embedding_dim, seed=args.seed, **architecture,
    )
    print(f"training the {args.backbone} encoder on {len(users):,} customers: history before {as_of.date()}, "
          f"labels from the {args.window_days} days after")
    result = train_encoder(events, as_of, labels, config, args.out)
    m = result.metrics
    print(f"validation: churn AUC {m.val_churn_auc:.3f}, CLV Spearman {m.val_clv_spearman:.3f}; model in {result.model_dir}")
    return 0


def run_encoder_embed(args: argparse.Namespace) -> int:
    import pandas as pd

    from offerpilot.encoders.embedding import embed_customers
    from offerpilot.encoders.encoder_folder import load_encoder
    from offerpilot.tables import read_events, write_table

    if not (args.model / "model.safetensors").is_file():
        raise FileNotFoundError(f"{args.model}: no model.safetensors; pass the model folder that 'encoder train' wrote (RUN/model)")
    model, tokenizer = load_encoder(args.model)
    events = read_events(args.events)
    as_of = args.as_of if args.as_of is not None else events["ts"].max() + pd.Timedelta(seconds=1)
    frame = embed_customers(model, tokenizer, events, as_of)
    write_table(frame, args.out)
    print(f"wrote {len(frame):,} customers' embeddings ({model.config.embedding_dim} dimensions) to {args.out}")
    return 0
