"""A trained PPO actor as a :class:`~offerpilot.envs.policy.Policy`, saved without pickle.

A policy folder holds ``policy.safetensors`` (the MaskablePPO actor-critic's weights) and ``policy.json``
(network shape, observation normaliser, feature names, action ids and how it was trained), so it loads
with safetensors and JSON alone, never by unpickling a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

from offerpilot.atomic import plain_permissions, safetensors_write_errors
from offerpilot.errors import InputError

POLICY_FORMAT = 1


@dataclass(frozen=True)
class ObservationNormalizer:
    """``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)``: what ``VecNormalize`` fed the network."""

    mean: np.ndarray
    var: np.ndarray
    clip: float = 10.0
    epsilon: float = 1e-8

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "clip": self.clip, "epsilon": self.epsilon}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationNormalizer:
        return cls(np.asarray(data["mean"], np.float64), np.asarray(data["var"], np.float64), float(data["clip"]), float(data["epsilon"]))


def build_network(n_features: int, n_actions: int, net_arch: tuple[int, ...], device: str | torch.device = "cpu") -> MaskableActorCriticPolicy:
    """The actor-critic MaskablePPO trains, for ``n_features`` observations and ``n_actions`` actions."""
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(n_features,), dtype=np.float32)
    network = MaskableActorCriticPolicy(
        obs_space, gym.spaces.Discrete(n_actions), lr_schedule=lambda _: 0.0, net_arch={"pi": list(net_arch), "vf": list(net_arch)}
    )
    return network.to(device)


def hidden_widths(network: MaskableActorCriticPolicy) -> tuple[int, ...]:
    """The actor's hidden layer widths (the ``net_arch`` it was built with)."""
    return tuple(layer.out_features for layer in network.mlp_extractor.policy_net if isinstance(layer, torch.nn.Linear))


class PPOPolicy:
    """Masked action probabilities of a trained actor: ``softmax(logits)`` over the legal actions."""

    def __init__(
        self,
        network: MaskableActorCriticPolicy,
        normalizer: ObservationNormalizer,
        feature_names: tuple[str, ...],
        action_ids: tuple[str, ...],
        metadata: dict[str, Any] | None = None,
        policy_id: str = "ppo",
    ) -> None:
        self.network = network.eval()
        self.normalizer = normalizer
        self.feature_names = tuple(feature_names)
        self.action_ids = tuple(action_ids)
        self.metadata = dict(metadata or {})
        self.policy_id = policy_id

    @property
    def net_arch(self) -> tuple[int, ...]:
        return hidden_widths(self.network)

    @torch.inference_mode()
    def logits(self, obs: np.ndarray) -> np.ndarray:
        """(n, n_actions) float32 unmasked action logits of raw observations (n, n_features)."""
        x = torch.as_tensor(self.normalizer(np.asarray(obs, np.float32)), device=self.network.device)
        features = self.network.extract_features(x, self.network.pi_features_extractor)
        return self.network.action_net(self.network.mlp_extractor.forward_actor(features)).float().cpu().numpy()

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if obs.shape[1] != len(self.feature_names):
            raise InputError(f"this policy reads {len(self.feature_names)} features, got observations with {obs.shape[1]}")
        logits = np.where(mask, self.logits(obs).astype(np.float64), -np.inf)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return probs / probs.sum(axis=1, keepdims=True)

    def save(self, folder: str | Path) -> None:
        """Write ``policy.safetensors`` and ``policy.json`` into ``folder`` (not atomic: the caller's job)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with safetensors_write_errors():
            save_file({k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}, folder / "policy.safetensors")
        plain_permissions(folder / "policy.safetensors")
        meta = {
            "format": POLICY_FORMAT,
            "policy_id": self.policy_id,
            "feature_names": list(self.feature_names),
            "action_ids": list(self.action_ids),
            "net_arch": list(self.net_arch),
            "normalizer": self.normalizer.to_dict(),
            **self.metadata,
        }
        (folder / "policy.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> PPOPolicy:
        """The policy in ``folder`` (as :meth:`save` wrote it); clear errors for a missing or foreign folder."""
        folder = Path(folder)
        meta_path, weights_path = folder / "policy.json", folder / "policy.safetensors"
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing; {folder} is not a policy folder written by `offerpilot train`")
        try:
            meta = json.loads(meta_path.read_text())
            fmt = meta.get("format")
        except (json.JSONDecodeError, AttributeError) as e:
            raise InputError(f"{meta_path}: not a policy description: {e}") from None
        if fmt != POLICY_FORMAT:
            raise InputError(f"{meta_path}: policy format {fmt!r}, this offerpilot reads format {POLICY_FORMAT}")
        network = build_network(len(meta["feature_names"]), len(meta["action_ids"]), tuple(meta["net_arch"]), device)
        try:
            network.load_state_dict(load_file(weights_path, device=str(network.device)))
        except (RuntimeError, OSError, SafetensorError) as e:
            raise InputError(f"{weights_path}: weights do not fit the network described in {meta_path.name}: {e}") from None
        known = {"format", "policy_id", "feature_names", "action_ids", "net_arch", "normalizer"}
        return cls(
            network,
            ObservationNormalizer.from_dict(meta["normalizer"]),
            tuple(meta["feature_names"]),
            tuple(meta["action_ids"]),
            {k: v for k, v in meta.items() if k not in known},
            meta["policy_id"],
        )
