"""Query sets and graded relevance judgments, stored with a collection.

A judgment set lives in the collection's root folder, beside its versions, so it survives
re-indexing (a new version replaces ``v-*`` folders, never ``lab/``)::

    NAME/lab/judgments/SET.jsonl    the journal of one judgment set

The journal (:mod:`.journal`) is append-only: a record adds or removes a query or a judgment,
each line carries a hash chained to the line before, and a head file beside the journal records
its length, so any line changed, deleted, moved, duplicated or cut off is reported, naming the
line. Every write is one line, flushed and fsynced before it returns: a judgment is on disk the
moment :meth:`JudgmentStore.judge` returns, and an import is all or nothing. A torn last line
(being written when a process died) is dropped and cut off before the next append.
:meth:`JudgmentStore.compact` rewrites the journal with only the live records, atomically.
Journals of the first release are read and rewritten in the new format on first open.

Several processes may share a set: writes hold an exclusive ``flock`` and first read what
others appended, so every process sees every judgment.

Grades are whole numbers; the project's scale is 0 = not relevant, 1 = related, 2 = relevant,
3 = perfect (``GRADE_LABELS``). Imported grades up to ``MAX_GRADE`` (10; Cranfield uses 1-4) are
kept as they are; anything else is refused with the file, the line and the value.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .collection import collection_folder, read_manifest, validate_name
from .errors import InputError, IntegrityError
from .evaluation import Qrels, QuerySet, check_grade, load_qrels, load_queries, parse_grade
from .journal import Journal
from .storage import atomic_write, sha256_bytes

__all__ = [
    "DEFAULT_SET",
    "EXPORTERS",
    "GRADE_LABELS",
    "IMPORTERS",
    "ImportReport",
    "Judgment",
    "JudgmentStore",
    "LabQuery",
    "escape_cell",
    "export_judgments",
    "from_trec_id",
    "import_judgments",
    "lab_folder",
    "list_judgment_sets",
    "open_judgments",
    "to_trec_id",
]

DEFAULT_SET = "default"
LAB_FOLDER = "lab"
GRADE_LABELS: dict[int, str] = {0: "not relevant", 1: "related", 2: "relevant", 3: "perfect"}
"""The grading scale shown to judges."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""A CSV cell starting with one of these is run as a formula by spreadsheet programs."""

_COMPACT_MIN_STALE = 1000
"""Compact on open once at least this many journal lines are superseded (and half the file)."""


def lab_folder(name: str, home: str | Path | None = None) -> Path:
    """The relevance-lab folder of a collection (outside its versions, kept on re-index)."""
    return collection_folder(name, home) / LAB_FOLDER


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class LabQuery:
    """A query of a judgment set.

    Attributes:
        query_id: its id, unique within the set.
        text: the query text.
        tag: what the query is meant to show (optional, for breakdowns).
    """

    query_id: str
    text: str
    tag: str | None = None


@dataclass(frozen=True)
class Judgment:
    """One graded judgment.

    Attributes:
        query_id: the query judged.
        doc_id: the document judged.
        grade: 0 = not relevant ... 3 = perfect (see ``GRADE_LABELS``).
        judge: who judged (a name, ``import`` for imported judgments).
        judged_at: when, as an ISO 8601 UTC time.
    """

    query_id: str
    doc_id: str
    grade: int
    judge: str
    judged_at: str


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote, and what it found already there.

    Attributes:
        queries: queries added, or whose text or tag changed.
        judgments: judgments added, or whose grade changed.
        source: the files read.
        unchanged_queries: queries already in the set with the same text and tag.
        unchanged_judgments: judgments already in the set with the same grade.
    """

    queries: int
    judgments: int
    source: str = ""
    unchanged_queries: int = 0
    unchanged_judgments: int = 0

    def message(self) -> str:
        """What the import did, in one sentence for people."""
        written = _counts(self.queries, self.judgments)
        unchanged = _counts(self.unchanged_queries, self.unchanged_judgments)
        if not self.queries + self.judgments + self.unchanged_queries + self.unchanged_judgments:
            return "The files hold no query and no judgment: nothing added."
        if not self.unchanged_queries + self.unchanged_judgments:
            return f"Imported {written}."
        if not self.queries + self.judgments:
            return f"{unchanged[0].upper()}{unchanged[1:]} already there: nothing added."
        return f"Imported {written} (new or changed); {unchanged} already there, unchanged."


def _counts(queries: int, judgments: int) -> str:
    """``84 queries and 603 judgments``, in the singular where it is one."""
    return (
        f"{queries:,} {'query' if queries == 1 else 'queries'} and "
        f"{judgments:,} {'judgment' if judgments == 1 else 'judgments'}"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_id(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ValueError(
            f"{kind} must be a non-empty string without surrounding spaces, got {value!r}"
        )
    if "\n" in value or "\r" in value:
        raise ValueError(f"{kind} {value!r} must not contain a line break")
    return value


_TREC_ESCAPES = {"%": "%25", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D"}


def to_trec_id(value: str) -> str:
    """An id as written in TREC files, whose columns are split on whitespace.

    ``%`` and whitespace are percent-encoded (``my file.txt`` becomes ``my%20file.txt``);
    every other id is written as it is.
    """
    return "".join(_TREC_ESCAPES.get(ch, ch) for ch in value)


def from_trec_id(value: str) -> str:
    """Undo :func:`to_trec_id`."""
    if "%" not in value:
        return value
    for plain, escaped in _TREC_ESCAPES.items():
        if plain != "%":
            value = value.replace(escaped, plain)
    return value.replace("%25", "%")


# --------------------------------------------------------------------------- the store


class JudgmentStore:
    """A query set and its graded judgments, kept in a crash-safe journal.

    Open one with :func:`open_judgments`. Methods are safe to call from several threads;
    several processes may write the same set.
    """

    def __init__(self, path: Path, collection: str, set_name: str) -> None:
        self.path = path
        self.collection = collection
        self.set_name = set_name
        self._lock = threading.Lock()
        self._queries: dict[str, LabQuery] = {}
        self._judgments: dict[tuple[str, str], Judgment] = {}
        self._journal = Journal(path, self._header, self._apply, self._reset)
        with self._lock:
            self._journal.refresh()
            self._journal.upgrade()  # a first-release journal, where the folder is writable
            lines = self._journal.lines
            stale = lines - len(self._queries) - len(self._judgments) - 1
            if stale >= _COMPACT_MIN_STALE and stale * 2 >= lines:
                self._compact_locked()

    # ----------------------------------------------------------------- reading

    @property
    def queries(self) -> dict[str, LabQuery]:
        """The queries by id (a copy), in the order they were added."""
        with self._lock:
            self._journal.refresh()
            return dict(self._queries)

    def judgments(self, query_id: str | None = None) -> list[Judgment]:
        """Every current judgment (the latest per query and document), or one query's."""
        with self._lock:
            self._journal.refresh()
            found = self._judgments.values()
            return [j for j in found if query_id is None or j.query_id == query_id]

    def grade(self, query_id: str, doc_id: str) -> int | None:
        """The grade of one document for one query, or None when it is not judged."""
        with self._lock:
            self._journal.refresh()
            found = self._judgments.get((query_id, doc_id))
            return None if found is None else found.grade

    def query_set(self) -> QuerySet:
        """The queries as an :class:`~search_core.evaluation.QuerySet` (for runs)."""
        queries = self.queries
        return QuerySet(
            {q.query_id: q.text for q in queries.values()},
            {q.query_id: q.tag for q in queries.values() if q.tag},
        )

    def qrels(self) -> Qrels:
        """The judgments as ``{query_id: {doc_id: grade}}`` (for metrics)."""
        qrels: Qrels = {}
        for judgment in self.judgments():
            qrels.setdefault(judgment.query_id, {})[judgment.doc_id] = judgment.grade
        return qrels

    # ----------------------------------------------------------------- writing

    def add_query(self, query_id: str, text: str, tag: str | None = None) -> LabQuery:
        """Add a query, or change the text or tag of an existing one; saved before returning.

        Raises:
            ValueError: an empty id or text.
        """
        query = self._query(query_id, text, tag)
        self._append([_query_record(query)])
        return query

    def judge(
        self, query_id: str, doc_id: str, grade: int, judge: str = "", *, at: str | None = None
    ) -> Judgment:
        """Record one judgment; it is on disk (fsynced) when this returns.

        Args:
            query_id: a query of the set.
            doc_id: the document judged.
            grade: 0 = not relevant ... 3 = perfect.
            judge: who judged.
            at: when (ISO time); now by default.

        Raises:
            ValueError: an unknown query (the message lists some valid ones) or a bad grade.
        """
        judgment = Judgment(
            _check_id("query id", query_id),
            _check_id("document id", doc_id),
            check_grade(grade),
            str(judge),
            at or _now(),
        )
        with self._lock:
            self._journal.refresh()
            if query_id not in self._queries:
                known = list(self._queries)[:10]
                raise ValueError(
                    f"unknown query {query_id!r} in judgment set {self.set_name!r}; "
                    f"add it first (known: {', '.join(known) or 'none'})"
                )
        self._append([_judgment_record(judgment)])
        return judgment

    def remove_judgment(self, query_id: str, doc_id: str) -> None:
        """Forget one judgment (the document becomes unjudged again)."""
        self._append([{"op": "unjudge", "qid": query_id, "doc": doc_id}])

    def remove_query(self, query_id: str) -> None:
        """Remove a query and all its judgments."""
        self._append([{"op": "unquery", "qid": query_id}])

    def add_many(
        self, queries: Iterable[LabQuery] = (), judgments: Iterable[Judgment] = ()
    ) -> ImportReport:
        """Add many queries and judgments in one write (imports), skipping what is there.

        A query already in the set with the same text and tag, or a judgment with the same
        grade (whoever gave it and whenever), writes no line: importing a file twice leaves the
        journal as it was. Within one call, a later record of the same query or judgment wins.

        Returns:
            What was written and what was already there (``source`` left empty).
        """
        query_records = {
            q.query_id: _query_record(self._query(q.query_id, q.text, q.tag)) for q in queries
        }
        judgment_records = {
            (j.query_id, j.doc_id): _judgment_record(
                Judgment(
                    _check_id("query id", j.query_id),
                    _check_id("document id", j.doc_id),
                    check_grade(j.grade),
                    j.judge,
                    j.judged_at,
                )
            )
            for j in judgments
        }
        written = self._append(
            [*query_records.values(), *judgment_records.values()], skip_unchanged=True
        )
        new_queries = sum(r["op"] == "query" for r in written)
        new_judgments = len(written) - new_queries
        return ImportReport(
            queries=new_queries,
            judgments=new_judgments,
            unchanged_queries=len(query_records) - new_queries,
            unchanged_judgments=len(judgment_records) - new_judgments,
        )

    def compact(self) -> None:
        """Rewrite the journal with only the current records, atomically."""
        with self._lock:
            self._compact_locked()

    # ----------------------------------------------------------------- journal

    @staticmethod
    def _query(query_id: str, text: str, tag: str | None) -> LabQuery:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"query {query_id!r} needs a non-empty text")
        return LabQuery(_check_id("query id", query_id), text, tag or None)

    def _append(
        self, records: Sequence[Mapping[str, Any]], *, skip_unchanged: bool = False
    ) -> list[Mapping[str, Any]]:
        """Append records in one atomic write; with ``skip_unchanged``, only those that change
        the set (decided under the file lock, against everything any process has written).

        Returns:
            The records written.
        """
        with self._lock:
            keep = self._changes if skip_unchanged else None
            return list(self._journal.append([dict(r) for r in records], keep))

    def _changes(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [record for record in records if not self._unchanged(record)]

    def _unchanged(self, record: Mapping[str, Any]) -> bool:
        """Whether a query or judgment record would leave the set as it is."""
        if record["op"] == "query":
            query = self._queries.get(record["qid"])
            return query is not None and (query.text, query.tag) == (
                record["text"],
                record.get("tag"),
            )
        if record["op"] == "judge":
            judgment = self._judgments.get((record["qid"], record["doc"]))
            return judgment is not None and judgment.grade == record["grade"]
        return False

    def _reset(self) -> None:
        self._queries.clear()
        self._judgments.clear()

    def _apply(self, record: dict[str, Any]) -> None:
        op = record["op"]
        if op == "query":
            qid = record["qid"]
            self._queries[qid] = LabQuery(qid, record["text"], record.get("tag"))
        elif op == "judge":
            self._judgments[(record["qid"], record["doc"])] = Judgment(
                record["qid"],
                record["doc"],
                int(record["grade"]),
                record.get("judge", ""),
                record.get("at", ""),
            )
        elif op == "unjudge":
            self._judgments.pop((record["qid"], record["doc"]), None)
        elif op == "unquery":
            self._queries.pop(record["qid"], None)
            for key in [key for key in self._judgments if key[0] == record["qid"]]:
                del self._judgments[key]
        else:
            line = self._journal.lines + 1
            raise IntegrityError(f"{self.path}: unknown record {op!r} on line {line}")

    def _compact_locked(self) -> None:
        self._journal.rewrite(self._live_records)

    def _live_records(self) -> list[dict[str, Any]]:
        records = [_query_record(q) for q in self._queries.values()]
        return records + [_judgment_record(j) for j in self._judgments.values()]

    def _header(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "set": self.set_name,
            "created_at": _now(),
        }


def _query_record(query: LabQuery) -> dict[str, Any]:
    record: dict[str, Any] = {"op": "query", "qid": query.query_id, "text": query.text}
    if query.tag:
        record["tag"] = query.tag
    return record


def _judgment_record(judgment: Judgment) -> dict[str, Any]:
    return {
        "op": "judge",
        "qid": judgment.query_id,
        "doc": judgment.doc_id,
        "grade": judgment.grade,
        "judge": judgment.judge,
        "at": judgment.judged_at,
    }


def open_judgments(
    collection: str, set_name: str = DEFAULT_SET, home: str | Path | None = None
) -> JudgmentStore:
    """Open (or start) a judgment set of a collection.

    Args:
        collection: the collection's name; it must exist.
        set_name: the set's name (letters, digits, ``_ . -``).
        home: the collections home.

    Raises:
        CollectionError: no such collection.
        IntegrityError: a journal line is damaged (a torn last line, cut before its newline
            by a crash, is dropped instead).
        ValueError: an invalid set name.
    """
    read_manifest(collection, home)  # the collection must exist
    try:
        validate_name(set_name)
    except ValueError:
        raise ValueError(
            f"invalid judgment set name {set_name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        ) from None
    path = lab_folder(collection, home) / "judgments" / f"{set_name}.jsonl"
    return JudgmentStore(path, collection, set_name)


def list_judgment_sets(collection: str, home: str | Path | None = None) -> list[str]:
    """Names of the judgment sets of a collection."""
    folder = lab_folder(collection, home) / "judgments"
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


# --------------------------------------------------------------------------- import


def _import_beir(store: JudgmentStore, path: Path, judge: str, split: str = "test") -> ImportReport:
    """A BEIR folder: ``queries.jsonl`` and ``qrels/SPLIT.tsv``."""
    queries_path = path / "queries.jsonl"
    qrels_path = path / "qrels" / f"{split}.tsv"
    if path.is_file():
        raise InputError(path, "a BEIR import takes the dataset folder (queries.jsonl, qrels/)")
    return _import_files(store, queries_path, qrels_path, judge)


def _import_trec(
    store: JudgmentStore, path: Path, judge: str, queries: Path | None = None
) -> ImportReport:
    """TREC qrels (``qid iter docid grade``) with the topics of ``queries`` (TSV or JSONL).

    Without ``queries``, the judged query ids must already be in the set.
    """
    return _import_files(store, queries, path, judge)


def _import_files(
    store: JudgmentStore, queries_path: Path | None, qrels_path: Path, judge: str
) -> ImportReport:
    query_set = load_queries(queries_path) if queries_path is not None else QuerySet({}, {})
    qrels = load_qrels(qrels_path)
    known = set(store.queries) | set(query_set.queries)
    missing = sorted(set(qrels) - known)
    if missing:
        raise InputError(
            qrels_path,
            f"{len(missing)} judged queries have no text (e.g. {', '.join(missing[:5])}); "
            "give the queries file too",
        )
    at = _now()
    lab_queries = [LabQuery(q, t, query_set.tags.get(q)) for q, t in query_set.queries.items()]
    judgments = [
        Judgment(from_trec_id(q), from_trec_id(d), g, judge, at)
        for q, docs in qrels.items()
        for d, g in docs.items()
    ]
    try:
        report = store.add_many(lab_queries, judgments)
    except ValueError as exc:
        raise InputError(qrels_path, str(exc)) from None
    sources = [str(p) for p in (queries_path, qrels_path) if p is not None]
    return replace(report, source=", ".join(sources))


CSV_COLUMNS = ("query_id", "query", "doc_id", "grade", "judge", "judged_at")
"""Columns of an exported CSV; an import needs ``query`` or ``query_id``, ``doc_id``, ``grade``."""


def _import_csv(store: JudgmentStore, path: Path, judge: str) -> ImportReport:
    """A CSV with a header: ``query, doc_id, grade`` and optionally ``query_id, judge, judged_at``.

    A query without an id gets the id of a set query with the same text, or a new id made from
    its text (``q-`` and 10 hex digits of its sha256, so re-importing the file is idempotent).
    Cells escaped on export (a leading ``'`` before ``= + - @``) are read back unescaped.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {c.strip().lower(): c for c in reader.fieldnames or ()}
    if not {"doc_id", "grade"} <= set(columns) or not {"query", "query_id"} & set(columns):
        found = ", ".join(columns) or "nothing"
        problem = f"the header needs query (or query_id), doc_id and grade; found {found}"
        raise InputError(path, problem, 1)
    by_text = {q.text: q.query_id for q in store.queries.values()}
    known = dict(store.queries)
    queries: dict[str, LabQuery] = {}
    judgments: list[Judgment] = []
    at = _now()
    for number, row in enumerate(reader, start=2):
        query_text, query_id, doc_id = (
            _cell(row, columns, c) for c in ("query", "query_id", "doc_id")
        )
        if not doc_id:
            raise InputError(path, "empty doc_id", number)
        if not query_id:
            if not query_text:
                raise InputError(path, "empty query", number)
            query_id = by_text.get(query_text) or "q-" + sha256_bytes(query_text.encode())[:10]
        if query_text and query_id not in queries:
            queries[query_id] = LabQuery(query_id, query_text)
            by_text[query_text] = query_id
        elif query_id not in queries and query_id not in known:
            raise InputError(path, f"query {query_id!r} is new and has no text", number)
        grade_text = _cell(row, columns, "grade")
        try:
            grade = parse_grade(grade_text)
            _check_id("document id", doc_id)
            _check_id("query id", query_id)
        except ValueError as exc:
            raise InputError(path, str(exc), number) from None
        who, when = _cell(row, columns, "judge") or judge, _cell(row, columns, "judged_at") or at
        judgments.append(Judgment(query_id, doc_id, grade, who, when))
    return replace(store.add_many(queries.values(), judgments), source=str(path))


def _cell(row: Mapping[str, str | None], columns: Mapping[str, str], name: str) -> str:
    return _unescape_cell((row.get(columns[name]) or "").strip()) if name in columns else ""


Importer = Callable[..., ImportReport]

IMPORTERS: dict[str, Importer] = {"beir": _import_beir, "trec": _import_trec, "csv": _import_csv}
"""Judgment importers by format name."""


def import_judgments(
    store: JudgmentStore,
    fmt: str,
    path: str | Path,
    *,
    queries: str | Path | None = None,
    judge: str = "import",
) -> ImportReport:
    """Import queries and judgments into a set (later records win over earlier ones).

    Records already in the set (a query with the same text and tag, a judgment with the same
    grade) are left as they are and write nothing, so importing a file again adds nothing.

    Args:
        store: the judgment set.
        fmt: ``beir`` (a dataset folder with ``queries.jsonl`` and ``qrels/test.tsv``),
            ``trec`` (a qrels file; ``queries`` gives the topics) or ``csv``
            (``query, doc_id, grade`` with a header).
        path: the folder or file.
        queries: the topics file for ``trec`` (TSV ``id<TAB>text`` or BEIR JSONL).
        judge: recorded as who judged, unless the file says.

    Raises:
        ValueError: an unknown format (the message lists the valid ones).
        InputError: the file cannot be read; the message names the file and line.
    """
    try:
        importer = IMPORTERS[fmt]
    except KeyError:
        valid = ", ".join(IMPORTERS)
        raise ValueError(f"unknown judgment format {fmt!r}; valid: {valid}") from None
    if fmt == "trec":
        return importer(store, Path(path), judge, Path(queries) if queries else None)
    if queries is not None:
        raise ValueError(f"--queries applies to the trec format only, not {fmt!r}")
    return importer(store, Path(path), judge)


# --------------------------------------------------------------------------- export


def escape_cell(value: str) -> str:
    """Escape a CSV cell a spreadsheet would run as a formula (OWASP "CSV injection").

    A cell starting with ``= + - @``, a tab or a carriage return gets a leading ``'``.
    """
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _unescape_cell(value: str) -> str:
    if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


def _export_trec(store: JudgmentStore) -> bytes:
    """TREC qrels: ``qid 0 docid grade`` a line."""
    lines = [
        f"{to_trec_id(j.query_id)} 0 {to_trec_id(j.doc_id)} {j.grade}\n"
        for j in _sorted(store.judgments())
    ]
    return "".join(lines).encode("utf-8")


def _export_csv(store: JudgmentStore) -> bytes:
    """CSV with the columns of ``CSV_COLUMNS``, formula-looking cells escaped."""
    queries = store.queries
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for j in _sorted(store.judgments()):
        text = queries[j.query_id].text if j.query_id in queries else ""
        row = [j.query_id, text, j.doc_id, str(j.grade), j.judge, j.judged_at]
        writer.writerow([escape_cell(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")


def _sorted(judgments: Iterable[Judgment]) -> list[Judgment]:
    return sorted(judgments, key=lambda j: (j.query_id, j.doc_id))


EXPORTERS: dict[str, Callable[[JudgmentStore], bytes]] = {"trec": _export_trec, "csv": _export_csv}
"""Judgment exporters by format name; each returns the file's bytes."""


def export_judgments(store: JudgmentStore, fmt: str, path: str | Path) -> int:
    """Write a set's judgments to a file, atomically.

    Args:
        store: the judgment set.
        fmt: ``trec`` (qrels) or ``csv``.
        path: the file to write.

    Returns:
        The number of judgments written.

    Raises:
        ValueError: an unknown format (the message lists the valid ones).
    """
    try:
        exporter = EXPORTERS[fmt]
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORTERS)}") from None
    atomic_write(Path(path), exporter(store))
    return len(store.judgments())
