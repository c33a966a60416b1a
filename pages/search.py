"""Search page: open a collection and search it in vector, BM25 or hybrid mode."""

from __future__ import annotations

import streamlit as st

from pages import state
from search_core.search import search
from search_core.settings import DEFAULT_THRESHOLD

st.title("Search")
collection = state.sidebar_collection()
if collection is None:
    st.stop()

query = st.text_input("Query", key="search_query", placeholder="Type a question, a phrase or an id")
columns = st.columns(3)
mode = columns[0].segmented_control(
    "Mode",
    ["hybrid", "vector", "bm25"],
    default="hybrid",
    key="search_mode",
    help="hybrid fuses vector and BM25 rankings with reciprocal rank fusion",
)
k = columns[1].slider("Results", 1, 50, 10, key="search_k")
threshold = columns[2].slider(
    "Minimum similarity",
    0.0,
    1.0,
    0.0,
    0.01,
    key="search_threshold",
    help="vector and hybrid results less similar than this to the query are not shown",
)
if not query.strip():
    st.caption("Type a query to search the collection.")
    st.stop()

response = search(collection, query, mode or "hybrid", k, threshold=threshold)
timings = response.timings
st.caption(
    f"{len(response.hits)} results in {timings.total_ms:.0f} ms "
    f"(embed {timings.embed_ms:.0f} ms, vector {timings.vector_ms:.1f} ms, "
    f"BM25 {timings.bm25_ms:.1f} ms, fusion {timings.fusion_ms:.1f} ms)"
)
if not response.hits:
    st.info(
        "No result is similar enough to this query. "
        + (
            f"{response.below_threshold} candidates were below the minimum similarity."
            if response.below_threshold
            else ""
        )
    )
for hit in response.hits:
    with st.container(border=True):
        st.text(f"#{hit.rank}  {hit.title or hit.doc_id}")
        st.text(hit.text)
        parts = [f"score {hit.score:.4f}", f"document {hit.doc_id}"]
        if hit.similarity is not None:
            parts.append(f"similarity {hit.similarity:.3f}")
        for name, retriever in (("vector", hit.vector), ("BM25", hit.bm25)):
            if retriever.rank is not None:
                parts.append(f"{name} rank {retriever.rank}")
        st.caption(" · ".join(parts))
