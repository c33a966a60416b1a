"""The self-contained HTML experiment report (search_core/report.py).

Expected values come from the comparison the report is built from (``search_core.lab``),
never written down here. The page is read back with the standard library's HTML parser.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from plotly.offline import get_plotlyjs

from search_core.charts import coverage_text, interval_text, metric_names
from search_core.collection import Collection, build_collection
from search_core.evaluation import load_qrels, load_queries, run_configurations
from search_core.ingest import IngestReport
from search_core.lab import STAT_TESTS, compare
from search_core.report import (
    ExperimentReport,
    build_report,
    p_text,
    p_value_text,
    write_report,
)
from search_core.search import SearchParams
from search_core.types import Document
from tests.conftest import SAMPLE_DATA
from tests.fake_embedder import FakeEmbedder

CONFIGS = {
    "vector": SearchParams(mode="vector"),
    "hybrid": SearchParams(mode="hybrid"),
    "bm25": SearchParams(mode="bm25"),
}
PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "script", "body", "main", "header", "footer",
    "section", "article", "figure", "figcaption", "h1", "h2", "h3", "h4", "p", "ul", "li", "dl",
    "dt", "dd", "table", "colgroup", "col", "thead", "tbody", "tr", "th", "td", "div", "span",
}  # fmt: skip
"""Every element the report's template writes; any other one would come from some text."""
PAGE_ATTRIBUTES = {"lang", "charset", "name", "content", "class", "id", "style", "colspan"}
URL_ATTRIBUTES = {"src", "href", "action", "formaction", "srcset", "poster", "data", "xlink:href"}


class Page(HTMLParser):
    """What a report shows: its elements, texts, tables, scripts and style sheets."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.tables: list[dict[str, Any]] = []
        self.articles: list[dict[str, Any]] = []
        self.headings: list[tuple[str, str]] = []
        self.facts: list[tuple[str, str]] = []
        self._raw: list[str] | None = None
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self._term: list[str] | None = None
        self._fact = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found))
        if tag in ("script", "style"):
            self._raw = []
            (self.scripts if tag == "script" else self.styles).append("")
        elif tag == "article":
            self.articles.append({"heading": "", "tables": []})
        elif tag == "table":
            self.tables.append({"class": found.get("class"), "rows": []})
            if self.articles:
                self.articles[-1]["tables"].append(self.tables[-1])
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h1", "h2", "h3", "h4"):
            self._heading = []
        elif tag in ("dt", "dd"):
            self._term = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._raw is not None:
            raw = "".join(self._raw)
            if tag == "script":
                self.scripts[-1] = raw
            else:
                self.styles[-1] = raw
            self._raw = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell))
            self._cell = None
        elif tag in ("h1", "h2", "h3", "h4") and self._heading is not None:
            heading = "".join(self._heading)
            self.headings.append((tag, heading))
            if tag == "h4" and self.articles:
                self.articles[-1]["heading"] = heading
            self._heading = None
        elif tag in ("dt", "dd") and self._term is not None:
            if tag == "dt":
                self._fact = "".join(self._term)
            else:
                self.facts.append((self._fact, "".join(self._term)))
            self._term = None

    def handle_data(self, data: str) -> None:
        if self._raw is not None:
            self._raw.append(data)
            return
        self.text.append(data)
        for part in (self._cell, self._heading, self._term):
            if part is not None:
                part.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def table(self, cls: str) -> list[list[str]]:
        return next(t["rows"] for t in self.tables if t["class"] == cls)


# --------------------------------------------------------------------------- the sample


@pytest.fixture(scope="module")
def sample(sample_collection: Collection) -> dict[str, Any]:
    """The sample collection's judged queries run with three configurations, compared."""
    queries = load_queries(SAMPLE_DATA / "queries.jsonl").queries
    qrels = load_qrels(SAMPLE_DATA / "qrels" / "test.tsv")
    runs = run_configurations(sample_collection, queries, CONFIGS)
    comparison = compare(qrels, runs, queries=queries, rule="the median grade")
    return {
        "collection": sample_collection,
        "comparison": comparison,
        "runs": runs,
        "qrels": qrels,
        "queries": queries,
    }


@pytest.fixture(scope="module")
def report(sample: dict[str, Any]) -> ExperimentReport:
    return build_report(
        sample["collection"],
        sample["comparison"],
        sample["runs"],
        sample["qrels"],
        sample["queries"],
        CONFIGS,
        judgment_set="default",
        judges=("ana", "bo"),
        created_at=datetime(2025, 3, 4, 5, 6, tzinfo=UTC),
    )


@pytest.fixture(scope="module")
def page_html(report: ExperimentReport) -> str:
    return report.to_html()


@pytest.fixture(scope="module")
def page(page_html: str) -> Page:
    return Page(page_html)


def ranking(run: dict[str, float], k: int) -> list[str]:
    return sorted(run, key=lambda doc: (-run[doc], doc))[:k]


def test_the_header_has_the_title_time_and_a_verdict_per_challenger(
    report: ExperimentReport, page: Page
) -> None:
    result = report.comparison
    assert ("h1", "Experiment report: sample") in page.headings
    assert "Made 2025-03-04 05:06 UTC" in page.all_text
    assert len(report.verdicts) == len(CONFIGS) - 1
    for name, sentence in zip(result.names[1:], report.verdicts, strict=True):
        wtl = result.wins_ties_losses[name]
        metric = result.metric
        ours, theirs = (result.reports[n].metrics[metric] for n in (name, "vector"))
        low, high = result.difference_intervals[name][metric]
        assert sentence.startswith(
            f"{name} beats vector on {wtl['wins']} of {len(result.per_query)} judged queries, "
            f"ties {wtl['ties']}, loses {wtl['losses']}; nDCG@10 {ours:.3f} against {theirs:.3f}"
        )
        assert f"difference {ours - theirs:+.3f} (95% CI {low:+.3f} to {high:+.3f})" in sentence
        significant = result.significant[name][metric]
        assert ("not significant" in sentence) is not significant
        assert f"{STAT_TESTS['student']}, {p_text(result.p_values[name][metric])}" in sentence
        assert sentence in page.all_text


def test_the_settings_sit_side_by_side_and_what_differs_is_marked(
    report: ExperimentReport, page: Page
) -> None:
    table = next(t for t in page.tables if t["class"] == "settings")["rows"]
    assert table[0] == ["setting", *CONFIGS]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows["mode"] == ["vector", "hybrid", "bm25"]
    assert rows["k"] == ["10"] * 3
    differs = {row.setting for row in report.settings if row.differs}
    dicts = [params.to_dict() for params in CONFIGS.values()]
    assert differs == {f for f in dicts[0] if len({str(d[f]) for d in dicts}) > 1}
    marked = [e for e in page.elements if e[0] == "tr" and e[1].get("class") == "differs"]
    assert len(marked) == len(differs) > 0
    assert rows["in words"] == [report.descriptions[name] for name in CONFIGS]


def test_the_collection_and_the_judgments_are_described(
    report: ExperimentReport, sample: dict[str, Any], page: Page
) -> None:
    info = sample["collection"].info()
    facts = dict(page.facts)
    assert (facts["name"], facts["vector index"]) == (info.name, info.index_kind)
    assert (facts["documents"], facts["chunks"]) == (f"{info.documents:,}", f"{info.chunks:,}")
    assert (facts["embedding model"], facts["model fingerprint"]) == (info.model, info.fingerprint)
    assert (facts["judgment set"], facts["judges"]) == ("default", "ana, bo")
    assert facts["several judges' grades combined"] == "the median grade"
    base = report.comparison.reports["vector"]
    assert facts["queries compared"] == f"{base.queries:,}"
    assert facts["judged queries (with a relevant document)"] == f"{base.judged:,}"
    assert facts["cutoff k"] == str(report.comparison.k)


def test_the_metric_table_holds_each_mean_its_interval_and_the_coverage(
    report: ExperimentReport, page: Page
) -> None:
    result = report.comparison
    table = page.table("metrics")
    labels = metric_names(result.k)
    metrics = list(result.reports["vector"].metrics)
    assert table[0] == ["metric", *(cell for name in CONFIGS for cell in (name, "95% CI"))]
    rows = {row[0]: row[1:] for row in table[1:]}
    for m in metrics:
        assert rows[labels[m]] == [
            cell
            for name in CONFIGS
            for cell in (
                f"{result.reports[name].metrics[m]:.3f}",
                interval_text(result.intervals[name][m]),
            )
        ]
    assert rows[labels["coverage"]] == [coverage_text(result.reports[n].coverage) for n in CONFIGS]
    assert rows[labels["judged_queries"]] == [f"{result.reports[n].judged:,}" for n in CONFIGS]
    differences = page.table("differences")
    assert len(differences) == 1 + (len(CONFIGS) - 1) * len(metrics)
    hybrid_ndcg = next(row for row in differences if row[:2] == ["hybrid", labels[metrics[0]]])
    delta = (
        result.reports["hybrid"].metrics[metrics[0]] - result.reports["vector"].metrics[metrics[0]]
    )
    assert hybrid_ndcg[2:5] == [
        f"{delta:+.3f}",
        interval_text(result.difference_intervals["hybrid"][metrics[0]]),
        p_value_text(result.p_values["hybrid"][metrics[0]]),
    ]
    assert hybrid_ndcg[5] == ("yes" if result.significant["hybrid"][metrics[0]] else "no")


def test_the_coverage_warning_shows_only_under_low_coverage(
    report: ExperimentReport, page: Page
) -> None:
    warned = [e for e in page.elements if e[1].get("class") == "warning"]
    assert len(warned) == (1 if report.comparison.low_coverage else 0)
    low = replace(report, comparison=replace(report.comparison, low_coverage=("bm25",)))
    shown = Page(low.to_html())
    coverage = coverage_text(report.comparison.reports["bm25"].coverage)
    assert f"judged for bm25 ({coverage})" in shown.all_text


def test_the_queries_that_changed_most_come_with_both_lists(
    report: ExperimentReport, sample: dict[str, Any], page: Page
) -> None:
    result, k = report.comparison, report.comparison.k
    deltas = {row["query_id"]: row["delta:hybrid"] for row in result.per_query}
    gains = sorted((q for q in deltas if deltas[q] > 1e-12), key=lambda q: (-deltas[q], q))
    drops = sorted((q for q in deltas if deltas[q] < -1e-12), key=lambda q: (deltas[q], q))
    assert report.challenger == "hybrid"
    assert [c.view.query_id for c in report.improved] == gains[:5]
    assert [c.view.query_id for c in report.worsened] == drops[:5]
    assert len(page.articles) == len(gains[:5]) + len(drops[:5]) > 0
    runs, qrels, titles = sample["runs"], sample["qrels"], sample["collection"].titles
    for qid, article in zip(gains[:5] + drops[:5], page.articles, strict=True):
        assert article["heading"] == f"{qid}: {sample['queries'][qid]}"
        rows = article["tables"][0]["rows"]
        assert rows[0] == ["rank", "vector", "grade", "hybrid", "grade"]
        for column, name in ((1, "vector"), (3, "hybrid")):
            top = ranking(runs[name][qid], k)
            shown = [row[column] for row in rows[1 : 1 + len(top)]]
            for doc, cell in zip(top, shown, strict=True):
                assert cell.startswith(doc)
                assert titles[doc] in cell
            grades = [row[column + 1] for row in rows[1 : 1 + len(top)]]
            assert grades == [str(qrels[qid].get(d, "unjudged")) for d in top]


def test_fewer_changed_queries_when_fewer_differ(sample: dict[str, Any]) -> None:
    built = build_report(
        sample["collection"],
        sample["comparison"],
        sample["runs"],
        sample["qrels"],
        sample["queries"],
        CONFIGS,
        changed=2,
        challenger="bm25",
    )
    deltas = [row["delta:bm25"] for row in sample["comparison"].per_query]
    assert len(built.improved) == min(2, sum(d > 1e-12 for d in deltas))
    assert len(built.worsened) == min(2, sum(d < -1e-12 for d in deltas))
    assert all(c.difference > 0 for c in built.improved)
    assert all(c.difference < 0 for c in built.worsened)
    assert "Most improved by bm25" in Page(built.to_html()).all_text


def test_plotly_is_inlined_once_and_every_chart_is_drawn(
    report: ExperimentReport, page_html: str, page: Page
) -> None:
    assert page_html.count(get_plotlyjs()) == 1
    assert page.scripts.count(get_plotlyjs()) == 1
    divs = [e[1]["id"] for e in page.elements if "plotly-graph-div" in (e[1].get("class") or "")]
    assert len(divs) == len(report.charts) == len(CONFIGS)  # wins, and one delta each
    drawing = [s for s in page.scripts if s != get_plotlyjs()]
    assert len(drawing) == len(divs)
    for div, script in zip(divs, drawing, strict=True):
        assert re.search(rf'Plotly\.newPlot\(\s*"{div}"', script)
        assert '{"displaylogo": false, "responsive": true}' in script
    captions = [e for e in page.elements if e[0] == "figcaption"]
    assert len(captions) == len(divs)


def test_nothing_is_fetched_from_the_network(page: Page) -> None:
    tags = {tag for tag, _ in page.elements}
    assert not tags & {"link", "iframe", "img", "object", "embed", "base", "form"}
    for _tag, attrs in page.elements:
        for name, value in attrs.items():
            if name in URL_ATTRIBUTES:
                assert value is not None
                assert value.startswith("#") or urlsplit(value).scheme in ("", "data"), value
    assert [tag for tag, attrs in page.elements if tag == "script" and "src" in attrs] == []
    styles = [*page.styles, *(a["style"] or "" for _, a in page.elements if "style" in a)]
    for style in styles:
        assert "url(" not in style.lower() and "@import" not in style.lower()
    assert "mathjax" not in "".join(s for s in page.scripts if s != get_plotlyjs()).lower()


def test_write_report_writes_the_page(report: ExperimentReport, tmp_path: Path) -> None:
    path = write_report(report, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    assert path.read_text(encoding="utf-8") == report.to_html()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left


# --------------------------------------------------------------------------- small, hand-made


DOCS = (
    Document("d1", "Brake pads wear and squeal when they are thin.", title="Brake pads"),
    Document("d2", "Brake fluid should be replaced every two years.", title="Brake fluid"),
    Document("d3", "Refunds are paid back within five days.", title="Refunds"),
)
RUN_BASE = {"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d3": 1.0}}
RUN_BETTER = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d3": 1.0}}
QRELS = {"q1": {"d1": 2}, "q2": {"d3": 1}}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    home = tmp_path_factory.mktemp("report")
    return build_collection(
        "shop", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=FakeEmbedder()
    )


def small(shop: Collection, name: str = "better", **options: Any) -> ExperimentReport:
    runs = {"base": RUN_BASE, name: RUN_BETTER}
    queries = {"q1": "brake pads", "q2": "refund"}
    comparison = compare(QRELS, runs, queries=queries)
    configs = {"base": SearchParams(mode="bm25"), name: SearchParams(mode="vector")}
    return build_report(shop, comparison, runs, QRELS, queries, configs, **options)


def test_a_run_without_settings_says_so(shop: Collection) -> None:
    runs = {"base": RUN_BASE, "kept": RUN_BETTER}
    comparison = compare(QRELS, runs)
    built = build_report(shop, comparison, runs, QRELS, {}, {"base": SearchParams()})
    assert built.configs["kept"] is None
    assert all(row.values["kept"] == "not kept" for row in built.settings)
    assert not any(row.differs for row in built.settings)
    assert "not kept" in built.descriptions["kept"]
    rows = Page(built.to_html()).table("settings")
    assert rows[1][2] == built.descriptions["kept"]


def test_the_rule_is_shown_only_for_several_judges(shop: Collection) -> None:
    runs = {"base": RUN_BASE, "better": RUN_BETTER}
    comparison = compare(QRELS, runs, rule="the majority grade")
    for judges, shown in (((), False), (("ana",), False), (("ana", "bo"), True)):
        built = build_report(shop, comparison, runs, QRELS, {}, {}, judges=judges)
        assert ("the majority grade" in Page(built.to_html()).all_text) is shown


def test_the_time_is_shown_in_utc(shop: Collection) -> None:
    two_hours_east = timezone(timedelta(hours=2))
    built = small(shop, created_at=datetime(2025, 1, 2, 3, 4, tzinfo=two_hours_east))
    assert built.created_at == datetime(2025, 1, 2, 1, 4, tzinfo=UTC)
    assert small(shop, created_at=datetime(2025, 1, 2, 3, 4)).created_at.tzinfo is UTC
    before = datetime.now(UTC)
    assert before <= small(shop).created_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"challenger": "nope"}, "unknown challenger 'nope'.*valid: better"),
        ({"challenger": "base"}, "other than the baseline"),
        ({"changed": 0}, "changed must be at least 1"),
    ],
)
def test_bad_options_are_refused(shop: Collection, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small(shop, **options)


def test_a_report_needs_two_runs_and_every_run_compared(shop: Collection) -> None:
    runs = {"base": RUN_BASE, "better": RUN_BETTER}
    comparison = compare(QRELS, runs)
    with pytest.raises(ValueError, match="at least two runs"):
        build_report(shop, comparison, {"base": RUN_BASE}, QRELS, {}, {})
    with pytest.raises(ValueError, match="run 'better' of the comparison is not among"):
        build_report(shop, comparison, {"base": RUN_BASE, "other": RUN_BETTER}, QRELS, {}, {})


NASTY = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "</script><script>alert(2)</script>",
        "</style><link rel=stylesheet href=https://x.test/a.css>",
        '<img src="https://x.test/a.png" onerror=alert(3)>',
        "a & b &amp; \"quoted\" 'single'",
        "<!-- comment",
        "<a href='javascript:alert(4)'>link</a>",
        "ünïcødé ✓ 日本語 🙂",
        "\\u003c/script\\u003e",
    ]
)
TEXT = st.one_of(
    NASTY,
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30),
    st.builds(
        lambda a, b: a + b, NASTY, st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
    ),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXT)
def test_any_text_shows_as_text_and_adds_no_element(shop: Collection, text: str) -> None:
    assume(text not in ("base", "d1", "d2", "d3"))
    collection = copy.copy(shop)
    collection.name = text
    collection.titles = {**shop.titles, "d1": text}
    runs = {"base": RUN_BASE, text: RUN_BETTER}
    queries = {"q1": text, "q2": "refund"}
    comparison = compare(QRELS, runs, queries=queries)
    built = build_report(
        collection,
        comparison,
        runs,
        QRELS,
        queries,
        {"base": SearchParams(), text: SearchParams(mode="bm25")},
        judgment_set=text,
        judges=(text, "bo"),
        title=text,
    )
    page = Page(built.to_html())
    assert {tag for tag, _ in page.elements} <= PAGE_TAGS
    assert {name for _, attrs in page.elements for name in attrs} <= PAGE_ATTRIBUTES
    scripts = [tag for tag, _ in page.elements if tag == "script"]
    assert len(scripts) == 1 + len(built.charts) == len(page.scripts)
    plotly = get_plotlyjs()
    for script in page.scripts:  # a chart's JSON writes "<" as \u003c: nothing closes it
        assert script == plotly or ("Plotly.newPlot(" in script and "<" not in script)
    # each text reads back as it is, where it belongs
    assert ("h1", text) in page.headings
    assert page.table("settings")[0] == ["setting", "base", text]
    assert ("h4", f"q1: {text}") in page.headings  # q1 is the query that changed
    lists = page.articles[0]["tables"][0]["rows"]
    assert any(cell.startswith(f"d1 {text}") for row in lists for cell in row)
    facts = dict(page.facts)
    assert facts["name"] == text and facts["judgment set"] == text
    assert facts["judges"] == f"{text}, bo"
