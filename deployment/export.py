"""``offerpilot export``: a trained run's policy as a self-contained bundle for the marketing engine.

A bundle folder holds::

    policy.onnx           observation normaliser + actor + masked softmax, and the critic:
                          features (n, n_features) float32, action_mask (n, n_actions) bool
                          -> probabilities (n, n_actions) float32, value (n,) float32 (money)
    encoder.onnx          encoder-observation policies only: a customer's event tokens -> the encoder's features
    event_tokenizer.json  encoder-observation policies only: how events become tokens
    MODEL_CARD.md         what it was trained on, how it was evaluated, known limits
    manifest.json         format, action catalog, feature spec, objective and lam, training data, metrics at
                          export (validation and torch-onnxruntime parity), creation time, sha256 of every other file

The encoder is a second graph, not fused into the policy graph: the encoder has to run only when a customer has
new events (its embedding does not depend on the present moment) while the policy runs at every decision, and a
marketing engine that keeps the encoder's features in its feature store calls the policy graph alone, the same
graph raw-feature policies have. Export refuses a policy whose onnxruntime probabilities differ from torch's by
more than ``PARITY_TOLERANCE`` and writes the bundle atomically: a failed export (parity, a full disk, an unwritable
folder) leaves the previous bundle, or none, and no temporary files behind.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from offerpilot.agents.ppo_checkpoint import read_checkpoint_state
from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.agents.ppo_training import simulator_config
from offerpilot.agents.train_config import TrainConfig
from offerpilot.agents.trained_run import POLICY_FOLDERS, TrainedRun
from offerpilot.atomic import atomic_directory, sha256_file
from offerpilot.deployment.bundle import ENCODER_GRAPH, ENCODER_INPUTS, MODEL_CARD, Bundle
from offerpilot.deployment.manifest import BUNDLE_FORMAT, POLICY_GRAPH, BundleManifest
from offerpilot.deployment.parity import ENCODER_PATH_TOLERANCE, PARITY_TOLERANCE, random_parity, simulated_parity
from offerpilot.encoders.encoder_observer import EncoderObserver
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import TOKEN_FIELDS
from offerpilot.envs.observers import RawFeatureObserver
from offerpilot.envs.presets import PRESETS
from offerpilot.envs.simulator import SimulatorConfig
from offerpilot.errors import InputError
from offerpilot.schema import EVENT_KINDS
from offerpilot.seeds import validation_seed

RETURN_EPSILON = 1e-8
"""``VecNormalize``'s epsilon: rewards were divided by ``sqrt(ret_var + epsilon)`` during training."""


@dataclass(frozen=True)
class ExportConfig:
    """What ``export_bundle`` exports and how hard it checks it."""

    policy: str = "best"
    """``best`` (``RUN/best_policy``, chosen on validation customers; ``RUN/policy`` if no validation ran) or
    ``final`` (``RUN/policy``)."""
    n_random: int = 10_000
    """Random inputs (features around the normaliser's statistics, random legal masks) for the parity check."""
    n_customers: int = 500
    """Simulated customers whose whole decision period, under the policy, feeds the parity check."""
    seed: int = 0
    """Seeds the random inputs, the simulated customers and the policy's sampled actions."""
    opset: int = 17
    """ONNX opset of the graphs."""

    def __post_init__(self) -> None:
        if self.policy not in POLICY_FOLDERS:
            raise InputError(f"policy must be one of {sorted(POLICY_FOLDERS)}, got {self.policy!r}")
        if self.n_random < 1 or self.n_customers < 1:
            raise InputError("n_random and n_customers must be >= 1")


class PolicyGraph(nn.Module):
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` -> actor logits -> softmax over legal actions,
    and the critic's value times the training run's return scale (so it is money, not normalised return)."""

    def __init__(self, policy: PPOPolicy, value_scale: float) -> None:
        super().__init__()
        self.network = policy.network
        norm = policy.normalizer
        self.register_buffer("mean", torch.as_tensor(norm.mean, dtype=torch.float32))
        self.register_buffer("inv_std", torch.as_tensor(1.0 / np.sqrt(norm.var + norm.epsilon), dtype=torch.float32))
        self.clip = float(norm.clip)
        self.value_scale = float(value_scale)

    def forward(self, features: torch.Tensor, action_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.clamp((features - self.mean) * self.inv_std, -self.clip, self.clip)
        actor = self.network.extract_features(x, self.network.pi_features_extractor)
        logits = self.network.action_net(self.network.mlp_extractor.forward_actor(actor))
        probs = torch.softmax(torch.where(action_mask, logits, torch.full_like(logits, -math.inf)), dim=1)
        critic = self.network.extract_features(x, self.network.vf_features_extractor)
        value = self.network.value_net(self.network.mlp_extractor.forward_critic(critic)).squeeze(-1)
        return probs, value * self.value_scale


class EncoderGraph(nn.Module):
    """Event tokens -> ``[embedding, churn probability, log1p(expected CLV)]``: the encoder observer's features."""

    def __init__(self, model: CustomerEncoderModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, event_ids: torch.Tensor, category_ids: torch.Tensor, amount_ids: torch.Tensor, offer_ids: torch.Tensor,
                gap_ids: torch.Tensor, attention_mask: torch.Tensor, elapsed_days: torch.Tensor) -> torch.Tensor:
        _, pooled = self.model._embed(event_ids, category_ids, amount_ids, offer_ids, gap_ids, None, None, attention_mask)
        return self.model.policy_features(pooled, elapsed_days)


@dataclass(frozen=True)
class _Run:
    """What export reads from a training run folder: the policy, and what turns its critic's value into money."""

    trained: TrainedRun
    value_scale: float
    validation: dict[str, float] | None

    @property
    def policy(self) -> PPOPolicy:
        return self.trained.policy


def _read_run(run_dir: Path, which: str) -> _Run:
    run = TrainedRun.from_pretrained(run_dir, which)
    if run.observation == "latent":
        raise InputError(f"{run.policy_dir}: an oracle policy reads the simulator's hidden state, which no shop observes; it cannot be exported")
    state_file = run.run_dir / "checkpoint" / "state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file}: missing; the return scale that turns the critic's value into money is kept there")
    ret_var = float(read_checkpoint_state(state_file.parent)["ret_rms"]["var"])
    return _Run(run, math.sqrt(ret_var + RETURN_EPSILON), _validation_row(run.run_dir / "eval.csv", run.policy.metadata.get("num_timesteps")))


def _validation_row(path: Path, timesteps: int | None) -> dict[str, float] | None:
    """The learning-curve row of the exported policy (the evaluation at its timesteps), if the run evaluated it."""
    if not path.is_file() or timesteps is None:
        return None
    curve = pd.read_csv(path)
    rows = curve[curve["timesteps"] == timesteps]
    return None if rows.empty else {k: int(v) if k == "timesteps" else float(v) for k, v in rows.iloc[-1].items()}


def _export_graph(module: nn.Module, inputs: tuple[torch.Tensor, ...], names: tuple[str, ...], outputs: tuple[str, ...], path: Path, opset: int) -> None:
    """``torch.onnx.export`` (TorchScript tracing) with the batch axis dynamic; the module stays in eval mode."""
    module.eval()
    axes = {name: {0: "n"} for name in (*names, *outputs)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the encoder's shape checks, and the exporter's own notices
        torch.onnx.export(module, inputs, str(path), input_names=list(names), output_names=list(outputs), dynamic_axes=axes, opset_version=opset, dynamo=False)
    module.eval()  # export restores the module's mode; keep it in eval for the parity check


def _example_batch(model: CustomerEncoderModel, n: int = 2) -> tuple[torch.Tensor, ...]:
    """Tracing inputs for the encoder graph: ``n`` customers with a few events each."""
    length = model.config.max_len
    mask = torch.zeros(n, length, dtype=torch.bool)
    mask[:, :3] = True
    tokens = [mask.long() * 2 for _ in TOKEN_FIELDS]
    return (*tokens, mask, torch.ones(n, len(EVENT_KINDS)))


def export_bundle(run_dir: str | Path, out_dir: str | Path, config: ExportConfig = ExportConfig()) -> BundleManifest:
    """Write the bundle of ``run_dir``'s policy to ``out_dir`` (replaced atomically); returns its manifest.

    :raises ValueError: the parity check failed (nothing is written), or the run cannot be exported.
    :raises WriteError: ``out_dir`` could not be written (full disk, no permission); the previous bundle is unchanged.
    """
    run = _read_run(Path(run_dir), config.policy)
    policy, policy_dir = run.policy, run.trained.policy_dir
    sim_config = simulator_config(run.trained.train_config)
    catalog = sim_config.catalog
    if catalog.ids != policy.action_ids:
        raise InputError(f"{policy_dir}: the policy's actions {list(policy.action_ids)} are not the training catalog's {list(catalog.ids)}")
    observer = run.trained.encoder_observer(catalog)
    raw_names = RawFeatureObserver.feature_names
    if policy.feature_names[: len(raw_names)] != raw_names:
        raise InputError(f"{policy_dir}: the policy's features do not start with the raw features {list(raw_names)}")
    with atomic_directory(out_dir) as tmp:
        n_features, n_actions = len(policy.feature_names), len(policy.action_ids)
        example = (torch.zeros(2, n_features), torch.ones(2, n_actions, dtype=torch.bool))
        _export_graph(PolicyGraph(policy, run.value_scale), example, ("features", "action_mask"), ("probabilities", "value"), tmp / POLICY_GRAPH, config.opset)
        written = [POLICY_GRAPH]
        if observer is not None:
            graph = EncoderGraph(observer.model)
            _export_graph(graph, _example_batch(observer.model), ENCODER_INPUTS, ("encoder_features",), tmp / ENCODER_GRAPH, config.opset)
            written += [ENCODER_GRAPH, observer.tokenizer.save_pretrained(tmp).name]
        manifest = _manifest(run, sim_config, raw_names, observer, config)
        # A provisional manifest lets the parity check read the graphs through the same Bundle class scoring uses.
        manifest.write(tmp, written)
        bundle = Bundle(tmp, threads=1)
        rng = np.random.default_rng(config.seed)
        parity = {
            "tolerance": PARITY_TOLERANCE,
            "simulated_tolerance": PARITY_TOLERANCE if observer is None else ENCODER_PATH_TOLERANCE,
            "random": random_parity(policy, bundle, run.value_scale, config.n_random, rng),
            "simulated": simulated_parity(policy, bundle, run.value_scale, sim_config, observer, config.n_customers, config.seed),
        }
        for check, tolerance in (("random", parity["tolerance"]), ("simulated", parity["simulated_tolerance"])):
            worst = parity[check]["probabilities_max_abs_diff"]
            if not worst <= tolerance:
                raise ValueError(f"parity check failed: onnxruntime and torch action probabilities differ by {worst:.3g} (> {tolerance:g}) "
                                 f"on the {check} inputs; no bundle written")
        manifest = manifest.model_copy(update={"metrics": manifest.metrics.model_copy(update={"parity": parity})})
        (tmp / MODEL_CARD).write_text(model_card(manifest.to_dict()))
        manifest = manifest.write(tmp, [*written, MODEL_CARD])
        Bundle(tmp, threads=1)  # the finished bundle must load and verify before it replaces anything
    return manifest


def _manifest(run: _Run, sim_config: SimulatorConfig, raw_names: tuple[str, ...], observer: EncoderObserver | None, config: ExportConfig) -> BundleManifest:
    """Everything the bundle's users need to know but the files and the parity results (added once measured)."""
    policy, train = run.policy, run.trained.train_config
    weights = sha256_file(run.trained.policy_dir / "policy.safetensors")
    return BundleManifest.model_validate({
        "format": BUNDLE_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "offerpilot_version": version("offerpilot"),
        "policy_id": f"ppo-{weights[:12]}",
        "source": {"run": run.trained.run_dir.name, "policy": run.trained.policy_dir.name, "policy_safetensors_sha256": weights},
        "observation": run.trained.observation,
        "graphs": {
            "policy": {"file": POLICY_GRAPH, "opset": config.opset, "inputs": {"features": ["n", len(policy.feature_names), "float32"], "action_mask": ["n", len(policy.action_ids), "bool"]},
                       "outputs": {"probabilities": ["n", len(policy.action_ids), "float32"], "value": ["n", "float32"]}},
            "encoder": None if observer is None else {
                "file": ENCODER_GRAPH, "opset": config.opset, "max_len": observer.max_len,
                "inputs": {name: ["n", observer.max_len, "int64"] for name in TOKEN_FIELDS}
                | {"attention_mask": ["n", observer.max_len, "bool"], "elapsed_days": ["n", len(EVENT_KINDS), "float32"]},
                "elapsed_days": f"days from the customer's last event of each kind ({', '.join(EVENT_KINDS)}) to the decision; NaN: never",
                "outputs": {"encoder_features": ["n", len(observer.feature_names), "float32"]},
            },
        },
        "features": {
            "names": list(policy.feature_names),
            "raw": list(raw_names),
            "encoder": list(observer.feature_names) if observer is not None else [],
            "dtype": "float32",
            "normalizer": policy.normalizer.to_dict(),
            "built_from": "the raw features are rebuilt from events and past decisions as of the decision time "
                          "(offerpilot.envs.log_state); the encoder's from the customer's events before it",
        },
        "actions": {"ids": list(policy.action_ids), "catalog": sim_config.catalog.to_dict()},
        "objective": {**asdict(sim_config.objective), "lam": train.lam},
        "decision_interval_days": sim_config.decision_interval_days,
        "value": {"unit": f"money ({sim_config.catalog.currency}) per customer", "return_scale": run.value_scale,
                  "meaning": "the critic's estimate of the objective (1 - lam) * R_short + lam * CLV still to come from this "
                             "decision to the end of the decision period, under the trained policy"},
        "training": {
            "data": _training_data(train, sim_config),
            "num_timesteps": policy.metadata.get("num_timesteps"),
            "config": train.to_dict(),
        },
        "metrics": {"validation": None if run.validation is None else {
            **run.validation, "customers": train.eval_customers, "seed": validation_seed(train.seed)}},
    })


def _training_data(train: TrainConfig, sim_config: SimulatorConfig) -> dict[str, Any]:
    """What the policy learned from: simulated customers of a population, and the log that population was fitted on."""
    spec = str(train.population)
    calibration = None
    if spec != "default":
        text = (files("offerpilot") / "data" / PRESETS[spec]).read_text() if spec in PRESETS else Path(spec).read_text()
        data = json.loads(text)
        calibration = data.get("fit") if isinstance(data, dict) else None
    return {
        "source": "simulated customers (no real outcomes)",
        "population": train.population,
        "population_fitted_on": calibration,
        "decision_period_days": sim_config.objective.horizon_days,
        "decision_interval_days": sim_config.decision_interval_days,
        "history_days": sim_config.history_days,
        "customer_decisions": train.total_timesteps,
    }


def model_card(manifest: dict[str, Any]) -> str:
    """The bundle's model card (Markdown), from its manifest."""
    m = manifest
    train, data, objective = m["training"]["config"], m["training"]["data"], m["objective"]
    parity, validation = m["metrics"]["parity"], m["metrics"]["validation"]
    catalog = m["actions"]["catalog"]
    caps = catalog["contact_caps"]
    offers = "\n".join(
        f"| {o['id']} | {o['kind']} | {o.get('value', '')} | {o.get('channel') or ''} | {o.get('validity_days', '')} | "
        f"{', '.join(f'{k} {v}' for k, v in o.get('eligibility', {}).items())} |" for o in catalog["offers"]
    )
    fitted = data["population_fitted_on"]
    population = f"`{data['population']}`" + (f", fitted on {fitted.get('n_customers')} customers up to {fitted.get('calibration_end')}" if fitted else "")
    if validation is None:
        evaluated = "No validation run evaluated this policy (`eval_every` was 0)."
    else:
        evaluated = (
            f"On {validation['customers']:,} validation customers (seed {validation['seed']}, never used in training), over one "
            f"{data['decision_period_days']}-day decision period, acting on its most likely action: objective "
            f"{validation['objective']:.3f} [{validation['objective_low']:.3f}, {validation['objective_high']:.3f}], CLV {validation['clv']:.3f} "
            f"[{validation['clv_low']:.3f}, {validation['clv_high']:.3f}], 30-day margin {validation['r_short']:.3f}, "
            f"{validation['offers_sent']:.2f} offers sent and {validation['discount_spend']:.2f} of discount per customer (95 % CIs)."
        )
    encoder = m["graphs"]["encoder"]
    observation = (
        "raw features rebuilt from the shop's logs" if encoder is None else
        "raw features plus the customer encoder's (embedding, churn probability, log expected CLV), which `encoder.onnx` "
        "computes from the customer's last events (`event_tokenizer.json` turns events into its tokens)"
    )
    sim, rnd = parity["simulated"], parity["random"]
    encoder_parity = f" Encoder features: max |difference| {sim['encoder_features_max_abs_diff']:.2e}." if encoder is not None else ""
    return f"""# Offer policy `{m['policy_id']}`

PPO (MaskablePPO) policy that chooses, for one customer at a time, which offer to send now (`none` is an action).
Exported {m['created']} from run `{m['source']['run']}` ({m['source']['policy']}) by offerpilot {m['offerpilot_version']}.

## What it decides
Actions, with the contact caps (at most {caps['max_messages']} messages in any {caps['window_days']} days, at least
{caps['min_gap_days']} days apart) and eligibility applied as masks: an action the mask forbids gets probability 0.

| offer | kind | value | channel | valid days | eligibility |
| --- | --- | --- | --- | --- | --- |
{offers}

Inputs: {len(m['features']['names'])} features ({observation}); outputs: the probability of every action and the
critic's expected value ({m['value']['unit']}: the objective still to come from this decision to the end of the
decision period).

## What it was trained on
{data['customer_decisions']:,} customer-decisions ({m['training']['num_timesteps']:,} at this policy) of {data['source']}:
population {population}; tenure up to {data['history_days']} days before a {data['decision_period_days']}-day decision
period with a decision every {data['decision_interval_days']} days. Objective `J = (1 - lam) * R_short + lam * CLV` with
lam = {objective['lam']}, R_short over {objective['short_window_days']} days, CLV over {objective['horizon_days']} days at
{objective['annual_discount_rate']:.0%} a year, gross margin rate {objective['gross_margin_rate']}. Training reward:
{train['reward']}; discount budget: {train['discount_budget']}; network {train['net_arch']}; seed {train['seed']}.

## How it was evaluated
{evaluated}

Export parity (max |onnxruntime - torch| of the action probabilities):
{rnd['probabilities_max_abs_diff']:.2e} on {rnd['inputs']:,} random inputs (tolerance {parity['tolerance']:g});
{sim['probabilities_max_abs_diff']:.2e} on {sim['inputs']:,} decisions of {sim['customers']:,} simulated customers' histories
(tolerance {parity.get('simulated_tolerance', parity['tolerance']):g}).{encoder_parity} Value: max |difference|
{max(rnd['value_max_abs_diff'], sim['value_max_abs_diff']):.2e}.

## Design
{"The policy graph takes the features; the encoder is a second graph, not fused: it runs only when a customer has new events (its embedding does not depend on the present moment), the policy at every decision, and an engine that keeps the encoder's features in a feature store calls the policy graph alone." if encoder is not None else "One graph: observation normaliser, actor, masked softmax and critic."}

## Known limits
- Trained and validated in simulation only: the outcomes it learned from are the simulator's, not real customers'.
  Estimate its value on your own logs with `offerpilot ope` before trusting it, and keep exploration on while it runs.
- Features rebuilt from logs hold only what a shop observes; the customer's latent state is unknown to it.
- `progress` is the day of a {objective['horizon_days']}-day decision period; the period start is a deployment choice.
- The expected value is the critic's estimate, scaled back to money with the training run's return scale at its last
  checkpoint ({m['value']['return_scale']:.4g}); it is a rough guide, not a calibrated forecast.
- The caps, eligibility and offers are the catalog in `manifest.json`; another catalog needs a newly trained policy.
- Sending only the most likely action (greedy, no epsilon) logs propensities of 1: off-policy evaluation of any other
  policy then has no support.
"""
