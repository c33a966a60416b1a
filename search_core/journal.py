"""An append-only journal of JSON records whose order and completeness are verified.

Judgment sets are kept in one (:mod:`.judgments`). The file holds one record per line::

    <chain> <JSON record>

where ``chain`` is the hex sha256 of the previous line's chain, a space and this line's JSON
(the first line, the header, follows 64 zeros). Each line thus vouches for every line before
it: a line changed, deleted, moved or duplicated breaks the chain at the first line that no
longer follows, and the error names it. What the chain cannot see is lines cut off the end, so
beside the journal a small *head* file (``<journal>.head``) records how many lines the journal
had after the last write and the chain of the last one; it is checked on every read. The head
carries its own checksum and the id of the journal it belongs to (a random id in the header,
so a head left by a journal since rewritten is recognized as stale, not as damage).

Writes are atomic: the records of one call go into one line (a ``batch`` record when there is
more than one), flushed and fsynced before the head is replaced (temporary file, fsync,
rename). A process killed while writing leaves a last line without its newline: that line
never happened; it is ignored on reading and cut off before the next write. A killed import is
therefore all or nothing. A complete line that fails its chain is damage, never dropped.

Several processes may share a journal: writers hold an exclusive ``flock`` on a lock file
beside it (``<journal>.lock``, never replaced, unlike the journal itself when it is rewritten)
and readers a shared one, so a reader never sees a journal and a head from different writes.
Where the lock file cannot be created (a read-only folder, so nobody writes) reading goes on
without it.

Journals written by the first release (format 1: each line checked on its own, no head) are
read as they are and rewritten in this format, atomically, by :meth:`Journal.upgrade`.
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import IntegrityError
from .storage import atomic_write, fsync_dir, sha256_bytes

try:  # POSIX advisory locks; without them a journal is safe within one process only.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = 2
LEGACY_FORMAT = 1
GENESIS = "0" * 64
"""The chain the first line follows."""

Record = dict[str, Any]


def chain_of(previous: str, body: bytes) -> str:
    """The chain of a line: sha256 of the previous line's chain, a space and the line's JSON."""
    return sha256_bytes(previous.encode("ascii") + b" " + body)


def encode_line(previous: str, record: Mapping[str, Any]) -> tuple[bytes, str]:
    """A journal line for ``record`` after a line whose chain is ``previous``.

    Returns:
        The line (newline included) and its chain.
    """
    body = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    data = body.encode("utf-8")
    chain = chain_of(previous, data)
    return chain.encode("ascii") + b" " + data + b"\n", chain


def _parse(line: bytes) -> tuple[str, bytes, Record] | None:
    """(chain, JSON bytes, record) of a complete line, or None when it is not one."""
    checksum, _, body = line[:-1].partition(b" ")
    if len(checksum) != 64:
        return None
    try:
        record = json.loads(body.decode("utf-8"))
        text = checksum.decode("ascii")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("op"), str):
        return None
    return text, body, record


def _head_checksum(head: Mapping[str, Any]) -> str:
    fields = {k: head.get(k) for k in ("format", "journal", "lines", "chain")}
    return sha256_bytes(json.dumps(fields, sort_keys=True).encode("utf-8"))


class Journal:
    """One journal file, read incrementally and appended to under a file lock.

    Args:
        path: the journal file (created with its header at the first write).
        header: makes the header record of a new journal (``op`` is set to ``header``).
        apply: called with each committed record, in order (a batch's records one by one).
        reset: called before the journal is read again from its start (it was replaced).
    """

    def __init__(
        self,
        path: Path,
        header: Callable[[], Record],
        apply: Callable[[Record], None],
        reset: Callable[[], None],
    ) -> None:
        self.path = path
        self.head_path = path.with_name(path.name + ".head")
        self.lock_path = path.with_name(path.name + ".lock")
        self._header = header
        self._apply = apply
        self._reset_state = reset
        self._clear()

    def _clear(self) -> None:
        self.lines = 0
        """Complete lines read (the header included)."""
        self.format: int | None = None
        self._journal_id: str | None = None
        self._chain = GENESIS
        self._offset = 0  # bytes of the journal already read
        self._inode: int | None = None
        self._legacy: list[Record] = []

    @property
    def legacy(self) -> bool:
        """Whether the journal is in the first release's format (no chain, no head)."""
        return self.format == LEGACY_FORMAT

    # ----------------------------------------------------------------- reading

    def refresh(self) -> None:
        """Apply whatever the journal holds beyond what was read (other writers, first load).

        Raises:
            IntegrityError: a line or the head is damaged, or lines were removed; the message
                names the line.
        """
        with self._lock(exclusive=False):
            self._read()

    def _read(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._inode is not None:
                self._restart()
            self._check_head()
            return
        if stat.st_ino != self._inode:
            self._restart()
            self._inode = stat.st_ino
        if stat.st_size > self._offset:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                self._read_lines(handle.read())
        self._check_head()

    def _restart(self) -> None:
        self._clear()
        self._reset_state()

    def _read_lines(self, data: bytes) -> None:
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:
                return  # the last line, being written when a process died: it never happened
            line = data[start : end + 1]
            start = end + 1
            parsed = _parse(line)
            if parsed is None:
                raise self._damaged("is not a journal line (damaged)")
            chain, body, record = parsed
            if self.lines == 0:
                self._start(record)
            if self.legacy:
                if sha256_bytes(body) != chain:
                    raise self._damaged("is damaged (checksum mismatch)")
                self._legacy.append(record)
            elif chain != chain_of(self._chain, body):
                raise self._damaged(
                    "does not follow the line before it: a line was changed, deleted, moved "
                    "or duplicated"
                )
            if record["op"] == "batch":
                for inner in record.get("records", []):
                    self._apply(inner)
            elif record["op"] != "header":
                self._apply(record)
            self._chain = chain
            self.lines += 1
            self._offset += len(line)

    def _start(self, record: Record) -> None:
        if record.get("op") != "header" or record.get("format") not in (FORMAT, LEGACY_FORMAT):
            raise self._damaged(f"is not the header of a journal of format {FORMAT}")
        self.format = int(record["format"])
        self._journal_id = record.get("journal")

    def _damaged(self, problem: str) -> IntegrityError:
        return IntegrityError(
            f"{self.path}: line {self.lines + 1} {problem}; the journal was changed after it "
            "was written"
        )

    def _read_head(self) -> Record | None:
        try:
            data = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IntegrityError(f"{self.head_path}: cannot be read ({exc.strerror})") from exc
        try:
            head = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            head = None
        if (
            not isinstance(head, dict)
            or head.get("checksum") != _head_checksum(head)
            or not isinstance(head.get("lines"), int)
            or not isinstance(head.get("chain"), str)
        ):
            raise IntegrityError(f"{self.head_path}: damaged (checksum mismatch)")
        return head

    def _check_head(self) -> None:
        if self.legacy:
            return
        head = self._read_head()
        if head is None:
            if self.lines > 1:
                raise IntegrityError(
                    f"{self.head_path} is missing: without it, lines cut off the end of "
                    f"{self.path} cannot be seen"
                )
            return  # a new journal: its header was written, its head not yet
        if self.lines == 0:
            raise IntegrityError(
                f"{self.path} is missing or empty but its head records {head['lines']} lines"
            )
        if head.get("journal") != self._journal_id:
            return  # left by the journal before a rewrite (a crash between the two renames)
        if head["lines"] > self.lines:
            raise IntegrityError(
                f"{self.path}: line {self.lines + 1} is missing: the journal ends at line "
                f"{self.lines} but its head records {head['lines']} lines; lines were deleted "
                "or the file was cut"
            )
        if head["lines"] == self.lines and head["chain"] != self._chain:
            raise IntegrityError(
                f"{self.path}: line {self.lines} is not the line its head records; the journal "
                "was changed after it was written"
            )

    # ----------------------------------------------------------------- writing

    def append(
        self,
        records: Sequence[Record],
        keep: Callable[[Sequence[Record]], Sequence[Record]] | None = None,
    ) -> list[Record]:
        """Append records as one atomic line; they are on disk (fsynced) when this returns.

        Args:
            records: the records.
            keep: chooses, after every other writer's lines were read and under the lock, the
                records still to write (imports skip what is already there); given ``keep``,
                ``records`` may be empty and ``keep`` decide them all (a transaction).

        Returns:
            The records written.

        Raises:
            IntegrityError: the journal is damaged (nothing is written).
        """
        if not records and keep is None:
            return []
        with self._lock(exclusive=True):
            self._read()
            if self.legacy:
                self._rewrite(self._legacy)
            kept = list(keep(records) if keep is not None else records)
            if not kept:
                return []
            record = kept[0] if len(kept) == 1 else {"op": "batch", "records": kept}
            self._write_lines([record])
        return kept

    def rewrite(self, records: Callable[[], Sequence[Record]]) -> None:
        """Replace the journal with a new header and its live records (compaction), atomically.

        Args:
            records: gives the records to keep, called under the lock once every other
                writer's lines were read.
        """
        with self._lock(exclusive=True):
            self._read()
            self._rewrite(records())

    def upgrade(self) -> bool:
        """Rewrite a first-release journal in this format, keeping every record in order.

        Returns:
            Whether it was rewritten (False when it is in this format, or the folder is
            read-only: the journal is then read as it is).
        """
        if not self.legacy:
            return False
        try:
            with self._lock(exclusive=True):
                self._read()
                if not self.legacy:
                    return False
                self._rewrite(self._legacy)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                return False
            raise
        return True

    def _rewrite(self, records: Sequence[Record]) -> None:
        header = self._new_header()
        data, chain = io.BytesIO(), GENESIS
        lines = 0
        for record in [header, *(r for r in records if r.get("op") != "header")]:
            line, chain = encode_line(chain, record)
            data.write(line)
            lines += 1
        atomic_write(self.path, data.getvalue())
        self._write_head(header["journal"], lines, chain)
        self._restart()
        self._read()

    def _new_header(self) -> Record:
        return {**self._header(), "op": "header", "format": FORMAT, "journal": secrets.token_hex(8)}

    def _write_lines(self, records: Sequence[Record]) -> None:
        """Append after what was read (a torn last line is cut off first), then the head.

        A new journal gets its header and head first, on their own: a crash then leaves a
        journal of one line without a head, which reads as empty, never one whose head is
        missing while it holds records.
        """
        if self.lines == 0:
            self._write_raw([self._new_header()])
        self._write_raw(records)

    def _write_raw(self, records: Sequence[Record]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        with os.fdopen(fd, "r+b") as handle:
            inode = os.fstat(handle.fileno()).st_ino
            if inode != self._inode:  # created just now
                self._restart()
                self._inode = inode
            chain, data = self._chain, io.BytesIO()
            for record in records:
                line, chain = encode_line(chain, record)
                data.write(line)
            handle.truncate(self._offset)
            handle.seek(self._offset)
            handle.write(data.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        if self.lines == 0:
            fsync_dir(self.path.parent)
        self._read_lines(data.getvalue())
        self._write_head(self._journal_id, self.lines, self._chain)

    def _write_head(self, journal_id: str | None, lines: int, chain: str) -> None:
        head: Record = {"format": FORMAT, "journal": journal_id, "lines": lines, "chain": chain}
        head["checksum"] = _head_checksum(head)
        atomic_write(self.head_path, json.dumps(head, sort_keys=True).encode("utf-8") + b"\n")

    @contextmanager
    def _lock(self, *, exclusive: bool) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        try:
            if exclusive:
                self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if exclusive:
                raise
            yield  # a read-only folder: nobody writes, so reading needs no lock
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the flock
