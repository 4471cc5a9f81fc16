"""Named population presets and JSON population files (as written by ``offerpilot calibrate``)."""

from __future__ import annotations

import json
from dataclasses import fields
from importlib.resources import files
from pathlib import Path

from offerpilot.envs.population import PopulationParams
from offerpilot.errors import InputError

PRESETS = {"cdnow": "population_cdnow.json"}
"""Presets shipped in ``offerpilot/data``; ``default`` is :class:`PopulationParams` as it stands."""


def load_population(spec: str | Path | None = None) -> PopulationParams:
    """``None`` or ``"default"``: the defaults; a preset name (``"cdnow"``); or a JSON file path."""
    if spec is None or spec == "default":
        return PopulationParams()
    if str(spec) in PRESETS:
        text = (files("offerpilot") / "data" / PRESETS[str(spec)]).read_text()
        source = f"preset {spec!r}"
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"{spec}: not a preset ({', '.join(['default', *PRESETS])}) nor an existing JSON file")
        text, source = path.read_text(), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{source}: not valid JSON: {e}") from None
    values = data.get("population", data) if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise InputError(f"{source}: expected an object with the population parameters")
    known = {f.name for f in fields(PopulationParams)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{source}: unknown population parameter(s) {unknown}")
    bad = [k for k, v in values.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if bad:
        raise InputError(f"{source}: parameter(s) {bad} must be numbers")
    return PopulationParams(**{k: float(v) for k, v in values.items()})
