"""Showing things safely: corpus text as text, query terms highlighted, and the app's charts.

Corpus text (documents, titles, ids, metadata, uploaded file names) is never HTML and never
Markdown. Where Streamlit renders Markdown (``st.markdown``, ``st.caption``, ``st.error``...)
every ASCII punctuation character of corpus text is backslash-escaped (:func:`md`), so
``<script>``, ``[x](javascript:...)``, ``**``, ``:red[...]`` and ``$...$`` all show as the
characters they are. In Plotly, whose labels understand a few HTML tags, corpus text is
HTML-escaped (:func:`plot_text`).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from search_core.agreement import AgreementReport, Disagreement
from search_core.analysis import ENGLISH, Analyzer
from search_core.charts import (  # noqa: F401 - the pages use them from here
    coverage_text,
    coverage_warning,
    delta_chart,
    differences,
    interval_text,
    metric_names,
    plot_text,
    snippet,
    wins_chart,
)
from search_core.charts import layout as _layout
from search_core.judgments import Pool
from search_core.lab import Comparison, SideBySide, Snapshot
from search_core.lexical import JOINERS
from search_core.pooling import PoolProgress
from search_core.search import SearchParams
from search_core.telemetry import QueryRecord
from search_core.tuning import describe_params
from search_core.types import Hit, SearchResponse, Timings

# Every ASCII punctuation character can be backslash-escaped in CommonMark.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GFM turns e-mail addresses, www. names and http:// addresses into links even in escaped
# text; an invisible word joiner (U+2060) after "@", "www" and ":" before "//" prevents it.
_AUTOLINK = re.compile(r"@|(?<=www)(?=\.)|(?<=:)(?=//)", re.IGNORECASE)
WORD_JOINER = "\u2060"
_WORD = re.compile(rf"[^\W_]+(?:['’{re.escape(JOINERS)}]+[^\W_]+)*")
HIGHLIGHT = "orange-background"
PALETTE = "Plotly"
GRADE_COLORS = {
    "3 perfect": "#1a7f37",
    "2 relevant": "#4caf50",
    "1 related": "#a5d6a7",
    "0 not relevant": "#d32f2f",
    "unjudged": "#c8c8c8",
}


def _escape(text: str) -> str:
    """Escape Markdown in a piece of one line, and keep addresses from becoming links."""
    unlinked = _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, text)
    return _PUNCTUATION.sub(r"\\\1", unlinked)


def md(text: object) -> str:
    """Text for a Markdown element, shown exactly as it is (no link, tag, emphasis or icon).

    Line breaks are kept as hard breaks; leading spaces are dropped so that an indented line
    does not become a code block, where escapes would show.
    """
    return "  \n".join(_escape(line.strip()) for line in str(text).splitlines())


def error(exc: BaseException | str) -> None:
    """An error message for people: the engine's message, escaped, never a traceback."""
    st.error(md(str(exc)), icon=":material/error:")


def _is_identifier(word: str, terms: Sequence[str]) -> bool:
    """Whether the analysis kept a joined word whole (an identifier), before its parts."""
    return (
        len(terms) > 1 and any(c in JOINERS for c in word) and any(c in JOINERS for c in terms[0])
    )


def marked_words(text: str, query: str, analyzer: Analyzer = ENGLISH) -> list[tuple[int, int]]:
    """Where the words of ``text`` that match the query are, as ``(start, end)`` spans.

    A word matches when BM25 would match it: one of its terms (the collection's ``analyzer``:
    lower-cased, stemmed in its language) is a query term. An identifier such as ``ORD-58231``
    matches only as a whole (its parts ``ord`` and ``58231`` would light up every order id), or
    by a part that the query names alone.
    """
    tokenize_many = analyzer.tokenize_many
    query_words = _WORD.findall(query)
    query_terms = tokenize_many(query_words)
    whole: set[str] = set()
    plain: set[str] = set()
    for word, terms in zip(query_words, query_terms, strict=True):
        if _is_identifier(word, terms):
            whole.add(terms[0])
        else:
            plain.update(terms)
    matches = list(_WORD.finditer(text))
    spans = []
    for match, terms in zip(matches, tokenize_many(m.group() for m in matches), strict=True):
        if _is_identifier(match.group(), terms):
            marked = terms[0] in whole or bool(set(terms[1:]) & plain)
        else:
            marked = bool(set(terms) & (plain | whole))
        if marked:
            spans.append((match.start(), match.end()))
    return spans


def highlight(text: str, query: str, analyzer: Analyzer = ENGLISH) -> str:
    """Markdown of ``text`` with the words that match the query highlighted (see
    :func:`marked_words`), all else escaped."""
    lines: list[str] = []
    current: list[str] = []
    position = 0

    def add(segment: str) -> None:
        parts = segment.split("\n")
        for i, part in enumerate(parts):
            if i:
                lines.append("".join(current).strip())
                current.clear()
            current.append(_escape(part))

    for word_start, word_end in marked_words(text, query, analyzer):
        # The highlight is padded on both sides: punctuation between the word and a space
        # goes inside it, or "refunded;" would read "refunded ;".
        start, end = _with_punctuation(text, position, word_start, word_end)
        add(text[position:start])
        before, after = _escape(text[start:word_start]), _escape(text[word_end:end])
        word = _escape(text[word_start:word_end])
        current.append(f":{HIGHLIGHT}[{before}**{word}**{after}]")
        position = end
    add(text[position:])
    lines.append("".join(current).strip())
    return "  \n".join(lines)


def text_parts(text: str, query: str, analyzer: Analyzer = ENGLISH) -> list[tuple[str, bool]]:
    """``text`` cut into ``(part, marked)`` pieces, the words matching the query marked (see
    :func:`marked_words`); joined, the parts are ``text`` again. For a page that shows them as
    text nodes, never as HTML."""
    parts: list[tuple[str, bool]] = []
    position = 0
    for start, end in marked_words(text, query, analyzer):
        if start > position:
            parts.append((text[position:start], False))
        parts.append((text[start:end], True))
        position = end
    if position < len(text):
        parts.append((text[position:], False))
    return parts


def _is_mark(char: str) -> bool:
    return not (char.isalnum() or char.isspace() or char == "_")


def _with_punctuation(text: str, low: int, start: int, end: int) -> tuple[int, int]:
    """A word's span widened over the punctuation that joins it to a space or a line end.

    Punctuation that joins it to another word ("refund,return") is left out.
    """
    before, after = start, end
    while before > low and _is_mark(text[before - 1]):
        before -= 1
    if before > 0 and not text[before - 1].isspace():
        before = start
    while after < len(text) and _is_mark(text[after]):
        after += 1
    if after < len(text) and not text[after].isspace():
        after = end
    return before, after


# --------------------------------------------------------------------------- results


SCORE_NAMES = {
    "vector": "cosine similarity",
    "bm25": "BM25 score",
    "hybrid": "fused score (reciprocal rank fusion)",
}


def retriever_line(hit: Hit, mode: str, threshold: float) -> str:
    """Why a hit is here: its rank and score from each retriever (plain words, no corpus text).

    The minimum similarity ``threshold`` filters the vector ranking: in hybrid mode a hit less
    similar than it is left out of that ranking and is here for what BM25 found (its words or
    its exact identifier), and the line says so; a BM25 rank that did not count (the chunk's
    cosine under the floor BM25 needs) is said to be so.
    """
    parts = [f"{SCORE_NAMES.get(mode, 'score')} {hit.score:.4f}"]
    if mode == "hybrid" and hit.similarity is not None and hit.similarity < threshold:
        parts.append(
            f"cosine {hit.similarity:.3f}, under the minimum similarity {threshold:.2f}, so "
            "left out of the vector ranking: hybrid keeps what BM25 finds"
        )
    elif hit.vector.rank is not None:
        parts.append(f"vector rank {hit.vector.rank} (cosine {hit.vector.score:.3f})")
    elif hit.similarity is not None:
        parts.append(f"not among the vector candidates (cosine {hit.similarity:.3f})")
    if mode != "vector":
        if hit.bm25.rank is not None and hit.bm25_floor is not None:
            parts.append(
                f"BM25 rank {hit.bm25.rank}, not counted: its cosine is under "
                f"{hit.bm25_floor:.2f}, the similarity BM25 needs in hybrid"
            )
        elif hit.bm25.rank is not None:
            parts.append(f"BM25 rank {hit.bm25.rank} (score {hit.bm25.score:.2f})")
        else:
            parts.append("no BM25 match")
    if hit.identifier_match:
        parts.append("holds the query's exact identifier")
    return "Why it is here: " + " · ".join(parts)


def no_result(response: SearchResponse, threshold: float, *, filtered: bool) -> str:
    """Why an answer is empty, and what to try (plain words, no corpus text).

    Args:
        response: an answer without hits.
        threshold: the minimum similarity it was searched with.
        filtered: whether metadata filters were applied.
    """
    if response.below_threshold:
        closest = max(response.candidate_similarities, default=math.nan)
        hybrid = (
            " Hybrid answers nothing when no vector candidate reaches it, whatever BM25 finds."
            if response.mode == "hybrid"
            else ""
        )
        return (
            f"No result: the minimum similarity {threshold:.2f} removed all "
            f"{response.below_threshold} vector candidates (the most similar has cosine "
            f"{closest:.3f}).{hybrid} Lower the minimum similarity, or try BM25 mode, which "
            "matches the query's words and ignores it."
        )
    if filtered:
        return "No result: nothing matches the query with these filters. Widen or remove them."
    if response.mode == "bm25":
        return (
            "No result: no document contains the query's words. Try other words, or vector "
            "or hybrid mode, which also find passages that mean the same."
        )
    return "No result: the collection has nothing to search."


def hit_header(hit: Hit) -> str:
    """Markdown of a hit's rank, title and document id, escaped."""
    pages = f"page {', '.join(map(str, hit.pages))}" if hit.pages else ""
    if not hit.title or hit.title == hit.doc_id:  # no title: the id once, not twice
        return f"**{hit.rank}\\.** {md(hit.doc_id)}" + (f"  \n:gray[{pages}]" if pages else "")
    where = " · ".join(part for part in (md(hit.doc_id), pages) if part)
    return f"**{hit.rank}\\.** {md(hit.title)}  \n:gray[{where}]"


# --------------------------------------------------------------------------- charts


CACHED_PATTERN = "/"
"""Bar hatching of a time served from the session's cache (measured at an earlier run)."""


def score_chart(
    similarities: Sequence[float], threshold: float, results: Mapping[str, Sequence[float]]
) -> go.Figure:
    """Histogram of the candidates' similarities, the threshold, and where the results fall.

    Args:
        similarities: the cosine similarity to the query of every candidate considered.
        threshold: the minimum similarity, drawn as a vertical line.
        results: the similarities of each list of results shown, by the list's name; each
            list gets a row under the histogram. A result under the threshold (in hybrid, a
            chunk holding the query's identifiers) gets its own marker.
    """
    values = np.asarray(similarities, dtype=float)
    shown = [s for row in results.values() for s in row]
    rows = list(results)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.78, 0.22], vertical_spacing=0.04
    )
    for part, name, color in (
        (values < threshold, "candidates below the threshold", "#c8c8c8"),
        (values >= threshold, "candidates at or above it", "#1f77b4"),
    ):
        fig.add_histogram(
            x=values[part],
            name=name,
            marker_color=color,
            xbins={"size": 0.02},
            hovertemplate="similarity %{x}<br>%{y} candidates<extra></extra>",
            row=1,
            col=1,
        )
    for above, name, marker in (
        (True, "result", {"symbol": "triangle-up", "size": 11, "color": "#ff7f0e"}),
        (
            False,
            "result below the threshold, kept by BM25",
            {"symbol": "diamond-open", "size": 11, "color": "#9467bd", "line": {"width": 2}},
        ),
    ):
        points = [(s, row) for row in rows for s in results[row] if (s >= threshold) == above]
        if points:
            fig.add_scatter(
                x=[s for s, _ in points],
                y=[row for _, row in points],
                mode="markers",
                name=name,
                marker=marker,
                hovertemplate="%{y}: result with similarity %{x:.3f}<extra></extra>",
                row=2,
                col=1,
            )
    fig.add_vline(x=threshold, line_dash="dash", line_color="#d32f2f", row="all", col=1)
    # The label sits above the plot, where it can cover neither bars nor result markers.
    fig.add_annotation(
        x=threshold,
        xref="x",
        y=1,
        yref="y domain",
        yanchor="bottom",
        text=f"minimum similarity {threshold:.2f}",
        showarrow=False,
        font={"color": "#d32f2f"},
    )
    fig.update_layout(barmode="overlay", bargap=0.05)
    low = min(0.0, float(values.min(initial=0)), min(shown, default=0.0))
    fig.update_xaxes(range=[low, 1])
    fig.update_xaxes(title="cosine similarity to the query", row=2, col=1)
    fig.update_yaxes(title="candidates", row=1, col=1)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=rows[::-1], row=2, col=1)
    # room above the plot for the label, under the toolbar that shows on hover
    return _layout(fig, 380).update_layout(margin_t=60)


TIMED_STAGES = {
    "vector_ms": "vector search",
    "bm25_ms": "BM25 search",
    "fusion_ms": "fusion and ranking",
}
"""A search's own stages, by their :class:`Timings` field (the embedding has its own row)."""


def timings_chart(
    timings_by_mode: Mapping[str, Timings],
    *,
    embed_ms: float | None = None,
    embed_cached: bool = False,
    cached: Collection[str] = (),
) -> go.Figure:
    """Each stage's time: the query's embedding once, on its own row, then one row per mode.

    Args:
        timings_by_mode: each mode's own stage times (their ``embed_ms`` is not drawn).
        embed_ms: the query's embedding time, shared by the modes that use it; None when no
            mode embeds the query.
        embed_cached: the embedding was reused from this session (its time is the first's).
        cached: the modes answered from this session's cache; their bars show the time of the
            first search, hatched, and their rows say "cached".
    """

    def label(name: str, reused: bool) -> str:
        return f"{name} (cached)" if reused else name

    modes = [label(m, m in cached) for m in timings_by_mode]
    patterns = [CACHED_PATTERN if m in cached else "" for m in timings_by_mode]
    fig = go.Figure()
    if embed_ms is not None:
        fig.add_bar(
            y=[label("query embedding", embed_cached)],
            x=[embed_ms],
            name="embed the query",
            orientation="h",
            marker_pattern_shape=CACHED_PATTERN if embed_cached else "",
            hovertemplate="embed the query: %{x:.1f} ms<extra></extra>",
        )
    for attr, name in TIMED_STAGES.items():
        fig.add_bar(
            y=modes,
            x=[getattr(t, attr) for t in timings_by_mode.values()],
            name=name,
            orientation="h",
            marker_pattern_shape=patterns,
            hovertemplate=f"{name}: %{{x:.1f}} ms<extra></extra>",
        )
    # Each row's total beside its bar: an embedding can take a hundred times a search, and
    # the search's bar would otherwise be too thin to read.
    totals = {label("query embedding", embed_cached): embed_ms} if embed_ms is not None else {}
    for row, t in zip(modes, timings_by_mode.values(), strict=True):
        totals[row] = sum(getattr(t, attr) for attr in TIMED_STAGES)
    for row, total in totals.items():
        fig.add_annotation(
            x=total, y=row, text=f"{total:.1f} ms", showarrow=False, xanchor="left", xshift=4
        )
    fig.update_layout(barmode="stack", legend_traceorder="normal")
    fig.update_xaxes(title="milliseconds", range=[0, max(totals.values(), default=0) * 1.2 or 1])
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, 150 + 40 * len(totals))


QUERY_MARKER = {2: "star", 3: "diamond"}
"""The query's symbol on a 2D and a 3D map (Plotly's 3D scatter has no star); the caption
names it from here."""


def filters_in_words(filters: Mapping[str, Any]) -> str:
    """Metadata filters in plain words, e.g. ``severity from 9 to 10; domain legal or security``.

    Field names and values are corpus text: escape the result for Markdown (:func:`md`).
    """
    words = {"gt": "above", "gte": "at least", "lt": "below", "lte": "at most"}
    parts = []
    for field, condition in filters.items():
        if isinstance(condition, Mapping):
            if set(condition) == {"gte", "lte"}:
                parts.append(f"{field} from {condition['gte']:g} to {condition['lte']:g}")
            else:
                bounds = (f"{words.get(op, op)} {bound:g}" for op, bound in condition.items())
                parts.append(f"{field} {' and '.join(bounds)}")
        elif isinstance(condition, list | tuple):
            parts.append(f"{field} {' or '.join(str(value) for value in condition)}")
        else:
            parts.append(f"{field} {condition}")
    return "; ".join(parts)


def search_settings(params: SearchParams) -> str:
    """A search's mode, number of results, minimum similarity and filters, in plain words."""
    parts = [f"{params.mode} mode", f"top {params.k}"]
    if params.mode != "bm25":
        parts.append(f"minimum similarity {params.threshold:.2f}")
    parts.append(f"filters: {filters_in_words(params.filters)}" if params.filters else "no filter")
    return ", ".join(parts)


def map_figure(
    coords: np.ndarray,
    colors: Sequence[str],
    hover: Sequence[str],
    *,
    color_title: str,
    order: Sequence[str] | None = None,
    query: np.ndarray | None = None,
    hits: np.ndarray | None = None,
    hit_labels: Sequence[str] = (),
    missed: np.ndarray | None = None,
    missed_labels: Sequence[str] = (),
    zoom: bool = False,
) -> go.Figure:
    """The embedding map: chunks coloured by group, the query, lines to its hits, missed chunks.

    Every text given (``colors``, ``hover``, labels) must already be escaped with
    :func:`plot_text`.
    """
    three = coords.shape[1] == 3
    fig = go.Figure()
    groups = list(order) if order is not None else sorted(set(colors))
    labels = np.asarray(colors, dtype=object)
    hover_text = np.asarray(hover, dtype=object)
    palette = (
        GRADE_COLORS
        if set(groups) <= set(GRADE_COLORS)
        else {g: c for g, c in zip(groups, _cycle(len(groups)), strict=True)}
    )
    for group in groups:
        rows = np.flatnonzero(labels == group)
        if not len(rows):
            continue
        _points(
            fig,
            coords[rows],
            three,
            name=group,
            text=hover_text[rows],
            marker={"size": 4 if three else 6, "color": palette[group], "opacity": 0.75},
        )
    if query is not None:
        ring = {"size": 9 if three else 12, "symbol": "circle-open", "line": {"width": 2}}
        cross = {"size": 8 if three else 12, "symbol": "x"}
        linked = (
            (hits, hit_labels, "top results", "#ff7f0e", "solid", ring),
            (missed, missed_labels, "judged relevant, missed", "#d32f2f", "dot", cross),
        )
        for points, labels, name, color, dash, style in linked:
            if points is None or not len(points):
                continue
            _lines(fig, query, points, three, name, color, dash)
            _points(
                fig,
                points,
                three,
                name=name,
                text=np.asarray(labels, dtype=object),
                marker={**style, "color": color},
                legend=False,
            )
        _points(
            fig,
            query[None, :],
            three,
            name="your query",
            text=np.asarray(["your query"], dtype=object),
            marker={
                "size": 12 if three else 20,
                "color": "#000000",
                "symbol": QUERY_MARKER[3 if three else 2],
            },
        )
    fig.update_layout(legend_title_text=html.escape(color_title))
    if three:
        fig.update_layout(
            scene={
                "xaxis": {"showticklabels": False, "title": ""},
                "yaxis": {"showticklabels": False, "title": ""},
                "zaxis": {"showticklabels": False, "title": ""},
            }
        )
    else:
        fig.update_xaxes(showticklabels=False, title="", showgrid=False, zeroline=False)
        fig.update_yaxes(showticklabels=False, title="", showgrid=False, zeroline=False)
        if zoom and query is not None:
            around = [query[None, :2]] + [a[:, :2] for a in (hits, missed) if a is not None]
            points = np.concatenate(around)
            low, high = points.min(axis=0), points.max(axis=0)
            pad = np.maximum((high - low) * 0.3, 0.5)
            fig.update_xaxes(range=[low[0] - pad[0], high[0] + pad[0]])
            fig.update_yaxes(range=[low[1] - pad[1], high[1] + pad[1]])
    return _layout(fig, 620)


def _cycle(count: int) -> list[str]:
    import plotly.express as px

    colors = (
        px.colors.qualitative.Plotly + px.colors.qualitative.Set2 + px.colors.qualitative.Pastel
    )
    return [colors[i % len(colors)] for i in range(count)]


def _points(
    fig: go.Figure,
    xyz: np.ndarray,
    three: bool,
    *,
    name: str,
    text: np.ndarray,
    marker: dict[str, Any],
    legend: bool = True,
) -> None:
    common = {
        "mode": "markers",
        "name": name,
        "hovertext": text,
        "hoverinfo": "text",
        "marker": marker,
        "showlegend": legend,
    }
    if three:
        fig.add_scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], **common)
    else:
        fig.add_scattergl(x=xyz[:, 0], y=xyz[:, 1], **common)


def _lines(
    fig: go.Figure,
    start: np.ndarray,
    ends: np.ndarray,
    three: bool,
    name: str,
    color: str,
    dash: str,
) -> None:
    xs: list[float | None] = []
    ys: list[float | None] = []
    zs: list[float | None] = []
    for end in ends:
        xs += [float(start[0]), float(end[0]), None]
        ys += [float(start[1]), float(end[1]), None]
        if three:
            zs += [float(start[2]), float(end[2]), None]
    line = {"color": color, "width": 2, "dash": dash}
    if three:
        fig.add_scatter3d(x=xs, y=ys, z=zs, mode="lines", name=name, line=line, hoverinfo="skip")
    else:
        fig.add_scatter(x=xs, y=ys, mode="lines", name=name, line=line, hoverinfo="skip")


def threshold_chart(rows: Sequence[Mapping[str, Any]], k: int, current: float) -> go.Figure:
    """Quality and the share of empty answers against the similarity threshold."""
    x = [r["threshold"] for r in rows]
    fig = go.Figure()
    for column, label, dash, color in (
        (f"ndcg@{k}", f"nDCG@{k}", "solid", "#1f77b4"),
        (f"precision@{k}", f"precision@{k}", "dot", "#2ca02c"),
        (f"recall@{k}", f"recall@{k}", "dash", "#9467bd"),
        ("empty_share", "share of queries with no result", "solid", "#d62728"),
    ):
        fig.add_scatter(
            x=x,
            y=[r[column] for r in rows],
            name=label,
            mode="lines+markers",
            line={"dash": dash, "color": color},
            hovertemplate=f"{label}: %{{y:.3f}}<extra></extra>",
        )
    fig.add_vline(
        x=current, line_dash="dash", line_color="#888", annotation_text=f"current {current:.2f}"
    )
    fig.update_xaxes(title="similarity threshold")
    fig.update_yaxes(title="value", range=[0, 1.02])
    return _layout(fig, 360, hovermode="x unified")


def fusion_chart(rows: Sequence[Mapping[str, Any]], k: int) -> go.Figure:
    """Heat map of nDCG@k over RRF k (rows) and the vector weight share (columns)."""
    shares = sorted({r["vector_weight"] for r in rows})
    ks = sorted({r["rrf_k"] for r in rows})
    value = {(r["rrf_k"], r["vector_weight"]): r[f"ndcg@{k}"] for r in rows}
    z = [[value.get((rk, s), math.nan) for s in shares] for rk in ks]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"{s:.1f}" for s in shares],
            y=[f"{rk:g}" for rk in ks],
            colorscale="Viridis",
            colorbar={"title": f"nDCG@{k}"},
            texttemplate="%{z:.3f}",
            hovertemplate="vector share %{x}, RRF k %{y}: nDCG %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="vector weight share (0 = BM25 only, 1 = vector only)", type="category")
    fig.update_yaxes(title="RRF k", type="category")
    return _layout(fig, 380)


def ann_chart(rows: Sequence[Mapping[str, Any]], parameter: str, k: int) -> go.Figure:
    """Recall against exact search and latency for each nprobe / efSearch."""
    x = [r[parameter] for r in rows]
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=[r[f"recall@{k}"] for r in rows],
        name=f"recall@{k} vs exact search",
        mode="lines+markers",
        yaxis="y",
    )
    if rows and f"ndcg@{k}" in rows[0]:
        fig.add_scatter(
            x=x,
            y=[r[f"ndcg@{k}"] for r in rows],
            name=f"nDCG@{k}",
            mode="lines+markers",
            yaxis="y",
            line={"dash": "dot"},
        )
    for column, label in (("p50_ms", "latency p50"), ("p99_ms", "latency p99")):
        fig.add_bar(
            x=x, y=[r[column] for r in rows], name=f"{label} (ms)", yaxis="y2", opacity=0.35
        )
    fig.update_layout(
        yaxis={"title": "recall / nDCG", "range": [0, 1.02]},
        yaxis2={"title": "milliseconds per query", "overlaying": "y", "side": "right"},
        xaxis={"title": parameter, "type": "log"},
    )
    return _layout(fig, 360)


def tune_chart(defaults: Mapping[str, float], held_out: float, chosen: float) -> go.Figure:
    """The default modes' nDCG@10 next to the tuned setting's held-out and in-sample scores."""
    names = [f"default {m}" for m in defaults] + ["tuned, held-out", "tuned, on all queries"]
    values = [*defaults.values(), held_out, chosen]
    colors = ["#90a4ae"] * len(defaults) + ["#1f77b4", "#bbdefb"]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=values,
            marker_color=colors,
            text=[f"{v:.3f}" for v in values],
            textposition="outside",
            hovertemplate="%{x}: %{y:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(title="nDCG@10", range=[0, 1.05])
    return _layout(fig, 320)


def latency_chart(records: Sequence[QueryRecord]) -> go.Figure:
    """Recent queries' embedding and search times, oldest first (bm25 queries embed nothing)."""
    x = list(range(1, len(records) + 1))
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=[r.embed_ms if r.embedded else None for r in records],
        name="embed the query",
        mode="lines+markers",
        connectgaps=True,
    )
    fig.add_scatter(
        x=x,
        y=[r.search_ms for r in records],
        name="search (retrievers and fusion)",
        mode="lines+markers",
    )
    fig.update_xaxes(title="recent queries, oldest first", dtick=max(1, len(records) // 10))
    fig.update_yaxes(title="milliseconds", rangemode="tozero")
    return _layout(fig, 280)


def similarity_chart(
    recent: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray
) -> go.Figure:
    """Top-result similarity of recent queries against the collection's reference distribution."""
    fig = go.Figure()
    fig.add_histogram(
        x=list(reference),
        name="reference (the corpus's own snippets)",
        histnorm="probability",
        xbins={"start": 0, "end": 1, "size": 0.05},
        marker_color="#90a4ae",
        opacity=0.6,
    )
    fig.add_histogram(
        x=list(recent),
        name="recent queries",
        histnorm="probability",
        xbins={"start": 0, "end": 1, "size": 0.05},
        marker_color="#1f77b4",
        opacity=0.6,
    )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="cosine similarity of the top result", range=[0, 1])
    fig.update_yaxes(title="share of queries")
    return _layout(fig, 300)


# --------------------------------------------------------------------------- lab tables


NOT_USED = "–"
"""A table cell for a setting the configuration's mode does not use."""


def configurations_table(configs: Mapping[str, SearchParams]) -> pd.DataFrame:
    """Saved configurations, one row each, in plain words and their main settings.

    A setting the mode ignores shows a dash (BM25 has no similarity threshold, only hybrid
    fuses rankings); numbers are written out as text so that no cell reads ``None``.
    """
    rows = []
    for name, params in configs.items():
        fused = params.mode == "hybrid"
        rows.append(
            {
                "name": name,
                "in words": describe_params(params),
                "mode": params.mode,
                "min similarity": NOT_USED if params.mode == "bm25" else f"{params.threshold:g}",
                "RRF k": f"{params.rrf_k:g}" if fused else NOT_USED,
                "vector weight": f"{params.vector_weight:g}" if fused else NOT_USED,
                "BM25 weight": f"{params.bm25_weight:g}" if fused else NOT_USED,
                "one per document": "yes" if params.collapse else "no",
            }
        )
    return pd.DataFrame(rows)


def significance_table(result: Comparison) -> pd.DataFrame:
    """Each configuration against the baseline, per metric (:func:`charts.differences`), the
    difference to three places."""
    return pd.DataFrame(
        [
            {
                **row,
                "difference": round(row["difference"], 3),
                "significant": "yes" if row["significant"] else "no",
            }
            for row in differences(result)
        ]
    )


def _document(doc_id: str, title: str, limit: int) -> str:
    return snippet(f"{doc_id} · {title}" if title else doc_id, limit)


def side_by_side_table(view: SideBySide) -> pd.DataFrame:
    """One row per rank: each list's document (id and title) and its grade (blank: unjudged).

    Where each document ranks in the other lists is :func:`ranks_table`: with those columns
    here, three lists made a table wider than the page.
    """
    rows = []
    for position in range(view.k):
        row: dict[str, Any] = {"rank": position + 1}
        for name, docs in view.lists.items():
            doc = docs[position] if position < len(docs) else None
            row[name] = _document(doc.doc_id, doc.title, 40) if doc else ""
            row[f"{name}: grade"] = "" if doc is None or doc.grade is None else str(doc.grade)
        rows.append(row)
    return pd.DataFrame(rows)


def side_by_side_columns(view: SideBySide) -> dict[str, Any]:
    """Column settings of :func:`side_by_side_table`: short grade headers, widths that fit."""
    columns: dict[str, Any] = {"rank": st.column_config.NumberColumn("rank", width=50)}
    for name in view.lists:
        columns[name] = st.column_config.TextColumn(name, width=220)
        columns[f"{name}: grade"] = st.column_config.TextColumn(
            "grade", width=60, help=f"Grade of the document {name} ranks here (blank: unjudged)"
        )
    return columns


def ranks_table(view: SideBySide) -> pd.DataFrame:
    """Every document of any list's top k, its grade and its rank in each list, best first.

    A blank rank: not in that list's run (100 documents deep).
    """
    found = {doc.doc_id: doc for docs in view.lists.values() for doc in docs}
    best = sorted(
        found.values(), key=lambda d: (min(r for r in d.ranks.values() if r is not None), d.doc_id)
    )
    return pd.DataFrame(
        [
            {
                "document": _document(doc.doc_id, doc.title, 60),
                "grade": "" if doc.grade is None else str(doc.grade),
                **{
                    f"rank in {name}": "" if doc.ranks[name] is None else str(doc.ranks[name])
                    for name in view.lists
                },
            }
            for doc in best
        ]
    )


def ranks_columns(view: SideBySide) -> dict[str, Any]:
    """Column settings of :func:`ranks_table`: each list's name as its header, widths that fit."""
    columns: dict[str, Any] = {
        "document": st.column_config.TextColumn("document", width=330),
        "grade": st.column_config.TextColumn("grade", width=60),
    }
    for name in view.lists:
        columns[f"rank in {name}"] = st.column_config.TextColumn(
            name, width=150, help=f"Rank in {name} (blank: not in its top 100)"
        )
    return columns


def snapshots_table(snapshots: Sequence[Snapshot]) -> pd.DataFrame:
    """Saved runs with their time and metrics."""
    return pd.DataFrame(
        [
            {
                "name": s.name,
                "taken (UTC)": s.created_at.replace("T", " ").removesuffix("+00:00"),
                **{m: round(v, 4) for m, v in s.metrics.items()},
                "zero-result share": round(s.zero_result_share, 3),
            }
            for s in reversed(snapshots)
        ]
    )


def metrics_table(
    rows: Sequence[Mapping[str, Any]],
    k: int,
    intervals: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
) -> pd.DataFrame:
    """A metric table with column names people read, values rounded to three places.

    Each row is a run's ``name`` and its :meth:`~search_core.lab.RunReport.summary`; the judged
    coverage of the top k shows as a percent (``judged@10``: ``87.5%``). Given ``intervals``
    (run name to metric to ``(low, high)``: :attr:`~search_core.lab.Comparison.intervals`, or
    :func:`~search_core.lab.metric_intervals` of a single run), each metric is followed by its
    bootstrap 95% interval (``nDCG@10 95% CI``: ``0.712 – 0.801``).
    """
    names = metric_names(k)
    records = []
    for row in rows:
        shown = (intervals or {}).get(str(row.get("name", "")), {})
        record: dict[str, Any] = {}
        for key, value in row.items():
            label = names.get(key, key)
            record[label] = coverage_text(value) if key == "coverage" else value
            if key in shown:
                record[f"{label} 95% CI"] = interval_text(shown[key])
        records.append(record)
    return pd.DataFrame(records).round(3)


def per_query_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A comparison's per-query rows, with readable difference columns, rounded."""
    table = pd.DataFrame(list(rows))
    table.columns = [
        f"{c.removeprefix('delta:')} minus baseline" if c.startswith("delta:") else c
        for c in table.columns
    ]
    return table.round(3)


# --------------------------------------------------------------------------- judging sessions


def sentence(text: str) -> str:
    """``text`` with its first letter upper-cased (a phrase shown on its own)."""
    return text[:1].upper() + text[1:]


def pools_table(progress: Mapping[str, PoolProgress], pools: Mapping[str, Pool]) -> pd.DataFrame:
    """One row per judging pool: its documents, the grades each needs and how far it got."""
    rows = [
        {
            "pool": name,
            "documents": done.pairs,
            "queries": len({qid for qid, _ in pools[name].pairs}),
            "grades per document": done.replicates,
            "grades given": f"{done.given:,} of {done.needed:,}",
            "done": coverage_text(done.share),
            "complete documents": done.complete,
            "pooled from": f"top {pools[name].depth} of " + ", ".join(pools[name].sources),
            "made": pools[name].created_at.replace("T", " ").removesuffix("+00:00"),
        }
        for name, done in progress.items()
    ]
    return pd.DataFrame(rows)


def _agreement_value(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def agreement_table(report: AgreementReport) -> pd.DataFrame:
    """One row per pair of judges: the documents both graded, weighted kappa, raw agreement."""
    rows = [
        {
            "judge": pair.judge_a,
            "and judge": pair.judge_b,
            "documents both graded": pair.common,
            "weighted kappa": _agreement_value(pair.kappa),
            "same grade (share)": _agreement_value(pair.raw),
        }
        for pair in report.pairs
    ]
    columns = [
        "judge",
        "and judge",
        "documents both graded",
        "weighted kappa",
        "same grade (share)",
    ]
    return pd.DataFrame(rows, columns=columns)


def disagreement_table(
    items: Sequence[Disagreement], final: Mapping[str, int], titles: Mapping[str, str]
) -> pd.DataFrame:
    """A query's disputed documents: the spread, each judge's grade and any final grade."""
    judges = sorted({judge for item in items for judge in item.grades})
    rows = []
    for item in items:
        row: dict[str, Any] = {
            "document": _document(item.doc_id, titles.get(item.doc_id, ""), 70),
            "spread": item.spread,
        }
        row.update({judge: item.grades.get(judge) for judge in judges})
        row["final grade"] = final.get(item.doc_id)
        rows.append(row)
    return pd.DataFrame(rows)
