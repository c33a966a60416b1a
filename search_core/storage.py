"""Atomic, checksummed file I/O: the only way the engine writes persisted state.

Every file is written to a temporary name in the same folder, flushed and fsynced, then
renamed over its final name, so a reader sees either the old file or the new one, never a
half-written one. Readers get bytes only after their sha256 matches the recorded one.

Readers open only plain regular files: never through a symbolic link at the last step, never a
device, a FIFO or a socket (checked with ``lstat`` before opening, and with ``fstat`` on the
open descriptor), and a file's size is checked against the recorded one before it is read, so
a damaged or forged record cannot make a reader hang, run out of memory or leave its folder.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

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


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file written in pieces that appears at ``path`` whole or not at all.

    A temporary file in the same folder, flushed and fsynced, is renamed over ``path`` when the
    block ends without error and removed otherwise. The caller fsyncs the folder (once for
    several files).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync of the folder).

    Args:
        path: the final file name.
        data: the full content.
    """
    with atomic_file(path) as handle:
        handle.write(data)
    fsync_dir(path.parent)


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after the lstat must not block the open
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_BLOCK = 1 << 20
_HEADER_LOCK = threading.Lock()
# A file a folder holds by name: one plain path component, no separators, no leading dot.
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open a plain regular file for reading: no link, device, FIFO or socket is ever opened.

    Raises:
        FileNotFoundError, NotADirectoryError: the file does not exist (so callers can tell
            "missing" apart).
        IntegrityError: it is something other than a regular file, or cannot be opened.
    """
    try:
        before = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(before.st_mode):
        raise IntegrityError(
            f"{path}: is {_kind(before.st_mode)}; only plain files inside the folder are read"
        )
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
            raise IntegrityError(
                f"{path}: is a symbolic link; only plain files inside the folder are read"
            ) from exc
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    # A file replaced since the lstat is read as it is now (a rename by a concurrent writer),
    # provided it is still a regular file.
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise IntegrityError(
            f"{path}: is {_kind(info.st_mode)}; only plain files inside the folder are read"
        )
    return fd, info


def _read_size(path: Path, fd: int, size: int) -> bytes:
    """The ``size`` bytes of an open file, which must end there.

    One allocation of ``size`` bytes (a read stops at about 2 GB; only bigger files take more
    reads and a join), so reading a file costs no more memory than its size.

    Raises:
        IntegrityError: the file is shorter or longer than ``size`` now.
    """
    data = os.read(fd, size) if size else b""
    if len(data) < size:
        parts = [data]
        got = len(data)
        while got < size and (part := os.read(fd, min(size - got, 1 << 30))):
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
    if len(data) != size or os.read(fd, 1):
        raise IntegrityError(f"{path}: changed size while being read; not read")
    return data


def _stream_sha256(fd: int) -> str:
    digest = hashlib.sha256()
    while part := os.read(fd, _BLOCK):
        digest.update(part)
    return digest.hexdigest()


def _mismatch(path: Path, expected: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"{path}: checksum mismatch (expected {expected[:12]}, found {actual[:12]}); "
        "the file was changed or damaged after it was written"
    )


def _open_checked(path: Path, expected_size: int | None) -> tuple[int, os.stat_result]:
    """Open a plain file whose size is the recorded one (when one was recorded).

    Raises:
        IntegrityError: the file is missing, unreadable, not a plain file, or of another size
            (a checksum cannot match: the file is not even read).
    """
    try:
        fd, info = _open_regular(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if expected_size is not None and info.st_size != expected_size:
        os.close(fd)
        raise IntegrityError(
            f"{path}: checksum mismatch (the file has {info.st_size:,} bytes, "
            f"{expected_size:,} were written); the file was changed or damaged after it was "
            "written"
        )
    return fd, info


def read_verified(path: Path, expected_sha256: str, expected_size: int | None = None) -> bytes:
    """Read a whole plain file and check it against its recorded checksum (and size).

    Only a regular file is opened (never a symbolic link, device, FIFO or socket). With a
    recorded size, a file of another size is refused before anything is read; without one
    (records of the first release), the checksum is computed while streaming the file, and the
    bytes are held in memory only once it matched.

    Args:
        path: the file.
        expected_sha256: the hex sha256 recorded when it was written.
        expected_size: the size in bytes recorded when it was written, where one was.

    Returns:
        The file's bytes, only when the checksum matches.

    Raises:
        IntegrityError: the file is missing, unreadable, not a plain file, of the wrong size,
            or its content changed.
    """
    fd, info = _open_checked(path, expected_size)
    try:
        if expected_size is None:
            actual = _stream_sha256(fd)
            if actual != expected_sha256:
                raise _mismatch(path, expected_sha256, actual)
            os.lseek(fd, 0, os.SEEK_SET)
        data = _read_size(path, fd, info.st_size)
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise _mismatch(path, expected_sha256, actual)
    return data


def check_member_name(folder: Path, name: object) -> str:
    """Check that ``name`` (from a manifest) names a plain file directly inside ``folder``.

    Raises:
        IntegrityError: an absolute path, a path with separators or ``..``, a hidden name, or
            not a string: a record that could lead a reader out of its folder.
    """
    if not isinstance(name, str) or not _MEMBER_NAME.fullmatch(name) or ".." in name:
        raise IntegrityError(
            f"{folder}: the record names the file {name!r}, which is not a plain file name "
            "inside the folder; refused"
        )
    return name


def read_member(
    folder: Path, name: object, expected_sha256: object, expected_size: object = None
) -> bytes:
    """Read a file a record (a manifest) lists by name, as :func:`read_verified` does.

    The name must be one plain file name inside ``folder`` (see :func:`check_member_name`), and
    the checksum and size must be well-formed, before anything is opened.

    Raises:
        IntegrityError: the name, checksum or size is not acceptable, or as for
            :func:`read_verified`.
    """
    path, sha256, size = _record(folder, name, expected_sha256, expected_size)
    return read_verified(path, sha256, size)


def _record(
    folder: Path, name: object, expected_sha256: object, expected_size: object
) -> tuple[Path, str, int | None]:
    """A record's file, checksum and size, each checked before anything is opened."""
    name = check_member_name(folder, name)
    if not isinstance(expected_sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", expected_sha256):
        raise IntegrityError(f"{folder / name}: the record holds no valid sha256 for it")
    if expected_size is not None and (
        isinstance(expected_size, bool) or not isinstance(expected_size, int) or expected_size < 0
    ):
        raise IntegrityError(f"{folder / name}: the record holds an invalid size {expected_size!r}")
    return folder / name, expected_sha256, expected_size


def map_member(
    folder: Path, name: object, expected_sha256: object, expected_size: object = None
) -> np.ndarray:
    """Memory-map a ``.npy`` file a record lists, read-only, once its checksum matched.

    The checksum is computed by streaming the file, so the array is never read into the
    process's memory: its pages come from the file (the page cache) as they are used. The
    file is checked and mapped through one open descriptor: a file swapped by a concurrent
    writer between the check and the mapping cannot be mapped unchecked.

    Raises:
        IntegrityError: as for :func:`read_member`, or the file is not a valid non-pickle
            ``.npy`` array of the size its header says.
    """
    path, sha256, size = _record(folder, name, expected_sha256, expected_size)
    fd, info = _open_checked(path, size)
    try:
        actual = _stream_sha256(fd)
        if actual != sha256:
            raise _mismatch(path, sha256, actual)
        os.lseek(fd, 0, os.SEEK_SET)
        # numpy parses a header with ast.literal_eval, which CPython 3.11 cannot run in two
        # threads at once ("AST constructor recursion depth mismatch"); files are checked side
        # by side (collection._verified_files), so headers are read one at a time.
        with _HEADER_LOCK, os.fdopen(os.dup(fd), "rb") as handle:
            return _map_npy(handle, path, info.st_size)
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)


def _map_npy(handle: Any, path: Path, size: int) -> np.ndarray:
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError) as exc:
        raise IntegrityError(f"{path}: not a valid .npy array ({exc})") from exc
    if dtype.hasobject:
        raise IntegrityError(f"{path}: holds Python objects (pickle); not read")
    offset = handle.tell()
    if offset + dtype.itemsize * math.prod(shape) != size:
        raise IntegrityError(f"{path}: its header does not match its size; not read")
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=dtype)
    mapped = np.memmap(
        handle, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran else "C"
    )
    return mapped.view(np.ndarray)  # a plain read-only array; the mapping lives as its base


def read_small(path: Path, limit: int) -> bytes:
    """Read a small plain file (a pointer) that has no checksum recorded elsewhere.

    Raises:
        FileNotFoundError, NotADirectoryError: the file does not exist.
        IntegrityError: it is not a plain file, is larger than ``limit`` bytes or unreadable.
    """
    fd, info = _open_regular(path)
    try:
        if info.st_size > limit:
            raise IntegrityError(f"{path}: {info.st_size:,} bytes, more than such a file holds")
        return _read_size(path, fd, info.st_size)
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)


def unwritable_reason(folder: Path) -> str | None:
    """Why files could not be created in ``folder`` (created with its parents if missing).

    Looks at the folder, or at its nearest existing parent when it does not exist yet; the
    same check the operating system makes for the user running the process (root passes it
    except on a read-only file system).

    Returns:
        None when the folder can be written, else the problem in words, naming the folder that
        stops it.
    """
    target = Path(os.path.abspath(folder))
    existing = target
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    flags = os.W_OK | os.X_OK
    effective = os.access in os.supports_effective_ids
    if not os.access(existing, flags, effective_ids=effective):
        return f"{existing} cannot be written (read-only, or no permission)"
    return None


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
        check_member_name(folder, name)  # what is written must be readable by read_member
        atomic_write(folder / name, data)
        record[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    return record
