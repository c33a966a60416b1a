from __future__ import annotations

import time

import numpy as np
import pytest

from search_core.collection import Collection, build_collection
from search_core.evaluation import evaluate_run, load_qrels, load_queries, run_queries
from search_core.ingest import IngestReport
from search_core.search import SearchParams
from search_core.tuning import ALPHA, TuneGrid, _Chooser, describe_params, tune
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
    fusions=("rrf", "minmax"),
    margins=(None, -2.0),
    aggregations=("best",),
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
    # vector: the default threshold plus the grid's; hybrid: RRF crosses BM25 settings,
    # weights, rrf_k and thresholds, min-max the weights and thresholds, and each fusion adds
    # the no-floor margin (the automatic one is already there)
    thresholds = {SearchParams().threshold, 0.0, 0.3}
    assert len([p for p in points if p.mode == "vector"]) == len(thresholds)
    hybrid = [p for p in points if p.mode == "hybrid"]
    assert len([p for p in hybrid if p.fusion == "rrf"]) == 2 * 3 * 2 * len(thresholds) + 1
    assert len([p for p in hybrid if p.fusion == "minmax"]) == 3 * len(thresholds) + 1
    assert {p.rrf_k for p in hybrid if p.fusion == "minmax"} == {SearchParams().rrf_k}
    # the full grid also scores documents by their two best chunks, in each default mode
    two = [p for p in TuneGrid().points(SearchParams()) if p.aggregation == "best-two"]
    assert two == [
        SearchParams(mode=m, aggregation="best-two") for m in ("hybrid", "vector", "bm25")
    ]


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
        (
            SearchParams(fusion="zscore", rrf_k=10, lexical_margin=-2.0),
            "hybrid mode with zscore fusion, no BM25 floor",
        ),
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


def test_a_small_query_set_gets_the_small_grid(shop: Collection) -> None:
    report = tune(shop, QUERIES, QRELS, folds=3)
    assert report.small_grid and "small grid" in report.reason
    assert report.grid_size == len(TuneGrid.small().points(SearchParams(k=10)))
    assert report.gain_ci[0] <= report.gain <= report.gain_ci[1]


def _chooser(scores: np.ndarray, complexity: list[int]) -> _Chooser:
    return _Chooser(np.asarray(scores, dtype=float), np.array(complexity), 0, 5, 0)


def test_a_tuned_setting_replaces_the_default_only_with_evidence() -> None:
    rng = np.random.default_rng(1)
    default = rng.uniform(0.2, 0.6, 60)
    others = [default - 0.1, default - 0.2]  # the two other default modes
    everyone = np.arange(60)
    # better on every query: chosen, with a tiny p-value
    consistent = _chooser([default, *others, default + 0.1], [0, 0, 0, 1]).choose(everyone)
    assert (consistent.row, consistent.kept_default) == (3, False) and consistent.p_value < 1e-6
    # better on average by luck on some queries only: the default is kept
    noise = default + rng.choice([-0.3, 0.32], 60)
    lucky = _chooser([default, *others, noise], [0, 0, 0, 1]).choose(everyone)
    assert (lucky.row, lucky.kept_default) == (0, True) and lucky.p_value >= ALPHA


def test_the_one_standard_error_rule_prefers_fewer_changes() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0.2, 0.6, 80)
    simple = base + 0.10 + rng.normal(0, 0.02, 80)
    busy = base + 0.101 + rng.normal(0, 0.02, 80)  # a hair better, three settings changed
    chooser = _chooser([base, base - 0.1, base - 0.2, busy, simple], [0, 0, 0, 3, 1])
    assert chooser.best(np.arange(80)) == 4
    assert chooser.choose(np.arange(80)).row == 4


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_tuning_never_loses_on_a_small_judged_set(seed: int, shared_collection) -> None:
    # 35 queries sampled from cranfield: 400 settings tuned on 28 of them used to overfit
    collection, folder = shared_collection("cranfield")
    query_set = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    ids = sorted(query_set.queries)
    picks = np.random.default_rng(100 + seed).choice(len(ids), 35, replace=False)
    queries = {ids[i]: query_set.queries[ids[i]] for i in sorted(picks)}
    result = tune(collection, queries, qrels, seed=seed)
    assert result.small_grid
    assert result.held_out >= max(result.defaults.values()) - 0.005, result.reason
