"""An encoder for the agent, trained on simulated customers when the user brings none.

The customers live their history and half a decision period under uniformly random offers, so their
histories hold every kind of offer the agent will send; the encoder reads the histories up to that midpoint and
learns churn and spend over the ``window_days`` after it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from offerpilot.encoders.labels import window_labels
from offerpilot.encoders.training import TrainingResult, train_encoder
from offerpilot.encoders.training_config import EncoderTrainingConfig
from offerpilot.envs.log_generation import SimulatedLogs, simulate_logs
from offerpilot.envs.policy import UniformRandomPolicy
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig

START = pd.Timestamp("2025-01-01")


def train_encoder_on_simulation(
    config: SimulatorConfig,
    out_dir: str | Path,
    n_customers: int = 20_000,
    seed: int = 0,
    window_days: int = 90,
    training: EncoderTrainingConfig | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Simulate ``n_customers`` of ``config``'s population under random offers and train an encoder on them
    (``out_dir/model``); the cutoff is day ``horizon / 2`` of the decision period."""
    sim = PopulationSimulator(config)
    logs = simulate_logs(sim, UniformRandomPolicy(), n_customers, seed=seed, start=START, progress=progress)
    return train_encoder_on_logs(logs, config.objective.horizon_days, out_dir, seed, window_days, training, progress)


def train_encoder_on_logs(
    logs: SimulatedLogs,
    horizon_days: int,
    out_dir: str | Path,
    seed: int = 0,
    window_days: int = 90,
    training: EncoderTrainingConfig | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train an encoder on simulated logs whose decision period began on ``START``: histories up to day
    ``horizon_days / 2`` of the period, churn and spend labels from the ``window_days`` after it."""
    as_of = START + pd.Timedelta(days=horizon_days // 2)
    labels = window_labels(logs.events, as_of, window_days, logs.customers["user_id"].to_numpy())
    return train_encoder(logs.events, as_of, labels, training or EncoderTrainingConfig(seed=seed), out_dir, progress=progress)
