"""Export's parity check: the bundle's onnxruntime graphs must give the torch policy's probabilities and values.

On random features around the normaliser's mean, and on simulated customers living one decision period under the
policy (for encoder policies through ``encoder.onnx`` on their event tokens, so the whole exported path is compared).
"""

from __future__ import annotations

import numpy as np
import torch

from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.deployment.bundle import Bundle
from offerpilot.encoders.encoder_observer import EncoderObserver, EventHistory
from offerpilot.encoders.tokenizer import TOKEN_FIELDS, HistoryBatch
from offerpilot.envs.rollout import Cohort, Decision, rollout
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig

PARITY_TOLERANCE = 1e-5
"""Most absolute difference between onnxruntime's and torch's action probabilities, given the same features, that
export accepts."""
ENCODER_PATH_TOLERANCE = 1e-4
"""The same along the whole path of an encoder policy, where each runtime computes its own encoder features: those
differ by about one float32 rounding step (1e-6), which the policy's logits can amplify tenfold."""


class ParityCheck:
    """Running maxima of |onnxruntime - torch| over the batches fed to :meth:`add`."""

    def __init__(self, policy: PPOPolicy, bundle: Bundle, value_scale: float) -> None:
        self.policy, self.bundle, self.value_scale = policy, bundle, value_scale
        self.probabilities = self.value = 0.0
        self.n = 0

    def add(self, torch_features: np.ndarray, onnx_features: np.ndarray, mask: np.ndarray) -> None:
        """Compare torch on ``torch_features`` with onnxruntime on ``onnx_features`` (equal unless an encoder graph made them)."""
        reference = self.policy.action_probs(torch_features, mask)
        with torch.inference_mode():
            x = torch.as_tensor(self.policy.normalizer(torch_features))
            values = self.policy.network.predict_values(x).squeeze(-1).numpy().astype(np.float64) * self.value_scale
        probs, value = self.bundle.run(onnx_features, mask)
        self.probabilities = max(self.probabilities, float(np.abs(probs - reference).max()))
        self.value = max(self.value, float(np.abs(value - values).max()))
        self.n += len(mask)

    def result(self) -> dict[str, float]:
        return {"inputs": self.n, "probabilities_max_abs_diff": self.probabilities, "value_max_abs_diff": self.value}


def random_parity(policy: PPOPolicy, bundle: Bundle, value_scale: float, n: int, rng: np.random.Generator) -> dict[str, float]:
    """Features around the normaliser's mean (3 standard deviations, so clipping is exercised), random masks."""
    check = ParityCheck(policy, bundle, value_scale)
    std = np.sqrt(policy.normalizer.var)
    features = (policy.normalizer.mean + 3.0 * std * rng.standard_normal((n, len(std)))).astype(np.float32)
    mask = rng.random((n, len(policy.action_ids))) < 0.6
    mask[:, 0] = True
    check.add(features, features, mask)
    return check.result()


def simulated_parity(policy: PPOPolicy, bundle: Bundle, value_scale: float, config: SimulatorConfig, observer: EncoderObserver | None,
                      n_customers: int, seed: int) -> dict[str, float]:
    """Simulated customers live one decision period under the policy; at every decision torch and onnxruntime
    score the same customers. For encoder policies onnxruntime gets its encoder features from ``encoder.onnx``
    on the customers' event tokens, so the whole exported path is compared with the torch one."""
    sim = PopulationSimulator(config)
    rng = np.random.default_rng(seed)
    check = ParityCheck(policy, bundle, value_scale)
    cohort = Cohort.new(sim, n_customers, rng, observer)
    encoder_diff = 0.0

    def compare(decision: Decision) -> None:
        """torch and onnxruntime on the features of this decision (the event buffers as they are before the step)."""
        nonlocal encoder_diff
        onnx_features = decision.obs
        if observer is not None:
            raw, encoded = decision.obs[:, : sim.n_features], decision.obs[:, sim.n_features :]
            onnx_encoded = bundle.encode(_history_batch(observer, cohort.history, decision.state.day))
            encoder_diff = max(encoder_diff, float(np.abs(onnx_encoded - encoded).max()))
            onnx_features = np.concatenate([raw, onnx_encoded], axis=1)
        check.add(decision.obs, onnx_features, decision.mask)

    for _ in rollout(cohort, policy, rng, before_step=compare):
        pass
    result = {"customers": n_customers, "decisions_per_customer": sim.config.n_decisions, **check.result()}
    if observer is not None:
        result["encoder_features_max_abs_diff"] = encoder_diff
    return result


def _history_batch(observer: EncoderObserver, history: EventHistory, day: np.ndarray) -> HistoryBatch:
    """The simulator's event buffers as the tokenizer's :class:`HistoryBatch` (same layout: right-padded, oldest first)."""
    tokens = history.tokens.astype(np.int64)
    mask = np.arange(observer.max_len)[None, :] < history.length[:, None]
    fields = {name: tokens[:, i] for i, name in enumerate(TOKEN_FIELDS)}
    return HistoryBatch(user_ids=np.arange(len(mask)).astype(object), attention_mask=mask, elapsed_days=observer.elapsed_days(history, day),
                        n_events=history.length.astype(np.int64), **fields)
