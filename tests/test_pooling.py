"""Pools and the judging queue: who grades which pair, with several judges and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from search_core.collection import build_collection
from search_core.ingest import IngestReport
from search_core.judgments import JudgmentStore, open_judgments
from search_core.pooling import (
    HOLD_SECONDS,
    create_pool,
    delete_pool,
    next_pair,
    pool_configurations,
    pool_pairs,
    progress,
    skip,
    submit,
    undo,
)
from search_core.search import SearchParams
from search_core.types import Document

REPO = Path(__file__).resolve().parents[1]
DOCS = tuple(
    Document(f"d{n}", f"Document {n} about brakes, refunds and order {n}.") for n in range(12)
)
RUNS = {
    "a": {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 2.0, "d5": 1.0}},
    "b": {"q1": {"d3": 9.0, "d6": 8.0, "d1": 7.0}, "q2": {"d5": 5.0}, "q9": {"d7": 1.0}},
}


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    home = tmp_path_factory.mktemp("pooling")
    build_collection("shop", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=embedder)
    return home


@pytest.fixture
def store(lab_home: Path, request: pytest.FixtureRequest) -> JudgmentStore:
    store = open_judgments("shop", request.node.name[:50].replace("[", "-").strip("]"), lab_home)
    store.add_query("q1", "brakes", description="Brake wear: pads and discs.")
    store.add_query("q2", "refunds")
    return store


def test_a_pool_is_the_union_of_each_runs_top_documents() -> None:
    pairs = pool_pairs(RUNS, 2, ["q2", "q1"])
    # q1: a's top two are d1, d2 and b's are d3, d6; by best rank, then id
    expected = [("q2", "d4"), ("q2", "d5"), ("q1", "d1"), ("q1", "d3"), ("q1", "d2"), ("q1", "d6")]
    assert pairs == [*expected, ("q9", "d7")]
    assert len(pool_pairs(RUNS, 3)) == len({*pool_pairs(RUNS, 3)}) == 7  # no pair twice
    with pytest.raises(ValueError, match="from 1 to 100"):
        pool_pairs(RUNS, 0)


def test_a_pool_keeps_the_sets_queries_and_is_saved(store: JudgmentStore, lab_home: Path) -> None:
    pool = create_pool(store, "round-1", RUNS, depth=2, replicates=3, created_by="lead")
    assert ("q9", "d7") not in pool.pairs  # q9 is not a query of the set
    again = open_judgments("shop", store.set_name, lab_home).pools()["round-1"]
    assert again == pool and again.sources == ("a", "b") and again.replicates == 3
    with pytest.raises(ValueError, match="from 1 to 10"):
        create_pool(store, "x", RUNS, replicates=11)
    with pytest.raises(ValueError, match="invalid pool name"):
        create_pool(store, "../x", RUNS)
    delete_pool(store, "round-1")
    assert store.pools() == {}
    with pytest.raises(ValueError, match="unknown pool 'round-1'"):
        next_pair(store, "round-1", "ana")


def _work(store: JudgmentStore, pool: str, judge: str, grade: int = 2) -> list[tuple[str, str]]:
    """A judge grades every pair the queue hands them; the pairs, in order."""
    done = []
    turn = next_pair(store, pool, judge)
    while turn.assignment is not None:
        pair = (turn.assignment.query_id, turn.assignment.doc_id)
        done.append(pair)
        turn = submit(store, pool, judge, *pair, grade)
    return done


def test_each_pair_gets_r_grades_and_no_judge_grades_a_pair_twice(store: JudgmentStore) -> None:
    pool = create_pool(store, "study", RUNS, depth=3, replicates=2)
    graded = {judge: _work(store, "study", judge) for judge in ("ana", "ben", "cy")}
    for pairs in graded.values():
        assert len(pairs) == len(set(pairs))
    counts = Counter(pair for pairs in graded.values() for pair in pairs)
    assert set(counts) == set(pool.pairs) and set(counts.values()) == {2}
    assert len(graded["ana"]) == len(pool.pairs)  # alone first: she got every pair
    assert graded["cy"] == []  # ana and ben had given every pair its two grades
    done = progress(store, "study", "cy")
    assert (done.given, done.needed, done.complete, done.judge_left) == (12, 12, 6, 0)
    assert done.share == 1.0


def test_the_queue_hands_the_least_graded_pairs_first_in_a_per_judge_order(
    store: JudgmentStore,
) -> None:
    pool = create_pool(store, "order", RUNS, depth=3, replicates=3)
    first = next_pair(store, "order", "ana").assignment
    assert first is not None
    submit(store, "order", "ana", first.query_id, first.doc_id, 1)
    ben = next_pair(store, "order", "ben").assignment
    assert ben is not None and (ben.query_id, ben.doc_id) != (first.query_id, first.doc_id)
    # the same judge always walks the pool in the same order; others in another
    orders = {}
    for judge in ("dee", "eve", "fay", "gus"):
        probe = open_judgments("shop", store.set_name + "-" + judge, store.path.parents[3])
        probe.add_query("q1", "brakes")
        probe.add_query("q2", "refunds")
        create_pool(probe, "order", RUNS, depth=3, replicates=1)
        orders[judge] = _work(probe, "order", judge)
        assert sorted(orders[judge]) == sorted(pool.pairs)
    assert len({tuple(order) for order in orders.values()}) > 1
    for order in orders.values():  # one query's documents together
        queries = [qid for qid, _ in order]
        assert queries == sorted(queries, key=queries.index)


def test_a_held_pair_is_not_handed_to_another_judge_beyond_r(store: JudgmentStore) -> None:
    create_pool(store, "one", {"a": {"q1": {"d1": 1.0}}}, depth=1, replicates=1)
    ana = next_pair(store, "one", "ana")
    assert ana.assignment is not None
    ben = next_pair(store, "one", "ben")
    assert ben.assignment is None and ben.waiting == 1  # ana holds the only pair
    assert next_pair(store, "one", "ana") == ana  # asking again keeps her pair
    skip(store, "one", "ana", "q1", "d1")
    assert next_pair(store, "one", "ben").assignment is not None  # given back by the skip


def test_a_pair_fetched_ahead_is_held_too(store: JudgmentStore) -> None:
    create_pool(store, "ahead", {"a": {"q1": {"d1": 2.0, "d2": 1.0}}}, depth=2, replicates=1)
    ana = next_pair(store, "ahead", "ana", ahead=1)
    assert len(ana.held) == 2 and ana.upcoming == ana.held[1:]
    assert next_pair(store, "ahead", "ben").assignment is None  # both held for ana
    first, second = ana.held
    turn = submit(store, "ahead", "ana", first.query_id, first.doc_id, 2, ahead=1)
    assert turn.held == (second,)  # the one fetched ahead is now hers to grade
    back = undo(store, "ahead", "ana", first.query_id, first.doc_id, ahead=1)
    assert [(a.query_id, a.doc_id) for a in back.held] == [
        (first.query_id, first.doc_id),
        (second.query_id, second.doc_id),
    ]
    with pytest.raises(ValueError, match="from 0 to 5"):
        next_pair(store, "ahead", "ana", ahead=9)


def test_a_held_pair_goes_back_after_the_hold_time(store: JudgmentStore, monkeypatch) -> None:
    create_pool(store, "hold", {"a": {"q1": {"d1": 1.0}}}, depth=1, replicates=1)
    assert next_pair(store, "hold", "ana").assignment is not None
    import search_core.pooling as pooling

    later = pooling.datetime.fromisoformat(pooling.now()) + pooling.timedelta(
        seconds=HOLD_SECONDS + 1
    )
    monkeypatch.setattr(pooling, "now", lambda: later.isoformat(timespec="seconds"))
    assert next_pair(store, "hold", "ben").assignment is not None


def test_skip_and_undo(store: JudgmentStore) -> None:
    create_pool(store, "undo", {"a": {"q1": {"d1": 2.0, "d2": 1.0}}}, depth=2, replicates=1)
    first = next_pair(store, "undo", "ana").assignment
    assert first is not None
    turn = submit(store, "undo", "ana", first.query_id, first.doc_id, 3)
    store.judge(first.query_id, first.doc_id, 1, "ben")  # another judge's grade of it
    assert turn.assignment is not None
    back = undo(store, "undo", "ana", first.query_id, first.doc_id)
    assert back.assignment is not None
    assert (back.assignment.query_id, back.assignment.doc_id) == (first.query_id, first.doc_id)
    assert store.grade(first.query_id, first.doc_id, "ana") is None
    assert store.grade(first.query_id, first.doc_id, "ben") == 1  # kept
    assert next_pair(store, "undo", "ana") == back  # the pair taken back is hers again
    second = turn.assignment
    skip(store, "undo", "ana", second.query_id, second.doc_id)
    assert progress(store, "undo", "ana").judge_skipped == 1


def test_a_pool_from_saved_configurations(lab_home: Path, store: JudgmentStore) -> None:
    from search_core.collection import open_collection

    configs = {"bm25": SearchParams(mode="bm25"), "vector": SearchParams(mode="vector")}
    pool = pool_configurations(
        open_collection("shop", lab_home), store, "configs", configs, depth=4, replicates=1
    )
    assert pool.sources == ("bm25", "vector") and pool.depth == 4
    per_query = Counter(qid for qid, _ in pool.pairs)
    assert set(per_query) == {"q1", "q2"} and all(4 <= n <= 8 for n in per_query.values())


WORKER = textwrap.dedent(
    """
    import json, sys
    from search_core.judgments import open_judgments
    from search_core.pooling import next_pair, submit
    home, set_name, judge = sys.argv[1:4]
    store = open_judgments("shop", set_name, home)
    done = []
    turn = next_pair(store, "race", judge)
    while turn.assignment is not None:
        pair = (turn.assignment.query_id, turn.assignment.doc_id)
        done.append(pair)
        turn = submit(store, "race", judge, *pair, len(done) % 4)
    print(json.dumps(done))
    """
)


def test_judges_in_several_processes_share_the_queue(lab_home: Path, store: JudgmentStore) -> None:
    runs = {"a": {qid: {f"d{n}": float(n) for n in range(12)} for qid in ("q1", "q2")}}
    pool = create_pool(store, "race", runs, depth=12, replicates=2)
    judges = ["ana", "ben", "cy", "dee"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(lab_home), store.set_name, judge],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for judge in judges
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    graded = {judge: json.loads(out) for judge, out in zip(judges, outputs, strict=True)}
    assert all(w.returncode == 0 for w in workers)
    for pairs in graded.values():
        assert len(pairs) == len({tuple(p) for p in pairs})  # never one pair twice
    counts = Counter(tuple(p) for pairs in graded.values() for p in pairs)
    assert set(counts) == set(pool.pairs) and set(counts.values()) == {2}  # each exactly R
    reread = open_judgments("shop", store.set_name, lab_home)
    assert len(reread.judgments()) == 2 * len(pool.pairs)  # no grade lost
