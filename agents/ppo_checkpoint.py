"""A training run's ``checkpoint/`` folder: the one place that writes, verifies and restores it.

It holds the policy (safetensors and JSON), the optimizer (``torch.save`` of tensors, read back with
``weights_only=True``) and ``state.json``: the counters, the normaliser's statistics and the sha256 of every other
file and of itself, so a resume refuses a checkpoint that is damaged or was changed after it was written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.vec_env import VecNormalize

from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.atomic import atomic_directory, json_digest, sha256_file
from offerpilot.errors import InputError

CHECKPOINT_FILES = ("policy.safetensors", "policy.json", "optimizer.pt")
"""The files of ``checkpoint/`` besides ``state.json``, which lists their sha256."""
REFUSAL = "refusing to use a damaged checkpoint (resume from a backup, or train again into a new folder)"


class CheckpointError(InputError):
    """A checkpoint that cannot be trusted: a file missing, damaged or changed after it was written."""


def read_checkpoint_state(checkpoint: Path) -> dict[str, Any]:
    """``checkpoint/state.json`` after checking it is whole JSON that matches its own ``state_sha256``.

    :raises CheckpointError: naming ``state.json``.
    """
    path = checkpoint / "state.json"
    try:
        state = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}); {REFUSAL}") from None
    if not isinstance(state, dict) or "state_sha256" not in state:
        raise CheckpointError(f"{path}: no state_sha256 (written by an older offerpilot, or edited), so it cannot be verified; {REFUSAL}")
    if state["state_sha256"] != json_digest(state, "state_sha256"):
        raise CheckpointError(f"{path}: its content does not match its state_sha256: it changed after it was written; {REFUSAL}")
    return state


def verify_checkpoint(checkpoint: Path) -> dict[str, Any]:
    """The state of ``checkpoint`` after checking ``state.json`` and the sha256 of every file it lists.

    :raises CheckpointError: naming the file that is missing or not the one written.
    """
    state = read_checkpoint_state(checkpoint)
    for name in CHECKPOINT_FILES:
        path, expected = checkpoint / name, state.get("files", {}).get(name)
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint; {REFUSAL}")
        found = sha256_file(path)
        if found != expected:
            raise CheckpointError(f"{path}: sha256 {found} differs from state.json's {expected}: it changed after it was written; {REFUSAL}")
    return state


def write_checkpoint(folder: Path, policy: PPOPolicy, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Replace ``folder`` atomically by the policy, the optimizer and ``state`` (counters, normaliser statistics),
    with ``state.json`` written last listing the sha256 of every other file and its own."""
    buffer = io.BytesIO()  # serialised in memory: a failed write then raises an OSError, not torch's RuntimeError
    torch.save(optimizer.state_dict(), buffer)
    with atomic_directory(folder) as tmp:
        policy.save(tmp)
        (tmp / "optimizer.pt").write_bytes(buffer.getvalue())
        state = {**state, "files": {name: sha256_file(tmp / name) for name in CHECKPOINT_FILES}}
        state["state_sha256"] = json_digest(state, "state_sha256")
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")  # last: it vouches for the others


def restore_checkpoint(model: MaskablePPO, venv: VecNormalize, checkpoint: Path, state: dict[str, Any]) -> None:
    """Weights, optimizer, normaliser statistics and counters from ``checkpoint`` (safetensors, JSON, and
    ``torch.load(weights_only=True)`` for the optimizer: nothing is unpickled)."""
    saved = PPOPolicy.load(checkpoint, device=str(model.device))
    model.policy.load_state_dict(saved.network.state_dict())
    model.policy.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=model.device, weights_only=True))
    venv.obs_rms.mean, venv.obs_rms.var = saved.normalizer.mean.copy(), saved.normalizer.var.copy()
    venv.obs_rms.count = state["obs_count"]
    venv.ret_rms.mean, venv.ret_rms.var, venv.ret_rms.count = (np.float64(state["ret_rms"][k]) for k in ("mean", "var", "count"))
    model.num_timesteps = int(state["num_timesteps"])
    model._n_updates = int(state["n_updates"])
