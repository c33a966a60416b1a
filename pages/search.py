"""Search: one query in vector, BM25 or hybrid mode, or all three side by side.

Each result shows its text with the query's words highlighted, its score, why it is here (its
rank and score from each retriever), and buttons to judge it. Below: the similarity of every
candidate against the threshold, and the time each stage took.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import streamlit as st

from search_core.analysis import Analyzer
from search_core.collection import Collection
from search_core.fusion import FUSION_METHODS
from search_core.judgments import GRADE_LABELS, JudgmentStore
from search_core.lab import save_config
from search_core.links import SEARCH_SETTINGS, LinkReading, range_value, write_link
from search_core.search import SearchParams
from search_core.settings import DEFAULT_LEXICAL_MARGIN
from search_core.sweeps import ANN_PARAMETERS
from search_core.types import Hit
from search_core.vector_index import VectorIndex, default_params
from ui import display, links, state

MODES = {
    "hybrid": "Hybrid",
    "vector": "Vector",
    "bm25": "BM25",
    "all": "All three side by side",
}
MODE_HELP = (
    "Vector finds passages that mean the same thing; BM25 finds the exact words and ids; "
    "hybrid fuses both rankings (reciprocal rank fusion)."
)


def on_judge(store: JudgmentStore, query: str, doc_id: str, key: str) -> None:
    """Save the grade picked for a result (or forget it when the pick is cleared)."""
    grade = st.session_state.get(key)
    try:
        if grade is None:
            state.judge_clear(store, query, doc_id)
        else:
            state.judge(store, query, doc_id, int(grade))
    except state.USER_ERRORS as exc:
        st.session_state["search_judge_error"] = str(exc)


def judge_key(query: str, mode: str, chunk_id: int) -> str:
    """The key of a result card's judging buttons."""
    digest = hashlib.sha256(query.encode("utf-8")).hexdigest()[:12]
    return f"judge_{digest}_{mode}_{chunk_id}"


def show_hit(
    hit: Hit,
    mode: str,
    query: str,
    store: JudgmentStore,
    grade: int | None,
    threshold: float,
    *,
    short: bool,
    analyzer: Analyzer,
) -> None:
    """One result: title, highlighted text, why it is here, and the judging buttons."""
    with st.container(border=True):
        st.markdown(display.hit_header(hit))
        text = display.snippet(hit.text, 400) if short else hit.text
        st.markdown(display.highlight(text, query, analyzer))
        st.caption(display.retriever_line(hit, mode, threshold))
        if hit.metadata:
            st.caption(display.md(" · ".join(f"{k}: {v}" for k, v in hit.metadata.items())))
        key = judge_key(query, mode, hit.chunk_id)
        # A grade belongs to the query and the document: every card of the document, in
        # every column, shows the stored grade, also one given on another card. Buttons
        # keep their own value after their first run, so the value is set before each.
        state.sync_widget(key, grade)
        st.segmented_control(
            "Judge: 0 not relevant … 3 perfect" if short else "Judge this result for the query",
            list(GRADE_LABELS),
            format_func=(lambda g: str(g)) if short else (lambda g: f"{g} {GRADE_LABELS[g]}"),
            key=key,
            on_change=on_judge,
            args=(store, query, hit.doc_id, key),
        )


BELOW_THRESHOLD = {
    "vector": "{} dropped by the minimum similarity",
    "hybrid": "{} vector candidates under the minimum similarity left out of the vector ranking",
}


def summary(answer: state.Answer) -> str:
    """One line about an answer: results, candidates, threshold cut, search time."""
    response = answer.response
    parts = [f"{len(response.hits)} results", f"{response.candidates} candidates considered"]
    if response.below_threshold:
        parts.append(BELOW_THRESHOLD[response.mode].format(response.below_threshold))
    took = response.timings.total_ms - response.timings.embed_ms
    cached = " (cached: the time of this session's first run)" if answer.cached else ""
    parts.append(f"search {took:.1f} ms{cached}")
    return " · ".join(parts)


SCORE_CAPTIONS = {
    "vector": (
        "Cosine similarity to the query of the {n} candidates the vector search considered. "
        "Vector mode drops those left of the red line (under the minimum similarity); the "
        "row below marks the results shown."
    ),
    "hybrid": (
        "Cosine similarity to the query of the {n} candidates the vector and BM25 searches "
        "found. The minimum similarity (red line) filters the vector side only: vector "
        "candidates left of it are dropped, and with none right of it the answer is empty; "
        "what BM25 finds counts only above the BM25 floor (see the settings), unless the "
        "query's identifiers match (a hollow diamond marks such a result left of the line). "
        "The row below marks the results shown."
    ),
    "all": (
        "Cosine similarity to the query of the {n} candidates the vector and BM25 searches "
        "found (vector mode considers only the vector ones). Vector mode drops those left of "
        "the red line; hybrid drops its vector candidates there, and counts what BM25 finds "
        "only above the BM25 floor (see the settings) unless the query's identifiers match "
        "(a hollow diamond marks such a result left of the line). "
        "BM25 mode ignores the minimum similarity and has no similarity to place: it does not "
        "embed the query."
    ),
}


def index_defaults(index: VectorIndex) -> dict[str, int]:
    """The index's own search settings: ``nlist`` and ``nprobe`` (ivf, ivfpq), ``ef_search``
    (hnsw); what its controls start at and what a link falls back to."""
    params = index.params or default_params(index.kind, index.ntotal, index.dim)
    return {
        "nlist": int(params.get("nlist", 1)),
        "nprobe": int(params.get("nprobe", 1)),
        "ef_search": int(params.get("ef_search", 128)),
    }


def apply_link(reading: LinkReading, collection: Collection) -> list[str]:
    """Set the page's controls to a link's settings (defaults where it gives none).

    Returns:
        What the link asked for that this collection cannot do, in sentences.
    """
    values, problems = reading.values, []
    for name, key in LINKED_KEYS.items():
        st.session_state[key] = values[name]
    st.session_state["search_floor_auto"] = values["floor"] == "auto"
    if values["floor"] != "auto":
        st.session_state["search_lexical_margin"] = float(values["floor"])
    st.session_state["search_collapse"] = values["collapse"] != "off"
    if values["collapse"] != "off":
        st.session_state["search_aggregation"] = values["collapse"]
    index = collection.vector_index
    defaults = index_defaults(index)
    tunable = ANN_PARAMETERS.get(index.kind)
    for name in ("nprobe", "ef_search"):
        if name in reading.given and name != tunable:
            problems.append(
                f"{name}={values[name]} does not apply: this collection's index is "
                f"{index.kind}; it was left out."
            )
    if tunable == "nprobe":
        nprobe = values["nprobe"] or defaults["nprobe"]
        if nprobe > defaults["nlist"]:
            problems.append(
                f"nprobe={nprobe} is more than this index's {defaults['nlist']} lists; it was "
                "left out."
            )
            nprobe = defaults["nprobe"]
        st.session_state[state.key(collection, "search_nprobe")] = nprobe
    elif tunable == "ef_search":
        ef = values["ef_search"] or defaults["ef_search"]
        st.session_state[state.key(collection, "search_ef_search")] = ef
    fields = state.metadata_fields(collection)
    chosen = []
    for name, raw in reading.filters.items():
        field = fields.get(name)
        if field is None:
            known = ", ".join(fields) or "none"
            problems.append(
                f"filter.{name}: this collection's documents have no field {name!r} "
                f"(fields: {known}); the filter was left out."
            )
            continue
        if field.numeric and field.low < field.high:
            try:
                picked = range_value(name, raw, field.low, field.high)
            except ValueError as exc:
                problems.append(f"{exc} The filter was left out.")
                continue
            whole = all(float(v).is_integer() for v in field.values)
            kind = int if whole else float
            key = state.key(collection, f"search_filter_range_{name}")
            st.session_state[key] = (kind(picked[0]), kind(picked[1]))
        else:
            by_text = {str(v): v for v in field.values}
            unknown = [v for v in raw if v not in by_text]
            if unknown:
                problems.append(
                    f"filter.{name}: {', '.join(map(repr, unknown))} is not a value of {name} "
                    "in this collection; left out."
                )
            values_key = state.key(collection, f"search_filter_values_{name}")
            st.session_state[values_key] = [by_text[v] for v in raw if v in by_text]
        chosen.append(name)
    st.session_state[state.key(collection, "search_filter_fields")] = chosen
    return problems


LINKED_KEYS = {
    "q": "search_query",
    "mode": "search_mode",
    "k": "search_k",
    "threshold": "search_threshold",
    "rrf_k": "search_rrf_k",
    "vector_weight": "search_vector_weight",
    "bm25_weight": "search_bm25_weight",
    "fusion": "search_fusion",
}
"""The link's settings that map one to one on a control of this page, to the control's key."""
LIMITS = {name: (s.low, s.high) for name, s in SEARCH_SETTINGS.items() if s.low is not None}


st.title("Search")
collection, reading, problems = links.start("search", SEARCH_SETTINGS)
index = collection.vector_index
if reading:
    problems += apply_link(reading, collection)
links.show_problems(problems)

query = st.text_input(
    "Query",
    key="search_query",
    placeholder="Type a question, a phrase or an id, e.g. customer charged twice",
    persist_state="session",
)
left, middle, right = st.columns([2, 1, 1])
mode = left.segmented_control(
    "Mode",
    list(MODES),
    format_func=lambda m: MODES[m],
    default="hybrid",
    required=True,
    key="search_mode",
    help=MODE_HELP,
    persist_state="session",
)
k = middle.slider(
    "Results",
    *map(int, LIMITS["k"]),
    SEARCH_SETTINGS["k"].default,
    key="search_k",
    persist_state="session",
)
threshold = right.slider(
    "Minimum similarity",
    *LIMITS["threshold"],
    SEARCH_SETTINGS["threshold"].default,
    0.01,
    key="search_threshold",
    help="Vector mode drops results less similar than this to the query. Hybrid drops "
    "vector candidates under it, keeps what BM25 finds only above the BM25 floor (see the "
    "settings), and answers nothing when no vector candidate reaches it. BM25 ignores it.",
    persist_state="session",
)

with st.expander("Index and fusion settings", key="search_settings_box"):
    columns = st.columns(4)
    nprobe = ef_search = None
    defaults = index_defaults(index)
    if ANN_PARAMETERS.get(index.kind) == "nprobe":
        nprobe = columns[0].number_input(
            "nprobe (lists searched)",
            1,
            defaults["nlist"],
            defaults["nprobe"],
            key=state.key(collection, "search_nprobe"),
            help="More lists: closer to exact search, slower.",
            persist_state="session",
        )
    elif ANN_PARAMETERS.get(index.kind) == "ef_search":
        ef_search = columns[0].number_input(
            "efSearch (graph breadth)",
            *map(int, LIMITS["ef_search"]),
            defaults["ef_search"],
            key=state.key(collection, "search_ef_search"),
            help="Wider: closer to exact search, slower.",
            persist_state="session",
        )
    else:
        columns[0].caption("This collection's flat index is exact: no speed setting to tune.")
    rrf_k = columns[1].number_input(
        "RRF k",
        *LIMITS["rrf_k"],
        SEARCH_SETTINGS["rrf_k"].default,
        1.0,
        key="search_rrf_k",
        help="Hybrid: a larger k flattens the difference between ranks.",
        persist_state="session",
    )
    vector_weight = columns[2].slider(
        "Vector weight",
        *LIMITS["vector_weight"],
        SEARCH_SETTINGS["vector_weight"].default,
        0.05,
        key="search_vector_weight",
        persist_state="session",
    )
    bm25_weight = columns[3].slider(
        "BM25 weight",
        *LIMITS["bm25_weight"],
        SEARCH_SETTINGS["bm25_weight"].default,
        0.05,
        key="search_bm25_weight",
        persist_state="session",
    )
    left, middle = st.columns(2)
    fusion = left.selectbox(
        "Fusion",
        list(FUSION_METHODS),
        format_func=lambda name: FUSION_METHODS[name].label,
        key="search_fusion",
        help="Hybrid: reciprocal rank fusion adds 1 / (k + rank) from each list; the two others "
        "add each list's scores, normalized (min-max: 0 to 1; z-score: in standard deviations), "
        "in proportion to the weights.",
        persist_state="session",
    )
    floor_auto = middle.toggle(
        "Automatic BM25 floor",
        True,
        key="search_floor_auto",
        help="Hybrid: BM25 ranks a chunk only when its similarity to the query is at least the "
        "minimum similarity plus a margin, unless chunks hold the query's identifiers (order "
        "ids, CVE numbers). It keeps matches on common words out of the results (on the sample "
        f"it lifts the paraphrase queries from 0.38 to 0.64 nDCG@10). Automatic: a margin of "
        f"{DEFAULT_LEXICAL_MARGIN:g} where the embedding model reads the collection's language, "
        "no floor where it does not.",
        persist_state="session",
    )
    lexical_margin = None
    if not floor_auto:
        lexical_margin = middle.slider(
            "BM25 floor: minimum similarity plus (-2: no floor)",
            *LIMITS["floor"],
            DEFAULT_LEXICAL_MARGIN,
            0.05,
            key="search_lexical_margin",
            persist_state="session",
        )
    right, aggregate = st.columns(2)
    collapse = right.toggle(
        "One result per document", key="search_collapse", persist_state="session"
    )
    aggregation = "best"
    if collapse:
        aggregation = aggregate.selectbox(
            "Document score",
            ["best", "best-two"],
            format_func=lambda name: {"best": "its best chunk", "best-two": "its two best"}[name],
            key="search_aggregation",
            help="A document ranks by its best chunk's score, or by the sum of its two best "
            "(a second matching passage counts as more evidence).",
            persist_state="session",
        )

filters: dict[str, object] = {}
fields = state.metadata_fields(collection)
with st.expander("Filters", key="search_filters_box"):
    if not fields:
        st.caption("This collection's documents have no metadata to filter on.")
    chosen = st.multiselect(
        "Filter on",
        list(fields),
        key=state.key(collection, "search_filter_fields"),
        persist_state="session",
    )
    for name in chosen:
        field = fields[name]
        label = display.md(name)
        if field.numeric and field.low < field.high:
            whole = all(float(v).is_integer() for v in field.values)
            low, high = (int(field.low), int(field.high)) if whole else (field.low, field.high)
            picked = st.slider(
                f"{label} between",
                low,
                high,
                (low, high),
                key=state.key(collection, f"search_filter_range_{name}"),
                persist_state="session",
            )
            filters[name] = {"gte": picked[0], "lte": picked[1]}
        else:
            values = st.multiselect(
                f"{label} is one of",
                list(field.values),
                key=state.key(collection, f"search_filter_values_{name}"),
                persist_state="session",
            )
            if values:
                filters[name] = values if len(values) > 1 else values[0]
if filters:  # also when the box is closed: results never change without notice
    st.caption("Filtered: " + display.md(display.filters_in_words(filters)))

try:
    params = SearchParams(
        mode=mode if mode in ("vector", "bm25", "hybrid") else "hybrid",
        k=k,
        threshold=threshold,
        rrf_k=rrf_k,
        vector_weight=vector_weight,
        bm25_weight=bm25_weight,
        nprobe=nprobe,
        ef_search=ef_search,
        filters=filters or None,
        collapse=collapse,
        lexical_margin=lexical_margin,
        fusion=fusion,
        aggregation=aggregation,
    )
except ValueError as exc:
    display.error(exc)
    st.stop()
st.session_state["search_params"] = params.to_dict()
link = write_link(
    {
        "collection": collection.name,
        "q": query,
        "mode": mode,
        "k": k,
        "threshold": threshold,
        "nprobe": nprobe,
        "ef_search": ef_search,
        "rrf_k": rrf_k,
        "vector_weight": vector_weight,
        "bm25_weight": bm25_weight,
        "fusion": fusion,
        "floor": "auto" if floor_auto else lexical_margin,
        "collapse": aggregation if collapse else "off",
    },
    SEARCH_SETTINGS,
    filters=filters,
)
links.publish("search", link)

save_column, link_column = st.columns([1, 3], vertical_alignment="center")
with link_column:
    links.copy_link("search", link, key="search_copy_link")
with save_column.popover("Save these settings", icon=":material/save:", key="search_save_menu"):
    config_name = st.text_input(
        "Configuration name", "my-settings", key="search_config_name", persist_state="session"
    )
    if st.button("Save for the relevance lab", key="search_save_config"):
        try:
            save_config(collection.name, config_name, params)
            st.success(f"Saved {display.md(config_name)} ({params.mode} mode).")
        except state.USER_ERRORS as exc:
            display.error(exc)

if not query.strip():
    st.caption("Type a query to search the collection.")
    st.stop()

modes = ["vector", "bm25", "hybrid"] if mode == "all" else [params.mode]
try:
    answers = {m: state.answer(collection, query, replace(params, mode=m)) for m in modes}
    store = state.judgments(collection)
    grades = state.grades_for(store, query)
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()
st.session_state["last_query"] = query
if problem := st.session_state.pop("search_judge_error", None):
    display.error(problem)

# one mode: results on the left, their scores and timings beside them; all three: below
results, charts = (st.container(), st.container()) if mode == "all" else st.columns([3, 2])
with results:
    shown = list(zip(st.columns(3), modes, strict=True)) if mode == "all" else [(results, mode)]
    for column, m in shown:
        response = answers[m].response
        with column:
            if mode == "all":
                st.subheader(MODES[m])
            st.caption(summary(answers[m]))
            if not response.hits:
                st.info(display.no_result(response, threshold, filtered=bool(filters)))
            for hit in response.hits:
                grade = grades.get(hit.doc_id)
                show_hit(
                    hit,
                    m,
                    query,
                    store,
                    grade,
                    threshold,
                    short=mode == "all",
                    analyzer=collection.analyzer,
                )

with charts:
    st.subheader("Scores and timings")
    # hybrid's candidates hold vector mode's and BM25's: one chart serves all three
    charted = answers["hybrid"].response if mode == "all" else answers[mode].response
    if charted.mode != "bm25":
        similarities = {
            MODES[m]: [h.similarity for h in a.response.hits if h.similarity is not None]
            for m, a in answers.items()
            if m != "bm25"
        }
        st.plotly_chart(
            display.score_chart(charted.candidate_similarities, threshold, similarities),
            key="search_score_chart",
        )
        n = len(charted.candidate_similarities)
        st.caption(SCORE_CAPTIONS[mode].format(n=n))
    else:
        st.caption("BM25 does not embed the query, so there is no similarity to chart.")
    embeddings = [a.embedding for a in answers.values() if a.embedding is not None]
    embedding = next((e for e in embeddings if not e.cached), None) or next(iter(embeddings), None)
    cached = [MODES[m] for m, a in answers.items() if a.cached]
    st.plotly_chart(
        display.timings_chart(
            {MODES[m]: a.response.timings for m, a in answers.items()},
            embed_ms=None if embedding is None else embedding.ms,
            embed_cached=embedding is not None and embedding.cached,
            cached=cached,
        ),
        key="search_timings_chart",
    )
    notes = ["Time each stage of the search took for this query, in milliseconds."]
    if embedding is not None:
        shared = " (once, for vector and hybrid)" if mode == "all" else ""
        notes.append(
            f"The query's embedding{shared} was reused from earlier in this session: its "
            "hatched bar shows the time it took then."
            if embedding.cached
            else f"The query was embedded{shared} for this search, on a row of its own."
        )
    if cached:
        notes.append(
            "Rows marked cached were answered from this session's earlier identical search, "
            "not searched again: their hatched bars show that search's time."
        )
    st.caption(" ".join(notes))
