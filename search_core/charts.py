"""Charts and short texts of a comparison, shared by the app and the HTML report.

Plotly figure builders and the plain-text formats of intervals, coverage and metric names,
with no Streamlit: the app's pages (through ``ui.display``) and
:mod:`search_core.report` draw the same figures from the same code.

Plotly renders a few HTML tags in labels and hover text (``<b>``, ``<br>``, ``<a href>``...),
so any text from the corpus or the user that goes into a figure is HTML-escaped first
(:func:`plot_text`, or ``html.escape`` for a short label such as a configuration's name).
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from .lab import COVERAGE_WARNING, Comparison

__all__ = [
    "coverage_text",
    "coverage_warning",
    "delta_chart",
    "interval_text",
    "layout",
    "metric_names",
    "plot_text",
    "snippet",
    "wins_chart",
]

WIN_COLOR, TIE_COLOR, LOSS_COLOR = "#2e7d32", "#bdbdbd", "#c62828"


def layout(fig: go.Figure, height: int = 320, **extra: Any) -> go.Figure:
    """Give a figure the app's height, tight margins and a legend under the plot.

    Args:
        fig: the figure, changed in place.
        height: its height in pixels.
        **extra: more ``update_layout`` settings.

    Returns:
        The same figure.
    """
    # The legend goes under the plot: above it, the toolbars that appear on hover (Plotly's
    # and Streamlit's, top right) would cover its end.
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0, "x": 0},
        **extra,
    )
    return fig


def snippet(text: str, limit: int = 220) -> str:
    """The start of a text on one line, cut at a word."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


def plot_text(text: object, width: int = 60, limit: int = 220) -> str:
    """Text for a Plotly label or hover: HTML-escaped, wrapped with ``<br>``."""
    lines = textwrap.wrap(snippet(str(text), limit), width) or [""]
    return "<br>".join(html.escape(line) for line in lines)


# --------------------------------------------------------------------------- comparison charts


def wins_chart(wins: Mapping[str, Mapping[str, int]], baseline: str) -> go.Figure:
    """Wins, ties and losses of each configuration against the baseline.

    Args:
        wins: configuration name to ``{"wins", "ties", "losses"}`` counts
            (:attr:`~search_core.lab.Comparison.wins_ties_losses`).
        baseline: the baseline's name, for the axis title.
    """
    names = list(wins)
    labels = [html.escape(n) for n in names]  # Plotly renders tick labels as HTML
    fig = go.Figure()
    for outcome, color in (("wins", WIN_COLOR), ("ties", TIE_COLOR), ("losses", LOSS_COLOR)):
        fig.add_bar(
            y=labels,
            x=[wins[n][outcome] for n in names],
            name=outcome,
            orientation="h",
            marker_color=color,
            hovertemplate=f"%{{x}} queries: {outcome}<extra></extra>",
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title=f"queries, compared with {html.escape(baseline)}")
    return layout(fig, 120 + 45 * len(names))


def delta_chart(rows: Sequence[Mapping[str, Any]], name: str, metric: str) -> go.Figure:
    """Per-query difference of one configuration against the baseline, sorted.

    Args:
        rows: :attr:`~search_core.lab.Comparison.per_query`.
        name: the configuration (its ``delta:NAME`` column is drawn).
        metric: the metric's name, for the axis title.
    """
    ordered = sorted(rows, key=lambda r: r[f"delta:{name}"])
    deltas = [r[f"delta:{name}"] for r in ordered]
    fig = go.Figure(
        go.Bar(
            x=list(range(1, len(ordered) + 1)),
            y=deltas,
            marker_color=[
                WIN_COLOR if d > 0 else LOSS_COLOR if d < 0 else TIE_COLOR for d in deltas
            ],
            hovertext=[plot_text(f"{r['query_id']}: {r['query']}") for r in ordered],
            hoverinfo="text+y",
        )
    )
    fig.update_xaxes(title="queries, sorted by the difference", showticklabels=False)
    fig.update_yaxes(title=f"{html.escape(metric)} difference")
    return layout(fig, 300)


# --------------------------------------------------------------------------- texts


def interval_text(interval: tuple[float, float]) -> str:
    """A 95% interval as people read it, three places: ``0.712 – 0.801``."""
    low, high = interval
    return f"{low:.3f} – {high:.3f}"


def coverage_text(coverage: float) -> str:
    """A judged coverage as a percent with one decimal, rounded down so that a coverage under
    the warning's 90% never reads ``90.0%``."""
    return f"{math.floor(coverage * 1000 + 1e-9) / 10:.1f}%"


def coverage_warning(result: Comparison) -> str | None:
    """One sentence naming the configurations whose top k is under ``COVERAGE_WARNING`` (90%)
    judged, with their coverage, or None when every one is judged enough.

    Plain text: in Markdown (``st.warning``) show it through ``ui.display.md``, and in HTML
    through ``html.escape``, since configuration names may hold ``_`` or ``<``.
    """
    if not result.low_coverage:
        return None
    named = [
        f"{name} ({coverage_text(result.reports[name].coverage)})" for name in result.low_coverage
    ]
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    return (
        f"Under {COVERAGE_WARNING:.0%} of the top {result.k} results are judged for {listed}, "
        "so the metrics undercount them: a result nobody judged counts as not relevant."
    )


def metric_names(k: int) -> dict[str, str]:
    """Readable names of the lab's columns at cutoff k."""
    return {
        "name": "configuration",
        f"ndcg@{k}": f"nDCG@{k}",
        f"recall@{k}": f"Recall@{k}",
        f"mrr@{k}": f"MRR@{k}",
        f"precision@{k}": f"P@{k}",
        "map": "MAP",
        "zero_result_share": "no result (share)",
        f"unjudged@{k}": f"unjudged in top {k}",
        "unjudged_share": "unjudged (share)",
        "coverage": f"judged@{k}",
        "judged_queries": "judged queries",
        "queries": "queries",
    }


def differences(result: Comparison) -> list[dict[str, Any]]:
    """Each configuration against the baseline, per metric: the mean difference (that
    configuration minus the baseline) with its bootstrap 95% interval, the p-value and whether
    it is significant; one row each, with the columns' names people read."""
    baseline = result.reports[result.names[0]].metrics
    names = metric_names(result.k)
    return [
        {
            "configuration": name,
            "metric": names.get(metric, metric),
            "difference": result.reports[name].metrics[metric] - baseline[metric],
            "95% CI": interval_text(result.difference_intervals[name][metric]),
            "p-value": p,
            "significant": result.significant[name][metric],
        }
        for name, values in result.p_values.items()
        for metric, p in values.items()
    ]
