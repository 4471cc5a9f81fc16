"""A corpus of bad input against every command that reads logs or options.

Each case is a small corrupted copy of a simulated log (or a bad option). Every command that reads it must exit
non-zero with one line that names the file, row and field (or the flag), leave the previous outputs byte-identical
and leave no partial run folder behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from offerpilot.agents.ppo_training import train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.app.cli import main
from offerpilot.deployment.export import ExportConfig, export_bundle

from small_training import small_training

TINY = small_training(total_timesteps=512, net_arch=(16,), eval_every=0, checkpoint_every=0, seed=3)
PREVIOUS = b"the previous output\n"


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("logs")
    assert main(["simulate", "--out", str(out), "--customers", "40", "--seed", "5", "--policy", "uniform", "--format", "csv",
                 "--horizon-days", "56"]) == 0
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    run = train_ppo(TrainConfig(observation="raw", **TINY), folder / "run", progress=False).run_dir
    export_bundle(run, folder / "bundle", ExportConfig(n_random=200, n_customers=20))
    return folder / "bundle"


@dataclass(frozen=True)
class Corruption:
    """A corrupted copy of the logs: which file changes, how, and the one line every command must answer with."""

    file: str
    """``events.csv`` or ``decisions.csv``: the file the corruption lands in (and the problem names)."""
    corrupt: Callable[[Path], Path]
    """Writes the corrupted file into the copy's folder and returns the path the commands are given."""
    expected: str
    """What the error line says after the file's path: the row and field, then what is wrong."""


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _empty(path: Path) -> Path:
    path.write_text(_lines(path)[0])
    return path


def _future_event(path: Path) -> Path:
    lines = _lines(path)
    user = lines[-1].split(",")[0]
    lines.append(f"{user},2099-06-01T00:00:00,visit,,,,,\n")
    path.write_text("".join(lines))
    return path


def _ghost_decision(path: Path) -> Path:
    lines = _lines(path)
    fields = lines[-1].split(",")
    lines.append(",".join(["ghost", *fields[1:]]))
    path.write_text("".join(lines))
    return path


def _amount_as_text(path: Path) -> Path:
    table = pd.read_csv(path, dtype={"user_id": str})
    table["amount"] = table["amount"].map(lambda v: "" if pd.isna(v) else f"{v}")
    parquet = path.with_suffix(".parquet")
    table.to_parquet(parquet)
    return parquet


def _folder(path: Path) -> Path:
    folder = path.with_suffix(".parquet")
    folder.mkdir()
    return folder


def _semicolons(path: Path) -> Path:
    path.write_text("".join(line.replace(",", ";") for line in _lines(path)))
    return path


CORRUPTIONS = {
    "no rows": Corruption("events.csv", _empty, ": the table has no rows"),
    "event in 2099": Corruption("events.csv", _future_event, ", row {rows}, field 'ts': ts 2099-06-01 00:00:00 is in the future"),
    "decision for a user without events": Corruption("decisions.csv", _ghost_decision, ", row {rows}, field 'user_id': user 'ghost' never appears in the events"),
    "amount stored as text in Parquet": Corruption("events.csv", _amount_as_text, ", field 'amount': stored as text (first value '"),
    "a folder given as the file": Corruption("events.csv", _folder, ": is a folder, not a file"),
    "semicolon-separated CSV": Corruption("events.csv", _semicolons, ": the header is the single column 'user_id;ts;"),
}

COMMANDS = {
    "validate": lambda ev, dec, out, bundle: ["validate", str(ev), str(dec)],
    "ope": lambda ev, dec, out, bundle: ["ope", "--events", str(ev), "--decisions", str(dec), "--policy", "no_offer", "--bootstrap", "10",
                                         "--no-sequential", "--out", str(out)],
    "score": lambda ev, dec, out, bundle: ["score", "--bundle", str(bundle), "--customers", str(ev), "--decisions", str(dec), "--out", str(out / "scores.csv")],
    "calibrate": lambda ev, dec, out, bundle: ["calibrate", "--events", str(ev), "--out", str(out / "population.json")],
    "encoder train": lambda ev, dec, out, bundle: ["encoder", "train", "--events", str(ev), "--out", str(out / "encoder")],
}
EVENTS_ONLY = ("calibrate", "encoder train")


def _previous_outputs(out: Path) -> dict[str, bytes]:
    """An output folder as an earlier good run left it: the files each command would replace, with known bytes."""
    out.mkdir()
    for name in ("ope.json", "ope.png", "scores.csv", "population.json"):
        (out / name).write_bytes(PREVIOUS)
    return _snapshot(out)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_every_command_refuses_bad_logs_in_one_line(case, command, logs, bundle, tmp_path, capsys):
    corruption = CORRUPTIONS[case]
    if command in EVENTS_ONLY and corruption.file != "events.csv":
        pytest.skip(f"{command} reads no decisions")
    copy = tmp_path / "logs"
    shutil.copytree(logs, copy)
    rows = len(_lines(copy / corruption.file))  # the appended row's 1-based data row, before the corruption adds it
    bad = corruption.corrupt(copy / corruption.file)
    events = bad if corruption.file == "events.csv" else copy / "events.csv"
    decisions = bad if corruption.file == "decisions.csv" else copy / "decisions.csv"
    out = tmp_path / "out"
    if command == "ope":  # ope replaces its folder as a whole, so it holds only ope's files
        out.mkdir()
        for name in ("ope.json", "ope.png"):
            (out / name).write_bytes(PREVIOUS)
        before = _snapshot(out)
    else:
        before = _previous_outputs(out)
    capsys.readouterr()

    code = main(COMMANDS[command](events, decisions, out, bundle))

    captured = capsys.readouterr()
    expected = f"{bad}{corruption.expected.format(rows=rows)}"
    if command == "validate":  # a report: the file's problem count, then one line per problem
        report = captured.out.splitlines()
        assert code == 1 and f"{bad}: 1 problem(s)" in report, captured.out
        assert report[report.index(f"{bad}: 1 problem(s)") + 1].startswith(f"  {expected}"), captured.out
    else:
        assert code == 1, captured.err
        error = captured.err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith(f"error: {expected}"), captured.err
    assert _snapshot(out) == before  # nothing replaced, nothing added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "out"]  # and no temporary left beside it


def test_ope_refuses_an_output_folder_holding_other_files(logs, tmp_path, capsys):
    """ope replaces its --out folder as a whole, so a folder holding anything else (the logs, say) is refused first."""
    copy = tmp_path / "logs"
    shutil.copytree(logs, copy)
    before = _snapshot(copy)
    code = main(["ope", "--logs", str(copy), "--policy", "no_offer", "--bootstrap", "10", "--no-sequential", "--out", str(copy)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1
    assert error[0].startswith(f"error: --out {copy} holds other files (config.json, customers.csv, decisions.csv, events.csv)")
    assert _snapshot(copy) == before


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--lam", "2", "error: lam must be in [0, 1], got 2.0"),
        ("--policy", "nonsense", "error: --policy 'nonsense' is neither a baseline"),
        ("--period-start", "garbage", "offerpilot ope: error: argument --period-start: cannot read 'garbage' as a date"),
    ],
)
def test_ope_names_a_bad_flag_once(flag, value, message, logs, capsys):
    args = {"--lam": "0.5", "--policy": "no_offer", "--period-start": "2025-01-01", flag: value}
    argv = ["ope", "--logs", str(logs), "--bootstrap", "10", *[x for item in args.items() for x in item]]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage, then the error, exit 2
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count(message) == 1 and err.strip().splitlines()[-1].startswith(message), err


def test_score_names_a_garbage_as_of(logs, bundle, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--bundle", str(bundle), "--customers", str(logs / "events.csv"), "--out", str(tmp_path / "s.csv"), "--as-of", "garbage"])
    assert exit_.value.code == 2
    assert "argument --as-of: cannot read 'garbage' as a date" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("clip_range: lots\n", "clip_range must be a number, got str 'lots'"),
        ("net_arch: [64, wide]\n", "net_arch must be a list of integers, got list [64, 'wide']"),
        ("n_envs: 64.5\n", "n_envs must be an integer, got float 64.5"),
        ("threads: yes\n", "threads must be an integer or null, got bool True"),
        ("population: nowhere.json\n", "nowhere.json: not a preset (default, cdnow) nor an existing JSON file"),
        ("ent_coef: -0.1\n", "ent_coef must be >= 0, got -0.1"),
    ],
)
def test_train_refuses_a_bad_config_before_writing_anything(config, message, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(config)
    run = tmp_path / "run"
    code = main(["train", "--config", str(tmp_path / "bad.yaml"), "--out", str(run), "--no-progress"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and message in error[0], error
    assert not run.exists()


def test_train_refuses_a_bad_population_flag_before_writing_anything(tmp_path, capsys):
    code = main(["train", "--population", "atlantis", "--out", str(tmp_path / "run"), "--seeds", "2", "--no-progress"])
    assert code == 2 and "atlantis: not a preset" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_saved_weights_have_the_permissions_of_every_other_file(bundle):
    run = bundle.parent / "run"
    for folder in (run / "policy", run / "checkpoint"):
        mode = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
        assert mode["policy.safetensors"] == mode["policy.json"] == 0o666 & ~_umask(), mode


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
