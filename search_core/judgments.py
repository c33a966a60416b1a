"""Query sets, every judge's graded judgments and judging pools, stored with a collection.

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

Several judges may grade the same (query, document) pair: the set keeps each judge's latest
grade (a judge's earlier grades stay in the journal), and a lead may set a pair's final grade
(:meth:`JudgmentStore.adjudicate`). Metrics need one grade per pair: :meth:`JudgmentStore.qrels`
combines them with a rule of :data:`~search_core.combining.COMBINING_RULES`. The journal also
holds the set's guidelines for judges and its judging pools with the pairs handed to each judge
(:mod:`.pooling` decides those, under the journal's lock).

Grades are whole numbers; the project's scale is 0 = not relevant, 1 = related, 2 = relevant,
3 = perfect (``GRADE_LABELS``). Imported grades up to ``MAX_GRADE`` (10; Cranfield uses 1-4) are
kept as they are; anything else is refused with the file, the line and the value.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .collection import collection_folder, read_manifest, validate_name
from .combining import DEFAULT_RULE, combine
from .embedding import clean_text
from .errors import InputError, IntegrityError
from .evaluation import Qrels, QuerySet, check_grade, load_qrels, load_queries, parse_grade
from .journal import Journal
from .storage import atomic_write, sha256_bytes

__all__ = [
    "DEFAULT_GUIDELINES",
    "DEFAULT_SET",
    "EXPORTERS",
    "GRADE_LABELS",
    "IMPORTERS",
    "Assignment",
    "ImportReport",
    "Judgment",
    "JudgmentState",
    "JudgmentStore",
    "LabQuery",
    "Pool",
    "check_id",
    "checked",
    "escape_cell",
    "export_bytes",
    "export_judgments",
    "from_trec_id",
    "import_judgments",
    "lab_folder",
    "list_judgment_sets",
    "new_judgment",
    "now",
    "open_judgments",
    "to_trec_id",
]

DEFAULT_SET = "default"
LAB_FOLDER = "lab"
GRADE_LABELS: dict[int, str] = {0: "not relevant", 1: "related", 2: "relevant", 3: "perfect"}
"""The grading scale shown to judges."""

DEFAULT_GUIDELINES = """Read the information need first: grade the document for what the \
searcher wants, not for the words it shares with the query.
3 perfect: it answers the need by itself; the searcher would stop here.
2 relevant: it answers a substantial part of the need.
1 related: it is on the topic but does not answer the need (background, a near miss).
0 not relevant: it does not help, even if it uses the same words (another order, product or \
version, say).
When unsure between two grades, pick the lower one. Skip a document you cannot judge."""
"""Guidelines shown to judges of a set that has none of its own."""

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
        description: the information need behind it, as judges read it (optional): what the
            searcher wants and what counts as relevant.
    """

    query_id: str
    text: str
    tag: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Judgment:
    """One judge's grade of one document for one query.

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

    def record(self, op: str = "judge") -> dict[str, Any]:
        """The journal record of this grade (``op`` ``adjudicate`` for a final grade)."""
        return {
            "op": op,
            "qid": self.query_id,
            "doc": self.doc_id,
            "grade": self.grade,
            "judge": self.judge,
            "at": self.judged_at,
        }


@dataclass(frozen=True)
class Pool:
    """The (query, document) pairs to judge, pooled from the top of several configurations.

    Attributes:
        name: the pool's name, unique within the set.
        pairs: the pairs, query by query in the order the set holds the queries.
        depth: how deep each configuration's ranking was pooled (its top ``depth`` documents).
        replicates: grades each pair needs (1; 3 or more for an agreement study).
        sources: the configurations (or runs) pooled.
        created_at: when, as an ISO 8601 UTC time.
        created_by: who made it.
    """

    name: str
    pairs: tuple[tuple[str, str], ...]
    depth: int
    replicates: int
    sources: tuple[str, ...]
    created_at: str = ""
    created_by: str = ""

    def record(self) -> dict[str, Any]:
        """The journal record of this pool."""
        return {
            "op": "pool",
            "name": self.name,
            "pairs": [list(pair) for pair in self.pairs],
            "depth": self.depth,
            "replicates": self.replicates,
            "sources": list(self.sources),
            "at": self.created_at,
            "by": self.created_by,
        }


@dataclass(frozen=True)
class Assignment:
    """A pair handed to a judge, held for them until they grade or skip it, or it expires.

    Attributes:
        pool: the pool.
        query_id: the query.
        doc_id: the document.
        judge: who holds it.
        at: when it was handed out (ISO 8601 UTC).
    """

    pool: str
    query_id: str
    doc_id: str
    judge: str
    at: str

    def record(self) -> dict[str, Any]:
        """The journal record of this assignment."""
        return {
            "op": "assign",
            "pool": self.pool,
            "judge": self.judge,
            "qid": self.query_id,
            "doc": self.doc_id,
            "at": self.at,
        }


@dataclass
class JudgmentState:
    """Everything a judgment set's journal holds, as read so far (owned by its store).

    Attributes:
        queries: query id to query, in the order they were added.
        grades: (query id, doc id) to each judge's latest grade.
        adjudicated: (query id, doc id) to the grade a lead set as final.
        guidelines: the set's guidelines for judges ("" when none were written).
        pools: pool name to pool.
        assignments: (pool, judge) to the pairs handed to that judge in that pool and held
            for them, the one to grade first first (the next one is fetched ahead).
        skipped: (pool, judge) to the pairs that judge skipped.
    """

    queries: dict[str, LabQuery] = field(default_factory=dict)
    grades: dict[tuple[str, str], dict[str, Judgment]] = field(default_factory=dict)
    adjudicated: dict[tuple[str, str], Judgment] = field(default_factory=dict)
    guidelines: str = ""
    pools: dict[str, Pool] = field(default_factory=dict)
    assignments: dict[tuple[str, str], tuple[Assignment, ...]] = field(default_factory=dict)
    skipped: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)

    def judgment_count(self) -> int:
        """Grades held, every judge's counted."""
        return sum(len(by_judge) for by_judge in self.grades.values())


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote, and what it found already there.

    Attributes:
        queries: queries added, or whose text, tag or description changed.
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


def now() -> str:
    """The time now, as the journal records it (ISO 8601 UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_judgment(
    query_id: str, doc_id: str, grade: int, judge: str, at: str | None = None
) -> Judgment:
    """A judgment with its ids and grade checked, given now unless ``at`` says when.

    Raises:
        ValueError: an empty or multi-line id, or a grade out of range.
    """
    return Judgment(
        check_id("query id", query_id),
        check_id("document id", doc_id),
        check_grade(grade),
        str(judge),
        at or now(),
    )


def checked(judgment: Judgment) -> Judgment:
    """``judgment`` with its ids and grade checked (see :func:`new_judgment`)."""
    return new_judgment(
        judgment.query_id, judgment.doc_id, judgment.grade, judgment.judge, judgment.judged_at
    )


def check_id(kind: str, value: Any) -> str:
    """An id of a query, document, judge or pool: a non-empty string, no surrounding space,
    no line break.

    Raises:
        ValueError: anything else, naming ``kind``.
    """
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

Transaction = Callable[[JudgmentState], Sequence[Mapping[str, Any]]]
"""Reads the state under the journal's lock and returns the records to write."""


class JudgmentStore:
    """A query set, every judge's grades and the judging pools, kept in a crash-safe journal.

    Open one with :func:`open_judgments`. Methods are safe to call from several threads;
    several processes may write the same set (the journal's file lock serializes them, and
    :meth:`transact` decides what to write after reading what every other process wrote).
    """

    def __init__(self, path: Path, collection: str, set_name: str) -> None:
        self.path = path
        self.collection = collection
        self.set_name = set_name
        self._lock = threading.Lock()
        self._state = JudgmentState()
        self._journal = Journal(path, self._header, self._apply, self._reset)
        with self._lock:
            self._journal.refresh()
            self._journal.upgrade()  # a first-release journal, where the folder is writable
            lines = self._journal.lines
            stale = lines - len(self._live_records()) - 1
            if stale >= _COMPACT_MIN_STALE and stale * 2 >= lines:
                self._compact_locked()

    # ----------------------------------------------------------------- reading

    def read(self, reader: Callable[[JudgmentState], _T]) -> _T:
        """Call ``reader`` on the current state (everything any process wrote), under the
        store's lock; ``reader`` must not change the state or keep references into it."""
        with self._lock:
            self._journal.refresh()
            return reader(self._state)

    @property
    def queries(self) -> dict[str, LabQuery]:
        """The queries by id (a copy), in the order they were added."""
        return self.read(lambda state: dict(state.queries))

    @property
    def guidelines(self) -> str:
        """The set's guidelines for judges ("" when none were written)."""
        return self.read(lambda state: state.guidelines)

    def judgments(self, query_id: str | None = None, *, judge: str | None = None) -> list[Judgment]:
        """Every judge's current grade (their latest per query and document), or one query's,
        or one judge's."""

        def collect(state: JudgmentState) -> list[Judgment]:
            return [
                j
                for by_judge in state.grades.values()
                for j in by_judge.values()
                if (query_id is None or j.query_id == query_id)
                and (judge is None or j.judge == judge)
            ]

        return self.read(collect)

    def adjudications(self) -> list[Judgment]:
        """The final grades a lead set (``judge`` is the lead)."""
        return self.read(lambda state: list(state.adjudicated.values()))

    def judges(self) -> list[str]:
        """Everyone who holds a grade in the set, sorted."""
        return self.read(
            lambda state: sorted({j for by_judge in state.grades.values() for j in by_judge})
        )

    def grade(self, query_id: str, doc_id: str, judge: str | None = None) -> int | None:
        """A judge's grade of a document for a query; without ``judge`` the combined grade
        (:data:`DEFAULT_RULE`); None when it is not judged."""
        if judge is not None:
            return self.read(
                lambda state: _grade_of(state.grades.get((query_id, doc_id), {}).get(judge))
            )
        return self.qrels().get(query_id, {}).get(doc_id)

    def query_set(self) -> QuerySet:
        """The queries as an :class:`~search_core.evaluation.QuerySet` (for runs)."""
        queries = self.queries
        return QuerySet(
            {q.query_id: q.text for q in queries.values()},
            {q.query_id: q.tag for q in queries.values() if q.tag},
            {q.query_id: q.description for q in queries.values() if q.description},
        )

    def qrels(self, rule: str = DEFAULT_RULE, *, adjudicated_first: bool = True) -> Qrels:
        """The grades combined into one per (query, document), ``{query_id: {doc_id: grade}}``
        (for metrics).

        Args:
            rule: how several judges' grades become one (a key of ``COMBINING_RULES``).
            adjudicated_first: a grade a lead set as final wins over the rule.

        Raises:
            ValueError: an unknown rule (the message lists the valid ones).
        """
        return self.read(
            lambda state: combine(
                {
                    pair: {judge: j.grade for judge, j in by_judge.items()}
                    for pair, by_judge in state.grades.items()
                },
                {pair: j.grade for pair, j in state.adjudicated.items()},
                rule,
                adjudicated_first=adjudicated_first,
            )
        )

    def pools(self) -> dict[str, Pool]:
        """The set's judging pools by name."""
        return self.read(lambda state: dict(state.pools))

    # ----------------------------------------------------------------- writing

    def add_query(
        self, query_id: str, text: str, tag: str | None = None, description: str | None = None
    ) -> LabQuery:
        """Add a query, or change the text, tag or description of an existing one; saved
        before returning.

        Raises:
            ValueError: an empty id or text.
        """
        query = self._query(query_id, text, tag, description)
        self._append([_query_record(query)])
        return query

    def set_guidelines(self, text: str) -> None:
        """Write the set's guidelines for judges (plain text; "" removes them)."""
        if not isinstance(text, str):
            raise ValueError(f"guidelines must be text, got {type(text).__name__}")
        self._append([{"op": "guidelines", "text": clean_text(text).strip()}])

    def judge(
        self, query_id: str, doc_id: str, grade: int, judge: str = "", *, at: str | None = None
    ) -> Judgment:
        """Record one judge's grade; it is on disk (fsynced) when this returns.

        The judge's earlier grade of the same pair, if any, is replaced (it stays in the
        journal); other judges' grades are kept.

        Args:
            query_id: a query of the set.
            doc_id: the document judged.
            grade: 0 = not relevant ... 3 = perfect.
            judge: who judged.
            at: when (ISO time); now by default.

        Raises:
            ValueError: an unknown query (the message lists some valid ones) or a bad grade.
        """
        judgment = new_judgment(query_id, doc_id, grade, judge, at)
        self.transact(lambda state: [self.known(state, judgment).record()])
        return judgment

    def adjudicate(
        self, query_id: str, doc_id: str, grade: int, judge: str, *, at: str | None = None
    ) -> Judgment:
        """Set the final grade of a pair judges disagree on (recorded as adjudicated, by
        ``judge``); it wins over the combining rule unless a comparison says otherwise."""
        judgment = new_judgment(query_id, doc_id, grade, judge, at)
        self.transact(lambda state: [self.known(state, judgment).record("adjudicate")])
        return judgment

    def remove_judgment(self, query_id: str, doc_id: str, judge: str | None = None) -> None:
        """Forget one judge's grade of a pair, or (``judge`` None) every grade of it, the
        adjudicated one included: the document becomes unjudged again."""
        record: dict[str, Any] = {"op": "unjudge", "qid": query_id, "doc": doc_id}
        if judge is not None:
            record["judge"] = judge
        self._append([record])

    def remove_query(self, query_id: str) -> None:
        """Remove a query and all its judgments."""
        self._append([{"op": "unquery", "qid": query_id}])

    def add_many(
        self,
        queries: Iterable[LabQuery] = (),
        judgments: Iterable[Judgment] = (),
        adjudications: Iterable[Judgment] = (),
    ) -> ImportReport:
        """Add many queries and judgments in one write (imports), skipping what is there.

        A query already in the set with the same text, tag and description, or a judge's
        grade already there with the same grade (whenever given), writes no line: importing a
        file twice leaves the journal as it was. Within one call, a later record of the same
        query or judge's grade wins.

        Returns:
            What was written and what was already there (``source`` left empty); adjudicated
            grades count as judgments.
        """
        query_records = {
            q.query_id: _query_record(self._query(q.query_id, q.text, q.tag, q.description))
            for q in queries
        }
        judgment_records = {(j.query_id, j.doc_id, j.judge): checked(j).record() for j in judgments}
        final_records = {
            (j.query_id, j.doc_id): checked(j).record("adjudicate") for j in adjudications
        }
        records = [*query_records.values(), *judgment_records.values(), *final_records.values()]
        written = self.transact(lambda state: [r for r in records if not _unchanged(state, r)])
        new_queries = sum(r["op"] == "query" for r in written)
        new_judgments = len(written) - new_queries
        return ImportReport(
            queries=new_queries,
            judgments=new_judgments,
            unchanged_queries=len(query_records) - new_queries,
            unchanged_judgments=len(judgment_records) + len(final_records) - new_judgments,
        )

    def transact(self, decide: Transaction) -> list[Mapping[str, Any]]:
        """Decide what to write from the state as every process left it, and write it as one
        atomic journal line, all under the journal's exclusive lock.

        Judging queues use this: two processes asking for a pair at once never both get it.

        Args:
            decide: given the state (read-only), returns the records to write (none: nothing
                is written).

        Returns:
            The records written.
        """
        with self._lock:
            return list(self._journal.append([], lambda _: [dict(r) for r in decide(self._state)]))

    def compact(self) -> None:
        """Rewrite the journal with only the current records, atomically."""
        with self._lock:
            self._compact_locked()

    # ----------------------------------------------------------------- journal

    @staticmethod
    def _query(
        query_id: str, text: str, tag: str | None, description: str | None = None
    ) -> LabQuery:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"query {query_id!r} needs a non-empty text")
        if description is not None and not isinstance(description, str):
            raise ValueError(f"the description of query {query_id!r} must be text")
        return LabQuery(
            check_id("query id", query_id),
            text,
            tag or None,
            clean_text(description).strip() or None if description else None,
        )

    def known(self, state: JudgmentState, judgment: Judgment) -> Judgment:
        """``judgment``, when its query is in the set (inside a transaction).

        Raises:
            ValueError: an unknown query (the message lists some valid ones).
        """
        if judgment.query_id not in state.queries:
            known = list(state.queries)[:10]
            raise ValueError(
                f"unknown query {judgment.query_id!r} in judgment set {self.set_name!r}; "
                f"add it first (known: {', '.join(known) or 'none'})"
            )
        return judgment

    def _append(self, records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        with self._lock:
            return list(self._journal.append([dict(r) for r in records]))

    def _reset(self) -> None:
        self._state = JudgmentState()

    def _apply(self, record: dict[str, Any]) -> None:
        try:
            apply = _APPLY[record["op"]]
        except KeyError:
            line = self._journal.lines + 1
            problem = f"{self.path}: unknown record {record['op']!r} on line {line}"
            raise IntegrityError(problem) from None
        apply(self._state, record)

    def _compact_locked(self) -> None:
        self._journal.rewrite(self._live_records)

    def _live_records(self) -> list[dict[str, Any]]:
        state = self._state
        records = [_query_record(q) for q in state.queries.values()]
        if state.guidelines:
            records.append({"op": "guidelines", "text": state.guidelines})
        records += [j.record() for by in state.grades.values() for j in by.values()]
        records += [j.record("adjudicate") for j in state.adjudicated.values()]
        records += [pool.record() for pool in state.pools.values()]
        records += [a.record() for held in state.assignments.values() for a in held]
        records += [
            {"op": "skip", "pool": pool, "judge": judge, "qid": qid, "doc": doc}
            for (pool, judge), pairs in state.skipped.items()
            for qid, doc in sorted(pairs)
        ]
        return records

    def _header(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "set": self.set_name,
            "created_at": now(),
        }


_T = TypeVar("_T")


def _grade_of(judgment: Judgment | None) -> int | None:
    return None if judgment is None else judgment.grade


def _unchanged(state: JudgmentState, record: Mapping[str, Any]) -> bool:
    """Whether a query or judgment record would leave the set as it is."""
    if record["op"] == "query":
        query = state.queries.get(record["qid"])
        return query is not None and (query.text, query.tag, query.description) == (
            record["text"],
            record.get("tag"),
            record.get("desc"),
        )
    if record["op"] == "judge":
        judgment = state.grades.get((record["qid"], record["doc"]), {}).get(record["judge"])
        return judgment is not None and judgment.grade == record["grade"]
    if record["op"] == "adjudicate":
        final = state.adjudicated.get((record["qid"], record["doc"]))
        return final is not None and final.grade == record["grade"]
    return False


def _query_record(query: LabQuery) -> dict[str, Any]:
    record: dict[str, Any] = {"op": "query", "qid": query.query_id, "text": query.text}
    if query.tag:
        record["tag"] = query.tag
    if query.description:
        record["desc"] = query.description
    return record


def _record_judgment(record: Mapping[str, Any]) -> Judgment:
    return Judgment(
        record["qid"],
        record["doc"],
        int(record["grade"]),
        record.get("judge", ""),
        record.get("at", ""),
    )


def _apply_query(state: JudgmentState, record: dict[str, Any]) -> None:
    qid = record["qid"]
    state.queries[qid] = LabQuery(qid, record["text"], record.get("tag"), record.get("desc"))


def _apply_judge(state: JudgmentState, record: dict[str, Any]) -> None:
    judgment = _record_judgment(record)
    state.grades.setdefault((judgment.query_id, judgment.doc_id), {})[judgment.judge] = judgment


def _apply_unjudge(state: JudgmentState, record: dict[str, Any]) -> None:
    pair = (record["qid"], record["doc"])
    judge = record.get("judge")
    if judge is None:  # every grade of the pair
        state.grades.pop(pair, None)
        state.adjudicated.pop(pair, None)
        return
    by_judge = state.grades.get(pair, {})
    by_judge.pop(judge, None)
    if not by_judge:
        state.grades.pop(pair, None)


def _apply_unquery(state: JudgmentState, record: dict[str, Any]) -> None:
    qid = record["qid"]
    state.queries.pop(qid, None)
    for table in (state.grades, state.adjudicated):
        for pair in [pair for pair in table if pair[0] == qid]:
            del table[pair]


def _apply_adjudicate(state: JudgmentState, record: dict[str, Any]) -> None:
    judgment = _record_judgment(record)
    state.adjudicated[(judgment.query_id, judgment.doc_id)] = judgment


def _apply_guidelines(state: JudgmentState, record: dict[str, Any]) -> None:
    state.guidelines = str(record.get("text", ""))


def _apply_pool(state: JudgmentState, record: dict[str, Any]) -> None:
    name = record["name"]
    state.pools[name] = Pool(
        name,
        tuple((str(q), str(d)) for q, d in record["pairs"]),
        int(record["depth"]),
        int(record["replicates"]),
        tuple(record.get("sources", ())),
        record.get("at", ""),
        record.get("by", ""),
    )
    for key in [key for key in state.skipped if key[0] == name]:
        del state.skipped[key]


def _apply_unpool(state: JudgmentState, record: dict[str, Any]) -> None:
    name = record["name"]
    state.pools.pop(name, None)
    for table in (state.assignments, state.skipped):
        for key in [key for key in table if key[0] == name]:
            del table[key]


def _apply_assign(state: JudgmentState, record: dict[str, Any]) -> None:
    key = (record["pool"], record["judge"])
    held = state.assignments.get(key, ())
    pair = (record["qid"], record["doc"])
    if all((a.query_id, a.doc_id) != pair for a in held):
        assignment = Assignment(record["pool"], *pair, record["judge"], record.get("at", ""))
        state.assignments[key] = (*held, assignment)


def _apply_release(state: JudgmentState, record: dict[str, Any]) -> None:
    state.assignments.pop((record["pool"], record["judge"]), None)


def _apply_skip(state: JudgmentState, record: dict[str, Any]) -> None:
    key = (record["pool"], record["judge"])
    state.skipped.setdefault(key, set()).add((record["qid"], record["doc"]))


def _apply_unskip(state: JudgmentState, record: dict[str, Any]) -> None:
    state.skipped.get((record["pool"], record["judge"]), set()).discard(
        (record["qid"], record["doc"])
    )


_APPLY: dict[str, Callable[[JudgmentState, dict[str, Any]], None]] = {
    "query": _apply_query,
    "judge": _apply_judge,
    "unjudge": _apply_unjudge,
    "unquery": _apply_unquery,
    "adjudicate": _apply_adjudicate,
    "guidelines": _apply_guidelines,
    "pool": _apply_pool,
    "unpool": _apply_unpool,
    "assign": _apply_assign,
    "release": _apply_release,
    "skip": _apply_skip,
    "unskip": _apply_unskip,
}
"""How each journal record changes the state, by its ``op``."""


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
    at = now()
    lab_queries = [
        LabQuery(q, t, query_set.tags.get(q), query_set.descriptions.get(q))
        for q, t in query_set.queries.items()
    ]
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


CSV_COLUMNS = ("query_id", "query", "doc_id", "grade", "judge", "judged_at", "adjudicated")
"""Columns of a per-judge CSV (one row per judge's grade; ``adjudicated`` is ``yes`` on a
lead's final grade); an import needs ``query`` or ``query_id``, ``doc_id`` and ``grade``."""

COMBINED_COLUMNS = ("query_id", "query", "doc_id", "grade", "judges", "rule")
"""Columns of a combined CSV: one row per pair, its combined grade and who graded it."""


def _import_csv(store: JudgmentStore, path: Path, judge: str) -> ImportReport:
    """A CSV with a header: ``query, doc_id, grade`` and optionally ``query_id, judge,
    judged_at, adjudicated, description`` (a per-judge export reads back as it was).

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
    known = store.queries
    by_text = {q.text: q.query_id for q in known.values()}
    queries: dict[str, LabQuery] = {}
    judgments: list[Judgment] = []
    final: list[Judgment] = []
    at = now()
    for number, row in enumerate(reader, start=2):
        query_text, query_id, doc_id, description = (
            _cell(row, columns, c) for c in ("query", "query_id", "doc_id", "description")
        )
        if not doc_id:
            raise InputError(path, "empty doc_id", number)
        if not query_id:
            if not query_text:
                raise InputError(path, "empty query", number)
            query_id = by_text.get(query_text) or "q-" + sha256_bytes(query_text.encode())[:10]
        if query_text and query_id not in queries:
            old = known.get(query_id)
            keep = (old.tag, old.description) if old and old.text == query_text else (None, None)
            queries[query_id] = LabQuery(query_id, query_text, keep[0], description or keep[1])
            by_text[query_text] = query_id
        elif query_id not in queries and query_id not in known:
            raise InputError(path, f"query {query_id!r} is new and has no text", number)
        try:
            grade = parse_grade(_cell(row, columns, "grade"))
            check_id("document id", doc_id)
            check_id("query id", query_id)
            adjudicated = _flag(_cell(row, columns, "adjudicated"))
        except ValueError as exc:
            raise InputError(path, str(exc), number) from None
        who, when = _cell(row, columns, "judge") or judge, _cell(row, columns, "judged_at") or at
        (final if adjudicated else judgments).append(Judgment(query_id, doc_id, grade, who, when))
    try:
        report = store.add_many(queries.values(), judgments, final)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    return replace(report, source=str(path))


_TRUE = {"yes", "true", "1", "y"}
_FALSE = {"", "no", "false", "0", "n"}


def _flag(value: str) -> bool:
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError(f"adjudicated must be yes or no (or empty), got {value!r}")


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


def _export_trec(store: JudgmentStore, rule: str, adjudicated_first: bool) -> tuple[bytes, int]:
    """TREC qrels of the combined grades: ``qid 0 docid grade`` a line."""
    qrels = store.qrels(rule, adjudicated_first=adjudicated_first)
    lines = [
        f"{to_trec_id(qid)} 0 {to_trec_id(doc)} {grade}\n"
        for qid, doc, grade in _sorted_qrels(qrels)
    ]
    return "".join(lines).encode("utf-8"), len(lines)


def _export_csv(store: JudgmentStore, rule: str, adjudicated_first: bool) -> tuple[bytes, int]:
    """CSV of the combined grades (``COMBINED_COLUMNS``), formula-looking cells escaped."""
    queries = store.queries
    qrels = store.qrels(rule, adjudicated_first=adjudicated_first)
    graders: dict[tuple[str, str], set[str]] = {}
    for j in store.judgments():
        graders.setdefault((j.query_id, j.doc_id), set()).add(j.judge)
    final = {(j.query_id, j.doc_id) for j in store.adjudications()} if adjudicated_first else set()
    rows = [
        [
            qid,
            queries[qid].text if qid in queries else "",
            doc,
            str(grade),
            "; ".join(sorted(graders.get((qid, doc), ()))),
            "adjudicated" if (qid, doc) in final else rule,
        ]
        for qid, doc, grade in _sorted_qrels(qrels)
    ]
    return _csv_bytes(COMBINED_COLUMNS, rows), len(rows)


def _export_judges_csv(
    store: JudgmentStore, rule: str = DEFAULT_RULE, adjudicated_first: bool = True
) -> tuple[bytes, int]:
    """CSV of every judge's grade, one row each (``CSV_COLUMNS``), the adjudicated grades as
    rows marked ``adjudicated``; an import reads it back as it was."""
    del rule, adjudicated_first  # every grade is written as given
    queries = store.queries
    graded = [(j, "") for j in store.judgments()] + [(j, "yes") for j in store.adjudications()]
    graded.sort(key=lambda item: (item[0].query_id, item[0].doc_id, item[1], item[0].judge))
    rows = [
        [
            j.query_id,
            queries[j.query_id].text if j.query_id in queries else "",
            j.doc_id,
            str(j.grade),
            j.judge,
            j.judged_at,
            final,
        ]
        for j, final in graded
    ]
    return _csv_bytes(CSV_COLUMNS, rows), len(rows)


def _csv_bytes(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([escape_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def _sorted_qrels(qrels: Qrels) -> list[tuple[str, str, int]]:
    return sorted((qid, doc, grade) for qid, docs in qrels.items() for doc, grade in docs.items())


Exporter = Callable[[JudgmentStore, str, bool], tuple[bytes, int]]

EXPORTERS: dict[str, Exporter] = {
    "trec": _export_trec,
    "csv": _export_csv,
    "judges-csv": _export_judges_csv,
}
"""Judgment exporters by format name; each gets the store, the combining rule and whether
adjudicated grades come first, and returns the file's bytes and its number of rows: ``trec``
and ``csv`` write the combined grades, ``judges-csv`` every judge's grade."""


def export_bytes(
    store: JudgmentStore,
    fmt: str,
    *,
    rule: str = DEFAULT_RULE,
    adjudicated_first: bool = True,
) -> tuple[bytes, int]:
    """A set's judgments as a file's bytes, and the rows they hold.

    Raises:
        ValueError: an unknown format or rule (the message lists the valid ones).
    """
    try:
        exporter = EXPORTERS[fmt]
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORTERS)}") from None
    return exporter(store, rule, adjudicated_first)


def export_judgments(
    store: JudgmentStore,
    fmt: str,
    path: str | Path,
    *,
    rule: str = DEFAULT_RULE,
    adjudicated_first: bool = True,
) -> int:
    """Write a set's judgments to a file, atomically.

    Args:
        store: the judgment set.
        fmt: ``trec`` (combined qrels), ``csv`` (combined, with who graded each pair) or
            ``judges-csv`` (every judge's grade, one row each).
        path: the file to write.
        rule: how several judges' grades are combined (a key of ``COMBINING_RULES``).
        adjudicated_first: an adjudicated grade wins over the rule.

    Returns:
        The number of rows written.

    Raises:
        ValueError: an unknown format or rule (the message lists the valid ones).
    """
    data, rows = export_bytes(store, fmt, rule=rule, adjudicated_first=adjudicated_first)
    atomic_write(Path(path), data)
    return rows
