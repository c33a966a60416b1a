"""The Search page's display helpers: highlighting, result lines, messages and charts."""

from __future__ import annotations

import re
from dataclasses import replace

import plotly.graph_objects as go
import pytest

from search_core.analysis import analyzer_for
from search_core.lab import Comparison, compare
from search_core.types import Hit, RetrieverScore, SearchResponse, Timings
from ui import display

MARK = f":{display.HIGHLIGHT}["


def visible(markdown: str) -> str:
    """What a reader sees of one highlighted line: no highlight, bold or escapes."""
    text = markdown.replace(MARK, "").replace("**", "").replace(display.WORD_JOINER, "")
    return re.sub(r"\\(.)|\]", lambda m: m.group(1) or "", text)


# --------------------------------------------------------------------------- highlight


@pytest.mark.parametrize(
    ("text", "query", "marked"),
    [
        ("It was refunded; then", "refund", MARK + "**refunded**\\;]"),
        ("Ask for a (refund).", "refund", MARK + "\\(**refund**\\)\\.]"),
        ('"Refunds," she said', "refund", MARK + '\\"**Refunds**\\,\\"]'),
        ("Refund!", "refund", MARK + "**Refund**\\!]"),
    ],
)
def test_punctuation_touching_a_highlighted_word_is_inside_the_highlight(
    text: str, query: str, marked: str
) -> None:
    # the highlight is padded: punctuation left outside would read "refunded ;"
    shown = display.highlight(text, query)
    assert marked in shown
    assert visible(shown) == text


def test_highlight_marks_query_words_and_whole_identifiers_only() -> None:
    text = "Order ORD-58213 was refunded; ORD-58231 was not. <b>refunds</b>"
    marked = display.highlight(text, "refund ORD-58213")
    assert MARK + "**ORD\\-58213**]" in marked
    assert MARK + "**refunded**\\;]" in marked
    assert MARK + "**refunds**]" in marked  # "<b>" and "</b>" join it to letters: outside
    assert "ORD\\-58231" in marked and "[**ORD\\-58231**]" not in marked
    assert "\\<b\\>" in marked
    assert display.highlight("ORD-58213 shipped", "58213").startswith(MARK)


def test_punctuation_joining_another_word_stays_outside() -> None:
    shown = display.highlight("refund,return or refund", "refund")
    assert shown.startswith(MARK + "**refund**]\\,return")
    assert visible(shown) == "refund,return or refund"


@pytest.mark.parametrize(
    "text",
    ["a refund, a (refund) and <b>refunds</b>.", "refund\n(refund)\n", "no match here."],
)
def test_highlighting_changes_no_character(text: str) -> None:
    lines = display.highlight(text, "refund").split("  \n")
    assert [visible(line) for line in lines] == [line.strip() for line in text.split("\n")]


# --------------------------------------------------------------------------- result lines


def hit(similarity: float | None, vector_rank: int | None, bm25_rank: int | None) -> Hit:
    return Hit(
        rank=1,
        doc_id="d1",
        chunk_id=0,
        text="",
        title="",
        score=0.03,
        similarity=similarity,
        vector=RetrieverScore(vector_rank, similarity if vector_rank else None),
        bm25=RetrieverScore(bm25_rank, 7.5 if bm25_rank else None),
    )


@pytest.mark.parametrize(
    ("title", "pages", "header"),
    [
        ("", (), "**1\\.** d1"),  # no title: the id once, not twice
        ("d1", (2,), "**1\\.** d1  \n:gray[page 2]"),
        ("Refunds", (2, 3), "**1\\.** Refunds  \n:gray[d1 · page 2, 3]"),
    ],
)
def test_a_result_header_names_the_document_once(
    title: str, pages: tuple[int, ...], header: str
) -> None:
    assert display.hit_header(replace(hit(0.5, 1, None), title=title, pages=pages)) == header


def test_a_hybrid_result_under_the_threshold_is_said_to_be_there_for_bm25() -> None:
    line = display.retriever_line(hit(0.21, 14, 2), "hybrid", 0.3)
    assert "cosine 0.210, under the minimum similarity 0.30" in line
    assert "vector rank 14" not in line  # the threshold took it out of the vector ranking
    assert "BM25 rank 2" in line


@pytest.mark.parametrize(
    ("mode", "result", "said"),
    [
        ("hybrid", hit(0.45, 3, 2), "vector rank 3 (cosine 0.450)"),
        ("hybrid", hit(0.45, None, 2), "not among the vector candidates (cosine 0.450)"),
        ("vector", hit(0.45, 3, None), "vector rank 3 (cosine 0.450)"),
        ("bm25", hit(None, None, 2), "BM25 rank 2 (score 7.50)"),
    ],
)
def test_results_at_or_above_the_threshold_keep_their_ranks(
    mode: str, result: Hit, said: str
) -> None:
    line = display.retriever_line(result, mode, 0.3)
    assert said in line and "under the minimum similarity" not in line


def empty(mode: str, below: int, similarities: tuple[float, ...] = ()) -> SearchResponse:
    return SearchResponse("q", mode, (), Timings(), len(similarities), below, similarities)


@pytest.mark.parametrize(
    ("response", "filtered", "said"),
    [
        (empty("vector", 3, (0.2, 0.28, 0.1)), False, "minimum similarity 0.30 removed all 3"),
        (empty("vector", 3, (0.2, 0.28, 0.1)), False, "most similar has cosine 0.280"),
        (empty("hybrid", 3, (0.2, 0.28, 0.1)), True, "Hybrid answers nothing"),
        (empty("vector", 0), True, "with these filters"),
        (empty("bm25", 0), False, "no document contains the query's words"),
        (empty("vector", 0), False, "the collection has nothing to search"),
    ],
)
def test_an_empty_answer_says_why(response: SearchResponse, filtered: bool, said: str) -> None:
    message = display.no_result(response, 0.3, filtered=filtered)
    assert said in message
    if response.below_threshold:  # the threshold did it, not the collection
        assert "Lower the minimum similarity" in message and "collection" not in message


# --------------------------------------------------------------------------- charts


def score_chart(results: dict[str, list[float]]) -> go.Figure:
    return display.score_chart([0.1, 0.2, 0.28, 0.35, 0.5, 0.6], 0.3, results)


def test_results_under_the_threshold_get_their_own_marker() -> None:
    fig = score_chart({"Hybrid": [0.6, 0.2, 0.5], "Vector": [0.6, 0.5]})
    markers = {t.name: list(zip(t.x, t.y, strict=True)) for t in fig.data if t.type == "scatter"}
    assert sorted(markers["result"]) == [
        (0.5, "Hybrid"),
        (0.5, "Vector"),
        (0.6, "Hybrid"),
        (0.6, "Vector"),
    ]
    assert markers["result below the threshold, kept by BM25"] == [(0.2, "Hybrid")]


def test_the_threshold_label_stays_clear_of_the_result_markers() -> None:
    fig = score_chart({"Vector": [0.31, 0.5]})
    [label] = [a for a in fig.layout.annotations if "0.30" in a.text]
    markers = [t for t in fig.data if t.type == "scatter"]
    bars = [t for t in fig.data if t.type == "histogram"]
    assert {t.yaxis for t in markers}.isdisjoint({t.yaxis for t in bars})  # a row of their own
    assert label.yref == f"{bars[0].yaxis} domain" and label.y >= 1 and label.yanchor == "bottom"


def timings(vector_ms: float) -> Timings:
    return Timings(embed_ms=0.0, vector_ms=vector_ms, bm25_ms=0.5, fusion_ms=0.2)


def rows(fig: go.Figure) -> dict[str, dict[str, float]]:
    return {t.name: dict(zip(t.y, t.x, strict=True)) for t in fig.data}


def test_side_by_side_timings_show_the_embedding_once() -> None:
    fig = display.timings_chart(
        {"Vector": timings(1.0), "BM25": timings(0.0), "Hybrid": timings(1.5)}, embed_ms=700.0
    )
    stages = rows(fig)
    assert stages["embed the query"] == {"query embedding": 700.0}
    assert stages["vector search"] == {"Vector": 1.0, "BM25": 0.0, "Hybrid": 1.5}


def test_cached_answers_are_marked() -> None:
    fig = display.timings_chart(
        {"Vector": timings(1.0), "Hybrid": timings(1.5)},
        embed_ms=700.0,
        embed_cached=True,
        cached=["Hybrid"],
    )
    stages = rows(fig)
    assert set(stages["embed the query"]) == {"query embedding (cached)"}
    assert set(stages["vector search"]) == {"Vector", "Hybrid (cached)"}
    bar = next(t for t in fig.data if t.name == "vector search")
    assert list(bar.marker.pattern.shape) == ["", display.CACHED_PATTERN]


@pytest.mark.parametrize("chart", ["scores", "timings"])
def test_legends_sit_under_the_plot_clear_of_the_toolbars(chart: str) -> None:
    # Plotly's and Streamlit's toolbars appear over a chart's top right corner on hover.
    if chart == "scores":
        fig = score_chart({"Vector": [0.5]})
    else:
        fig = display.timings_chart({"Vector": timings(1.0)}, embed_ms=5.0)
    legend = fig.layout.legend
    assert (legend.yref, legend.yanchor, legend.y) == ("container", "bottom", 0)


def test_highlight_analyzes_with_the_collections_language() -> None:
    german = analyzer_for("de")
    text = "Die Rechnungen wurden gestern verschickt."
    # German stemming matches "Rechnung" to "Rechnungen"; English stemming does not
    assert display.highlight(text, "Rechnung", german).count(MARK) == 1
    assert MARK not in display.highlight(text, "Rechnung")
    # a joined word English keeps in parts is not an identifier: either part marks it
    assert MARK in display.highlight("the flow-rate rises", "rate", analyzer_for("en"))


# --------------------------------------------------------------------------- lab tables

# Three judged queries: "better" puts the relevant document first where the baseline has it
# second; "holes" brings up documents nobody judged (4 of its 6 top-2 results: 33.3% judged).
LAB_QRELS = {"q1": {"a": 1, "x": 0}, "q2": {"b": 2, "x": 0}, "q3": {"c": 1, "x": 0}}
LAB_RUNS = {
    "base": {"q1": {"x": 2.0, "a": 1.0}, "q2": {"b": 2.0, "x": 1.0}, "q3": {"x": 2.0, "c": 1.0}},
    "better": {"q1": {"a": 2.0, "x": 1.0}, "q2": {"b": 2.0, "x": 1.0}, "q3": {"c": 2.0, "x": 1.0}},
    "holes": {"q1": {"u": 2.0, "a": 1.0}, "q2": {"v": 2.0, "b": 1.0}, "q3": {"y": 2.0, "z": 1.0}},
}
INTERVAL = re.compile(r"^-?\d\.\d{3} – -?\d\.\d{3}$")


@pytest.fixture(scope="module")
def lab_result() -> Comparison:
    return compare(LAB_QRELS, LAB_RUNS, k=2)


def test_the_metric_table_puts_each_interval_after_its_metric(lab_result: Comparison) -> None:
    table = display.metrics_table(lab_result.table, 2, lab_result.intervals)
    columns = list(table.columns)
    for metric in ("nDCG@2", "Recall@2", "MRR@2", "P@2", "MAP"):
        assert columns[columns.index(metric) + 1] == f"{metric} 95% CI"
    rows = table.set_index("configuration")
    for name in lab_result.names:
        shown = rows.loc[name, "nDCG@2 95% CI"]
        assert INTERVAL.match(shown)
        assert shown == display.interval_text(lab_result.intervals[name]["ndcg@2"])
    low, high = lab_result.intervals["base"]["ndcg@2"]
    assert low < high and rows.loc["base", "nDCG@2 95% CI"] == f"{low:.3f} – {high:.3f}"
    assert list(rows["judged@2"]) == ["100.0%", "100.0%", "33.3%"]


def test_the_metric_table_without_intervals_still_shows_the_coverage(
    lab_result: Comparison,
) -> None:
    table = display.metrics_table(lab_result.table, 2)  # the page's call before intervals
    assert not any("95% CI" in c for c in table.columns)
    assert list(table["configuration"]) == ["base", "better", "holes"]
    assert list(table["judged@2"]) == ["100.0%", "100.0%", "33.3%"]
    report = lab_result.reports["holes"]
    single = display.metrics_table([{"name": "holes", **report.summary()}], 2)
    assert single.loc[0, "judged@2"] == "33.3%" and single.loc[0, "nDCG@2"] == round(
        report.metrics["ndcg@2"], 3
    )


@pytest.mark.parametrize(
    ("coverage", "shown"),
    [(1.0, "100.0%"), (0.9, "90.0%"), (0.8999, "89.9%"), (0.29, "29.0%"), (0.0, "0.0%")],
)
def test_coverage_is_a_percent_that_never_rounds_up_to_the_warning(
    coverage: float, shown: str
) -> None:
    assert display.coverage_text(coverage) == shown


def test_the_significance_table_shows_each_difference_with_its_interval(
    lab_result: Comparison,
) -> None:
    table = display.significance_table(lab_result)
    assert list(table.columns) == [
        "configuration",
        "metric",
        "difference",
        "95% CI",
        "p-value",
        "significant",
    ]
    assert len(table) == 2 * 5
    row = table[(table["configuration"] == "better") & (table["metric"] == "nDCG@2")].iloc[0]
    reports = lab_result.reports
    assert row["difference"] == pytest.approx(
        reports["better"].metrics["ndcg@2"] - reports["base"].metrics["ndcg@2"], abs=5e-4
    )
    assert row["difference"] > 0
    assert row["95% CI"] == display.interval_text(
        lab_result.difference_intervals["better"]["ndcg@2"]
    )
    assert all(INTERVAL.match(text) for text in table["95% CI"])


def test_the_coverage_warning_names_only_the_configurations_under_it(
    lab_result: Comparison,
) -> None:
    warning = display.coverage_warning(lab_result)
    assert warning is not None
    assert "holes (33.3%)" in warning and "base" not in warning and "better" not in warning
    assert "undercount" in warning and "top 2" in warning
    assert len(re.findall(r"[.!?](?:\s|$)", warning)) == 1 and warning.endswith(".")
    judged = compare(LAB_QRELS, {n: LAB_RUNS[n] for n in ("base", "better")}, k=2)
    assert display.coverage_warning(judged) is None


def test_the_coverage_warning_lists_several_configurations() -> None:
    result = compare(
        LAB_QRELS, {"base": LAB_RUNS["base"], **{n: LAB_RUNS["holes"] for n in ("h1", "h2")}}, k=2
    )
    warning = display.coverage_warning(result)
    assert warning is not None and "h1 (33.3%) and h2 (33.3%)" in warning
