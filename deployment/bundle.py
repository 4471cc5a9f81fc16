"""An exported policy bundle, loaded for decisions: hashes checked, then onnxruntime sessions.

:class:`Bundle` refuses a bundle whose manifest is missing, of another format or edited (its content no longer
matches its own digest), whose files are missing, or whose sha256 differs from the manifest's (a file changed after
export, or files from two exports mixed), naming the file. The hashes catch corruption and mix-ups, not a forger
who rewrites the manifest too: keep bundles where only the release process can write. :class:`Bundle` then answers with onnxruntime alone (no torch), vectorised over customers:
``action_probs`` is the trained policy (the :class:`~offerpilot.envs.policy.Policy` protocol) and ``decide``
samples from it after :class:`Exploration`, returning the logged distribution and the propensity of each choice
so that off-policy evaluation can read the decisions later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from offerpilot.catalog import OfferCatalog, parse_catalog
from offerpilot.deployment.manifest import MANIFEST, POLICY_GRAPH, BundleError, BundleManifest, read_manifest
from offerpilot.encoders.tokenizer import TOKEN_FIELDS, EventTokenizer, HistoryBatch
from offerpilot.envs.policy import sample_actions
from offerpilot.errors import InputError

ENCODER_GRAPH = "encoder.onnx"
MODEL_CARD = "MODEL_CARD.md"
TOKENIZER_FILE = "event_tokenizer.json"
"""The event tokenizer of an encoder bundle (``EventTokenizer.save_pretrained`` writes this name)."""
ENCODER_INPUTS = (*TOKEN_FIELDS, "attention_mask", "elapsed_days")
"""Inputs of ``encoder.onnx``: the five token arrays (n, L) int64, ``attention_mask`` (n, L) bool and
``elapsed_days`` (n, K) float32 (NaN: never), as :meth:`HistoryBatch.model_inputs` gives them."""
ENCODER_BATCH = 4096
"""Customers per ``encoder.onnx`` run: bounds memory on large files."""


@dataclass(frozen=True)
class Exploration:
    """How decisions depart from the trained policy ``p`` so that logged propensities support off-policy evaluation.

    ``q = (1 - epsilon) * base + epsilon * uniform(legal)``, where ``base`` is ``p`` sharpened or flattened by
    ``temperature`` (``p ** (1 / T)`` renormalised, i.e. ``softmax(logits / T)`` over the legal actions), or the
    one-hot of ``argmax p`` when ``greedy``. Every legal action then has ``q >= epsilon / n_legal``.
    """

    epsilon: float = 0.05
    """Share of decisions drawn uniformly over the legal actions (0: none)."""
    temperature: float = 1.0
    """Softmax temperature on the policy's logits (1: the policy as trained)."""
    greedy: bool = False
    """Take the policy's most likely action instead of sampling from it (before the epsilon mix)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise InputError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if not (self.temperature > 0.0 and np.isfinite(self.temperature)):
            raise InputError(f"temperature must be a positive number, got {self.temperature}")
        if self.greedy and self.temperature != 1.0:
            raise InputError("greedy takes the most likely action: a temperature would change nothing; give one or the other")

    @property
    def tag(self) -> str:
        """Short text naming the setting, e.g. ``eps0.05+T1`` or ``eps0.1+greedy``."""
        return f"eps{self.epsilon:g}+" + ("greedy" if self.greedy else f"T{self.temperature:g}")

    def apply(self, probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The logging distribution (n, n_actions) float64 from the policy's ``probs`` and legal ``mask``."""
        if self.greedy:
            base = np.zeros_like(probs)
            base[np.arange(probs.shape[0]), probs.argmax(axis=1)] = 1.0
        elif self.temperature != 1.0:
            with np.errstate(divide="ignore"):
                logits = np.where(mask & (probs > 0), np.log(probs) / self.temperature, -np.inf)
            base = np.exp(logits - logits.max(axis=1, keepdims=True))
            base /= base.sum(axis=1, keepdims=True)
        else:
            base = probs
        if self.epsilon == 0.0:
            return base
        uniform = mask / mask.sum(axis=1, keepdims=True)
        return (1.0 - self.epsilon) * base + self.epsilon * uniform


@dataclass(frozen=True)
class Decisions:
    """One decision per customer. Arrays have shape (n,) unless noted."""

    actions: np.ndarray
    """int64 catalog index of the chosen action."""
    probabilities: np.ndarray
    """(n, n_actions) float64: the distribution the action was drawn from (rows sum to 1, 0 on illegal actions)."""
    propensities: np.ndarray
    """float64: ``probabilities`` at the chosen action, what the decisions log records."""
    values: np.ndarray
    """float64: the critic's expected objective from this decision to the end of the decision period, money per customer."""


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Bundle:
    """A verified bundle: the policy graph, the encoder graph for encoder-observation policies, and the manifest.

    ``Bundle(folder)`` raises :class:`BundleError` for a bundle that cannot be trusted (see :func:`~offerpilot.deployment.manifest.read_manifest`).

    :param threads: onnxruntime intra-op threads (0: onnxruntime's default, one per core).
    """

    def __init__(self, folder: str | Path, threads: int = 0) -> None:
        self.folder = Path(folder)
        self.manifest: BundleManifest = read_manifest(self.folder)
        m = self.manifest
        self.policy_id: str = m.policy_id
        self.feature_names: tuple[str, ...] = tuple(m.features.names)
        self.raw_feature_names: tuple[str, ...] = tuple(m.features.raw)
        self.action_ids: tuple[str, ...] = tuple(m.actions.ids)
        self.catalog: OfferCatalog = parse_catalog(m.actions.catalog, source=f"{self.folder / MANIFEST} (actions.catalog)")
        if self.catalog.ids != self.action_ids:
            raise BundleError(f"{self.folder / MANIFEST}: the catalog's offers {list(self.catalog.ids)} differ from the policy's actions {list(self.action_ids)}")
        self._policy = _session(self.folder / POLICY_GRAPH, threads)
        self._check_policy_graph()
        self.tokenizer: EventTokenizer | None = None
        self._encoder: ort.InferenceSession | None = None
        if m.observation == "encoder":
            missing = [name for name in (ENCODER_GRAPH, TOKENIZER_FILE) if name not in m.files]
            if missing:
                raise BundleError(f"{self.folder / MANIFEST}: an encoder-observation policy needs {missing} listed in the manifest")
            self.tokenizer = EventTokenizer.from_pretrained(self.folder)
            self._encoder = _session(self.folder / ENCODER_GRAPH, threads)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_actions(self) -> int:
        return len(self.action_ids)

    def _check_policy_graph(self) -> None:
        """The graph's input widths must be the manifest's (a policy.onnx of another export is refused)."""
        shapes = {i.name: i.shape for i in self._policy.get_inputs()}
        expected = {"features": self.n_features, "action_mask": self.n_actions}
        for name, width in expected.items():
            if name not in shapes or shapes[name][-1] != width:
                raise BundleError(f"{self.folder / POLICY_GRAPH}: input {name!r} has shape {shapes.get(name)}, the manifest says width {width}")

    def run(self, features: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The policy graph: ``(probabilities (n, n_actions) float32, value (n,) float32)``.

        :param features: (n, n_features) raw (unnormalised) features, as named in ``feature_names``.
        :param mask: (n, n_actions) bool, True where caps and eligibility allow the action.
        """
        features = np.ascontiguousarray(features, dtype=np.float32)
        mask = np.ascontiguousarray(mask, dtype=bool)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise InputError(f"this policy reads {self.n_features} features ({', '.join(self.feature_names)}), got an array of shape {features.shape}")
        if mask.shape != (features.shape[0], self.n_actions):
            raise InputError(f"the action mask must have shape ({features.shape[0]}, {self.n_actions}), got {mask.shape}")
        if not np.isfinite(features).all():
            rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
            raise InputError(f"features must be finite numbers; rows {rows[:5].tolist()} hold NaN or infinity")
        if not mask.any(axis=1).all():
            raise InputError(f"rows {np.flatnonzero(~mask.any(axis=1))[:5].tolist()} allow no action; 'none' is always allowed")
        probs, value = self._policy.run(None, {"features": features, "action_mask": mask})
        return probs, value

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The trained policy's action probabilities (n, n_actions) float64, rows summing to 1 (no exploration)."""
        probs = self.run(obs, mask)[0].astype(np.float64)
        return probs / probs.sum(axis=1, keepdims=True)

    def decide(self, features: np.ndarray, mask: np.ndarray, exploration: Exploration, rng: np.random.Generator) -> Decisions:
        """One decision per row: draw from ``exploration`` applied to the policy, by inverse CDF on ``rng``."""
        probs, value = self.run(features, mask)
        probs = probs.astype(np.float64)
        probs /= probs.sum(axis=1, keepdims=True)
        logged = exploration.apply(probs, np.asarray(mask, bool))
        actions, propensities = sample_actions(logged, rng)
        return Decisions(actions, logged, propensities, value.astype(np.float64))

    def encoder_features(self, events: pd.DataFrame, as_of: pd.Timestamp, user_ids: np.ndarray) -> np.ndarray:
        """(n, n_encoder_features) float32: the encoder's features of each customer's history before ``as_of``."""
        if self.tokenizer is None or self._encoder is None:
            raise InputError(f"{self.folder}: this bundle's policy reads raw features only; it has no encoder")
        batch = self.tokenizer.encode(events, as_of, user_ids=user_ids)
        return self.encode(batch)

    def encode(self, batch: HistoryBatch) -> np.ndarray:
        """``encoder.onnx`` on tokenised histories, in chunks of ``ENCODER_BATCH`` customers."""
        if self._encoder is None:
            raise InputError(f"{self.folder}: this bundle's policy reads raw features only; it has no encoder")
        inputs = batch.model_inputs()
        inputs["elapsed_days"] = inputs["elapsed_days"].astype(np.float32)
        chunks = [
            self._encoder.run(None, {name: inputs[name][start : start + ENCODER_BATCH] for name in ENCODER_INPUTS})[0]
            for start in range(0, len(batch), ENCODER_BATCH)
        ]
        width = len(self.feature_names) - len(self.raw_feature_names)
        return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, width), np.float32)
