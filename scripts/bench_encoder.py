"""Benchmark the customer encoder: batch inference, and the simulator with the encoder in the loop.

Run:  .venv/bin/python scripts/bench_encoder.py [--customers 20000] [--envs 4096] [--decisions 30]
          [--threads N] [--model DIR] [--seed 0] [--json out.json]

Measures, on all cores (or ``--threads``):
  * ``events`` backbone inference: customers embedded per second (embedding, churn and CLV) when every
    history holds 64 events, for several batch sizes; the default batch size is the one ``encode`` uses;
  * the SB3 VecEnv with the raw-feature observer and with the encoder observer, the same customers and the
    same random legal actions (drawn outside the timed region), in customer-days per second, and the share
    of customers whose embedding had to be recomputed at a decision (the rest come from the cache).
The weights do not change the cost: without ``--model`` a freshly initialised default-size encoder is used.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from offerpilot.catalog import default_catalog
from offerpilot.encoders.configuration import CustomerEncoderConfig
from offerpilot.encoders.encoder_folder import load_encoder
from offerpilot.encoders.encoder_observer import EncoderObserver
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import EventTokenizer, HistoryBatch
from offerpilot.envs.policy import UniformRandomPolicy, act
from offerpilot.envs.population import CATEGORIES
from offerpilot.envs.vec_env import RetentionVecEnv
from offerpilot.schema import EVENT_KINDS

sys.path.insert(0, str(Path(__file__).parent))
from bench_simulator import cpu_name  # noqa: E402

BATCH_SIZES = (64, 128, 256, 512, 1024)


def full_histories(tokenizer: EventTokenizer, n: int, seed: int) -> HistoryBatch:
    """``n`` histories of ``max_len`` events with random valid tokens (the cost does not depend on the values)."""
    rng = np.random.default_rng(seed)
    sizes = tokenizer.vocab_sizes()
    shape = (n, tokenizer.max_len)
    tokens = {
        name: rng.integers(2, sizes[size], shape)
        for name, size in (("event_ids", "event_vocab_size"), ("category_ids", "category_vocab_size"), ("amount_ids", "amount_vocab_size"),
                           ("offer_ids", "offer_vocab_size"), ("gap_ids", "gap_vocab_size"))
    }
    return HistoryBatch(
        user_ids=np.arange(n).astype(object),
        attention_mask=np.ones(shape, bool),
        n_events=np.full(n, tokenizer.max_len),
        elapsed_days=rng.uniform(0, 365, (n, len(EVENT_KINDS))).astype(np.float32),
        **tokens,
    )


def bench_inference(model: CustomerEncoderModel, tokenizer: EventTokenizer, n: int, seed: int) -> dict[int, float]:
    """Customers per second of ``model.encode`` on full histories, per batch size (best of two runs)."""
    batch = full_histories(tokenizer, n, seed)
    rates = {}
    for batch_size in BATCH_SIZES:
        model.encode(batch.select(slice(0, batch_size)), batch_size=batch_size)  # warm-up
        best = np.inf
        for _ in range(2):
            start = time.perf_counter()
            model.encode(batch, batch_size=batch_size)
            best = min(best, time.perf_counter() - start)
        rates[batch_size] = n / best
    return rates


def bench_vec_env(n_envs: int, decisions: int, seed: int, observer: EncoderObserver | None) -> dict[str, float]:
    """Customer-days per second of the VecEnv under random legal actions, after a warm-up of 3 decisions."""
    env = RetentionVecEnv(n_envs, seed=seed, encoder=observer)
    obs = env.reset()
    policy, rng = UniformRandomPolicy(), np.random.default_rng(seed)
    for _ in range(3):
        actions, _ = act(policy, obs, env.action_masks(), rng=rng)
        obs, *_ = env.step_arrays(actions)
    embedded = observer.customers_embedded if observer is not None else 0
    seconds = 0.0
    for _ in range(decisions):
        actions, _ = act(policy, obs, env.action_masks(), rng=rng)
        start = time.perf_counter()
        obs, *_ = env.step_arrays(actions)
        seconds += time.perf_counter() - start
    result = {"customer_days_per_s": n_envs * decisions * env.sim.config.decision_interval_days / seconds}
    if observer is not None:
        result["share_re_embedded"] = (observer.customers_embedded - embedded) / (n_envs * decisions)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000, help="histories embedded in the inference benchmark")
    parser.add_argument("--envs", type=int, default=4096, help="VecEnv slots")
    parser.add_argument("--decisions", type=int, default=30, help="VecEnv decision steps to time")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core)")
    parser.add_argument("--model", type=Path, default=None, help="a trained encoder folder (default: a fresh default-size model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model is not None:
        model, tokenizer = load_encoder(args.model)
    else:
        tokenizer = EventTokenizer(default_catalog().ids, CATEGORIES)
        torch.manual_seed(args.seed)
        model = CustomerEncoderModel(CustomerEncoderConfig(**tokenizer.vocab_sizes())).eval()
    config = model.config
    machine = f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads, torch {torch.__version__}, Python {platform.python_version()}"
    print(f"machine: {machine}")
    print(f"encoder: hidden {config.hidden_size}, {config.num_layers} layer(s), {config.num_heads} heads, feed-forward "
          f"{config.intermediate_size}, embedding {config.embedding_dim}, history length {tokenizer.max_len}")

    rates = bench_inference(model, tokenizer, args.customers, args.seed)
    default_batch = inspect.signature(CustomerEncoderModel.encode).parameters["batch_size"].default
    for batch_size, rate in rates.items():
        mark = "  (encode's default)" if batch_size == default_batch else ""
        print(f"inference, {tokenizer.max_len} events per history, batch {batch_size:5d}: {rate:9,.0f} customers/s{mark}")

    raw = bench_vec_env(args.envs, args.decisions, args.seed, None)
    looped = bench_vec_env(args.envs, args.decisions, args.seed, EncoderObserver(model, tokenizer, default_catalog()))
    ratio = looped["customer_days_per_s"] / raw["customer_days_per_s"]
    print(f"VecEnv, {args.envs:,} slots, raw features:      {raw['customer_days_per_s'] / 1e6:6.2f} M customer-days/s")
    print(f"VecEnv, {args.envs:,} slots, encoder in loop:   {looped['customer_days_per_s'] / 1e6:6.2f} M customer-days/s "
          f"= {ratio:.2f} of raw; {looped['share_re_embedded']:.1%} of customers re-embedded per decision")
    if args.json:
        payload = {"machine": machine, "inference_customers_per_s": rates, "vec_env_raw": raw, "vec_env_encoder": looped, "ratio": ratio}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
