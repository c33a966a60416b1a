"""The comparison's charts and texts, drawn without Streamlit (search_core/charts.py)."""

from __future__ import annotations

import html
import subprocess
import sys

import pytest

from search_core.charts import (
    coverage_text,
    delta_chart,
    interval_text,
    layout,
    metric_names,
    plot_text,
    wins_chart,
)

NASTY = '<a href="https://x.test">x</a> & <b>'


def test_the_charts_module_needs_no_streamlit() -> None:
    code = "import sys, search_core.charts; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_app_draws_the_same_charts() -> None:
    from ui import display

    assert display.wins_chart is wins_chart and display.delta_chart is delta_chart
    assert display._layout is layout and display.plot_text is plot_text
    assert display.metric_names is metric_names and display.interval_text is interval_text


def test_wins_chart_escapes_the_configuration_names() -> None:
    wins = {NASTY: {"wins": 3, "ties": 1, "losses": 2}}
    fig = wins_chart(wins, NASTY)
    assert [list(bar.y) for bar in fig.data] == [[html.escape(NASTY)]] * 3
    assert [bar.x[0] for bar in fig.data] == [3, 1, 2]
    assert fig.layout.xaxis.title.text.endswith(html.escape(NASTY))
    assert "<" not in fig.layout.xaxis.title.text


def test_delta_chart_sorts_the_differences_and_escapes_the_queries() -> None:
    rows = [
        {"query_id": "q1", "query": NASTY, "delta:b": 0.5},
        {"query_id": "q2", "query": "plain", "delta:b": -0.25},
        {"query_id": "q3", "query": "tie", "delta:b": 0.0},
    ]
    fig = delta_chart(rows, "b", "ndcg@10")
    bar = fig.data[0]
    assert list(bar.y) == sorted(row["delta:b"] for row in rows)
    assert bar.hovertext[-1] == plot_text(f"q1: {NASTY}")
    assert all("<a" not in text and "<b>" not in text for text in bar.hovertext)


@pytest.mark.parametrize(
    ("coverage", "shown"), [(0.8999, "89.9%"), (0.9, "90.0%"), (1.0, "100.0%")]
)
def test_coverage_text_rounds_down(coverage: float, shown: str) -> None:
    assert coverage_text(coverage) == shown
