"""A comparison of search configurations as one self-contained HTML file, for people who never
open the app.

:func:`build_report` gathers what the page shows (:class:`ExperimentReport`: the verdict of each
configuration against the baseline, their settings, the collection and the judgments, the
metrics with their bootstrap intervals, the per-query charts and the queries that changed
most, with both ranked lists); it reads the runs already made and never searches again.
:meth:`ExperimentReport.to_html` writes the page and :func:`write_report` saves it atomically.

The page works offline and fetches nothing: the Plotly library is inlined once, each chart is a
``<div>`` drawn by a short script calling ``Plotly.newPlot`` (``plotly.io.to_html``, whose JSON
writes ``<``, ``>`` and ``/`` as ``\\u003c``, ``\\u003e`` and ``\\u002f``, so no text can close
the script), and the style sheet is inline with no ``url(`` or ``@import``. Every text from the
corpus or the user (collection, configuration, query, title, snippet, judge, set and report
names) is escaped with ``html.escape``; in the charts, Plotly's HTML labels are escaped by
:mod:`search_core.charts`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .charts import (
    coverage_text,
    coverage_warning,
    delta_chart,
    differences,
    interval_text,
    metric_names,
    snippet,
    wins_chart,
)
from .lab import STAT_TESTS, TIE_MARGIN, Comparison, RankedDoc, SideBySide, side_by_side
from .storage import atomic_write

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .collection import Collection, CollectionInfo
    from .evaluation import Qrels, RunDict
    from .search import SearchParams

__all__ = [
    "ChangedQuery",
    "ExperimentReport",
    "ReportChart",
    "SettingRow",
    "build_report",
    "p_text",
    "p_value_text",
    "verdict",
    "write_report",
]

PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}
"""Plotly's options for every chart: no logo link, resized with the page."""
SNIPPET_CHARACTERS = 200
"""Characters of a document's text shown under its title in the changed queries' lists."""
NO_SETTINGS = "not kept"
"""A settings cell of a run whose configuration is not known (a kept snapshot, an upload)."""


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class SettingRow:
    """One search setting across the configurations compared.

    Attributes:
        setting: the :class:`~search_core.search.SearchParams` field.
        values: configuration name to the value as text (:data:`NO_SETTINGS` for a run
            without settings).
        differs: whether the configurations with settings do not all have the same value.
    """

    setting: str
    values: dict[str, str]
    differs: bool


@dataclass(frozen=True)
class ReportChart:
    """A chart of the report with the words that say how to read it.

    Attributes:
        title: a heading.
        caption: what the chart shows, in plain words.
        figure: the Plotly figure (its labels already HTML-escaped).
    """

    title: str
    caption: str
    figure: go.Figure


@dataclass(frozen=True)
class ChangedQuery:
    """A query on which the challenger and the baseline differ, with both ranked lists.

    Attributes:
        view: the baseline's and the challenger's top k, each document with its rank in both
            lists, its title and its grade.
        baseline_value: the baseline's metric on the query.
        challenger_value: the challenger's.
        difference: challenger minus baseline.
        snippets: document id to the start of its text, one line.
    """

    view: SideBySide
    baseline_value: float
    challenger_value: float
    difference: float
    snippets: dict[str, str]


@dataclass(frozen=True)
class ExperimentReport:
    """Everything the HTML report shows, computed (no I/O); :meth:`to_html` writes the page.

    Attributes:
        title: the page's title.
        created_at: when the report was made, in UTC.
        collection: the collection's name, counts, index kind, model and fingerprint.
        comparison: the comparison reported; its first run is the baseline.
        configs: each run's settings, None for a run without (a kept snapshot).
        settings: the settings side by side, one row per setting.
        descriptions: each run's settings in words.
        judgment_set: the judgment set's name (empty: judgments from files).
        judges: who graded the judgments.
        verdicts: one sentence per configuration against the baseline.
        charts: the charts, each with its caption.
        challenger: the configuration whose changed queries are listed.
        improved: the queries the challenger improves most, largest difference first.
        worsened: the queries it makes worse most, largest drop first.
        changed: how many of each were asked for.
    """

    title: str
    created_at: datetime
    collection: CollectionInfo
    comparison: Comparison
    configs: dict[str, SearchParams | None]
    settings: tuple[SettingRow, ...]
    descriptions: dict[str, str]
    judgment_set: str
    judges: tuple[str, ...]
    verdicts: tuple[str, ...]
    charts: tuple[ReportChart, ...]
    challenger: str
    improved: tuple[ChangedQuery, ...]
    worsened: tuple[ChangedQuery, ...]
    changed: int

    @property
    def baseline(self) -> str:
        """The baseline's name: the comparison's first run."""
        return self.comparison.names[0]

    def to_html(self) -> str:
        """The report as one HTML page that needs nothing from the network."""
        return _page(self)


def build_report(
    collection: Collection,
    comparison: Comparison,
    runs: Mapping[str, RunDict],
    qrels: Qrels,
    queries: Mapping[str, str],
    configs: Mapping[str, SearchParams | None],
    *,
    judgment_set: str = "",
    judges: Sequence[str] = (),
    changed: int = 5,
    challenger: str | None = None,
    title: str = "",
    created_at: datetime | None = None,
) -> ExperimentReport:
    """Gather a comparison's report from the runs already made (nothing is searched again).

    Args:
        collection: the collection searched.
        comparison: :func:`~search_core.lab.compare` of ``runs``; its first run is the baseline.
        runs: the runs compared, by name (every name of the comparison).
        qrels: the judgments the comparison used.
        queries: query id to text.
        configs: each run's settings; a run missing here or mapped to None is shown as a run
            whose settings were not kept.
        judgment_set: the judgment set's name, when the judgments come from a stored set.
        judges: who graded the judgments.
        changed: how many of the most improved and of the most worsened queries to list.
        challenger: the run whose changed queries against the baseline are listed (default:
            the comparison's second run).
        title: the page's title (default: ``Experiment report: COLLECTION``).
        created_at: when the report is made (default: now); shown in UTC, a time without
            a zone taken as UTC.

    Returns:
        The report; write it with :func:`write_report` or :meth:`ExperimentReport.to_html`.

    Raises:
        ValueError: fewer than two runs, a run of the comparison missing from ``runs``, a
            challenger that is not one of the other runs, or ``changed`` under 1.
    """
    names = comparison.names
    if len(runs) < 2 or len(names) < 2:
        raise ValueError(f"a report compares at least two runs, got {len(runs)}")
    missing = [name for name in names if name not in runs]
    if missing:
        raise ValueError(
            f"run {missing[0]!r} of the comparison is not among the runs given; "
            f"given: {', '.join(runs)}"
        )
    baseline = names[0]
    challenger = names[1] if challenger is None else challenger
    if challenger not in names[1:]:
        raise ValueError(
            f"unknown challenger {challenger!r}: it must be a run other than the baseline "
            f"{baseline!r}; valid: {', '.join(names[1:])}"
        )
    if changed < 1:
        raise ValueError(f"changed must be at least 1, got {changed}")
    made = datetime.now(UTC) if created_at is None else created_at
    kept = {name: configs.get(name) for name in names}
    improved, worsened = _changed_queries(
        collection, comparison, runs, qrels, queries, challenger, changed
    )
    return ExperimentReport(
        title=title or f"Experiment report: {collection.name}",
        created_at=made.replace(tzinfo=UTC) if made.tzinfo is None else made.astimezone(UTC),
        collection=collection.info(),
        comparison=comparison,
        configs=kept,
        settings=_settings(kept),
        descriptions={name: _described(params) for name, params in kept.items()},
        judgment_set=judgment_set,
        judges=tuple(judges),
        verdicts=tuple(verdict(comparison, name) for name in names[1:]),
        charts=_charts(comparison),
        challenger=challenger,
        improved=improved,
        worsened=worsened,
        changed=changed,
    )


def write_report(report: ExperimentReport, path: str | Path) -> Path:
    """Write the report's HTML (UTF-8) atomically: the file is whole or not there; anyone on
    the machine may read it, as a document to share.

    Returns:
        The file written.
    """
    path = Path(path)
    atomic_write(path, report.to_html().encode("utf-8"))
    path.chmod(0o644)  # a file to share: the temporary file it was written as is private
    return path


# --------------------------------------------------------------------------- what it holds


def p_value_text(p: float) -> str:
    """A p-value as people read it, three places: ``0.003``, or ``< 0.001``."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p: float) -> str:
    """A p-value in a sentence: ``p = 0.003``, or ``p < 0.001``."""
    value = p_value_text(p)
    return f"p {value}" if value.startswith("<") else f"p = {value}"


def verdict(comparison: Comparison, name: str) -> str:
    """One configuration against the baseline in a sentence: its wins, ties and losses, both
    means of the comparison's metric, the difference with its bootstrap 95% interval, and
    whether the paired test finds it significant.

    Raises:
        KeyError: ``name`` is the baseline or not in the comparison.
    """
    baseline, metric = comparison.names[0], comparison.metric
    wtl = comparison.wins_ties_losses[name]
    ours = comparison.reports[name].metrics[metric]
    theirs = comparison.reports[baseline].metrics[metric]
    low, high = comparison.difference_intervals[name][metric]
    p = comparison.p_values[name][metric]
    significant = (
        f"significant at p < {comparison.max_p:g}"
        if comparison.significant[name][metric]
        else "not significant"
    )
    label = metric_names(comparison.k).get(metric, metric)
    return (
        f"{name} beats {baseline} on {wtl['wins']} of {sum(wtl.values())} judged queries, "
        f"ties {wtl['ties']}, loses {wtl['losses']}; {label} {ours:.3f} against {theirs:.3f}, "
        f"difference {ours - theirs:+.3f} (95% CI {low:+.3f} to {high:+.3f}), {significant} "
        f"({STAT_TESTS[comparison.stat_test]}, {p_text(p)})."
    )


def _setting_text(setting: str, value: Any) -> str:
    if value is None:  # no filter; for the others, the collection's or the index's own value
        return "none" if setting == "filters" else "default"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else "none"
    return str(value)


def _settings(configs: Mapping[str, SearchParams | None]) -> tuple[SettingRow, ...]:
    known = {name: params.to_dict() for name, params in configs.items() if params is not None}
    if not known:
        return ()
    fields = list(next(iter(known.values())))
    rows = []
    for field in fields:
        values = {
            name: _setting_text(field, known[name][field]) if name in known else NO_SETTINGS
            for name in configs
        }
        shown = {values[name] for name in known}
        rows.append(SettingRow(field, values, len(shown) > 1))
    return tuple(rows)


def _described(params: SearchParams | None) -> str:
    from .tuning import describe_params

    if params is None:
        return "settings not kept with this run (a kept snapshot or an uploaded run)"
    return describe_params(params)


def _charts(comparison: Comparison) -> tuple[ReportChart, ...]:
    baseline, metric = comparison.names[0], comparison.metric
    label = metric_names(comparison.k).get(metric, metric)
    judged = len(comparison.per_query)
    charts = [
        ReportChart(
            title=f"Wins, ties and losses against {baseline}",
            caption=(
                f"Each bar splits the {judged} judged queries by whether the configuration's "
                f"{label} is higher (a win, green), the same (a tie, grey) or lower (a loss, "
                f"red) than {baseline}'s on that query."
            ),
            figure=wins_chart(comparison.wins_ties_losses, baseline),
        )
    ]
    for name in comparison.names[1:]:
        charts.append(
            ReportChart(
                title=f"{name} minus {baseline}, query by query",
                caption=(
                    f"One bar per judged query, sorted from the largest drop to the largest "
                    f"gain: {name}'s {label} on the query minus {baseline}'s. Green bars above "
                    f"zero are queries {name} answers better, red bars below zero queries it "
                    "answers worse; hover over a bar to read its query."
                ),
                figure=delta_chart(comparison.per_query, name, metric),
            )
        )
    return tuple(charts)


def _changed_queries(
    collection: Collection,
    comparison: Comparison,
    runs: Mapping[str, RunDict],
    qrels: Qrels,
    queries: Mapping[str, str],
    challenger: str,
    changed: int,
) -> tuple[tuple[ChangedQuery, ...], tuple[ChangedQuery, ...]]:
    """The ``changed`` queries the challenger improves most and worsens most (no tie)."""
    baseline = comparison.names[0]
    column = f"delta:{challenger}"
    rows = [row for row in comparison.per_query if abs(row[column]) > TIE_MARGIN]
    by_gain = sorted(rows, key=lambda row: (-row[column], str(row["query_id"])))
    by_drop = sorted(rows, key=lambda row: (row[column], str(row["query_id"])))
    pair = {baseline: runs[baseline], challenger: runs[challenger]}

    def shown(row: dict[str, Any]) -> ChangedQuery:
        view = side_by_side(
            qrels,
            pair,
            str(row["query_id"]),
            k=comparison.k,
            queries=queries,
            titles=collection.titles,
        )
        docs = {doc.doc_id for ranked in view.lists.values() for doc in ranked}
        return ChangedQuery(
            view=view,
            baseline_value=float(row[baseline]),
            challenger_value=float(row[challenger]),
            difference=float(row[column]),
            snippets={doc: _snippet(collection, doc) for doc in sorted(docs)},
        )

    improved = tuple(shown(row) for row in by_gain[:changed] if row[column] > 0)
    worsened = tuple(shown(row) for row in by_drop[:changed] if row[column] < 0)
    return improved, worsened


def _snippet(collection: Collection, doc_id: str) -> str:
    position = collection.doc_index.get(doc_id)
    if position is None:  # a kept run of an earlier build can name a document since removed
        return ""
    return snippet(collection.documents[position].text, SNIPPET_CHARACTERS)


# --------------------------------------------------------------------------- the page


STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: #1f2328; font: 15px/1.5 system-ui,
  -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.7em; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.3em; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.08em; margin: 22px 0 8px; }
h4 { font-size: 1em; margin: 0 0 4px; overflow-wrap: anywhere; }
p, li, dd { overflow-wrap: anywhere; }
.made, .note, figcaption, .muted { color: #57606a; }
.made { margin: 0 0 16px; }
.verdicts { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
  padding: 12px 16px 12px 34px; margin: 0; }
.verdicts li + li { margin-top: 6px; }
.warning { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
thead th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.differs th, tr.differs td { background: #fff1c2; }
tr.differs th::after { content: " \\2260"; color: #9a6700; }
.yes { color: #1a7f37; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
figure { margin: 12px 0 24px; }
figure .chart { width: 100%; }
.query { border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 12px; margin: 0 0 16px; }
.query table { table-layout: fixed; }
.query col.rank { width: 3.2em; }
.query col.grade { width: 6.5em; }
.doc .title { font-weight: 600; }
.doc .snippet { color: #57606a; font-size: 0.9em; margin-top: 2px; }
.gain { color: #1a7f37; font-weight: 600; }
.drop { color: #c62828; font-weight: 600; }
.unjudged { color: #8c959f; font-style: italic; }
footer { margin-top: 40px; color: #57606a; font-size: 0.85em; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  figure, .query, table, .verdicts { break-inside: avoid; }
  .modebar-container { display: none !important; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _cell(text: object, cls: str = "", tag: str = "td") -> str:
    return f'<{tag} class="{cls}">{_e(text)}</{tag}>' if cls else f"<{tag}>{_e(text)}</{tag}>"


def _table(header: Sequence[tuple[str, str]], rows: Sequence[str], cls: str = "") -> str:
    """A table of ready rows (``<tr>`` HTML) under a header of ``(text, class)`` cells."""
    head = "".join(_cell(text, c, "th") for text, c in header)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _facts(items: Sequence[tuple[str, str, str]]) -> str:
    """A list of ``(label, value, class)`` facts."""
    body = "".join(f"<dt>{_e(label)}</dt>" + _cell(value, cls, "dd") for label, value, cls in items)
    return f'<dl class="facts">{body}</dl>'


def _header(report: ExperimentReport) -> str:
    made = report.created_at.strftime("%Y-%m-%d %H:%M UTC")
    verdicts = "".join(f"<li>{_e(sentence)}</li>" for sentence in report.verdicts)
    return (
        f"<header><h1>{_e(report.title)}</h1>"
        f'<p class="made">Made {_e(made)} with Search Explorer\'s relevance lab.</p>'
        f'<ul class="verdicts">{verdicts}</ul></header>'
    )


def _compared(report: ExperimentReport) -> str:
    result, names = report.comparison, report.comparison.names
    header = [("setting", ""), *((name, "") for name in names)]
    rows = [
        "<tr><th>in words</th>"
        + "".join(_cell(report.descriptions[name]) for name in names)
        + "</tr>"
    ]
    for row in report.settings:
        cls = ' class="differs"' if row.differs else ""
        cells = "".join(_cell(row.values[name]) for name in names)
        rows.append(f"<tr{cls}><th>{_e(row.setting)}</th>{cells}</tr>")
    differing = sum(row.differs for row in report.settings)
    note = (
        f"Highlighted: the {differing} setting(s) whose value differs between the "
        "configurations. A value of “default” is the collection's or the index's own."
        if differing
        else "No setting differs between the configurations whose settings are known."
    )
    info = report.collection
    collection = _facts(
        [
            ("name", info.name, ""),
            ("documents", f"{info.documents:,}", ""),
            ("chunks", f"{info.chunks:,}", ""),
            ("vector index", info.index_kind, ""),
            ("embedding model", info.model, ""),
            ("model fingerprint", info.fingerprint, "mono"),
        ]
    )
    base = result.reports[names[0]]
    judged = [
        ("judgment set", report.judgment_set or "from files", ""),
        ("judges", ", ".join(report.judges) or "not recorded", ""),
    ]
    if len(report.judges) > 1 and result.rule:
        judged.append(("several judges' grades combined", result.rule, ""))
    judged += [
        ("queries compared", f"{base.queries:,}", ""),
        ("judged queries (with a relevant document)", f"{base.judged:,}", ""),
        ("cutoff k", str(result.k), ""),
        (
            "significance test",
            f"{STAT_TESTS[result.stat_test]}, significant at p < {result.max_p:g}",
            "",
        ),
        ("intervals", "bootstrap 95% confidence intervals over the judged queries", ""),
    ]
    return (
        '<section id="compared"><h2>What was compared</h2>'
        f"<h3>Configurations</h3><p>The first, {_e(names[0])}, is the baseline.</p>"
        + _table(header, rows, "settings")
        + f'<p class="note">{_e(note)}</p>'
        + "<h3>Collection</h3>"
        + collection
        + "<h3>Judgments and method</h3>"
        + _facts(judged)
        + "</section>"
    )


def _metrics(report: ExperimentReport) -> str:
    result = report.comparison
    labels = metric_names(result.k)
    metrics = list(result.reports[result.names[0]].metrics)
    # one column pair per configuration, as the settings: many metrics fit down the page
    header = [("metric", "")]
    for name in result.names:
        header += [(name, "num"), ("95% CI", "num")]
    rows = []
    for m in metrics:
        cells = [_cell(labels.get(m, m), "", "th")]
        for name in result.names:
            cells += [
                _cell(f"{result.reports[name].metrics[m]:.3f}", "num"),
                _cell(interval_text(result.intervals[name][m]), "num"),
            ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    counts = (
        ("coverage", lambda run: coverage_text(run.coverage)),
        ("zero_result_share", lambda run: f"{run.zero_result_share:.3f}"),
        ("judged_queries", lambda run: f"{run.judged:,}"),
    )
    for key, shown in counts:
        cells = [_cell(labels[key], "", "th")]
        cells += [
            f'<td class="num" colspan="2">{_e(shown(result.reports[name]))}</td>'
            for name in result.names
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    differing = [
        "<tr>"
        + _cell(row["configuration"])
        + _cell(row["metric"])
        + _cell(f"{row['difference']:+.3f}", "num")
        + _cell(row["95% CI"], "num")
        + _cell(p_value_text(row["p-value"]), "num")
        + _cell("yes" if row["significant"] else "no", "yes" if row["significant"] else "")
        + "</tr>"
        for row in differences(result)
    ]
    warning = coverage_warning(result)
    return (
        '<section id="metrics"><h2>Metrics</h2>'
        + (f'<p class="warning">{_e(warning)}</p>' if warning else "")
        + f'<p class="note">Means over the {_e(result.reports[result.names[0]].judged)} judged '
        "queries, each with its bootstrap 95% confidence interval; "
        f"{_e(labels['coverage'])} is the share of the top {_e(result.k)} results that are "
        "judged (an unjudged result counts as not relevant).</p>"
        + _table(header, rows, "metrics")
        + f"<h3>Differences from the baseline, {_e(result.names[0])}</h3>"
        + f'<p class="note">Configuration minus baseline, with the bootstrap 95% interval of '
        f"the mean per-query difference and the p-value of the "
        f"{_e(STAT_TESTS[result.stat_test])}.</p>"
        + _table(
            [
                ("configuration", ""),
                ("metric", ""),
                ("difference", "num"),
                ("95% CI", "num"),
                ("p-value", "num"),
                (f"significant (p < {result.max_p:g})", ""),
            ],
            differing,
            "differences",
        )
        + "</section>"
    )


def _for_print(figure: go.Figure) -> go.Figure:
    """A chart laid out for a page of its own: room for the axis labels and titles, and the
    legend under them (the app's layout leaves that to Streamlit's theme)."""
    import plotly.graph_objects as go

    laid_out = go.Figure(figure)
    laid_out.update_layout(
        template="plotly_white",
        height=max(int(laid_out.layout.height or 320), 200) + 80,
        margin={"l": 20, "r": 20, "t": 20, "b": 40},
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
    )
    laid_out.update_xaxes(automargin=True)
    laid_out.update_yaxes(automargin=True)
    return laid_out


def _figures(report: ExperimentReport) -> str:
    import plotly.io as pio

    parts = ['<section id="charts"><h2>Query by query</h2>']
    for number, chart in enumerate(report.charts, start=1):
        drawn = pio.to_html(
            _for_print(chart.figure),
            config=PLOTLY_CONFIG,
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            div_id=f"chart-{number}",
        )
        parts.append(
            f"<figure><h3>{_e(chart.title)}</h3>"
            f'<div class="chart">{drawn}</div>'
            f"<figcaption>{_e(chart.caption)}</figcaption></figure>"
        )
    parts.append("</section>")
    return "".join(parts)


def _document(doc: RankedDoc | None, snippets: Mapping[str, str]) -> str:
    if doc is None:
        return "<td></td><td></td>"
    named = doc.title and doc.title != doc.doc_id  # no title: the id once, not twice
    title = f' <span class="title">{_e(doc.title)}</span>' if named else ""
    text = snippets.get(doc.doc_id, "")
    shown = f'<div class="snippet">{_e(text)}</div>' if text else ""
    grade = '<td class="unjudged">unjudged</td>' if doc.grade is None else _cell(doc.grade, "num")
    name = f'<span class="mono">{_e(doc.doc_id)}</span>'
    return f'<td><div class="doc">{name}{title}{shown}</div></td>{grade}'


def _changed_query(item: ChangedQuery, report: ExperimentReport) -> str:
    view, baseline, challenger = item.view, report.baseline, report.challenger
    label = metric_names(report.comparison.k).get(report.comparison.metric)
    first, second = view.lists[baseline], view.lists[challenger]
    rows = []
    for position in range(max(len(first), len(second))):
        left = first[position] if position < len(first) else None
        right = second[position] if position < len(second) else None
        rows.append(
            f"<tr>{_cell(position + 1, 'num')}{_document(left, item.snippets)}"
            f"{_document(right, item.snippets)}</tr>"
        )
    table = (
        '<table><colgroup><col class="rank"><col><col class="grade"><col><col class="grade">'
        '</colgroup><thead><tr><th class="num">rank</th>'
        f"{_cell(baseline, '', 'th')}<th>grade</th>{_cell(challenger, '', 'th')}<th>grade</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">Neither configuration returned anything for this query.</p>'
    )
    change = "gain" if item.difference > 0 else "drop"
    return (
        f'<article class="query"><h4>{_e(view.query_id)}: {_e(view.query)}</h4>'
        f"<p>{_e(label)}: {_e(baseline)} {item.baseline_value:.3f}, {_e(challenger)} "
        f'{item.challenger_value:.3f}, <span class="{change}">difference '
        f"{item.difference:+.3f}</span></p>{table}</article>"
    )


def _changed(report: ExperimentReport) -> str:
    baseline, challenger = report.baseline, report.challenger
    label = metric_names(report.comparison.k).get(report.comparison.metric)
    parts = [
        '<section id="changed"><h2>The queries that changed most</h2>',
        f'<p class="note">{_e(challenger)} against {_e(baseline)}: the {report.changed} judged '
        f"queries whose {_e(label)} rose most and the {report.changed} whose {_e(label)} fell "
        f"most (queries with no difference are left out), each with both top "
        f"{report.comparison.k} lists: the document's id, title and the start of its text, and "
        "its grade.</p>",
    ]
    for heading, items, none in (
        (f"Most improved by {challenger}", report.improved, "No query scores higher."),
        (f"Most worsened by {challenger}", report.worsened, "No query scores lower."),
    ):
        parts.append(f"<h3>{_e(heading)}</h3>")
        parts.extend(_changed_query(item, report) for item in items)
        if not items:
            parts.append(f'<p class="muted">{_e(none)}</p>')
    parts.append("</section>")
    return "".join(parts)


def _page(report: ExperimentReport) -> str:
    from plotly.offline import get_plotlyjs

    body = (
        _header(report)
        + _compared(report)
        + _metrics(report)
        + _figures(report)
        + _changed(report)
        + "<footer>A self-contained page: the charts are drawn by the Plotly library inlined "
        "here, with nothing fetched from the network.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
