"""Atomic file writes: readers see the old file or the complete new one, never a half-written one.

A write that fails (disk full, file too large, no permission) raises :class:`WriteError` naming the file or folder
that was to be written; its temporary file or folder is removed and the previous version stays in place. Checksums
(:func:`sha256_file`, :func:`json_digest`) let readers refuse what was damaged after it was written.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from offerpilot.errors import UserError


class WriteError(UserError, OSError):
    """Writing ``filename`` failed; the message names it, gives the system's reason and says nothing was replaced."""

    def __str__(self) -> str:
        return f"could not write {self.filename}: {self.strerror}; it was left as it was"


@contextmanager
def _reported_as_write_of(path: Path, tmp: Path) -> Iterator[None]:
    """Turn an OSError of writing ``path`` through ``tmp`` into a :class:`WriteError` naming ``path``.

    Errors that name another file (one read while writing, say) pass unchanged; a failed ``write()`` names no file.
    """
    try:
        yield
    except OSError as e:
        failed = None if e.filename is None else Path(os.fsdecode(e.filename))
        if failed is not None and failed != tmp and tmp not in failed.parents and failed not in (path, *path.parents):
            raise
        raise WriteError(e.errno, e.strerror or str(e), str(path)) from e


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    :raises WriteError: ``path`` could not be written (its previous version, if any, is unchanged).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with _reported_as_write_of(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` to fill; on success it replaces ``path`` as a whole.

    A previous folder at ``path`` is moved aside first and deleted last; on any error the temporary folder is
    removed and the previous one put back, so ``path`` holds the old complete folder, the new one, or nothing.

    :raises WriteError: ``path`` could not be written (the previous folder, if any, is unchanged).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder; move it away or choose another location")
    tag = uuid.uuid4().hex
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    old = path.with_name(f".{path.name}.{tag}.old")
    with _reported_as_write_of(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        try:
            yield tmp
            if path.exists():
                os.rename(path, old)
            os.rename(tmp, path)
        except BaseException:
            if old.exists() and not path.exists():
                os.rename(old, path)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def safetensors_write_errors() -> Iterator[None]:
    """Raise a failed safetensors write (its ``SafetensorError`` reads "... (os error 28)") as the OSError it wraps,
    so a full disk is reported like any other failed write."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as e:
        code = re.search(r"\(os error (\d+)\)", str(e))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1]))) from e


def plain_permissions(path: str | Path) -> None:
    """Give ``path`` the permissions of a file made by ``open()`` (0666 less the umask), as safetensors writes 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def restore_interrupted(path: str | Path) -> None:
    """Put the previous folder back at ``path`` when :func:`atomic_directory` was killed after moving it aside
    and before moving the new one in (``path`` is then missing and ``.NAME.TAG.old`` beside it is complete)."""
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return
    aside = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.old"), key=lambda p: p.stat().st_mtime)
    if aside:
        os.rename(aside[-1], path)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_digest(data: dict[str, Any], without: str) -> str:
    """sha256 of ``data`` without its ``without`` key, as canonical JSON (sorted keys, no spaces): a document's own digest."""
    body = {k: v for k, v in data.items() if k != without}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
