"""The journal: hash-chained lines, a verified head, atomic writes, first-release journals."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_core import journal as journal_module
from search_core.errors import IntegrityError
from search_core.journal import GENESIS, Journal, chain_of, encode_line
from search_core.storage import sha256_bytes


class Log:
    """A journal and the records it applied, in order."""

    def __init__(self, path: Path) -> None:
        self.records: list[dict] = []
        self.journal = Journal(path, lambda: {"set": "t"}, self.records.append, self.records.clear)

    def read(self) -> list[dict]:
        self.journal.refresh()
        return self.records


def _journal(tmp_path: Path, count: int = 6) -> tuple[Path, list[dict]]:
    path = tmp_path / "set.jsonl"
    log = Log(path)
    written = [{"op": "judge", "qid": "q1", "doc": f"d{n}", "grade": n % 4} for n in range(count)]
    for record in written:
        log.journal.append([record])
    return path, written


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_each_line_follows_the_one_before(tmp_path: Path) -> None:
    path, written = _journal(tmp_path)
    chain = GENESIS
    for line in _lines(path):
        checksum, _, body = line.rstrip(b"\n").partition(b" ")
        assert checksum.decode() == chain_of(chain, body)
        chain = checksum.decode()
    assert json.loads(_lines(path)[0].split(b" ", 1)[1])["format"] == 2
    assert Log(path).read() == written


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [lines[0], lines[1], lines[3], lines[2], *lines[4:]], "line 3 does not"),
        (lambda lines: [*lines[:2], *lines[3:]], "line 3 does not"),  # deleted
        (lambda lines: [*lines[:3], lines[2], *lines[3:]], "line 4 does not"),  # duplicated
        (lambda lines: lines[:-1], "ends at line 6 but its head records 7"),  # last one cut
        (lambda lines: [], "missing or empty but its head records 7"),
    ],
    ids=["swapped", "deleted", "duplicated", "last-deleted", "emptied"],
)
def test_lines_moved_removed_or_repeated_are_reported_by_line(
    tmp_path: Path, edit, message: str
) -> None:
    path, _ = _journal(tmp_path)
    path.write_bytes(b"".join(edit(_lines(path))))
    with pytest.raises(IntegrityError, match=message):
        Log(path).read()


def test_a_damaged_or_missing_head_is_reported(tmp_path: Path) -> None:
    path, _ = _journal(tmp_path)
    head = path.with_name(path.name + ".head")
    data = json.loads(head.read_text())
    head.write_text(json.dumps(data | {"lines": 3}))
    with pytest.raises(IntegrityError, match=r"head.*checksum mismatch"):
        Log(path).read()
    head.unlink()
    with pytest.raises(IntegrityError, match="head is missing"):
        Log(path).read()


def test_a_torn_last_line_never_happened_and_is_cut_before_the_next_write(tmp_path: Path) -> None:
    path, written = _journal(tmp_path)
    with path.open("ab") as handle:  # a process killed while writing: the head was not moved
        handle.write(b'0123 {"op":"judge","qid":"q1","doc":"ha')
    log = Log(path)
    assert log.read() == written
    log.journal.append([{"op": "judge", "qid": "q1", "doc": "late", "grade": 1}])
    assert all(line.endswith(b"\n") for line in _lines(path))
    assert Log(path).read()[-1]["doc"] == "late"


def test_lines_written_after_the_head_are_kept(tmp_path: Path) -> None:
    # A process killed after its line was on disk and before the head moved.
    path, written = _journal(tmp_path)
    chain = _lines(path)[-1].split(b" ", 1)[0].decode()
    extra = {"op": "judge", "qid": "q1", "doc": "x", "grade": 2}
    line, _ = encode_line(chain, extra)
    with path.open("ab") as handle:
        handle.write(line)
    assert Log(path).read() == [*written, extra]


def test_many_records_are_written_as_one_line(tmp_path: Path) -> None:
    path, written = _journal(tmp_path, count=2)
    batch = [{"op": "judge", "qid": "q2", "doc": f"d{n}", "grade": 1} for n in range(500)]
    log = Log(path)
    log.read()
    log.journal.append(batch)
    assert len(_lines(path)) == 4  # header, two judgments, the batch
    assert Log(path).read() == [*written, *batch]


def test_a_cut_inside_a_batch_shows_none_of_it(tmp_path: Path) -> None:
    # What a SIGKILL during an import leaves: any prefix of its line, never part of its records.
    path, written = _journal(tmp_path, count=2)
    log = Log(path)
    log.read()
    before = path.read_bytes()
    head = path.with_name(path.name + ".head")
    head_before = head.read_bytes()
    log.journal.append(
        [{"op": "judge", "qid": "q2", "doc": f"d{n}", "grade": 1} for n in range(300)]
    )
    batch_line = path.read_bytes()[len(before) :]
    for cut in sorted({1, len(batch_line) - 1, *range(7, len(batch_line), len(batch_line) // 20)}):
        path.write_bytes(before + batch_line[:cut])
        head.write_bytes(head_before)
        assert Log(path).read() == written, cut


def test_a_reader_sees_what_another_writer_appended(tmp_path: Path) -> None:
    path, written = _journal(tmp_path, count=2)
    reader, writer = Log(path), Log(path)
    assert reader.read() == written
    writer.read()
    writer.journal.append([{"op": "judge", "qid": "q9", "doc": "z", "grade": 3}])
    assert reader.read()[-1]["qid"] == "q9"


def test_a_rewrite_keeps_the_records_given_and_starts_a_new_chain(tmp_path: Path) -> None:
    path, written = _journal(tmp_path)
    log = Log(path)
    log.read()
    log.journal.rewrite(lambda: written[-2:])
    assert len(_lines(path)) == 3
    assert Log(path).read() == written[-2:]
    assert log.read() == written[-2:]  # the writer reads its own rewrite


# --------------------------------------------------------------------------- first release


def _legacy_journal(path: Path, records: list[dict]) -> None:
    def line(record: dict) -> bytes:
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        return sha256_bytes(body).encode() + b" " + body + b"\n"

    header = {"op": "header", "format": 1, "collection": "c", "set": "s", "created_at": "x"}
    path.write_bytes(b"".join(line(r) for r in [header, *records]))


def test_a_first_release_journal_is_read_and_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    records = [
        {"op": "judge", "qid": "q1", "doc": "d1", "grade": 1},
        {"op": "judge", "qid": "q1", "doc": "d1", "grade": 0},
    ]
    _legacy_journal(path, records)
    log = Log(path)
    assert log.read() == records
    assert log.journal.legacy and log.journal.upgrade()
    assert not log.journal.legacy
    assert Log(path).read() == records  # every record kept, in order, now chained
    assert json.loads(_lines(path)[0].split(b" ", 1)[1])["format"] == 2


def test_a_first_release_journal_on_a_read_only_disk_is_read_as_it_is(
    tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "old.jsonl"
    records = [{"op": "judge", "qid": "q1", "doc": "d1", "grade": 2}]
    _legacy_journal(path, records)
    before = path.read_bytes()

    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(journal_module, "atomic_write", read_only)
    log = Log(path)
    assert log.read() == records
    assert log.journal.upgrade() is False
    assert path.read_bytes() == before


def test_a_damaged_first_release_line_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    _legacy_journal(path, [{"op": "judge", "qid": "q1", "doc": "d1", "grade": 2}])
    path.write_bytes(path.read_bytes().replace(b'"grade":2', b'"grade":3'))
    with pytest.raises(IntegrityError, match="line 2 is damaged"):
        Log(path).read()


# --------------------------------------------------------------------------- any edit


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "swap", "duplicate", "truncate", "flip"]),
        st.integers(min_value=0, max_value=10**6),
        st.integers(min_value=0, max_value=10**6),
    ),
    min_size=1,
    max_size=3,
)


def _edit(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    for kind, a, b in edits:
        lines = data.splitlines(keepends=True)
        if not lines:
            break
        i, j = a % len(lines), b % len(lines)
        if kind == "delete":
            del lines[i]
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "duplicate":
            lines.insert(j, lines[i])
        data = b"".join(lines)
        if kind == "truncate":
            data = data[: a % len(data)]
        elif kind == "flip":
            position = a % len(data)
            data = data[:position] + bytes([data[position] ^ (1 << (b % 8))]) + data[position + 1 :]
    return data


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=EDITS)
def test_every_edit_of_a_journal_is_detected(tmp_path_factory, edits) -> None:
    folder = tmp_path_factory.mktemp("edits")
    path, _ = _journal(folder, count=5)
    original = path.read_bytes()
    edited = _edit(original, edits)
    if edited == original:
        return  # swapping a line with itself: no edit
    path.write_bytes(edited)
    with pytest.raises(IntegrityError):
        Log(path).read()
