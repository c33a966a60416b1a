from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_core.collection import BuildOptions, Collection, build_collection
from search_core.evaluation import evaluate_run, ndcg_at_k, ranking_metrics, run_queries
from search_core.ingest import IngestReport
from search_core.lab import evaluate
from search_core.search import SearchParams
from search_core.sweeps import (
    CandidatePool,
    ann_health,
    ann_sweep,
    fusion_sweep,
    threshold_sweep,
)
from search_core.tuning import TuneGrid
from search_core.types import Document

DOCS = (
    Document("long", " ".join(["Brake pads wear and squeal when they are thin."] * 60)),
    Document("fluid", "Brake fluid should be replaced every two years."),
    Document("refund", "Refunds are paid back within five days of the return."),
    Document("fuel", "Save money on fuel by checking tyre pressure every month."),
    Document("order1", "Order ORD-58213 was shipped to Berlin on Monday."),
    Document("order2", "Order ORD-58231 was cancelled by the customer."),
    Document("engine", "The engine knocks when the car accelerates uphill."),
)
QUERIES = {
    "q1": "why do my brakes squeal",
    "q2": "how do I get my money back",
    "q3": "where is ORD-58213",
    "q4": "engine noise going up a hill",
    "q5": "xylophone concert tickets",
}
QRELS = {
    "q1": {"long": 3, "fluid": 1},
    "q2": {"refund": 3, "fuel": 0},
    "q3": {"order1": 3, "order2": 0},
    "q4": {"engine": 2},
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, embedder) -> Collection:
    home = tmp_path_factory.mktemp("sweeps")
    return build_collection("shop", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=embedder)


@pytest.fixture(scope="module")
def pool(shop: Collection) -> CandidatePool:
    return CandidatePool(shop, QUERIES)


@pytest.mark.parametrize(
    "params",
    [
        SearchParams(mode="vector"),
        SearchParams(mode="vector", threshold=0.3),
        SearchParams(mode="bm25"),
        SearchParams(mode="bm25", bm25_k1=0.9, bm25_b=0.4),
        SearchParams(),
        SearchParams(threshold=0.25),
        SearchParams(threshold=0.99),
        SearchParams(rrf_k=5, vector_weight=0.3, bm25_weight=1.0),
        SearchParams(vector_weight=1.0, bm25_weight=0.0),
        SearchParams(vector_weight=0.0, bm25_weight=1.0),
        SearchParams(identifier_match=False, bm25_k1=2.0, bm25_b=0.3),
        SearchParams(lexical_margin=-2.0),
        SearchParams(lexical_margin=0.05, threshold=0.1),
        SearchParams(identifier_match=False, lexical_margin=0.4),
        SearchParams(fusion="minmax"),
        SearchParams(fusion="zscore", vector_weight=0.7, bm25_weight=0.3),
        SearchParams(fusion="minmax", identifier_match=False, threshold=0.1),
        SearchParams(aggregation="best-two"),
        SearchParams(mode="vector", aggregation="best-two"),
    ],
    ids=lambda p: (
        "-".join(f"{k}={v}" for k, v in p.to_dict().items() if v != getattr(SearchParams(), k))
        or "defaults"
    ),
)
def test_pool_ranks_exactly_as_a_run(shop: Collection, pool: CandidatePool, params) -> None:
    expected = run_queries(shop, QUERIES, params)
    ranked = pool.run(params)
    assert ranked == expected
    assert {q: list(docs) for q, docs in ranked.items()} == {
        q: list(d) for q, d in expected.items()
    }


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid"])
def test_pool_follows_the_deepening_of_a_collapsed_search(shop: Collection, mode: str) -> None:
    # Depth 3 with 1 candidate: collapsing chunks of "long" leaves too few documents, so the
    # search deepens four times over, and the pool must do the same.
    params = SearchParams(mode=mode, candidates=1)
    shallow = CandidatePool(shop, QUERIES, candidates=1, depth=3)
    expected = run_queries(shop, QUERIES, params, depth=3)
    assert {q: list(d) for q, d in shallow.run(params).items()} == {
        q: list(d) for q, d in expected.items()
    }


def test_pool_refuses_settings_it_was_not_gathered_with(pool: CandidatePool) -> None:
    with pytest.raises(ValueError, match="nprobe"):
        pool.rank(SearchParams(nprobe=4))
    with pytest.raises(ValueError, match="unfiltered"):
        pool.rank(SearchParams(filters={"lang": "en"}))


@settings(max_examples=30, deadline=None)
@given(
    grades=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3), min_size=1),
    ranking=st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=12),
    k=st.sampled_from([1, 3, 5, 10]),
)
def test_direct_metrics_equal_ranx(grades: dict, ranking: list, k: int) -> None:
    run = {"q": {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}}
    metrics = list(ranking_metrics(ranking, grades, k))
    direct = ranking_metrics(ranking, grades, k)
    assert direct[f"ndcg@{k}"] == pytest.approx(ndcg_at_k(ranking, grades, k))
    if not any(g >= 1 for g in grades.values()):
        assert set(direct.values()) == {0.0}
        return
    ranx = evaluate_run({"q": grades}, run, metrics).per_query["q"]
    assert direct == pytest.approx(ranx)


def test_threshold_sweep(shop: Collection, pool: CandidatePool) -> None:
    result = threshold_sweep(shop, QUERIES, QRELS, thresholds=[0.0, 0.2, 0.4, 0.6, 1.0], k=3)
    assert result.columns == ["threshold", "ndcg@3", "precision@3", "recall@3", "empty_share"]
    shares = [row["empty_share"] for row in result.rows]
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert (result.queries, result.judged) == (5, 4)

    # Each row is what a run at that threshold scores with ranx.
    for row in result.rows:
        run = run_queries(shop, QUERIES, SearchParams(threshold=row["threshold"]))
        report = evaluate(QRELS, run, k=3)
        for metric in ("ndcg@3", "precision@3", "recall@3"):
            assert row[metric] == pytest.approx(report.metrics[metric])
        assert row["empty_share"] == pytest.approx(report.zero_result_share)

    with pytest.raises(ValueError, match="not bm25"):
        threshold_sweep(shop, QUERIES, QRELS, SearchParams(mode="bm25"), pool=pool)


def test_fusion_sweep_ends_are_the_pure_modes(shop: Collection, pool: CandidatePool) -> None:
    result = fusion_sweep(
        shop, QUERIES, QRELS, rrf_ks=[10, 60], vector_shares=[0.0, 0.5, 1.0], pool=pool
    )
    assert len(result.rows) == 6
    for row in result.rows:
        mode = {0.0: "bm25", 1.0: "vector"}.get(row["vector_weight"], "hybrid")
        params = replace(
            SearchParams(mode=mode),
            rrf_k=row["rrf_k"],
            vector_weight=row["vector_weight"],
            bm25_weight=row["bm25_weight"],
        )
        expected = evaluate(QRELS, run_queries(shop, QUERIES, params), k=10)
        assert row["mode"] == mode
        assert row["ndcg@10"] == pytest.approx(expected.metrics["ndcg@10"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        fusion_sweep(shop, QUERIES, QRELS, vector_shares=[1.5], pool=pool)


SUBJECTS = [
    "The cat",
    "A pilot",
    "The chef",
    "My neighbour",
    "The engineer",
    "A student",
    "The doctor",
    "Our team",
    "The farmer",
    "A tourist",
]
ACTIONS = [
    "cooked pasta",
    "repaired the engine",
    "visited Paris",
    "wrote a poem",
    "planted tomatoes",
    "fixed a leaking pipe",
    "read a novel",
    "painted the fence",
    "climbed a mountain",
    "sold the old car",
    "watched the stars",
    "baked bread",
    "trained a puppy",
    "built a website",
    "sang in a choir",
    "caught a fish",
    "studied chemistry",
    "cleaned the windows",
    "played chess",
    "lost the keys",
]


@pytest.fixture(scope="module")
def ivf(tmp_path_factory: pytest.TempPathFactory, embedder) -> Collection:
    docs = tuple(
        Document(f"d{i:03d}", f"{s} {a} on Monday.")
        for i, (s, a) in enumerate((s, a) for s in SUBJECTS for a in ACTIONS)
    )
    options = BuildOptions(index_kind="ivf", index_params={"nlist": 5})
    home = tmp_path_factory.mktemp("ivf")
    collection = build_collection(
        "ivf", IngestReport(docs, 0, (), 1, ()), options, home=home, embedder=embedder
    )
    assert collection.vector_index.kind == "ivf"
    return collection


def test_ann_sweep_recall_rises_with_nprobe_to_one_at_nlist(ivf: Collection) -> None:
    result = ann_sweep(ivf, sample=200)
    assert result.parameter == "nprobe"
    assert [row["nprobe"] for row in result.rows] == [1, 2, 4, 5]
    recall = [row["recall@10"] for row in result.rows]
    assert recall == sorted(recall) and recall[0] < 1.0
    assert recall[-1] == pytest.approx(1.0)  # nprobe = nlist scans every list
    for row in result.rows:
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]


def test_ann_sweep_with_judged_queries_adds_ndcg(ivf: Collection) -> None:
    queries = {"q1": "who baked bread", "q2": "the pilot climbed a mountain"}
    qrels = {"q1": {f"d{i:03d}": 1 for i in range(11, 200, 20)}, "q2": {"d028": 3}}
    result = ann_sweep(ivf, queries, qrels, values=[1, 5])
    assert result.columns == ["nprobe", "recall@10", "p50_ms", "p95_ms", "p99_ms", "ndcg@10"]
    exact = evaluate(qrels, run_queries(ivf, queries, SearchParams(mode="vector", nprobe=5)))
    assert result.rows[-1]["ndcg@10"] == pytest.approx(exact.metrics["ndcg@10"])


def test_ann_sweep_refuses_an_exact_index(shop: Collection) -> None:
    with pytest.raises(ValueError, match="sweepable kinds: ivf, ivfpq, hnsw"):
        ann_sweep(shop)


def test_ann_health(shop: Collection, ivf: Collection) -> None:
    flat = ann_health(shop)
    assert flat.kind == "flat" and flat.recall == pytest.approx(1.0)
    health = ann_health(ivf, sample=50)
    memory = {row["kind"]: row for row in health.memory}
    assert set(memory) == {"flat", "ivf", "hnsw", "ivfpq"}
    assert memory["ivf"]["current"] and memory["ivf"]["stored_bytes"] > 0
    # flat holds nothing of its own: it searches the mapped vectors in place
    assert memory["flat"]["total_bytes"] < 100 and "in place" in memory["flat"]["note"]
    assert memory["ivfpq"]["bytes_per_vector"] < memory["ivf"]["bytes_per_vector"]
    assert "624 vectors" in memory["ivfpq"]["note"]  # too few vectors for its quantizer
    assert 0.0 < health.recall <= 1.0 and health.sample == 50


@pytest.mark.parametrize("grid", [TuneGrid(), TuneGrid.small()], ids=["full", "small"])
def test_the_pool_ranks_every_point_of_the_tuner_grid_as_a_run(
    shop: Collection, pool: CandidatePool, grid: TuneGrid
) -> None:
    # tune ranks with the pool, searches with run_search: one candidate stage, so the same
    for params in grid.points(SearchParams(k=10)):
        assert pool.run(params) == run_queries(shop, QUERIES, params, vectors=pool.vectors), params
