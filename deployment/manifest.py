"""The bundle's ``manifest.json``: one typed model, written by export and read back by everything that loads a bundle.

The manifest says what the bundle decides (the catalog), what it reads (the features, in order, and their
normaliser), what it was trained for (the objective and ``lam``), on what, how it was checked, and the sha256 of
every file. Its own ``manifest_sha256`` covers the rest of it: :func:`read_manifest` refuses an edited manifest,
a file that is missing or changed, and a format this offerpilot does not read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from offerpilot.atomic import json_digest, sha256_file
from offerpilot.errors import InputError

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
POLICY_GRAPH = "policy.onnx"


class BundleError(InputError):
    """A bundle that cannot be trusted or read: missing, tampered with, mixed or of another format."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Section):
    sha256: str
    bytes: int


class Source(_Section):
    """The training run and policy folder the bundle was exported from."""

    run: str
    policy: str
    policy_safetensors_sha256: str


class Features(_Section):
    """What the policy reads, in order: the raw features rebuilt from logs, then the encoder's."""

    names: list[str]
    raw: list[str]
    encoder: list[str]
    dtype: Literal["float32"]
    normalizer: dict[str, Any]
    built_from: str


class Actions(_Section):
    ids: list[str]
    catalog: dict[str, Any]
    """The offer catalog as ``OfferCatalog.to_dict`` writes it."""


class Value(_Section):
    """How the critic's output reads as money."""

    unit: str
    return_scale: float
    meaning: str


class Training(_Section):
    data: dict[str, Any]
    num_timesteps: int | None
    config: dict[str, Any]
    """The run's ``TrainConfig.to_dict``."""


class Metrics(_Section):
    validation: dict[str, Any] | None
    parity: dict[str, Any] | None = None
    """onnxruntime against torch, measured during export."""


class BundleManifest(_Section):
    """Everything ``manifest.json`` holds."""

    format: Literal[1]
    created: str
    offerpilot_version: str
    policy_id: str
    source: Source
    observation: Literal["raw", "encoder"]
    graphs: dict[str, Any]
    features: Features
    actions: Actions
    objective: dict[str, Any]
    """``ObjectiveConfig``'s fields, ``lam`` among them."""
    decision_interval_days: int
    value: Value
    training: Training
    metrics: Metrics
    files: dict[str, FileEntry] = {}
    manifest_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        return manifest_digest(self.to_dict())

    def write(self, folder: Path, files: list[str]) -> BundleManifest:
        """Write this manifest into ``folder`` with the sha256 and size of each of ``files`` and its own digest;
        returns what was written."""
        listed = {name: FileEntry(sha256=sha256_file(folder / name), bytes=(folder / name).stat().st_size) for name in files}
        manifest = self.model_copy(update={"files": listed, "manifest_sha256": None})
        manifest = manifest.model_copy(update={"manifest_sha256": manifest.digest()})
        (folder / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        return manifest


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of a manifest's content without its own ``manifest_sha256`` (canonical JSON: sorted keys, no spaces)."""
    return json_digest(manifest, "manifest_sha256")


def read_manifest(folder: str | Path) -> BundleManifest:
    """The manifest of the bundle in ``folder`` after checking its format, its own digest and every listed file's sha256.

    :raises BundleError: naming the file that is missing, unreadable or not the one exported.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: missing; {folder} is not a bundle written by 'offerpilot export'")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: not valid JSON ({e}); the bundle is damaged, export it again") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise BundleError(f"{path}: bundle format {found!r}, this offerpilot reads format {BUNDLE_FORMAT}; export the policy again")
    if data.get("manifest_sha256") != manifest_digest(data):
        raise BundleError(f"{path}: its content does not match its manifest_sha256: it was edited after export; "
                          "refusing to load it (export the policy again)")
    try:
        manifest = BundleManifest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise BundleError(f"{path}: field {'.'.join(map(str, first['loc']))}: {first['msg']}{more}; "
                          "the manifest is damaged, export the policy again") from None
    if POLICY_GRAPH not in manifest.files:
        raise BundleError(f"{path}: lists no {POLICY_GRAPH}; the manifest is damaged, export the policy again")
    for name, entry in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{file}: missing from the bundle; the manifest lists it")
        found = sha256_file(file)
        if found != entry.sha256:
            raise BundleError(
                f"{file}: sha256 {found} differs from the manifest's {entry.sha256}: the file was changed after "
                "export or comes from another bundle; refusing to load it (export the policy again)"
            )
    return manifest
