"""A saved policy as the target of an off-policy evaluation: an exported bundle, a policy folder or a training run,
its action probabilities at every logged decision, its encoder reading each customer's history as of each decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from offerpilot.agents.trained_run import TrainedRun
from offerpilot.catalog import OfferCatalog
from offerpilot.deployment.bundle import Bundle
from offerpilot.deployment.manifest import MANIFEST
from offerpilot.encoders.encoder_folder import load_encoder
from offerpilot.errors import InputError
from offerpilot.ope.logged_decisions import LoggedDecisions
from offerpilot.ope.target_policy import at_decision_times, check_actions, policy_probs


def trained_policy_probs(path: str | Path, data: LoggedDecisions, events: pd.DataFrame, catalog: OfferCatalog) -> np.ndarray:
    """A trained policy's action probabilities at the logged decisions. ``path`` is an exported bundle
    (``offerpilot export``: hashes checked), a policy folder (``policy.json``) or a training run (its best policy).

    :raises ValueError: the policy acts on other offers than ``catalog``'s, or reads the simulator's latent state
        (the oracle), which no log holds.
    """
    path = Path(path)
    if (path / MANIFEST).is_file():
        bundle = Bundle(path)
        check_actions(bundle.action_ids, catalog, path)
        if bundle.tokenizer is None:
            return policy_probs(bundle, data)
        encoded = at_decision_times(data, lambda ts, users: bundle.encoder_features(events, ts, users))
        return np.asarray(bundle.action_probs(np.concatenate([data.features, encoded], axis=1), data.legal), np.float64)

    run = TrainedRun.from_pretrained(path)
    policy, folder = run.policy, run.policy_dir
    check_actions(policy.action_ids, catalog, folder)
    if run.observation == "latent":
        raise InputError(f"{folder}: an oracle policy reads the simulator's latent state, which logs do not hold; it cannot be evaluated off-policy")
    if run.observation == "raw":
        return policy_probs(policy, data)
    model, tokenizer = load_encoder(run.encoder_dir)

    encoded = at_decision_times(data, lambda ts, users: model.encode_policy_features(tokenizer.encode(events, ts, user_ids=users)))
    return np.asarray(policy.action_probs(np.concatenate([data.features, encoded], axis=1), data.legal), np.float64)
