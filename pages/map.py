"""Embedding map: the collection's chunks laid out by meaning (UMAP), and a query among them.

Chunks that mean similar things land close together. The query is placed on the same map
(UMAP ``transform``), joined by lines to its top results; chunks of documents judged relevant
that the search missed are marked, which shows at a glance whether a miss is near the query
(a ranking problem) or far from it (the model does not see the two as alike).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import streamlit as st

from search_core.judgments import GRADE_LABELS
from search_core.links import MAP_SETTINGS, write_link
from search_core.projection import (
    DEFAULT_SAMPLE,
    MAX_SAMPLE,
    MIN_CHUNKS,
    ProjectionSettings,
    place_chunks,
    transform,
)
from search_core.search import SearchParams
from ui import display, links, state

CLUSTER, JUDGED = "cluster", "judged relevance to the query"
MAX_GROUPS = 12


def field_groups(values: list[Any], numeric: bool) -> tuple[list[str], list[str]]:
    """A label per chunk for a metadata field, and the order of the labels in the legend.

    Numbers with many distinct values are cut into five ranges of equal counts; text with
    many values keeps its most common ones and groups the rest as "other".
    """
    present = [v for v in values if v is not None]
    if numeric and len(set(present)) > MAX_GROUPS:
        edges = np.unique(np.quantile(np.asarray(present, dtype=float), np.linspace(0, 1, 6)))
        names = [f"{edges[i]:,.4g} to {edges[i + 1]:,.4g}" for i in range(len(edges) - 1)]
        labels = [
            "(none)"
            if v is None
            else names[min(int(np.searchsorted(edges, float(v), side="right")) - 1, len(names) - 1)]
            for v in values
        ]
        return labels, [*names, "(none)"]
    counts: dict[str, int] = {}
    for value in present:
        counts[str(value)] = counts.get(str(value), 0) + 1
    top = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_GROUPS]
    labels = ["(none)" if v is None else str(v) if str(v) in top else "other" for v in values]
    return labels, [*top, "other", "(none)"]


st.title("Embedding map")
collection, reading, problems = links.start("map", MAP_SETTINGS)
if reading:
    st.session_state["map_query"] = reading.values["q"]
links.show_problems(problems)
total = len(collection.chunks)
if total < MIN_CHUNKS:
    st.warning(f"A map needs at least {MIN_CHUNKS} chunks; this collection has {total}.")
    st.stop()
fields = state.metadata_fields(collection)

left, middle, right = st.columns(3)
dims = left.segmented_control(
    "View",
    [2, 3],
    format_func=lambda d: f"{d}D",
    default=2,
    required=True,
    key="map_dims",
    persist_state="session",
)
largest = min(total, MAX_SAMPLE)
sample = middle.number_input(
    "Chunks on the map",
    MIN_CHUNKS,
    largest,
    min(largest, DEFAULT_SAMPLE),
    100,
    key=state.key(collection, "map_sample"),
    help="Large collections are drawn from a random sample (the same one each time); "
    "more chunks take longer to lay out.",
    persist_state="session",
)
color_options = [CLUSTER, *fields, JUDGED]
# A field with a few values (a domain, a type) tells people more than cluster numbers.
readable = sorted(
    (
        name
        for name, f in fields.items()
        if not f.numeric and 2 <= len(f.values) <= 8 and f.count >= 0.9 * len(collection.documents)
    ),
    key=lambda name: len(fields[name].values),
)
color_by = right.selectbox(
    "Colour by",
    color_options,
    index=color_options.index(readable[0]) if readable else 0,
    format_func=lambda c: c if c in (CLUSTER, JUDGED) else f"metadata: {c}",
    key=state.key(collection, "map_color"),
    persist_state="session",
)
left, right = st.columns([3, 1], vertical_alignment="bottom")
query = left.text_input(
    "Query to place on the map",
    st.session_state.get("last_query", ""),
    key="map_query",
    placeholder="Type a query, or search on the Search page first",
)
link = write_link({"collection": collection.name, "q": query}, MAP_SETTINGS)
links.publish("map", link)
with right:
    links.copy_link("map", link, key="map_copy_link")
zoom = right.toggle(
    "Zoom in on the query",
    key="map_zoom",
    help="Show only the neighbourhood of the query and its results (2D).",
    persist_state="session",
)
# The query's results come from the Search page's settings, which are said here: a filter set
# there can leave nothing to draw, and that must never look like an empty answer.
try:
    params = SearchParams.from_dict(st.session_state.get("search_params") or {})
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()
page_filters = params.filters
if page_filters and st.toggle(
    "Ignore the Search page's filters on the map",
    key="map_ignore_filters",
    help="Place the query's results as if no metadata filter were set.",
    persist_state="session",
):
    params = replace(params, filters=None)
settings_line = f"Results as on the Search page: {display.search_settings(params)}"
if page_filters and not params.filters:
    settings_line += f" (its filters, {display.filters_in_words(page_filters)}, ignored here)"
st.caption(display.md(settings_line + "."))

try:
    settings = ProjectionSettings(dims=int(dims or 2), sample=int(sample))
    with st.spinner(
        f"Laying out {min(int(sample), total):,} chunks; the first map takes up to a minute..."
    ):
        projection = state.projection(collection, settings)
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()

store = state.judgments(collection)
query_xy = hits_xy = missed_xy = None
hit_labels: list[str] = []
missed_labels: list[str] = []
grades: dict[str, int] = {}
if query.strip():
    st.session_state["last_query"] = query
    try:
        response = state.search(collection, query, params)
        grades = state.grades_for(store, query)
        with st.spinner("Placing the query on the map..."):
            vector = state.query_vector(collection, query)
            query_xy = transform(projection, collection, vector)[0]
            hits_xy = place_chunks(projection, collection, [h.chunk_id for h in response.hits])
            found = {h.doc_id for h in response.hits}
            missed_chunks = []
            for doc_id, grade in sorted(grades.items(), key=lambda item: -item[1]):
                if grade < 1 or doc_id in found or doc_id not in collection.doc_index:
                    continue
                chunks = np.flatnonzero(collection.chunk_doc_index == collection.doc_index[doc_id])
                best = chunks[int(np.argmax(collection.embeddings[chunks] @ vector))]
                missed_chunks.append(int(best))
                missed_labels.append(
                    display.plot_text(
                        f"missed, judged {grade} {GRADE_LABELS.get(grade, '')}: "
                        f"{collection.titles.get(doc_id) or doc_id}"
                    )
                )
            missed_xy = place_chunks(projection, collection, missed_chunks)
    except state.USER_ERRORS as exc:
        display.error(exc)
        st.stop()
    hit_labels = [
        display.plot_text(f"result {h.rank}: {h.title or h.doc_id}") for h in response.hits
    ]
    if not response.hits:
        unfiltered = (
            state.search(collection, query, replace(params, filters=None))
            if params.filters
            else response
        )
        st.warning(
            display.md(
                f"No result with the Search page's filters "
                f"({display.filters_in_words(params.filters or {})}): they leave none of the "
                f"{len(unfiltered.hits)} results this query has without them. Switch on "
                '"Ignore the Search page\'s filters on the map" above, or change the filters '
                "on the Search page."
                if unfiltered.hits
                else display.no_result(response, params.threshold, filtered=bool(params.filters))
                + " The map uses the Search page's settings: change them there."
            ),
            icon=":material/search_off:",
        )

documents = [collection.documents[int(collection.chunk_doc_index[c])] for c in projection.chunk_ids]
hover = [
    display.plot_text(f"{d.title or d.doc_id}: {collection.chunks[int(c)].text}")
    for d, c in zip(documents, projection.chunk_ids, strict=True)
]
order: list[str] | None
if color_by == CLUSTER:
    colors = [f"cluster {c + 1}" for c in projection.clusters]
    order = [f"cluster {c + 1}" for c in sorted(set(projection.clusters.tolist()))]
elif color_by == JUDGED:
    if query.strip() and not grades:
        st.info("No document is judged for this query yet: judge results on the Search page.")
    labels = {g: f"{g} {GRADE_LABELS[g]}" for g in GRADE_LABELS}
    colors = [labels.get(grades.get(d.doc_id, -1), "unjudged") for d in documents]
    order = [*reversed(list(labels.values())), "unjudged"]
else:
    field = fields[str(color_by)]
    colors, order = field_groups([d.metadata.get(field.name) for d in documents], field.numeric)

figure = display.map_figure(
    projection.coords,
    [display.plot_text(c) for c in colors],
    hover,
    color_title=str(color_by),
    order=[display.plot_text(o) for o in order] if order else None,
    query=query_xy,
    hits=hits_xy,
    hit_labels=hit_labels,
    missed=missed_xy,
    missed_labels=missed_labels,
    zoom=zoom,
)
st.plotly_chart(figure, key="map_chart")
if total < 50:
    st.caption(
        f"With only {total} chunks the layout says little: a map is worth reading from a few "
        "hundred chunks on."
    )
shown = (
    f"all {total:,} chunks"
    if not projection.sampled
    else f"a random sample of {projection.sample_size:,} of the {total:,} chunks"
)
caption = (
    f"Each dot is one chunk ({shown}); chunks that mean similar things sit close together. "
    f"Colours: {color_by if color_by in (CLUSTER, JUDGED) else 'metadata ' + str(color_by)}. "
    "Hover a dot to read its text."
)
if query_xy is not None:
    caption += (
        f" The black {display.QUERY_MARKER[settings.dims]} is the query; "
        + (
            (
                f"orange circles joined to it are its {len(hit_labels)} top results"
                if len(hit_labels) > 1
                else "the orange circle joined to it is its top result"
            )
            if hit_labels
            else "no result is drawn (see the message above)"
        )
        + (
            f", red crosses are {len(missed_labels)} "
            f"{'document' if len(missed_labels) == 1 else 'documents'} judged relevant that the "
            "search missed."
            if missed_labels
            else "."
        )
    )
st.caption(display.md(caption))
st.caption(
    f"Layout: UMAP on cosine similarity, {settings.n_neighbors} neighbours, seed {settings.seed}; "
    + (
        "read from the cache."
        if projection.cached
        else f"computed in {projection.seconds:.0f} s and cached."
    )
)
