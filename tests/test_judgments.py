from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from search_core.collection import build_collection
from search_core.errors import CollectionError, InputError, IntegrityError
from search_core.ingest import IngestReport
from search_core.journal import GENESIS, chain_of
from search_core.judgments import (
    IMPORTERS,
    ImportReport,
    escape_cell,
    export_judgments,
    from_trec_id,
    import_judgments,
    lab_folder,
    list_judgment_sets,
    open_judgments,
    to_trec_id,
)
from search_core.storage import sha256_bytes
from search_core.types import Document

REPO = Path(__file__).resolve().parents[1]
DOCS = (
    Document("brakes", "Brake pads wear and squeal when they are thin."),
    Document("refund", "Refunds are paid back within five days."),
)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A collections home holding a two-document collection named ``shop``."""
    home = tmp_path_factory.mktemp("judgments")
    build_collection("shop", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=embedder)
    return home


@pytest.fixture
def store(lab_home: Path, request: pytest.FixtureRequest):
    """A fresh judgment set of ``shop``, named after the test."""
    node = request.node.name
    name = (
        re.sub(r"[^A-Za-z0-9_.-]+", "-", node)[:40].strip("-.")
        + "-"
        + sha256_bytes(node.encode())[:8]
    )
    return open_judgments("shop", name, lab_home)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_judgments_are_saved_at_once_and_reload(store, lab_home: Path) -> None:
    store.add_query("q1", "squealing brakes", tag="paraphrase")
    store.judge("q1", "brakes", 3, "ana")
    store.judge("q1", "refund", 2, "ana")
    store.judge("q1", "refund", 0, "ana")  # her later grade replaces her earlier one
    store.judge("q1", "refund", 3, "ben")  # another judge's grade is kept beside hers

    again = open_judgments("shop", store.set_name, lab_home)
    assert again.qrels() == {"q1": {"brakes": 3, "refund": 2}}  # the mean of 0 and 3, rounded
    assert again.qrels("minimum") == {"q1": {"brakes": 3, "refund": 0}}
    assert again.query_set().queries == {"q1": "squealing brakes"}
    assert again.query_set().tags == {"q1": "paraphrase"}
    refund = {j.judge: j for j in again.judgments() if j.doc_id == "refund"}
    assert {judge: j.grade for judge, j in refund.items()} == {"ana": 0, "ben": 3}
    assert refund["ben"].judged_at.endswith("+00:00")
    assert again.judges() == ["ana", "ben"]
    assert again.grade("q1", "brakes") == 3 and again.grade("q1", "nope") is None
    assert again.grade("q1", "refund", "ana") == 0 and again.grade("q1", "brakes", "ben") is None


def test_every_journal_line_is_chained_to_the_one_before(store) -> None:
    store.add_query("q1", "brakes")
    store.judge("q1", "brakes", 2)
    chain = GENESIS
    for line in _lines(store.path):
        checksum, _, body = line.rstrip(b"\n").partition(b" ")
        assert chain_of(chain, body) == checksum.decode()
        assert json.loads(body)["op"] in {"header", "query", "judge"}
        chain = checksum.decode()


def test_lab_lives_beside_the_versions_and_survives_reindexing(tmp_path: Path, embedder) -> None:
    report = IngestReport(DOCS, 0, (), 1, ())
    collection = build_collection("kept", report, home=tmp_path, embedder=embedder)
    store = open_judgments("kept", home=tmp_path)
    store.add_query("q1", "refund")
    store.judge("q1", "refund", 3)
    assert lab_folder("kept", tmp_path) == collection.folder.parent / "lab"

    build_collection("kept", report, home=tmp_path, embedder=embedder)  # a new version
    assert open_judgments("kept", home=tmp_path).qrels() == {"q1": {"refund": 3}}


def test_a_torn_last_line_is_dropped_and_cut_before_the_next_write(store) -> None:
    store.add_query("q1", "brakes")
    store.judge("q1", "brakes", 2)
    with store.path.open("ab") as handle:
        handle.write(b'0123 {"op":"judge","qid":"q1","doc":"ref')  # a crash mid-write

    reopened = open_judgments("shop", store.set_name, store.path.parents[3])
    assert reopened.qrels() == {"q1": {"brakes": 2}}
    reopened.judge("q1", "refund", 1)
    assert all(line.endswith(b"\n") for line in _lines(store.path))
    assert open_judgments("shop", store.set_name, store.path.parents[3]).qrels() == {
        "q1": {"brakes": 2, "refund": 1}
    }


def test_a_damaged_line_inside_the_journal_is_refused(store) -> None:
    store.add_query("q1", "brakes")
    store.judge("q1", "brakes", 2)
    store.judge("q1", "refund", 0)
    lines = _lines(store.path)
    lines[2] = lines[2].replace(b'"grade":2', b'"grade":3')
    store.path.write_bytes(b"".join(lines))
    with pytest.raises(IntegrityError, match="line 3 does not follow"):
        open_judgments("shop", store.set_name, store.path.parents[3])


def test_compaction_keeps_only_live_records(store) -> None:
    store.add_query("q1", "brakes")
    store.add_query("q2", "refund")
    for grade in (0, 1, 2, 3):
        store.judge("q1", "brakes", grade)
    store.judge("q2", "refund", 3)
    store.remove_query("q2")
    before = store.qrels()
    store.compact()
    assert len(_lines(store.path)) == 1 + 1 + 1  # header, q1, its judgment
    assert open_judgments("shop", store.set_name, store.path.parents[3]).qrels() == before
    assert store.qrels() == before == {"q1": {"brakes": 3}}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.judge("missing", "brakes", 1), "unknown query 'missing'"),
        (lambda s: s.judge("q1", "brakes", -1), "out of range"),
        (lambda s: s.judge("q1", "brakes", True), "not a whole number"),
        (lambda s: s.judge("q1", "brakes", 2.7), "not a whole number"),
        (lambda s: s.judge("q1", "brakes", 11), "out of range"),
        (lambda s: s.judge("q1", " brakes", 1), "surrounding spaces"),
        (lambda s: s.add_query("q2", "  "), "non-empty text"),
    ],
    ids=["unknown-query", "negative", "bool", "fraction", "above-range", "spaces", "empty-text"],
)
def test_invalid_judgments_are_refused(store, call, message: str) -> None:
    store.add_query("q1", "brakes")
    with pytest.raises(ValueError, match=message):
        call(store)


def test_a_set_needs_an_existing_collection(lab_home: Path) -> None:
    with pytest.raises(CollectionError, match="no collection named 'absent'"):
        open_judgments("absent", home=lab_home)


def _beir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text(
        '{"_id": "1", "text": "squealing brakes"}\n{"_id": "2", "text": "money back"}\n'
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n1\tbrakes\t2\n2\trefund\t3\n2\tbrakes\t0\n"
    )
    return folder


def test_import_beir(store, tmp_path: Path) -> None:
    report = import_judgments(store, "beir", _beir_folder(tmp_path))
    assert (report.queries, report.judgments) == (2, 3)
    assert store.qrels() == {"1": {"brakes": 2}, "2": {"refund": 3, "brakes": 0}}
    assert {j.judge for j in store.judgments()} == {"import"}


def test_import_trec_with_topics_and_ids_holding_spaces(store, tmp_path: Path) -> None:
    topics = tmp_path / "topics.tsv"
    topics.write_text("7\tbrake noise\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("7 0 brakes 2\n7 0 my%20notes.txt 1\n")
    import_judgments(store, "trec", qrels, queries=topics, judge="trec")
    assert store.qrels() == {"7": {"brakes": 2, "my notes.txt": 1}}


def test_import_trec_without_the_query_texts_names_the_file(store, tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("7 0 brakes 2\n")
    with pytest.raises(InputError, match=r"qrels\.txt: 1 judged queries have no text"):
        import_judgments(store, "trec", qrels)


def test_import_csv_gives_queries_stable_ids(store, tmp_path: Path) -> None:
    path = tmp_path / "judged.csv"
    path.write_text("query,doc_id,grade\nsquealing brakes,brakes,3\nsquealing brakes,refund,0\n")
    import_judgments(store, "csv", path)
    import_judgments(store, "csv", path)  # idempotent: the same ids again
    (qid,) = store.queries
    assert qid.startswith("q-") and store.qrels() == {qid: {"brakes": 3, "refund": 0}}


def _import_files(tmp_path: Path) -> dict[str, tuple[Path, dict]]:
    """The same two queries and three judgments in each import format."""
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tsquealing brakes\n2\tmoney back\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 brakes 2\n2 0 refund 3\n2 0 brakes 0\n")
    judged = tmp_path / "judged.csv"
    judged.write_text("query_id,query,doc_id,grade\n1,squealing brakes,brakes,2\n")
    with judged.open("a") as out:
        out.write("2,money back,refund,3\n2,money back,brakes,0\n")
    return {
        "beir": (_beir_folder(tmp_path), {}),
        "trec": (qrels, {"queries": topics}),
        "csv": (judged, {}),
    }


@pytest.mark.parametrize("fmt", list(IMPORTERS))
def test_importing_the_same_files_again_writes_nothing(store, tmp_path: Path, fmt: str) -> None:
    path, extra = _import_files(tmp_path)[fmt]
    first = import_judgments(store, fmt, path, **extra)
    assert (first.queries, first.judgments) == (2, 3)
    assert first.message() == "Imported 2 queries and 3 judgments."
    journal = store.path.read_bytes()

    again = import_judgments(store, fmt, path, **extra)
    assert store.path.read_bytes() == journal  # not one line added
    assert (again.queries, again.judgments) == (0, 0)
    assert (again.unchanged_queries, again.unchanged_judgments) == (2, 3)
    assert again.message() == "2 queries and 3 judgments already there: nothing added."

    other = import_judgments(store, fmt, path, judge="someone else", **extra)
    assert (other.queries, other.judgments) == (0, 3)  # another judge's grades, kept beside
    assert store.judges() == ["import", "someone else"]


def test_a_second_import_writes_only_what_changed(store, tmp_path: Path) -> None:
    folder = _beir_folder(tmp_path)
    import_judgments(store, "beir", folder)
    lines = len(_lines(store.path))
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text().replace("2\trefund\t3", "2\trefund\t1") + "1\tfuel\t1\n")

    report = import_judgments(store, "beir", folder)
    assert len(_lines(store.path)) == lines + 1  # one atomic line: the import is all or nothing
    batch = json.loads(_lines(store.path)[-1].split(b" ", 1)[1])
    assert len(batch["records"]) == 2  # the changed grade and the new judgment
    assert (report.queries, report.judgments) == (0, 2)
    assert (report.unchanged_queries, report.unchanged_judgments) == (2, 2)
    assert report.message() == (
        "Imported 0 queries and 2 judgments (new or changed); "
        "2 queries and 2 judgments already there, unchanged."
    )
    assert store.qrels() == {"1": {"brakes": 2, "fuel": 1}, "2": {"refund": 1, "brakes": 0}}


def test_within_one_import_the_later_record_wins(store, tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("query_id,query,doc_id,grade\n1,brakes,brakes,1\n1,brakes,brakes,3\n")
    report = import_judgments(store, "csv", path)
    assert (report.queries, report.judgments) == (1, 1)
    assert store.qrels() == {"1": {"brakes": 3}}


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ((1, 1, 0, 0), "Imported 1 query and 1 judgment."),
        ((0, 0, 84, 603), "84 queries and 603 judgments already there: nothing added."),
        ((0, 0, 0, 0), "The files hold no query and no judgment: nothing added."),
    ],
)
def test_import_messages(counts: tuple[int, int, int, int], message: str) -> None:
    queries, judgments, unchanged_queries, unchanged_judgments = counts
    report = ImportReport(queries, judgments, "x", unchanged_queries, unchanged_judgments)
    assert report.message() == message


def test_judge_import_on_the_command_line_says_what_was_already_there(
    lab_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search_core.cli import main

    folder = _beir_folder(tmp_path)
    command = ["--home", str(lab_home), "judge", "import", "shop", "beir", str(folder)]
    assert main([*command, "--set", "cli-twice"]) == 0
    assert "Imported 2 queries and 3 judgments." in capsys.readouterr().out
    journal = open_judgments("shop", "cli-twice", lab_home).path
    lines = _lines(journal)
    assert main([*command, "--set", "cli-twice"]) == 0
    assert "2 queries and 3 judgments already there: nothing added." in capsys.readouterr().out
    assert _lines(journal) == lines


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (lambda lines: [*lines[:2], lines[3], lines[2]], 3),  # the two judgments swapped
        (lambda lines: lines[:3], 4),  # the last judgment deleted
        (lambda lines: [*lines[:3], lines[2], lines[3]], 4),  # a judgment repeated
    ],
    ids=["swapped", "deleted", "duplicated"],
)
def test_an_edited_journal_stops_the_export_naming_the_line(
    lab_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, line: int
) -> None:
    # The first release exported grade 1 again after the swap, with exit 0.
    from search_core.cli import main

    name = f"edited-{line}-{len(edit(list(range(4))))}"
    base = ["--home", str(lab_home), "judge"]
    assert main([*base, "add", "shop", "q1", "brakes", "1", "--query", "x", "--set", name]) == 0
    assert main([*base, "add", "shop", "q1", "brakes", "0", "--set", name]) == 0
    journal = open_judgments("shop", name, lab_home).path
    journal.write_bytes(b"".join(edit(_lines(journal))))
    capsys.readouterr()
    out = tmp_path / "qrels.txt"
    assert main([*base, "export", "shop", "trec", str(out), "--set", name]) != 0
    assert f"line {line}" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("query,doc_id\nx,brakes\n", 1),
        ("query,doc_id,grade\nx,brakes,high\n", 2),
        ("query,doc_id,grade\nx,,2\n", 2),
        ("query,doc_id,grade\nx,a,1\nx,brakes,2.7\n", 3),
        ("query,doc_id,grade\nx,brakes,inf\n", 2),
        ("query,doc_id,grade\nx,brakes,1e308\n", 2),
        ("query,doc_id,grade\nx,brakes,11\n", 2),
    ],
    ids=["no-grade-column", "word", "no-doc", "fraction", "inf", "huge", "above-range"],
)
def test_bad_csv_names_file_and_line(store, tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=rf"bad\.csv, line {line}"):
        import_judgments(store, "csv", path)


@pytest.mark.parametrize("grade", ["2.7", "inf", "nan", "1e999", "1e308", "-1", "11"])
def test_bad_trec_grades_are_refused_with_file_line_and_value(
    store, tmp_path: Path, grade: str
) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(f"q1 0 brakes 1\nq1 0 refund {grade}\n")
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tbrakes\n")
    with pytest.raises(InputError, match=rf"qrels\.txt, line 2.*{re.escape(grade)}"):
        import_judgments(store, "trec", qrels, queries=topics)
    assert store.qrels() == {}  # nothing of the file was kept


def test_unknown_format_lists_the_valid_ones(store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid: " + ", ".join(IMPORTERS)):
        import_judgments(store, "xlsx", tmp_path / "x.xlsx")
    with pytest.raises(ValueError, match="valid: trec, csv"):
        export_judgments(store, "xlsx", tmp_path / "x.xlsx")


def test_export_trec_qrels(store, tmp_path: Path) -> None:
    store.add_query("q1", "brakes")
    store.judge("q1", "refund", 0)
    store.judge("q1", "my notes.txt", 2)
    out = tmp_path / "out.qrels"
    assert export_judgments(store, "trec", out) == 2
    assert out.read_text() == "q1 0 my%20notes.txt 2\nq1 0 refund 0\n"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_csv_export_escapes_formulas_and_reads_back(store, tmp_path: Path, prefix: str) -> None:
    query = f'{prefix}HYPERLINK("http://evil")'
    store.add_query("q1", query)
    store.judge("q1", f"{prefix}doc", 2, judge=f"{prefix}ana")
    out = tmp_path / "out.csv"
    assert export_judgments(store, "judges-csv", out) == 1
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["query"] == "'" + query
    assert rows[0]["doc_id"] == f"'{prefix}doc" and rows[0]["judge"] == f"'{prefix}ana"

    copy = open_judgments("shop", store.set_name + "-copy", store.path.parents[3])
    import_judgments(copy, "csv", out)
    assert copy.qrels() == {"q1": {f"{prefix}doc": 2}}
    assert copy.queries["q1"].text == query
    assert [j.judge for j in copy.judgments()] == [f"{prefix}ana"]

    combined = tmp_path / "combined.csv"
    export_judgments(store, "csv", combined)
    row = next(csv.DictReader(io.StringIO(combined.read_text())))
    assert row["query"] == "'" + query and row["judges"] == f"'{prefix}ana"


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [("=1+1", "'=1+1"), ("plain", "plain"), ("\tx", "'\tx"), ("a=b", "a=b"), ("", "")],
)
def test_escape_cell(cell: str, escaped: str) -> None:
    assert escape_cell(cell) == escaped


@pytest.mark.parametrize("value", ["doc-1", "my notes.txt", "50%", "a\tb", "%20"])
def test_trec_ids_round_trip(value: str) -> None:
    encoded = to_trec_id(value)
    assert len(encoded.split()) == 1 and from_trec_id(encoded) == value


def test_sets_are_listed(lab_home: Path) -> None:
    open_judgments("shop", "listed", lab_home).add_query("q", "brakes")
    assert "listed" in list_judgment_sets("shop", lab_home)


CHILD = textwrap.dedent(
    """
    import sys
    from search_core.judgments import open_judgments

    store = open_judgments("shop", "crash", sys.argv[1])
    store.add_query("q1", "brakes")
    n = 0
    while True:
        store.judge("q1", f"doc-{n}", n % 4, "robot")
        print(n, flush=True)  # printed only once the judgment is on disk
        n += 1
    """
)


def test_sigkill_while_judging_loses_at_most_the_judgment_being_written(lab_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lab_home)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert child.stdout is not None
    try:
        acknowledged = [int(child.stdout.readline()) for _ in range(40)]
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=60)
    acknowledged += [int(n) for n in rest.split()]
    assert child.returncode == -signal.SIGKILL
    saved = open_judgments("shop", "crash", lab_home).qrels()["q1"]  # checksums verified
    written = len(acknowledged)
    assert {f"doc-{n}" for n in range(written)} <= set(saved)
    assert len(saved) in (written, written + 1)
    assert all(saved[f"doc-{n}"] == n % 4 for n in range(written))


IMPORT_ROWS = 20_000


def _run_import(home: Path, csv_file: Path, set_name: str, kill_after: float | None) -> int:
    """``search-explorer judge import`` in a child, killed after ``kill_after`` s if given."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "search_core.cli", "--home", str(home), "judge", "import"]
    child = subprocess.Popen(
        [*argv, "shop", "csv", str(csv_file), "--set", set_name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if kill_after is not None:
        try:
            child.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
    return child.wait(timeout=120)


def test_a_killed_import_is_all_or_nothing(lab_home: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "big.csv"
    rows = (f"q{n % 500},d{n},{n % 4}" for n in range(IMPORT_ROWS))
    csv_file.write_text(
        "query_id,query,doc_id,grade\n"
        + "\n".join(
            f"{row.split(',')[0]},text of {row.split(',')[0]},{row.split(',', 1)[1]}"
            for row in rows
        )
        + "\n"
    )
    start = time.perf_counter()
    assert _run_import(lab_home, csv_file, "whole", None) == 0
    duration = time.perf_counter() - start
    assert len(open_judgments("shop", "whole", lab_home).judgments()) == IMPORT_ROWS

    rng = random.Random(12)
    seen = set()
    for round_number in range(20):
        moment = rng.uniform(0.3, duration)
        code = _run_import(lab_home, csv_file, f"killed-{round_number}", moment)
        store = open_judgments("shop", f"killed-{round_number}", lab_home)  # verified
        visible = len(store.judgments())
        assert visible in (0, IMPORT_ROWS), (moment, visible)
        assert len(store.queries) in (0, 500)
        seen.add((code == -signal.SIGKILL, visible))
        if store.queries:  # the set takes writes again
            store.judge("q1", "after", 1)
    assert (True, 0) in seen  # some kills landed before the write
