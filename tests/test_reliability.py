"""Reliability: a full disk or an unwritable folder fails with a clear error and leaves nothing half-written; a damaged
checkpoint or bundle is refused, naming the file. (A kill during training then ``--resume`` is in test_ppo_training.)

A full disk is simulated on the real file system: the command runs in a process of its own whose files may not grow past
a few bytes (``RLIMIT_FSIZE``), so a write fails with ``EFBIG`` where a full disk fails with ``ENOSPC``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from offerpilot.agents.ppo_checkpoint import verify_checkpoint
from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.agents.ppo_training import train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.app.cli import main
from offerpilot.deployment.export import ExportConfig, export_bundle
from offerpilot.deployment.manifest import BundleError
from offerpilot.deployment.serving import create_app

from small_training import small_training

TINY = small_training(observation="raw", eval_every=0)
"""Two 512-decision rollouts, no validation: a run folder with a checkpoint in a few seconds."""
EXPORT_FLAGS = ["--parity-inputs", "100", "--parity-customers", "20"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_ppo(TrainConfig(**TINY), tmp_path_factory.mktemp("reliability") / "run", progress=False).run_dir


@pytest.fixture(scope="module")
def bundle_dir(run_dir: Path) -> Path:
    out = run_dir.parent / "bundle"
    export_bundle(run_dir, out, ExportConfig(n_random=100, n_customers=20))
    return out


@pytest.fixture
def run(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the run that a test may damage or continue."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def offerpilot_on_a_full_disk(args: list[str], max_file_bytes: int) -> subprocess.CompletedProcess[str]:
    """``offerpilot ARGS`` in a process whose writes past ``max_file_bytes`` in any file fail with EFBIG."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead of failing the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run([sys.executable, "-m", "offerpilot", *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=limit_file_size, env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_error_line(stderr: str) -> str:
    """The ``error:`` line the command ended with, after checking it printed no traceback."""
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), stderr
    return last


def test_a_full_disk_during_export_keeps_the_previous_bundle_and_leaves_no_temporary_files(run_dir: Path, bundle_dir: Path, tmp_path: Path) -> None:
    target = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    assert (target / "policy.onnx").stat().st_size > 4096  # the limit falls on the first file export writes
    before = snapshot(tmp_path)
    result = offerpilot_on_a_full_disk(["export", "--run", str(run_dir), "--out", str(target), *EXPORT_FLAGS], max_file_bytes=4096)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == f"error: could not write {target}: File too large; it was left as it was"
    assert snapshot(tmp_path) == before  # the old bundle, byte for byte, and no .bundle.*.tmp or .old beside it


def test_a_full_disk_during_ope_keeps_the_previous_results_as_a_pair(tmp_path: Path) -> None:
    """ope.json and ope.png move as one folder: a failed write leaves the previous pair, a good one replaces both."""
    logs, out = tmp_path / "logs", tmp_path / "ope"
    assert main(["simulate", "--out", str(logs), "--customers", "40", "--horizon-days", "56", "--policy", "uniform", "--seed", "2"]) == 0
    args = ["ope", "--logs", str(logs), "--bootstrap", "10", "--no-sequential", "--out", str(out)]
    assert main([*args, "--policy", "no_offer"]) == 0
    before = snapshot(out)
    assert sorted(before) == ["ope.json", "ope.png"]
    failed = offerpilot_on_a_full_disk([*args, "--policy", "uniform"], max_file_bytes=1024)
    assert failed.returncode == 2
    assert one_error_line(failed.stderr) == f"error: could not write {out}: File too large; it was left as it was"
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["logs", "ope"]
    assert main([*args, "--policy", "uniform"]) == 0
    after = snapshot(out)
    assert sorted(after) == ["ope.json", "ope.png"] and all(after[name] != before[name] for name in after)


@pytest.mark.parametrize("failing_file", ["policy.safetensors", "optimizer.pt"])
def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one_and_resume_then_completes(run: Path, failing_file: str) -> None:
    before = snapshot(run / "checkpoint")
    sizes = {name: len(data) for name, data in before.items()}
    assert max((run / "config.json").stat().st_size, sizes["policy.json"]) < sizes["policy.safetensors"] < sizes["optimizer.pt"]
    resume = ["train", "--out", str(run), "--resume", "--total-timesteps", "2048", "--no-progress"]
    result = offerpilot_on_a_full_disk(resume, max_file_bytes=sizes[failing_file] - 1)  # the first checkpoint write falls on this file
    assert result.returncode == 2
    assert one_error_line(result.stderr) == f"error: could not write {run / 'checkpoint'}: File too large; it was left as it was"
    assert snapshot(run / "checkpoint") == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []

    assert main(resume) == 0
    state = verify_checkpoint(run / "checkpoint")
    assert state["num_timesteps"] == 2048
    assert PPOPolicy.load(run / "policy").metadata["num_timesteps"] == 2048


def test_a_full_disk_while_saving_the_best_policy_is_a_clear_error(run_dir: Path, tmp_path: Path) -> None:
    """The first safetensors write of a validated run is ``best_policy/`` (validation comes before the checkpoint)."""
    weights = (run_dir / "policy" / "policy.safetensors").stat().st_size
    flags = ["--observation", "raw", "--n-envs", "64", "--n-steps", "8", "--total-timesteps", "1024", "--batch-size", "256",
             "--net-arch", "32", "32", "--eval-every", "512", "--eval-customers", "200", "--checkpoint-every", "512", "--seed", "1", "--no-progress"]
    out = tmp_path / "run"
    result = offerpilot_on_a_full_disk(["train", "--out", str(out), *flags], max_file_bytes=weights - 1)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == f"error: could not write {out / 'best_policy'}: File too large; it was left as it was"
    assert not (out / "best_policy").exists() and not (out / "checkpoint").exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_to_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def change_timesteps(path: Path) -> None:
    state = json.loads(path.read_text())
    state["num_timesteps"] += 1
    path.write_text(json.dumps(state, indent=2))


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("policy.safetensors", flip_middle_byte, "sha256 .* differs from state.json's"),
        ("optimizer.pt", truncate_to_half, "sha256 .* differs from state.json's"),
        ("policy.json", Path.unlink, "missing from the checkpoint"),
        ("state.json", truncate_to_half, "not valid JSON"),
        ("state.json", change_timesteps, "its content does not match its state_sha256"),
    ],
)
def test_a_damaged_checkpoint_is_refused_naming_the_file_and_nothing_is_written(run: Path, name: str, damage: Callable[[Path], None], message: str,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    damage(run / "checkpoint" / name)
    before = snapshot(run)
    assert main(["train", "--out", str(run), "--resume", "--total-timesteps", "2048", "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {run / 'checkpoint' / name}: ")
    assert re.search(message, line) and line.endswith("refusing to use a damaged checkpoint (resume from a backup, or train again into a new folder)")
    assert snapshot(run) == before  # not started over: config, checkpoint and policies untouched


def test_export_refuses_a_run_whose_checkpoint_state_is_damaged(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truncate_to_half(run / "checkpoint" / "state.json")
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "bundle"), *EXPORT_FLAGS]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: {run / 'checkpoint' / 'state.json'}: not valid JSON")
    assert not (tmp_path / "bundle").exists()


def test_a_checkpoint_left_aside_by_a_kill_between_its_two_renames_is_put_back_and_resumed(run: Path) -> None:
    # atomic_directory moves the old checkpoint aside, then the new one in; a kill between the two leaves only these.
    (run / "checkpoint").rename(run / ".checkpoint.0123abcd.old")
    (run / ".checkpoint.4567ef01.tmp").mkdir()
    assert main(["train", "--out", str(run), "--resume", "--total-timesteps", "1536", "--no-progress"]) == 0
    assert verify_checkpoint(run / "checkpoint")["num_timesteps"] == 1536
    assert not (run / ".checkpoint.0123abcd.old").exists()


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("policy.onnx", flip_middle_byte, "sha256 .* differs from the manifest's"),
        ("manifest.json", truncate_to_half, "not valid JSON"),
        ("manifest.json", Path.unlink, "missing; .* is not a bundle written by 'offerpilot export'"),
        ("MODEL_CARD.md", Path.unlink, "missing from the bundle; the manifest lists it"),
    ],
)
def test_a_damaged_bundle_is_refused_by_score_and_serve_naming_the_file(bundle_dir: Path, tmp_path: Path, name: str, damage: Callable[[Path], None],
                                                                        message: str, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    damage(bundle / name)
    out = tmp_path / "decisions.parquet"
    # The bundle is verified before the customers' file is read: this one need not exist.
    assert main(["score", "--bundle", str(bundle), "--customers", str(tmp_path / "events.parquet"), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {bundle / name}: ") and re.search(message, line), line
    assert not out.exists()
    with pytest.raises(BundleError, match=f"{re.escape(str(bundle / name))}: {message}"):
        create_app(bundle)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """An empty folder its owner may read but not write (made writable again after the test)."""
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o500)
    try:
        if os.access(folder, os.W_OK):  # root (with CAP_DAC_OVERRIDE) ignores permissions
            pytest.skip("permissions are not enforced for this user (root); the full-disk tests cover failed writes as root")
        yield folder
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("command", ["train", "export"])
def test_an_unwritable_output_folder_is_refused_naming_it_and_left_empty(run_dir: Path, read_only_folder: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = read_only_folder / "out"
    args = {"train": ["train", "--out", str(out), "--observation", "raw", "--n-envs", "64", "--n-steps", "8", "--total-timesteps", "512", "--eval-every", "0", "--no-progress"],
            "export": ["export", "--run", str(run_dir), "--out", str(out), *EXPORT_FLAGS]}[command]
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out) in line and "Permission denied" in line, line
    assert list(read_only_folder.iterdir()) == []
