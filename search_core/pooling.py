"""Judging pools and the judging queue: who grades which (query, document) pair next.

A *pool* is the set of pairs worth judging for a comparison: the union of each chosen
configuration's top ``depth`` documents (documents, not chunks) for every query of a judgment
set, each pair needing ``replicates`` grades (R: 1 for a plain judging round, 3 or more for an
agreement study). It is the TREC pooling method (Voorhees and Harman, *TREC: Experiment and
Evaluation in Information Retrieval*, 2005, ch. 2): a document no pooled configuration ranks
in its top ``depth`` stays unjudged, which the comparison's coverage reports.

The queue hands a judge one pair at a time (an :class:`~search_core.judgments.Assignment`),
chosen under the judgment set's journal lock, so processes and browser sessions judging the
same pool at once never collide:

* never a pair the judge has graded or skipped;
* never a pair whose grades plus the pairs held by other judges reach R (a pair is never
  handed to more judges at once than it still needs);
* the pairs with the fewest grades (plus holders) first; among those, the judge's current
  query first (an expert reads one information need, then grades its documents), then the
  other queries and documents in an order shuffled for each judge (a hash of the judge's
  name, the pool and the pair), so two judges do not walk the pool in the same order.

A pair stays with its judge until they grade or skip it, or for :data:`HOLD_SECONDS` (someone
who closed the browser does not hold a pair forever). Grading and taking the next pair are one
journal write (:func:`submit`), as are skipping (:func:`skip`) and taking a pair back to grade
it again (:func:`undo`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .collection import validate_name
from .judgments import (
    Assignment,
    JudgmentState,
    JudgmentStore,
    Pool,
    check_id,
    new_judgment,
    now,
)

if TYPE_CHECKING:
    from .collection import Collection
    from .evaluation import RunDict
    from .search import SearchParams

__all__ = [
    "DEFAULT_DEPTH",
    "HOLD_SECONDS",
    "MAX_DEPTH",
    "MAX_REPLICATES",
    "PoolProgress",
    "Turn",
    "check_depth",
    "check_replicates",
    "create_pool",
    "delete_pool",
    "next_pair",
    "pool_configurations",
    "pool_pairs",
    "progress",
    "skip",
    "submit",
    "undo",
]

DEFAULT_DEPTH = 10
MAX_DEPTH = 100
MAX_REPLICATES = 10
HOLD_SECONDS = 600
"""How long a pair handed to a judge stays theirs without a grade or a skip."""


@dataclass(frozen=True)
class PoolProgress:
    """How far a pool, and one judge in it, has got.

    Attributes:
        pairs: pairs in the pool.
        replicates: grades each pair needs.
        needed: grades the pool needs in all (``pairs * replicates``).
        given: grades given towards that (at most ``replicates`` counted per pair).
        complete: pairs with all their grades.
        held: pairs other judges hold right now.
        judge_graded: pairs of the pool this judge graded.
        judge_skipped: pairs this judge skipped.
        judge_left: pairs this judge could still be handed (held ones included).
    """

    pairs: int
    replicates: int
    needed: int
    given: int
    complete: int
    held: int
    judge_graded: int
    judge_skipped: int
    judge_left: int

    @property
    def share(self) -> float:
        """Share of the pool's grades given (1.0 for an empty pool)."""
        return self.given / self.needed if self.needed else 1.0


@dataclass(frozen=True)
class Turn:
    """What the queue gives a judge: the pairs they hold, or why there is none.

    Attributes:
        held: the pairs held for the judge, the one to grade now first, then those fetched
            ahead (so a page can show the next one the moment a grade is given).
        waiting: when there is none, pairs other judges hold that may come back (a judge who
            leaves without grading gives theirs back after ``HOLD_SECONDS``).
    """

    held: tuple[Assignment, ...] = ()
    waiting: int = 0

    @property
    def assignment(self) -> Assignment | None:
        """The pair to grade now, or None."""
        return self.held[0] if self.held else None

    @property
    def upcoming(self) -> tuple[Assignment, ...]:
        """The pairs fetched ahead, after the one to grade now."""
        return self.held[1:]


# --------------------------------------------------------------------------- building


def pool_pairs(
    runs: Mapping[str, RunDict], depth: int, order: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The union of each run's top ``depth`` documents per query.

    Args:
        runs: name to run (``{query_id: {doc_id: score}}``, higher scores first).
        depth: documents taken from the top of each run.
        order: query ids in the order wanted (others follow in the order the runs hold them).

    Returns:
        (query id, doc id) pairs, query by query; a query's documents by their best rank in
        any run.
    """
    check_depth(depth)
    queries = list(dict.fromkeys([*order, *(q for run in runs.values() for q in run)]))
    pairs: list[tuple[str, str]] = []
    for qid in queries:
        best: dict[str, int] = {}
        for run in runs.values():
            docs = run.get(qid, {})
            ranked = sorted(docs, key=lambda d: (-docs[d], d))[:depth]
            for rank, doc in enumerate(ranked):
                best[doc] = min(rank, best.get(doc, rank))
        pairs.extend((qid, doc) for doc in sorted(best, key=lambda d: (best[d], d)))
    return pairs


def check_depth(depth: int) -> int:
    """Raises ValueError unless ``depth`` is a whole number from 1 to ``MAX_DEPTH``."""
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"pool depth must be a whole number from 1 to {MAX_DEPTH}, got {depth!r}")
    return depth


def check_replicates(replicates: int) -> int:
    """Raises ValueError unless ``replicates`` is a whole number from 1 to ``MAX_REPLICATES``."""
    if (
        isinstance(replicates, bool)
        or not isinstance(replicates, int)
        or not 1 <= replicates <= MAX_REPLICATES
    ):
        raise ValueError(
            f"grades per pair must be a whole number from 1 to {MAX_REPLICATES}, got {replicates!r}"
        )
    return replicates


def create_pool(
    store: JudgmentStore,
    name: str,
    runs: Mapping[str, RunDict],
    *,
    depth: int = DEFAULT_DEPTH,
    replicates: int = 1,
    created_by: str = "",
) -> Pool:
    """Pool the top ``depth`` documents of each run for judging, saved in the judgment set.

    A pool of the same name is replaced (its pairs become these; grades are never touched).
    Queries the set does not hold are left out.

    Args:
        store: the judgment set whose queries were run.
        name: the pool's name (letters, digits, ``_ . -``).
        runs: name to run; the names are recorded as the pool's sources.
        depth: documents pooled from the top of each run.
        replicates: grades each pair needs (R).
        created_by: who made the pool.

    Raises:
        ValueError: a bad name, depth or replicates, no run, or nothing to pool.
    """
    try:
        validate_name(name)
    except ValueError:
        raise ValueError(
            f"invalid pool name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        ) from None
    check_depth(depth)
    check_replicates(replicates)
    if not runs:
        raise ValueError("a pool needs at least one configuration or run")
    queries = store.queries
    pairs = [pair for pair in pool_pairs(runs, depth, queries) if pair[0] in queries]
    if not pairs:
        raise ValueError("the runs found no document for any query of the set: nothing to pool")
    pool = Pool(name, tuple(pairs), depth, replicates, tuple(runs), now(), created_by)
    store.transact(lambda state: [pool.record()])
    return pool


def pool_configurations(
    collection: Collection,
    store: JudgmentStore,
    name: str,
    configs: Mapping[str, SearchParams],
    *,
    depth: int = DEFAULT_DEPTH,
    replicates: int = 1,
    created_by: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> Pool:
    """Run the set's queries with each configuration and pool their top documents
    (:func:`create_pool`); the queries are embedded once for all configurations.

    Raises:
        ValueError: as :func:`create_pool`, or a set without queries.
    """
    from .evaluation import run_configurations

    check_depth(depth)
    check_replicates(replicates)
    queries = store.query_set().queries
    if not queries:
        raise ValueError(f"judgment set {store.set_name!r} has no query to pool documents for")
    runs = run_configurations(collection, queries, configs, depth=depth, progress=progress)
    return create_pool(store, name, runs, depth=depth, replicates=replicates, created_by=created_by)


def delete_pool(store: JudgmentStore, name: str) -> None:
    """Remove a pool (the grades given in it stay)."""
    store.transact(lambda state: [{"op": "unpool", "name": name}] if name in state.pools else [])


# --------------------------------------------------------------------------- the queue


def next_pair(store: JudgmentStore, pool: str, judge: str, *, ahead: int = 0) -> Turn:
    """The pair this judge should grade next in a pool: the one they hold, or a new one.

    Args:
        store: the judgment set.
        pool: the pool's name.
        judge: who asks.
        ahead: pairs to hold for the judge beyond the one to grade now (a page fetches the
            next document ahead, to show it the moment a grade is given).

    Raises:
        ValueError: an unknown pool (the message lists the set's pools) or an empty judge.
    """
    check_id("judge", judge)
    return _turn(store, pool, judge, lambda state: [], ahead)


def submit(
    store: JudgmentStore,
    pool: str,
    judge: str,
    query_id: str,
    doc_id: str,
    grade: int,
    *,
    ahead: int = 0,
) -> Turn:
    """Record a judge's grade of a pair and hand them the next one, in one journal write.

    Raises:
        ValueError: an unknown pool or query, a bad grade or an empty judge.
    """
    judgment = new_judgment(query_id, doc_id, grade, check_id("judge", judge))
    return _turn(store, pool, judge, lambda state: [store.known(state, judgment).record()], ahead)


def skip(
    store: JudgmentStore, pool: str, judge: str, query_id: str, doc_id: str, *, ahead: int = 0
) -> Turn:
    """Skip a pair (it is not handed to this judge again) and hand them the next one."""
    check_id("judge", judge)
    record = {"op": "skip", "pool": pool, "judge": judge, "qid": query_id, "doc": doc_id}
    return _turn(store, pool, judge, lambda state: [record], ahead)


def undo(
    store: JudgmentStore, pool: str, judge: str, query_id: str, doc_id: str, *, ahead: int = 0
) -> Turn:
    """Take back this judge's grade (or skip) of a pair and hand the pair to them again, first.

    Other judges' grades of the pair are kept.
    """
    check_id("judge", judge)
    key = {"pool": pool, "judge": judge, "qid": query_id, "doc": doc_id}

    def take_back(state: JudgmentState) -> list[dict[str, Any]]:
        return [
            {"op": "unjudge", "qid": query_id, "doc": doc_id, "judge": judge},
            {"op": "unskip", **key},
        ]

    return _turn(store, pool, judge, take_back, ahead, first=(query_id, doc_id))


def _turn(
    store: JudgmentStore,
    pool: str,
    judge: str,
    before: Callable[[JudgmentState], list[dict[str, Any]]],
    ahead: int,
    first: tuple[str, str] | None = None,
) -> Turn:
    """Write ``before``'s records and the pairs the judge then holds, in one transaction."""
    if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= 5:
        raise ValueError(f"ahead must be a whole number from 0 to 5, got {ahead!r}")
    found: list[Turn] = []

    def decide(state: JudgmentState) -> list[dict[str, Any]]:
        chosen = _pool(state, pool)
        records = before(state)
        now_at = datetime.fromisoformat(now())
        turn = _choose(_After(state, records), chosen, judge, now_at, 1 + ahead, first)
        found.append(turn)
        held = state.assignments.get((pool, judge), ())
        if _pairs(turn.held) != _pairs(held):
            records.append({"op": "release", "pool": pool, "judge": judge})
            records += [a.record() for a in turn.held]
        return records

    store.transact(decide)
    return found[-1]


def _pairs(held: Sequence[Assignment]) -> list[tuple[str, str]]:
    return [(a.query_id, a.doc_id) for a in held]


def _pool(state: JudgmentState, name: str) -> Pool:
    try:
        return state.pools[name]
    except KeyError:
        valid = ", ".join(state.pools) or "none yet"
        raise ValueError(f"unknown pool {name!r}; the set's pools: {valid}") from None


class _After:
    """The state as it will be once ``records`` are written (the queue decides on it)."""

    def __init__(self, state: JudgmentState, records: Sequence[Mapping[str, Any]]) -> None:
        self.assignments = state.assignments
        self._grades = state.grades
        self._skipped = state.skipped
        self._graded: set[tuple[tuple[str, str], str]] = set()
        self._ungraded: set[tuple[tuple[str, str], str]] = set()
        self._skips: set[tuple[tuple[str, str], tuple[str, str]]] = set()
        self._unskips: set[tuple[tuple[str, str], tuple[str, str]]] = set()
        for record in records:
            pair = (record.get("qid", ""), record.get("doc", ""))
            if record["op"] == "judge":
                self._graded.add((pair, record["judge"]))
            elif record["op"] == "unjudge":
                self._ungraded.add((pair, record["judge"]))
            elif record["op"] == "skip":
                self._skips.add(((record["pool"], record["judge"]), pair))
            elif record["op"] == "unskip":
                self._unskips.add(((record["pool"], record["judge"]), pair))

    def judges(self, pair: tuple[str, str]) -> set[str]:
        """Who holds a grade of the pair."""
        found = set(self._grades.get(pair, ()))
        found |= {judge for p, judge in self._graded if p == pair}
        return found - {judge for p, judge in self._ungraded if p == pair}

    def skipped(self, pool: str, judge: str) -> set[tuple[str, str]]:
        key = (pool, judge)
        found = set(self._skipped.get(key, ())) | {p for k, p in self._skips if k == key}
        return found - {p for k, p in self._unskips if k == key}


def _holders(state: _After, pool: Pool, judge: str, limit: datetime) -> Counter[tuple[str, str]]:
    """How many other judges hold each pair of the pool, not yet graded or skipped by them
    and not expired."""
    pairs = set(pool.pairs)
    holders: Counter[tuple[str, str]] = Counter()
    for (name, holder), held in state.assignments.items():
        if name != pool.name or holder == judge:
            continue
        skipped = state.skipped(name, holder)
        for a in held:
            pair = (a.query_id, a.doc_id)
            if (
                pair in pairs
                and holder not in state.judges(pair)
                and pair not in skipped
                and _time(a.at) > limit
            ):
                holders[pair] += 1
    return holders


def _choose(
    state: _After,
    pool: Pool,
    judge: str,
    at: datetime,
    count: int,
    first: tuple[str, str] | None = None,
) -> Turn:
    """The queue's rule (see the module's docstring) on one state: up to ``count`` pairs."""
    limit = at - timedelta(seconds=HOLD_SECONDS)
    pairs = set(pool.pairs)
    holders = _holders(state, pool, judge, limit)
    skipped = state.skipped(pool.name, judge)
    stamp = at.isoformat(timespec="seconds")

    def open_to_judge(pair: tuple[str, str]) -> bool:
        graders = state.judges(pair)
        return (
            judge not in graders
            and pair not in skipped
            and len(graders) + holders[pair] < pool.replicates
        )

    def still_theirs(a: Assignment) -> bool:
        pair = (a.query_id, a.doc_id)
        return (
            pair in pairs
            and judge not in state.judges(pair)
            and pair not in skipped
            and (_time(a.at) > limit or open_to_judge(pair))
        )

    held = [a for a in state.assignments.get((pool.name, judge), ()) if still_theirs(a)]
    if first is not None and first in pairs:  # taken back to grade again: theirs, first
        held = [Assignment(pool.name, *first, judge, stamp)] + [
            a for a in held if (a.query_id, a.doc_id) != first
        ]
    taken = set(_pairs(held))
    candidates = [pair for pair in pool.pairs if pair not in taken and open_to_judge(pair)]
    query = held[-1].query_id if held else None
    candidates.sort(
        key=lambda pair: (
            len(state.judges(pair)) + holders[pair],
            pair[0] != query,
            _shuffle(pool.name, judge, pair[0]),
            _shuffle(pool.name, judge, *pair),
        )
    )
    held += [Assignment(pool.name, *pair, judge, stamp) for pair in candidates]
    held = held[:count]
    if held:
        return Turn(tuple(held))
    waiting = sum(
        1
        for pair in pool.pairs
        if holders[pair]
        and judge not in state.judges(pair)
        and pair not in skipped
        and len(state.judges(pair)) < pool.replicates
    )
    return Turn((), waiting)


def _shuffle(*parts: str) -> bytes:
    """A per-judge order that looks random and is the same on every call."""
    return hashlib.blake2b("\0".join(parts).encode("utf-8"), digest_size=8).digest()


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=datetime.fromisoformat(now()).tzinfo)


# --------------------------------------------------------------------------- progress


def progress(store: JudgmentStore, pool: str, judge: str | None = None) -> PoolProgress:
    """How far a pool has got, and this judge in it.

    Raises:
        ValueError: an unknown pool (the message lists the set's pools).
    """

    def measure(state: JudgmentState) -> PoolProgress:
        chosen = _pool(state, pool)
        after = _After(state, ())
        counts = [len(after.judges(pair)) for pair in chosen.pairs]
        limit = datetime.fromisoformat(now()) - timedelta(seconds=HOLD_SECONDS)
        held = _holders(after, chosen, judge or "", limit)
        skipped = after.skipped(pool, judge) if judge else set()
        graded = [judge is not None and judge in after.judges(pair) for pair in chosen.pairs]
        left = sum(
            1
            for pair, count, done in zip(chosen.pairs, counts, graded, strict=True)
            if not done and pair not in skipped and count < chosen.replicates
        )
        return PoolProgress(
            pairs=len(chosen.pairs),
            replicates=chosen.replicates,
            needed=len(chosen.pairs) * chosen.replicates,
            given=sum(min(count, chosen.replicates) for count in counts),
            complete=sum(count >= chosen.replicates for count in counts),
            held=len(held),
            judge_graded=sum(graded),
            judge_skipped=len(skipped & set(chosen.pairs)),
            judge_left=left,
        )

    return store.read(measure)
