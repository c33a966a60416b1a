from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_core.collection import build_collection
from search_core.errors import InputError
from search_core.evaluation import (
    MAX_GRADE,
    MIN_GRADE,
    QuerySet,
    check_grade,
    embed_queries,
    evaluate_collection,
    evaluate_run,
    load_qrels,
    load_queries,
    parse_grade,
    run_configurations,
    run_queries,
)
from search_core.ingest import IngestReport
from search_core.search import SearchParams
from search_core.types import Document


def dcg(gains: list[int]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_metrics_match_hand_computation() -> None:
    qrels = {"q1": {"a": 3, "b": 1, "c": 2}, "q2": {"x": 1}}
    run = {"q1": {"b": 3.0, "z": 2.0, "a": 1.0}, "q2": {"y": 2.0, "w": 1.0}}
    report = evaluate_run(qrels, run)
    ndcg_q1 = dcg([1, 0, 3]) / dcg([3, 2, 1])
    assert report.per_query["q1"]["ndcg@10"] == pytest.approx(ndcg_q1)
    assert report.per_query["q1"]["mrr@10"] == pytest.approx(1.0)
    assert report.per_query["q1"]["recall@100"] == pytest.approx(2 / 3)
    assert report.per_query["q1"]["precision@10"] == pytest.approx(2 / 10)
    assert report.per_query["q2"]["ndcg@10"] == 0.0
    assert report.metrics["ndcg@10"] == pytest.approx(ndcg_q1 / 2)
    assert report.queries == 2


def test_queries_without_results_count_as_zero_and_are_listed() -> None:
    report = evaluate_run({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}, "q2": {}})
    assert report.metrics["ndcg@10"] == pytest.approx(0.5)
    assert report.empty == ("q2",)


def test_by_tag_reports_empty_share_for_unjudged_queries() -> None:
    tags = {"q1": "exact-id", "ood": "out-of-domain", "ood2": "out-of-domain"}
    report = evaluate_run(
        {"q1": {"a": 1}}, {"q1": {"a": 1.0}, "ood": {}, "ood2": {"z": 1.0}}, tags=tags
    )
    assert report.by_tag["exact-id"]["ndcg@10"] == pytest.approx(1.0)
    assert report.by_tag["out-of-domain"]["empty_share"] == pytest.approx(0.5)
    assert "ndcg@10" not in report.by_tag["out-of-domain"]


@settings(max_examples=50, deadline=None)
@given(
    grades=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3), min_size=1),
    ranking=st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10),
)
def test_metrics_stay_in_unit_interval(grades: dict[str, int], ranking: list[str]) -> None:
    run = {"q": {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}}
    report = evaluate_run({"q": grades}, run)
    for value in report.metrics.values():
        assert 0.0 <= value <= 1.0 + 1e-9


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "queries.jsonl",
            '{"_id": "1", "text": "wing flutter", "metadata": {"tag": "paraphrase"}}\n\n',
            ({"1": "wing flutter"}, {"1": "paraphrase"}),
        ),
        (
            "topics.tsv",
            "1\twing flutter\n2\tshock waves\n",
            ({"1": "wing flutter", "2": "shock waves"}, {}),
        ),
    ],
)
def test_load_queries(tmp_path: Path, name: str, content: str, expected: tuple) -> None:
    path = tmp_path / name
    path.write_text(content)
    loaded = load_queries(path)
    assert (loaded.queries, loaded.tags) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("query-id\tcorpus-id\tscore\n1\t184\t3\n1\t29\t2\n", {"1": {"184": 3, "29": 2}}),
        ("1 0 184 3\n2 0 12 1\n", {"1": {"184": 3}, "2": {"12": 1}}),
    ],
)
def test_load_qrels(tmp_path: Path, content: str, expected: dict) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text(content)
    assert load_qrels(path) == expected


@pytest.mark.parametrize(
    ("loader", "content", "line"),
    [
        (load_queries, '{"_id": "1", "text": "a"}\n{broken\n', 2),
        (load_queries, '{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n', 2),
        (load_qrels, "q 0 d 1\nq d\n", 2),
        (load_qrels, "q 0 d high\n", 1),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, loader, content: str, line: int) -> None:
    path = tmp_path / ("bad.jsonl" if loader is load_queries else "bad.txt")
    path.write_text(content)
    with pytest.raises(InputError, match=rf"bad\.\w+, line {line}"):
        loader(path)


# --- issue 12, D3: grades are whole numbers in a stated range -------------------------------


@pytest.mark.parametrize(
    ("text", "grade"),
    [("0", 0), ("2", 2), ("+2", 2), (" 3 ", 3), ("02", 2), ("2.0", 2), ("10", 10), ("-0", 0)],
)
def test_parse_grade_reads_whole_numbers(text: str, grade: int) -> None:
    assert parse_grade(text) == grade
    assert MIN_GRADE <= grade <= MAX_GRADE


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2.7", "is not a whole number"),
        ("inf", "is not a whole number"),
        ("-inf", "is not a whole number"),
        ("nan", "is not a whole number"),
        ("1e999", "is not a whole number"),
        ("1e308", "is not a whole number"),
        ("2e0", "is not a whole number"),
        ("abc", "is not a whole number"),
        ("", "is not a whole number"),
        ("\u0662", "is not a whole number"),  # ARABIC-INDIC DIGIT TWO: int() would read it
        ("2_0", "is not a whole number"),  # int() would read 20
        ("-1", "is out of range"),
        ("11", "is out of range"),
        ("9" * 5000, "is out of range"),  # int() refuses past 4300 digits
    ],
)
def test_parse_grade_refuses_anything_else(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"{problem}; grades are whole numbers from 0 to 10"):
        parse_grade(text)


@pytest.mark.parametrize("value", [0, 3, 10, np.int64(2)])
def test_check_grade_accepts_ints_in_range(value: int) -> None:
    assert check_grade(value) == value
    assert type(check_grade(value)) is int


@pytest.mark.parametrize("value", [True, False, 2.0, 2.7, float("nan"), "2", None, -1, 11, 10**308])
def test_check_grade_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError, match="grades are whole numbers from 0 to 10"):
        check_grade(value)


@pytest.mark.parametrize("grade", ["inf", "1e999", "1e308", "2.7", "-1", "11", "nan"])
def test_load_qrels_names_file_line_and_value_of_a_bad_grade(tmp_path: Path, grade: str) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text(f"q1 0 d1 1\nq1 0 d2 {grade}\n")
    with pytest.raises(InputError, match=rf"qrels\.txt, line 2: grade '{grade}' is ") as raised:
        load_qrels(path)
    assert "from 0 to 10" in str(raised.value)


def test_a_query_with_a_lone_surrogate_is_embedded(embedder) -> None:
    # json.loads turns the escape \ud800 into a lone surrogate, which tokenizers refuse.
    text = json.loads('"brake \\ud800 pads"')
    vectors = embed_queries(SimpleNamespace(embedder=embedder), {"q": text})  # type: ignore[arg-type]
    assert vectors.shape == (1, embedder.dim)
    assert np.allclose(vectors[0], embedder.embed_query("brake \ufffd pads"), atol=1e-5)


def test_end_to_end_metric_collapses_chunks_to_documents(tmp_path: Path, embedder) -> None:
    long_text = " ".join(["Brake pads wear and squeal when they are thin."] * 60)
    docs = [
        Document("long", long_text),
        Document("refund", "Refunds are paid back within five days."),
        Document("tyres", "Tyre pressure should be checked monthly."),
    ]
    collection = build_collection(
        "eval", IngestReport(tuple(docs), 0, (), 1, ()), home=tmp_path, embedder=embedder
    )
    assert len(collection.chunks) > 3
    query_set = QuerySet({"q1": "worn brake pads", "q2": "money back"}, {})
    params = SearchParams(mode="vector", threshold=-1)
    run = run_queries(collection, query_set.queries, params)
    assert next(iter(run["q1"])) == "long"
    assert len(run["q1"]) == 3  # one entry per document, not per chunk
    qrels = {"q1": {"long": 2}, "q2": {"refund": 1, "tyres": 0}}
    report = evaluate_collection(collection, query_set, qrels, params)
    rank_refund = list(run["q2"]).index("refund") + 1
    assert report.per_query["q1"]["ndcg@10"] == pytest.approx(1.0)
    assert report.per_query["q2"]["mrr@10"] == pytest.approx(1 / rank_refund)


CONFIGS = {
    "hybrid": SearchParams(mode="hybrid", threshold=0.1),
    "vector": SearchParams(mode="vector", threshold=-1),
    "bm25": SearchParams(mode="bm25"),
}
QUERIES = {"q1": "worn brake pads", "q2": "money back", "q3": "tyre pressure check"}


@pytest.fixture(scope="module")
def garage(tmp_path_factory: pytest.TempPathFactory, embedder):
    docs = (
        Document("pads", "Brake pads wear and squeal when they are thin."),
        Document("refund", "Refunds are paid back within five days."),
        Document("tyres", "Tyre pressure should be checked monthly."),
    )
    home = tmp_path_factory.mktemp("configurations")
    return build_collection(
        "garage", IngestReport(docs, 0, (), 1, ()), home=home, embedder=embedder
    )


def test_configurations_share_one_embedding_of_the_queries_and_run_as_alone(
    garage, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = {name: run_queries(garage, QUERIES, params) for name, params in CONFIGS.items()}
    embedder = type(garage.embedder)
    batches: list[list[str]] = []
    embed = embedder.embed_queries
    monkeypatch.setattr(
        embedder,
        "embed_queries",
        lambda self, texts: batches.append(list(texts)) or embed(self, texts),
    )
    steps: list[tuple[int, int]] = []
    together = run_configurations(garage, QUERIES, CONFIGS, progress=lambda *s: steps.append(s))
    assert batches == [list(QUERIES.values())]  # one batch, for the two modes that embed
    assert together == alone and list(together) == list(CONFIGS)
    total = len(QUERIES) * len(CONFIGS)
    assert steps == [(done, total) for done in range(1, total + 1)]


def test_bm25_configurations_embed_nothing(garage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        type(garage.embedder), "embed_queries", lambda *_: pytest.fail("embedded a query")
    )
    runs = run_configurations(garage, QUERIES, {"a": CONFIGS["bm25"], "b": CONFIGS["bm25"]})
    assert runs["a"] == runs["b"] == run_queries(garage, QUERIES, CONFIGS["bm25"])
