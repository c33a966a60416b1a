from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from search_core.collection import build_collection
from search_core.ingest import IngestReport
from search_core.telemetry import (
    REFERENCE_KEY,
    SNIPPET_WORDS,
    QueryLog,
    collection_reference,
    compare_similarities,
    percentile,
    reference_record,
    reference_similarities,
    reference_snippets,
)
from search_core.types import Document, SearchResponse, Timings


def response(
    mode: str, embed: float, search: float, sims: tuple[float, ...] = ()
) -> SearchResponse:
    timings = Timings(
        embed_ms=embed, vector_ms=search / 2, bm25_ms=search / 4, fusion_ms=search / 4
    )
    return SearchResponse("q", mode, (), timings, candidate_similarities=sims)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # p = 0.5 * 3 = 1.5: 2 + 0.5 * (3 - 2)
        ([1.0, 2.0, 3.0, 4.0], 99, 3.97),  # p = 0.99 * 3 = 2.97: 3 + 0.97 * (4 - 3)
        ([7.0], 99, 7.0),
    ],
)
def test_percentile_interpolates_linearly(values, q, expected) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan_and_q_is_checked() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_record_splits_embedding_from_search_and_keeps_the_top_similarity() -> None:
    log = QueryLog()
    record = log.record("shop", response("hybrid", 12.0, 8.0, (0.2, 0.61, 0.4)), at=5.0)
    assert (record.embed_ms, record.search_ms) == (12.0, pytest.approx(8.0))
    assert record.top_similarity == pytest.approx(0.61)
    assert record.embedded and record.at == 5.0
    bm25 = log.record("shop", response("bm25", 0.0, 3.0))
    assert bm25.top_similarity is None and not bm25.embedded


def test_latency_percentiles_leave_bm25_out_of_embedding_times() -> None:
    log = QueryLog()
    for ms in range(1, 101):  # embed 1..100 ms, search 2..200 ms
        log.record("shop", response("vector", float(ms), 2.0 * ms, (0.5,)))
    log.record("shop", response("bm25", 0.0, 1000.0))
    log.record("other", response("vector", 999.0, 999.0, (0.5,)))
    summary = log.latency("shop")
    assert (summary.queries, summary.embedded) == (101, 100)
    # numpy's linear rule over 1..100: p50 at position 49.5, p99 at position 98.01
    assert summary.embed_p50_ms == pytest.approx(50.5)
    assert summary.embed_p99_ms == pytest.approx(99.01)
    searches = [2.0 * ms for ms in range(1, 101)] + [1000.0]
    assert summary.search_p50_ms == pytest.approx(float(np.percentile(searches, 50)))
    assert summary.search_p99_ms == pytest.approx(float(np.percentile(searches, 99)))
    assert math.isnan(QueryLog().latency().embed_p50_ms)


def test_a_reused_query_vector_stays_out_of_embedding_times() -> None:
    log = QueryLog()
    log.record("shop", response("hybrid", 20.0, 5.0, (0.6,)))
    reused = log.record("shop", response("vector", 0.0, 4.0, (0.6,)), embedded=False)
    assert not reused.embedded and reused.top_similarity == pytest.approx(0.6)
    summary = log.latency("shop")
    assert (summary.queries, summary.embedded) == (2, 1)
    assert summary.embed_p50_ms == pytest.approx(20.0)
    assert len(log.top_similarities("shop")) == 2
    assert not log.record("shop", response("bm25", 0.0, 1.0), embedded=True).embedded


def test_log_is_bounded_filtered_and_cleared() -> None:
    log = QueryLog(capacity=3)
    for i in range(5):
        log.record("a" if i % 2 else "b", response("vector", float(i), 1.0, (i / 10,)))
    assert [r.embed_ms for r in log.recent()] == [2.0, 3.0, 4.0]
    assert [r.embed_ms for r in log.recent("a")] == [3.0]
    assert log.top_similarities("b").tolist() == pytest.approx([0.2, 0.4])
    log.clear("a")
    assert [r.collection for r in log.recent()] == ["b", "b"]
    log.clear()
    assert log.recent() == []
    with pytest.raises(ValueError, match="capacity"):
        QueryLog(capacity=0)


def test_log_keeps_every_record_from_many_threads() -> None:
    log = QueryLog(capacity=10_000)
    start = threading.Barrier(8)

    def work(thread: int) -> None:
        start.wait()
        for i in range(250):
            log.record(f"c{thread}", response("hybrid", float(i), 1.0, (0.3,)))
            log.latency()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log.recent()) == 8 * 250
    assert all(len(log.recent(f"c{t}")) == 250 for t in range(8))


def test_reference_snippets_are_short_seeded_pieces_of_the_chunks() -> None:
    texts = [" ".join(f"w{c}_{i}" for i in range(30)) for c in range(50)] + [""]
    snippets = reference_snippets(texts, sample=20, seed=3)
    assert snippets == reference_snippets(texts, sample=20, seed=3)
    assert snippets != reference_snippets(texts, sample=20, seed=4)
    assert 19 <= len(snippets) <= 20  # the empty chunk gives no snippet
    for snippet in snippets:
        words = snippet.split()
        assert len(words) == SNIPPET_WORDS
        chunk = int(words[0][1:].split("_")[0])
        assert snippet in texts[chunk]
    assert reference_snippets(["only three words"], sample=5) == ["only three words"]


def test_reference_similarities_are_the_best_cosine_of_each_query() -> None:
    rng = np.random.default_rng(0)
    chunks = rng.normal(size=(40, 8)).astype(np.float32)
    chunks /= np.linalg.norm(chunks, axis=1, keepdims=True)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    expected = [max(float(q @ c) for c in chunks) for q in queries]
    assert reference_similarities(queries, chunks).tolist() == pytest.approx(expected, abs=1e-6)
    assert len(reference_similarities(np.zeros((0, 8)), chunks)) == 0


def test_similarities_from_one_distribution_do_not_shift() -> None:
    values = np.linspace(0.3, 0.7, 50)
    shift = compare_similarities(values, values)
    assert shift.ks_statistic == 0.0 and not shift.shifted
    assert shift.recent_median == pytest.approx(0.5)


def test_disjoint_similarities_shift_with_smirnovs_bound() -> None:
    recent, reference = np.linspace(0.1, 0.2, 10), np.linspace(0.5, 0.8, 12)
    shift = compare_similarities(recent, reference)
    assert shift.ks_statistic == pytest.approx(1.0)
    # c(0.05) = sqrt(-ln(0.025) / 2) = 1.3581; times sqrt((10 + 12) / (10 * 12))
    assert shift.critical == pytest.approx(math.sqrt(-math.log(0.025) / 2) * math.sqrt(22 / 120))
    assert shift.shifted
    assert (shift.recent, shift.reference) == (10, 12)
    # three against four values can never be significant at 5%: the bound is above 1
    assert not compare_similarities([0.1, 0.15, 0.2], [0.5, 0.6, 0.7, 0.8]).shifted


def test_ks_statistic_matches_a_hand_computation() -> None:
    # F(recent) steps at 0.2, 0.4; G(reference) at 0.3, 0.5, 0.6, 0.7.
    # At x = 0.4: F = 1, G = 1/4, so D = 3/4 (the largest gap).
    shift = compare_similarities([0.2, 0.4], [0.3, 0.5, 0.6, 0.7])
    assert shift.ks_statistic == pytest.approx(0.75)


def test_nothing_to_compare_is_not_a_shift() -> None:
    shift = compare_similarities([], [0.5])
    assert not shift.shifted and math.isnan(shift.ks_statistic)
    with pytest.raises(ValueError, match="alpha"):
        compare_similarities([0.1], [0.2], alpha=1.5)


DOCS = tuple(
    Document(f"d{i}", text)
    for i, text in enumerate(
        [
            "Refunds are paid back to the original card within five business days.",
            "The brake pads squeal when they are worn down to the wear indicator.",
            "Either party may end the contract with thirty days written notice.",
            "A buffer overflow in the parser allows remote code execution.",
            "Customers charged twice for one order get the duplicate payment back.",
            "Replace the brake fluid every two years to keep the pedal firm.",
        ]
    )
)


def test_collection_reference_prefers_the_record_made_at_build_time(home, embedder) -> None:
    collection = build_collection(
        "ref", IngestReport(DOCS, 0, (), 1, ()), embedder=embedder, home=home
    )
    values, recorded = collection_reference(collection)
    assert recorded and len(values) == len(collection.chunks)  # recorded by the build
    # each snippet is a piece of a chunk, so its best match is clearly related
    assert float(values.min()) > 0.3 and float(values.max()) <= 1.0 + 1e-6
    record = reference_record(
        [c.text for c in collection.chunks], embedder.embed_queries, collection.embeddings
    )
    assert record["values"] == pytest.approx(values.tolist(), abs=1e-4)
    del collection.manifest[REFERENCE_KEY]  # a collection built before records existed
    values, recorded = collection_reference(collection)
    assert not recorded and values.tolist() == pytest.approx(record["values"], abs=1e-4)
    collection.manifest[REFERENCE_KEY] = {**record, "values": [0.1, 0.2]}
    values, recorded = collection_reference(collection)
    assert recorded and values.tolist() == [0.1, 0.2]
