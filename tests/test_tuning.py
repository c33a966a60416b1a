from __future__ import annotations

import time

import numpy as np
import pytest

from search_core.collection import Collection, build_collection
from search_core.evaluation import evaluate_run, load_qrels, load_queries, run_queries
from search_core.ingest import IngestReport
from search_core.search import SearchParams
from search_core.tuning import TuneGrid, describe_params, tune
from search_core.types import Document

DOCS = (
    Document("long", " ".join(["Brake pads wear and squeal when they are thin."] * 40)),
    Document("fluid", "Brake fluid should be replaced every two years."),
    Document("refund", "Refunds are paid back within five days of the return."),
    Document("fuel", "Save money on fuel by checking tyre pressure every month."),
    Document("order1", "Order ORD-58213 was shipped to Berlin on Monday."),
    Document("order2", "Order ORD-58231 was cancelled by the customer."),
    Document("engine", "The engine knocks when the car accelerates uphill."),
    Document("wipers", "Replace worn wiper blades before winter."),
)
QUERIES = {
    "q1": "why do my brakes squeal",
    "q2": "how do I get my money back",
    "q3": "where is ORD-58213",
    "q4": "engine noise going up a hill",
    "q5": "streaks on the windscreen when it rains",
    "q6": "when should brake fluid be changed",
    "ood": "xylophone concert tickets",
}
QRELS = {
    "q1": {"long": 3, "fluid": 1},
    "q2": {"refund": 3, "fuel": 0},
    "q3": {"order1": 3, "order2": 0},
    "q4": {"engine": 2},
    "q5": {"wipers": 2},
    "q6": {"fluid": 3, "long": 1},
}
SMALL_GRID = TuneGrid(
    weights=((1.0, 1.0), (1.0, 0.5), (0.5, 1.0)),
    rrf_ks=(60.0, 10.0),
    bm25=((None, None), (0.9, 0.4)),
    thresholds=(0.0, 0.3),
)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, embedder) -> Collection:
    home = tmp_path_factory.mktemp("tuning")
    return build_collection("shop", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=embedder)


@pytest.fixture(scope="module")
def report(shop: Collection):
    return tune(shop, QUERIES, QRELS, folds=3, grid=SMALL_GRID)


def _ndcg(collection: Collection, params: SearchParams) -> float:
    run = run_queries(collection, QUERIES, params)
    return evaluate_run(QRELS, run, ["ndcg@10"]).metrics["ndcg@10"]


def test_scores_are_what_real_runs_score(shop: Collection, report) -> None:
    assert report.chosen_score == pytest.approx(_ndcg(shop, report.chosen))
    for mode, score in report.defaults.items():
        assert score == pytest.approx(_ndcg(shop, SearchParams(mode=mode)))
    assert report.defaults[report.best_default] == max(report.defaults.values())
    assert report.chosen_score >= max(report.defaults.values())


def test_held_out_score_comes_from_the_folds(report) -> None:
    assert report.queries == len(QRELS)  # the out-of-domain query has no judgment
    folds = [set(f.queries) for f in report.folds]
    assert len(folds) == 3 and set().union(*folds) == set(QRELS)
    assert sum(len(f) for f in folds) == len(QRELS)
    weighted = sum(f.test * len(f.queries) for f in report.folds) / len(QRELS)
    assert report.held_out == pytest.approx(weighted)
    assert report.held_out == pytest.approx(np.mean(list(report.per_query.values())))
    assert 0.0 <= report.held_out <= 1.0


def test_report_says_what_it_chose_and_why(report) -> None:
    assert describe_params(report.chosen) in report.reason
    assert "cross-validation" in report.reason and report.best_default in report.reason
    data = report.to_dict()
    assert SearchParams.from_dict(data["chosen"]) == report.chosen
    assert data["gain"] == pytest.approx(report.held_out - report.defaults[report.best_default])
    assert data["grid_size"] == len(SMALL_GRID.points(SearchParams(k=10)))


def test_grid_lists_the_defaults_first_and_each_search_once() -> None:
    points = SMALL_GRID.points(SearchParams())
    assert points[:3] == [SearchParams(mode=m) for m in ("hybrid", "vector", "bm25")]
    assert len({repr(sorted(p.to_dict().items())) for p in points}) == len(points)
    bm25 = [p for p in points if p.mode == "bm25"]
    assert {p.threshold for p in bm25} == {SearchParams().threshold}  # ignored by bm25
    assert len(bm25) == 2
    # vector: the default threshold plus the grid's; hybrid: every combination
    thresholds = {SearchParams().threshold, 0.0, 0.3}
    assert len([p for p in points if p.mode == "vector"]) == len(thresholds)
    assert len([p for p in points if p.mode == "hybrid"]) == 2 * 3 * 2 * len(thresholds)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (SearchParams(), "the default hybrid mode"),
        (SearchParams(mode="vector", threshold=0.4), "vector mode with similarity threshold 0.4"),
        (
            SearchParams(vector_weight=1, bm25_weight=0.5, rrf_k=30, bm25_k1=0.9, bm25_b=0.4),
            "hybrid mode with vector weight 1 and BM25 weight 0.5, rrf_k 30, BM25 k1 0.9 and b 0.4",
        ),
        (SearchParams(mode="bm25", threshold=0.9), "the default bm25 mode"),
    ],
)
def test_describe_params(params: SearchParams, words: str) -> None:
    assert describe_params(params) == words


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 1}, "at least 2 folds"),
        ({"folds": 7}, "6 judged queries are too few for 7 folds"),
        ({"base": SearchParams(filters={"lang": "en"})}, "remove the filters"),
    ],
)
def test_tune_refuses_bad_input(shop: Collection, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tune(shop, QUERIES, QRELS, grid=SMALL_GRID, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["cranfield", "msmarco-5k"])
def test_tuning_holds_up_on_held_out_queries(dataset: str, shared_collection) -> None:
    collection, folder = shared_collection(dataset)
    query_set = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    collection.embedder.load()
    started = time.perf_counter()
    result = tune(collection, query_set, qrels)
    seconds = time.perf_counter() - started
    print(
        f"{dataset}: chose {describe_params(result.chosen)}; held-out nDCG@10 "
        f"{result.held_out:.4f} vs defaults {result.defaults} in {seconds:.1f} s"
    )
    best_default = max(result.defaults.values())
    assert result.held_out >= best_default - 0.005
    assert describe_params(result.chosen) in result.reason
