"""Atomic, checksummed file I/O: the only way the engine writes persisted state.

Every file is written to a temporary name in the same folder, flushed and fsynced, then
renamed over its final name, so a reader sees either the old file or the new one, never a
half-written one. Readers get bytes only after their sha256 matches the recorded one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IntegrityError


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync of the folder).

    Args:
        path: the final file name.
        data: the full content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_verified(path: Path, expected_sha256: str) -> bytes:
    """Read a whole file and check it against its recorded checksum.

    Args:
        path: the file.
        expected_sha256: the hex sha256 recorded when it was written.

    Returns:
        The file's bytes, only when the checksum matches.

    Raises:
        IntegrityError: the file is missing, unreadable or its content changed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise IntegrityError(
            f"{path}: checksum mismatch (expected {expected_sha256[:12]}, found {actual[:12]}); "
            "the file was changed or damaged after it was written"
        )
    return data


def npy_bytes(array: np.ndarray) -> bytes:
    """Serialize an array to ``.npy`` bytes without pickle."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_load(data: bytes, name: str = "array") -> np.ndarray:
    """Load ``.npy`` bytes, refusing object arrays (pickle).

    Raises:
        IntegrityError: the bytes are not a valid non-pickle ``.npy`` array.
    """
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise IntegrityError(f"{name}: not a valid .npy array ({exc})") from exc


def json_bytes(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, UTF-8), stable for checksums."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1).encode("utf-8")


def json_load(data: bytes, name: str = "json") -> Any:
    """Parse JSON bytes.

    Raises:
        IntegrityError: the bytes are not valid UTF-8 JSON.
    """
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{name}: not valid JSON ({exc})") from exc


def write_files(folder: Path, files: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """Write several files atomically into ``folder`` and return their checksums.

    Returns:
        ``{name: {"sha256": ..., "bytes": ...}}`` for a manifest.
    """
    record: dict[str, dict[str, Any]] = {}
    for name, data in files.items():
        atomic_write(folder / name, data)
        record[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    return record
