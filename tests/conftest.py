"""Fixtures shared across test modules: one small trained run and its bundle per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from offerpilot.agents.ppo_training import train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.deployment.export import ExportConfig, export_bundle

from small_training import SMALL_TRAINING


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of ``SMALL_TRAINING`` on raw features with lam 0.3 (not the default, so tests can tell it is
    carried). Tests read it and never change it: one that needs to damage a run trains its own."""
    return train_ppo(TrainConfig(observation="raw", lam=0.3, **SMALL_TRAINING), tmp_path_factory.mktemp("small_run") / "run", progress=False).run_dir


@pytest.fixture(scope="session")
def small_bundle(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_run``'s bundle (parity checked on 1,000 random inputs and 100 simulated customers); read only."""
    out = tmp_path_factory.mktemp("small_bundle") / "bundle"
    export_bundle(small_run, out, ExportConfig(n_random=1000, n_customers=100))
    return out
