"""Export: a real trained policy becomes a bundle whose onnxruntime graph matches torch, and that refuses tampering."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.agents.ppo_training import train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.app.cli import main
from offerpilot.catalog import default_catalog
from offerpilot.deployment import export
from offerpilot.deployment.bundle import Bundle, Exploration
from offerpilot.deployment.export import ExportConfig, export_bundle
from offerpilot.deployment.manifest import BundleError, manifest_digest
from offerpilot.deployment.scoring import customer_inputs
from offerpilot.encoders.configuration import CustomerEncoderConfig
from offerpilot.encoders.embedding import embed_customers
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import EventTokenizer
from offerpilot.envs.population import CATEGORIES
from offerpilot.ope.logged_decisions import logged_decisions
from offerpilot.tables import read_decisions, read_events

from small_training import SMALL_TRAINING, small_training


@pytest.fixture(scope="module")
def run_dir(small_run):
    return small_run


@pytest.fixture(scope="module")
def bundle_dir(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "bundle"
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    out = tmp_path_factory.mktemp("logs")
    assert main(["simulate", "--out", str(out), "--customers", "300", "--seed", "5", "--policy", "uniform"]) == 0
    return out


def test_bundle_holds_graph_manifest_card_and_true_hashes(bundle_dir, run_dir):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["format"] == 1
    assert set(manifest["files"]) == {"policy.onnx", "MODEL_CARD.md"}
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["MODEL_CARD.md", "manifest.json", "policy.onnx"]
    for name, entry in manifest["files"].items():
        data = (bundle_dir / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert manifest["actions"]["ids"] == list(default_catalog().ids)
    assert manifest["actions"]["catalog"] == default_catalog().to_dict()
    policy = PPOPolicy.load(run_dir / "best_policy")
    assert manifest["features"]["names"] == list(policy.feature_names)
    assert manifest["features"]["normalizer"] == policy.normalizer.to_dict()
    assert manifest["objective"]["lam"] == 0.3 and manifest["objective"]["horizon_days"] == 365
    data = manifest["training"]["data"]
    assert (data["decision_period_days"], data["decision_interval_days"], data["customer_decisions"]) == (365, 7, 1024)
    assert manifest["metrics"]["validation"]["timesteps"] == policy.metadata["num_timesteps"]
    assert datetime.fromisoformat(manifest["created"]).tzinfo is not None
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    for section in ("## What it was trained on", "## How it was evaluated", "## Known limits"):
        assert section in card


def test_onnxruntime_matches_torch_on_random_inputs_and_simulated_histories(bundle_dir, run_dir, logs):
    parity = json.loads((bundle_dir / "manifest.json").read_text())["metrics"]["parity"]
    assert parity["random"]["inputs"] == 10_000 and parity["simulated"]["inputs"] == 500 * 53
    assert parity["random"]["probabilities_max_abs_diff"] <= 1e-5
    assert parity["simulated"]["probabilities_max_abs_diff"] <= parity["simulated_tolerance"] <= 1e-4

    # Checked again here with a bare onnxruntime session: 10,000 random inputs, then the features and legal actions
    # rebuilt from simulated logs (the path scoring and off-policy evaluation take).
    policy = PPOPolicy.load(run_dir / "best_policy")
    session = ort.InferenceSession(str(bundle_dir / "policy.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(11)
    features = (policy.normalizer.mean + 4 * np.sqrt(policy.normalizer.var) * rng.standard_normal((10_000, 13))).astype(np.float32)
    mask = rng.random((10_000, 7)) < 0.5
    mask[:, 0] = True
    probs, value = session.run(None, {"features": features, "action_mask": mask})
    assert np.abs(probs - policy.action_probs(features, mask)).max() <= 1e-5
    assert (probs[~mask] == 0).all() and value.shape == (10_000,)

    catalog = default_catalog()
    events, decisions = read_events(logs / "events.parquet"), read_decisions(logs / "decisions.parquet")
    data = logged_decisions(events, decisions, catalog, decisions["ts"].min().normalize())
    probs, _ = session.run(None, {"features": data.features, "action_mask": data.legal})
    assert len(data.features) == 300 * 53
    assert np.abs(probs - policy.action_probs(data.features, data.legal)).max() <= 1e-5
    one, _ = session.run(None, {"features": data.features[:1], "action_mask": data.legal[:1]})  # the batch axis is dynamic
    np.testing.assert_allclose(one, probs[:1], atol=1e-7)


def test_a_changed_or_mixed_file_is_refused_naming_it(bundle_dir, run_dir, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle_dir, tampered)
    with open(tampered / "policy.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"policy\.onnx: sha256 .* differs from the manifest"):
        Bundle(tampered)

    other_run = train_ppo(TrainConfig(observation="raw", **small_training(seed=2, total_timesteps=512)), tmp_path / "other_run", progress=False).run_dir
    other = tmp_path / "other"  # the bundle of another run: its policy.onnx has the same shape but other weights
    export_bundle(other_run, other, ExportConfig(n_random=100, n_customers=20))
    mixed = tmp_path / "mixed"
    shutil.copytree(bundle_dir, mixed)
    shutil.copy(other / "policy.onnx", mixed / "policy.onnx")
    with pytest.raises(BundleError, match="policy.onnx"):
        Bundle(mixed)

    (mixed / "policy.onnx").unlink()
    with pytest.raises(BundleError, match=r"policy\.onnx: missing from the bundle"):
        Bundle(mixed)

    future = tmp_path / "future"
    shutil.copytree(bundle_dir, future)
    manifest = json.loads((future / "manifest.json").read_text())
    manifest["format"] = 99
    manifest["manifest_sha256"] = manifest_digest(manifest)  # a consistent manifest of a later offerpilot
    (future / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="bundle format 99, this offerpilot reads format 1"):
        Bundle(future)

    typed = tmp_path / "typed"  # consistent digest, but a field of the wrong kind: the typed manifest names it
    shutil.copytree(bundle_dir, typed)
    manifest = json.loads((typed / "manifest.json").read_text())
    manifest["observation"] = "latent"
    del manifest["value"]["return_scale"]
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (typed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"field observation: .*'raw' or 'encoder'.* \(and 1 more\)"):
        Bundle(typed)


def test_a_failed_export_leaves_the_previous_bundle_untouched(bundle_dir, run_dir, tmp_path, monkeypatch):
    target = tmp_path / "bundle"
    shutil.copytree(bundle_dir, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    monkeypatch.setattr(export, "PARITY_TOLERANCE", 0.0)  # float32 onnxruntime never matches float64 torch exactly
    with pytest.raises(ValueError, match="parity check failed"):
        export_bundle(run_dir, target, ExportConfig(n_random=100, n_customers=20))
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temporary folder left beside it
    with pytest.raises(ValueError, match="parity check failed"):
        export_bundle(run_dir, tmp_path / "new", ExportConfig(n_random=100, n_customers=20))
    assert not (tmp_path / "new").exists()


def test_export_errors_name_the_problem(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 2
    assert "nowhere/policy: missing; " in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_encoder_policy_exports_two_graphs_that_match_torch(tmp_path, logs):
    """An encoder-observation run: encoder.onnx and the tokenizer travel in the bundle; scoring from logs runs the
    encoder graph, whose features match the torch encoder's."""
    catalog = default_catalog()
    tokenizer = EventTokenizer(catalog.ids, CATEGORIES)
    torch.manual_seed(0)
    encoder = CustomerEncoderModel(CustomerEncoderConfig(**tokenizer.vocab_sizes(), hidden_size=16, intermediate_size=32, embedding_dim=8)).eval()
    encoder.save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    run = train_ppo(TrainConfig(observation="encoder", encoder=str(tmp_path / "encoder"), **SMALL_TRAINING), tmp_path / "run", progress=False).run_dir
    manifest = export_bundle(run, tmp_path / "bundle", ExportConfig(n_random=2000, n_customers=200)).to_dict()
    assert set(manifest["files"]) == {"policy.onnx", "encoder.onnx", "event_tokenizer.json", "MODEL_CARD.md"}
    assert manifest["features"]["encoder"] == [*(f"emb_{i}" for i in range(8)), "churn_probability", "log_expected_clv"]
    simulated = manifest["metrics"]["parity"]["simulated"]
    assert simulated["probabilities_max_abs_diff"] <= 1e-5 and simulated["encoder_features_max_abs_diff"] <= 1e-5

    bundle = Bundle(tmp_path / "bundle")
    events = read_events(logs / "events.parquet")
    as_of = pd.Timestamp("2025-03-01")
    inputs = customer_inputs(bundle, events, read_decisions(logs / "decisions.parquet"), as_of, pd.Timestamp("2025-01-01"))
    reference = embed_customers(encoder, tokenizer, events, as_of, user_ids=inputs.user_ids)
    expected = np.column_stack([reference[[f"emb_{i}" for i in range(8)]].to_numpy(), reference["churn_probability"], np.log1p(reference["expected_clv"])])
    assert np.abs(inputs.features[:, 13:] - expected).max() <= 1e-5
    torch_policy = PPOPolicy.load(run / "best_policy")
    assert np.abs(bundle.action_probs(inputs.features, inputs.mask) - torch_policy.action_probs(inputs.features, inputs.mask)).max() <= 1e-5
    chosen = bundle.decide(inputs.features, inputs.mask, Exploration(epsilon=0.1), np.random.default_rng(0))
    assert inputs.mask[np.arange(len(chosen.actions)), chosen.actions].all()
