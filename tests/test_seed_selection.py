"""``offerpilot train --seeds K``: K runs, the best chosen on shared validation customers, read through the folder."""

from __future__ import annotations

import json

import pytest

from offerpilot.agents.trained_run import SEEDS_FILE, resolve_run
from offerpilot.app.cli import main
from offerpilot.evaluation.comparison import arena_for, load_run
from offerpilot.seeds import HELD_OUT_SEED, SELECTION_SEED, TUNING_SEEDS, VALIDATION_SEED_OFFSET

ROLLOUT = 128 * 53
FLAGS = ["--observation", "raw", "--n-envs", "128", "--batch-size", "1024", "--n-epochs", "4", "--net-arch", "16", "16",
         "--total-timesteps", str(2 * ROLLOUT), "--eval-every", str(ROLLOUT), "--eval-customers", "500", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "run"
    assert main(["train", "--out", str(out), "--seed", "5", "--seeds", "3", "--selection-customers", "1500", *FLAGS]) == 0
    return out


def test_every_seed_is_trained_and_the_best_on_the_shared_validation_customers_is_chosen(three_seeds):
    record = json.loads((three_seeds / SEEDS_FILE).read_text())
    assert record["seeds"] == [5, 6, 7]
    assert all((three_seeds / f"seed_{s}" / "best_policy" / "policy.json").is_file() for s in (5, 6, 7))
    # Chosen on validation customers of its own: not a training, tuning, held-out or per-run validation seed.
    assert record["selection"]["seed"] == SELECTION_SEED
    assert SELECTION_SEED not in {*TUNING_SEEDS, HELD_OUT_SEED, *(s + VALIDATION_SEED_OFFSET for s in (5, 6, 7)), 5, 6, 7}
    arena = arena_for(0.5)
    recomputed = {s: arena.evaluate(load_run(three_seeds / f"seed_{s}"), 1500, SELECTION_SEED).objective.mean for s in (5, 6, 7)}
    assert record["selection"]["objective_by_seed"] == {str(s): pytest.approx(v, abs=1e-9) for s, v in recomputed.items()}
    assert record["chosen_seed"] == max(recomputed, key=recomputed.get)
    assert len(set(recomputed.values())) == 3  # the seeds made different policies
    held_out = {s: arena.evaluate(load_run(three_seeds / f"seed_{s}"), 1500, HELD_OUT_SEED).objective.mean for s in (5, 6, 7)}
    assert held_out != recomputed  # the held-out customers are other customers: they played no part in the choice


def test_the_folder_reads_as_the_chosen_run_in_evaluate_and_export(three_seeds, tmp_path):
    chosen = json.loads((three_seeds / SEEDS_FILE).read_text())["chosen_run"]
    assert resolve_run(three_seeds) == three_seeds / chosen
    assert load_run(three_seeds).run_dir == three_seeds / chosen
    assert main(["export", "--run", str(three_seeds), "--out", str(tmp_path / "bundle"), "--parity-customers", "50", "--parity-inputs", "500"]) == 0
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["source"]["run"] == chosen


def test_a_resumed_multi_seed_run_keeps_finished_seeds_and_refuses_a_second_start(three_seeds, tmp_path, capsys):
    before = {s: (three_seeds / f"seed_{s}" / "policy" / "policy.safetensors").read_bytes() for s in (5, 6, 7)}
    assert main(["train", "--out", str(three_seeds), "--resume", "--no-progress"]) == 0
    assert {s: (three_seeds / f"seed_{s}" / "policy" / "policy.safetensors").read_bytes() for s in (5, 6, 7)} == before
    assert "chosen: seed" in capsys.readouterr().out
    assert main(["train", "--out", str(three_seeds), "--seeds", "3", *FLAGS]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "--out", str(three_seeds), "--resume", "--seeds", "2", "--no-progress"]) == 2
    assert "continues the 3 seeds" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / SEEDS_FILE).write_text(json.dumps({"seeds": [0, 1], "chosen_run": None}))
    with pytest.raises(ValueError, match="not all trained yet"):
        resolve_run(unfinished)
