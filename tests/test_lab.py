from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_core.collection import Collection, build_collection
from search_core.errors import CollectionError, IntegrityError
from search_core.evaluation import run_queries
from search_core.ingest import IngestReport
from search_core.lab import (
    COVERAGE_WARNING,
    bootstrap_interval,
    compare,
    evaluate,
    format_trec_run,
    lab_metrics,
    list_configs,
    list_snapshots,
    load_config,
    load_snapshot,
    metric_intervals,
    parse_trec_run,
    read_config_file,
    save_config,
    side_by_side,
    take_snapshot,
)
from search_core.search import SearchParams
from search_core.types import Document

LONG = " ".join(["Brake pads wear and squeal when they are thin."] * 60)
DOCS = (
    Document("long", LONG),
    Document("fluid", "Brake fluid should be replaced every two years."),
    Document("refund", "Refunds are paid back within five days."),
    Document("fuel", "Save money on fuel by checking tyre pressure."),
)
QUERIES = {"q1": "brake pads squeal", "q2": "refund money back", "q3": "xylophone"}
QRELS = {"q1": {"long": 2, "fluid": 0, "fuel": 1}, "q2": {"refund": 3}, "q3": {"refund": 1}}


def log2(x: float) -> float:
    return math.log(x, 2)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, embedder) -> Collection:
    home = tmp_path_factory.mktemp("lab")
    return build_collection("shop", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=embedder)


@pytest.fixture
def home(shop: Collection) -> Path:
    return shop.folder.parent.parent


def test_metrics_end_to_end_match_hand_computation(shop: Collection) -> None:
    assert len(shop.chunks) > len(DOCS)  # the long document has several chunks
    run = run_queries(shop, QUERIES, SearchParams(mode="bm25"))
    # BM25 matches: q1 all chunks of "long" (brake, pad, squeal) then "fluid" (brake);
    # q2 "refund" (refund, back) then "fuel" (money); q3 matches nothing.
    assert [list(run[q]) for q in QUERIES] == [["long", "fluid"], ["refund", "fuel"], []]

    report = evaluate(QRELS, run, k=3, queries=QUERIES)
    # q1: relevant long (2) and fuel (1); ranked long, fluid (judged 0).
    ndcg_q1 = (2 / log2(2)) / (2 / log2(2) + 1 / log2(3))
    q1 = {"ndcg@3": ndcg_q1, "recall@3": 1 / 2, "mrr@3": 1.0, "precision@3": 1 / 3, "map": 1 / 2}
    # q2: relevant refund (3), ranked first; fuel is not judged.
    q2 = {"ndcg@3": 1.0, "recall@3": 1.0, "mrr@3": 1.0, "precision@3": 1 / 3, "map": 1.0}
    q3 = dict.fromkeys(q1, 0.0)  # no result at all
    rows = {row["query_id"]: row for row in report.per_query}
    for qid, expected in {"q1": q1, "q2": q2, "q3": q3}.items():
        for metric, value in expected.items():
            assert rows[qid][metric] == pytest.approx(value), (qid, metric)
    assert report.metrics == pytest.approx({m: (q1[m] + q2[m] + q3[m]) / 3 for m in q1})
    assert [rows[q]["unjudged@3"] for q in QUERIES] == [0, 1, 0]
    assert report.unjudged == 1 and report.unjudged_share == pytest.approx(1 / 4)
    assert report.empty == ("q3",) and report.zero_result_share == pytest.approx(1 / 3)
    assert (report.judged, report.queries) == (3, 3)
    assert rows["q2"]["query"] == "refund money back" and rows["q2"]["results"] == 2


def test_a_query_without_judgments_is_listed_but_not_scored() -> None:
    report = evaluate({"q1": {"a": 1}}, {"q1": {"a": 2.0, "b": 1.0}, "ood": {}}, k=2)
    rows = {row["query_id"]: row for row in report.per_query}
    assert rows["ood"]["judged"] is False and rows["ood"]["ndcg@2"] is None
    assert report.judged == 1 and report.zero_result_share == pytest.approx(1 / 2)
    assert report.unjudged == 1 and report.unjudged_share == pytest.approx(1 / 2)


@settings(max_examples=40, deadline=None)
@given(
    grades=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3), min_size=1),
    ranking=st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=12),
    k=st.integers(1, 12),
)
def test_metrics_stay_in_unit_interval(grades: dict, ranking: list, k: int) -> None:
    run = {"q": {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}, "other": {}}
    report = evaluate({"q": grades}, run, k=k)
    for value in report.metrics.values():
        assert 0.0 <= value <= 1.0 + 1e-9
    assert 0.0 <= report.unjudged_share <= 1.0 and 0.0 <= report.zero_result_share <= 1.0
    shown = sum(min(k, len(docs)) for docs in run.values())
    assert report.coverage == pytest.approx(1 - len(report.unjudged_pairs) / shown if shown else 1)
    assert 0.0 <= report.coverage <= 1.0 and len(report.unjudged_pairs) >= report.unjudged


def test_coverage_counts_every_query_run_and_lists_the_unjudged_pairs() -> None:
    qrels = {"q1": {"a": 2, "b": 0}, "q2": {"c": 0}}
    run = {
        "q4": {"z": 1.0, "w": 2.0},  # no judgment at all: both unjudged, best first
        "q1": {"a": 3.0, "b": 2.0, "x": 1.0},  # a relevant, b judged 0; x is below k
        "q2": {"c": 2.0, "y": 1.0},  # no relevant grade, but c is judged (0)
        "q3": {},  # nothing returned: nothing to judge
    }
    report = evaluate(qrels, run, k=2)
    # top 2 judged: q4 0 of 2, q1 2 of 2, q2 1 of 2, q3 none shown
    assert report.coverage == pytest.approx(3 / 6)
    assert report.unjudged_pairs == (("q4", "w"), ("q4", "z"), ("q2", "y"))
    assert report.summary()["coverage"] == report.coverage
    assert (report.unjudged, report.judged) == (0, 1)  # the old count: scored queries only


@pytest.mark.parametrize("run", [{"q1": {}, "q2": {}}, {}])
def test_coverage_of_a_run_that_returned_nothing_is_complete(run: dict) -> None:
    report = evaluate({"q1": {"a": 1}}, run, k=5)
    assert (report.coverage, report.unjudged_pairs) == (1.0, ())


def test_lab_metrics_names_and_invalid_k() -> None:
    assert lab_metrics(5) == ("ndcg@5", "recall@5", "mrr@5", "precision@5", "map")
    with pytest.raises(ValueError, match="at least 1"):
        lab_metrics(0)


QRELS_AB = {"q1": {"a": 1}, "q2": {"b": 2}, "q3": {"c": 1}}
RUNS_AB = {
    "base": {"q1": {"a": 2.0, "x": 1.0}, "q2": {"x": 2.0, "b": 1.0}, "q3": {"y": 1.0}},
    "new": {"q1": {"a": 2.0, "x": 1.0}, "q2": {"b": 2.0, "x": 1.0}, "q3": {}},
}


def test_compare_tables_deltas_and_wins() -> None:
    result = compare(QRELS_AB, RUNS_AB, k=2)
    assert result.names == ("base", "new") and result.metric == "ndcg@2"
    rows = {row["query_id"]: row for row in result.per_query}
    # q1 unchanged; q2: b moves from rank 2 to 1; q3: nothing found either way.
    assert rows["q1"]["delta:new"] == 0.0
    assert rows["q2"]["base"] == pytest.approx(1 / log2(3))
    assert rows["q2"]["delta:new"] == pytest.approx(1 - 1 / log2(3))
    assert result.wins_ties_losses == {"new": {"wins": 1, "ties": 2, "losses": 0}}
    table = {row["name"]: row for row in result.table}
    assert table["new"]["ndcg@2"] == pytest.approx(2 / 3)
    assert table["new"]["zero_result_share"] == pytest.approx(1 / 3)
    assert 0.0 <= result.p_values["new"]["ndcg@2"] <= 1.0
    assert set(result.significant["new"]) == set(lab_metrics(2))
    assert json.loads(json.dumps(result.to_dict()))["baseline"] == "base"


def test_identical_runs_tie_everywhere_with_p_value_one() -> None:
    result = compare(QRELS_AB, {"a": RUNS_AB["base"], "b": RUNS_AB["base"]}, stat_test="fisher")
    assert result.wins_ties_losses["b"] == {"wins": 0, "ties": 3, "losses": 0}
    assert result.p_values["b"]["ndcg@10"] == pytest.approx(1.0)
    assert not any(result.significant["b"].values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": {"only": RUNS_AB["base"]}}, "at least two runs"),
        ({"stat_test": "anova"}, "valid: student, fisher, tukey"),
        ({"metric": "bpref"}, "valid: ndcg@10"),
    ],
)
def test_compare_refuses_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare(QRELS_AB, **{"runs": RUNS_AB, **kwargs})


def test_side_by_side_shows_ranks_in_every_list_and_grades() -> None:
    view = side_by_side(QRELS_AB, RUNS_AB, "q2", k=2, titles={"b": "Bee"})
    base, new = view.lists["base"], view.lists["new"]
    assert [(d.doc_id, d.rank, d.grade) for d in base] == [("x", 1, None), ("b", 2, 2)]
    assert base[1].ranks == {"base": 2, "new": 1} and base[1].title == "Bee"
    assert new[0].ranks == {"base": 2, "new": 1}
    rows = view.rows()
    assert rows[0] == {
        "rank": 1,
        "base:doc": "x",
        "base:grade": None,
        "base:rank in new": 2,
        "new:doc": "b",
        "new:grade": 2,
        "new:rank in base": 2,
    }
    with pytest.raises(ValueError, match="in none of the runs"):
        side_by_side(QRELS_AB, RUNS_AB, "q9")


def test_configs_save_load_list_and_detect_tampering(shop: Collection, home: Path) -> None:
    params = SearchParams(mode="hybrid", rrf_k=20, vector_weight=0.5, threshold=0.2)
    path = save_config("shop", "tuned", params, home)
    assert load_config("shop", "tuned", home) == params
    assert read_config_file(path) == params
    assert "tuned" in list_configs("shop", home)
    path.write_text(path.read_text().replace('"rrf_k": 20', '"rrf_k": 21'))
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        load_config("shop", "tuned", home)
    with pytest.raises(CollectionError, match="no configuration named 'nope'"):
        load_config("shop", "nope", home)


def test_a_config_file_is_plain_search_params_json(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"mode": "vector", "threshold": 0.3}')
    assert read_config_file(path) == SearchParams(mode="vector", threshold=0.3)
    path.write_text('{"mode": "vector", "treshold": 0.3}')
    with pytest.raises(ValueError, match="unknown search settings"):
        read_config_file(path)


def test_snapshot_keeps_the_trec_run_time_and_metrics(shop: Collection, home: Path) -> None:
    params = SearchParams(mode="bm25")
    snapshot, report = take_snapshot(shop, "bm25", params, QUERIES, QRELS, k=3, home=home)
    assert snapshot.metrics == report.metrics and snapshot.k == 3
    trec = (home / "shop" / "lab" / "snapshots" / f"{snapshot.snapshot_id}.trec").read_text()
    assert trec.splitlines()[0].split() == ["q1", "Q0", "long", "1", "100.0", "bm25"]

    loaded = load_snapshot("shop", snapshot.snapshot_id, home)
    assert loaded.run == snapshot.run  # the empty q3 included
    assert loaded.params == params.to_dict() and loaded.zero_result_share == pytest.approx(1 / 3)
    assert [s.snapshot_id for s in list_snapshots("shop", home)] == [snapshot.snapshot_id]

    path = home / "shop" / "lab" / "snapshots" / f"{snapshot.snapshot_id}.trec"
    path.write_text(trec.replace("long", "fluid", 1))
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        load_snapshot("shop", snapshot.snapshot_id, home)


def test_trec_run_round_trip() -> None:
    run = {"q 1": {"doc a": 3.0, "b": 2.0}, "q2": {}}
    text = format_trec_run(run, tag="t")
    assert text == "q%201 Q0 doc%20a 1 3.0 t\nq%201 Q0 b 2 2.0 t\n"
    assert parse_trec_run(text, ["q 1", "q2"]) == run


# Eight judged queries whose nDCG differs between the runs in both directions.
QRELS_8 = {f"q{i}": {"a": 1 + i % 3, "b": 1} for i in range(8)}
RUNS_8 = {
    "base": {f"q{i}": {"a": 3.0, "x": 2.0, "b": 1.0} for i in range(8)},
    "mixed": {f"q{i}": ({"b": 2.0, "a": 1.0} if i % 3 else {"x": 2.0, "y": 1.0}) for i in range(8)},
    "worse": {f"q{i}": {"x": 3.0, "y": 2.0, "b": 1.0} if i < 6 else {} for i in range(8)},
}


def _scores(result, metric: str) -> dict[str, list[float]]:
    return {
        name: [row[metric] for row in result.reports[name].per_query if row["judged"]]
        for name in result.names
    }


@pytest.mark.parametrize("metric", list(lab_metrics(10)))
def test_student_p_values_are_scipys_paired_t_test(metric: str) -> None:
    from scipy.stats import ttest_rel

    result = compare(QRELS_8, RUNS_8, stat_test="student")
    scores = _scores(result, metric)
    for name in ("mixed", "worse"):
        expected = ttest_rel(scores["base"], scores[name]).pvalue
        expected = 1.0 if math.isnan(expected) else expected
        assert result.p_values[name][metric] == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("metric", list(lab_metrics(10)))
def test_tukey_p_values_are_scipys_tukey_hsd(metric: str) -> None:
    from scipy.stats import tukey_hsd

    result = compare(QRELS_8, RUNS_8, stat_test="tukey")
    scores = _scores(result, metric)
    expected = tukey_hsd(scores["base"], scores["mixed"], scores["worse"]).pvalue
    for column, name in ((1, "mixed"), (2, "worse")):
        p = 1.0 if math.isnan(expected[0, column]) else expected[0, column]
        assert result.p_values[name][metric] == pytest.approx(p, rel=1e-9, abs=1e-15)


def test_fisher_p_values_approach_the_exact_randomization_test() -> None:
    import itertools

    result = compare(QRELS_8, RUNS_8, stat_test="fisher")
    scores = _scores(result, "ndcg@10")
    for name in ("mixed", "worse"):
        diff = np.array(scores[name]) - np.array(scores["base"])
        # all 2**8 sign flips: the exact p-value the 1000 random ones estimate
        flips = np.array(list(itertools.product((-1.0, 1.0), repeat=len(diff))))
        exact = np.mean(np.abs((flips * diff).mean(axis=1)) >= abs(diff.mean()) - 1e-12)
        assert result.p_values[name]["ndcg@10"] == pytest.approx(exact, abs=0.05)
    assert compare(QRELS_8, RUNS_8, stat_test="fisher").p_values == result.p_values  # seeded


@settings(max_examples=25, deadline=None)
@given(
    grades=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3), min_size=1),
    rankings=st.lists(
        st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=12), min_size=1, max_size=4
    ),
    k=st.integers(1, 12),
)
def test_lab_metrics_equal_ranx(grades: dict, rankings: list, k: int) -> None:
    from search_core.evaluation import evaluate_run

    run = {
        f"q{n}": {doc: float(len(r) - i) for i, doc in enumerate(r)} for n, r in enumerate(rankings)
    }
    qrels = {q: grades for q in run}
    report = evaluate(qrels, run, k=k)
    reference = evaluate_run(qrels, run, lab_metrics(k))
    assert report.judged == reference.queries and report.empty == reference.empty
    assert report.metrics == pytest.approx(reference.metrics)
    for row in report.per_query:
        if row["judged"]:
            assert {m: row[m] for m in lab_metrics(k)} == pytest.approx(
                reference.per_query[row["query_id"]]
            )


def test_a_comparison_needs_neither_ranx_nor_numba() -> None:
    # ranx compiles numba kernels in every new process: the app's first comparison waited
    # 30 to 100 s for them before showing anything.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from search_core.lab import compare, evaluate\n"
        f"runs, qrels = {RUNS_8!r}, {QRELS_8!r}\n"
        "for test in ('student', 'fisher'):\n"
        "    compare(qrels, runs, stat_test=test)\n"
        "evaluate(qrels, runs['base'])\n"
        "print(sorted(m for m in ('ranx', 'numba') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root
    ).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- honest comparisons


def test_compare_flags_runs_under_the_coverage_warning_only() -> None:
    assert COVERAGE_WARNING == 0.9
    judged = [f"d{i}" for i in range(9)]
    qrels = {"q1": {doc: int(doc == "d0") for doc in judged}}

    def ranked(docs: list[str]) -> dict[str, float]:
        return {doc: float(len(docs) - i) for i, doc in enumerate(docs)}

    runs = {
        "full": {"q1": ranked(judged)},  # 9 of 9 judged
        "edge": {"q1": ranked([*judged, "u"])},  # 9 of 10: exactly 90%, not under it
        "low": {"q1": ranked([*judged[:8], "u", "v"])},  # 8 of 10
    }
    result = compare(qrels, runs, k=10)
    assert {n: r.coverage for n, r in result.reports.items()} == pytest.approx(
        {"full": 1.0, "edge": 0.9, "low": 0.8}
    )
    assert result.low_coverage == ("low",)
    assert result.reports["low"].unjudged_pairs == (("q1", "u"), ("q1", "v"))
    assert [row["coverage"] for row in result.table] == pytest.approx([1.0, 0.9, 0.8])


@pytest.mark.parametrize("metric", list(lab_metrics(10)))
def test_intervals_hold_the_mean_and_are_scipys_bootstrap(metric: str) -> None:
    from scipy import stats

    def reference(values: np.ndarray) -> tuple[float, float]:
        if np.ptp(values) == 0:
            return values[0], values[0]
        found = stats.bootstrap(
            (values,),
            np.mean,
            n_resamples=2000,
            method="percentile",
            random_state=np.random.default_rng(0),
        ).confidence_interval
        return found.low, found.high

    result = compare(QRELS_8, RUNS_8)
    scores = _scores(result, metric)  # judged queries q0..q7: run order is id order here
    base = np.array(scores["base"])
    for name in result.names:
        values = np.array(scores[name])
        low, high = result.intervals[name][metric]
        assert low <= result.reports[name].metrics[metric] <= high
        assert values.min() <= low and high <= values.max()
        assert (low, high) == pytest.approx(reference(values))
        if name != "base":
            d_low, d_high = result.difference_intervals[name][metric]
            assert d_low <= float(np.mean(values - base)) <= d_high
            assert (d_low, d_high) == pytest.approx(reference(values - base))
    assert set(result.difference_intervals) == {"mixed", "worse"}
    low, high = result.intervals["mixed"]["ndcg@10"]
    assert low < high  # the scores differ query by query: a real interval, not a point


def test_a_run_compared_with_itself_differs_by_the_point_zero() -> None:
    same = {"base": RUNS_8["base"], "copy": RUNS_8["base"], "mixed": RUNS_8["mixed"]}
    result = compare(QRELS_8, same)
    assert result.intervals["copy"] == result.intervals["base"]
    assert result.difference_intervals["copy"] == dict.fromkeys(lab_metrics(10), (0.0, 0.0))
    assert result.difference_intervals["mixed"]["ndcg@10"] != (0.0, 0.0)
    # recall@10 is 1 on every query of the baseline: its interval is a point
    assert result.intervals["base"]["recall@10"] == (1.0, 1.0)


def test_intervals_repeat_with_the_seed_and_ignore_the_query_order() -> None:
    first = compare(QRELS_8, RUNS_8)
    assert compare(QRELS_8, RUNS_8).intervals == first.intervals
    assert compare(QRELS_8, RUNS_8).difference_intervals == first.difference_intervals
    other_seed = compare(QRELS_8, RUNS_8, seed=1)
    assert other_seed.intervals != first.intervals
    reordered = {name: dict(reversed(run.items())) for name, run in RUNS_8.items()}
    again = compare(QRELS_8, reordered)
    assert (again.intervals, again.difference_intervals) == (
        first.intervals,
        first.difference_intervals,
    )
    assert metric_intervals(first.reports["mixed"]) == first.intervals["mixed"]


def test_bootstrap_interval_of_no_value_one_value_and_equal_values() -> None:
    assert bootstrap_interval(np.array([])) == (0.0, 0.0)
    assert bootstrap_interval(np.array([0.25])) == (0.25, 0.25)
    assert bootstrap_interval(np.array([0.5, 0.5, 0.5])) == (0.5, 0.5)


def test_comparison_to_dict_is_json_with_intervals_rule_and_coverage() -> None:
    result = compare(QRELS_8, RUNS_8, rule="median of 3 judges")
    assert result.rule == "median of 3 judges" and compare(QRELS_8, RUNS_8).rule == ""
    data = json.loads(json.dumps(result.to_dict()))
    assert data["rule"] == "median of 3 judges"
    assert data["intervals"]["mixed"]["ndcg@10"] == list(result.intervals["mixed"]["ndcg@10"])
    assert data["difference_intervals"]["worse"]["map"] == list(
        result.difference_intervals["worse"]["map"]
    )
    assert set(data["difference_intervals"]) == {"mixed", "worse"}
    assert data["low_coverage"] == list(result.low_coverage) == ["base", "mixed", "worse"]
    assert data["coverage_warning"] == COVERAGE_WARNING
    assert data["unjudged_pairs"]["base"][0] == ["q0", "x"]
    assert [row["coverage"] for row in data["table"]] == [
        result.reports[n].coverage for n in result.names
    ]
