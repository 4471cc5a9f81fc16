"""A training run read back: the one reader of the run folder that ``offerpilot train`` writes.

A run folder holds ``best_policy/`` (chosen on validation customers), ``policy/`` (the last weights),
``checkpoint/``, ``eval.csv``, ``config.json`` and, when one was trained for it, ``encoder/model``; a run of
``train --seeds K`` holds one such folder per seed, ``seed_<S>/``, and ``seeds.json`` naming the chosen one.
Evaluation, off-policy evaluation and export all find a run's policy, its observation and its encoder here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.agents.train_config import TrainConfig
from offerpilot.catalog import OfferCatalog
from offerpilot.encoders.encoder_observer import EncoderObserver
from offerpilot.errors import InputError

SEEDS_FILE = "seeds.json"
POLICY_FOLDERS = {"best": "best_policy", "final": "policy"}
"""Which policy of a run: the best on validation customers, or the one at the end of training."""


def resolve_run(path: str | Path) -> Path:
    """The run folder ``path`` stands for: the chosen seed's folder of a ``--seeds`` run, else ``path`` itself."""
    path = Path(path)
    index = path / SEEDS_FILE
    if not index.is_file():
        return path
    try:
        chosen = json.loads(index.read_text())["chosen_run"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{index}: not a seeds file of 'offerpilot train --seeds' ({e})") from None
    if chosen is None:
        raise InputError(f"{path}: its seeds are not all trained yet; continue with 'offerpilot train --out {path} --resume'")
    return path / chosen


def seeds_of(path: str | Path) -> list[int] | None:
    """The seeds of the multi-seed run in ``path``, ``None`` if it is not one."""
    index = Path(path) / SEEDS_FILE
    return json.loads(index.read_text())["seeds"] if index.is_file() else None


@dataclass(frozen=True)
class TrainedRun:
    """One policy of a training run and how it sees customers."""

    run_dir: Path
    policy_dir: Path
    policy: PPOPolicy

    @classmethod
    def from_pretrained(cls, path: str | Path, which: str = "best") -> TrainedRun:
        """The ``which`` policy (``best``, or ``final``) of the run at ``path`` (a ``--seeds`` run: its chosen seed's);
        ``path`` may also be a policy folder itself. ``best`` falls back to the final policy when no validation ran.

        :raises FileNotFoundError: ``path`` holds no policy of ``offerpilot train``.
        """
        path = Path(path)
        if (path / "policy.json").is_file():
            return cls(path.parent, path, PPOPolicy.load(path))
        run_dir = resolve_run(path)
        policy_dir = run_dir / POLICY_FOLDERS[which]
        if which == "best" and not policy_dir.is_dir():
            policy_dir = run_dir / POLICY_FOLDERS["final"]
        if not policy_dir.is_dir():
            raise FileNotFoundError(f"{policy_dir}: missing; {run_dir} is not a run folder of 'offerpilot train' (or it has no {which} policy yet)")
        return cls(run_dir, policy_dir, PPOPolicy.load(policy_dir))

    @property
    def observation(self) -> str:
        """``raw``, ``encoder`` (raw features and the customer encoder's) or ``latent`` (an oracle)."""
        return self.policy.metadata.get("observation", "raw")

    @property
    def lam(self) -> float | None:
        return self.policy.metadata.get("lam")

    @property
    def latent_features(self) -> tuple[str, ...] | None:
        """The hidden variables an oracle sees (``None``: all of them, or not an oracle)."""
        latent = self.policy.metadata.get("latent_features")
        return None if latent is None else tuple(latent)

    @property
    def encoder_dir(self) -> Path | None:
        """The customer encoder the policy reads (a path kept relative to the run is resolved against it)."""
        encoder = self.policy.metadata.get("encoder")
        return None if encoder is None else Path(encoder) if Path(encoder).is_absolute() else self.run_dir / encoder

    @property
    def train_config(self) -> TrainConfig:
        """How the policy was trained.

        :raises ValueError: its ``policy.json`` does not say (written by an older offerpilot).
        """
        if "train_config" not in self.policy.metadata:
            raise InputError(f"{self.policy_dir / 'policy.json'}: no train_config; how the policy was trained is read from it")
        return TrainConfig(**self.policy.metadata["train_config"])

    def encoder_observer(self, catalog: OfferCatalog) -> EncoderObserver | None:
        """The encoder features the policy reads beside the raw ones, ``None`` if it reads none."""
        return EncoderObserver.from_pretrained(self.encoder_dir, catalog) if self.observation == "encoder" else None
