"""Health: the model, the index, counts and memory, index recall, latency, drift and similarity."""

from __future__ import annotations

import math
import os
import resource

import pandas as pd
import streamlit as st

from search_core.drift import drift_check
from search_core.telemetry import QUERY_LOG, compare_similarities
from ui import display, state


def megabytes(count: float) -> str:
    """Bytes in MB, for people."""
    return f"{count / 1e6:,.1f} MB"


def milliseconds(value: float) -> str:
    """A latency, or a dash before any query."""
    return "–" if math.isnan(value) else f"{value:,.1f} ms"


st.title("Health")
collection = state.current_collection()
manifest = collection.manifest
index = collection.vector_index

st.subheader("Model and index")
model = manifest["model"]
built = str(manifest["created_at"])[:16].replace("T", " ")
st.markdown(
    f"**Model:** {display.md(str(model['name']).removeprefix('bundled:'))} "
    f"({model['dim']}-number vectors, run by {display.md(str(model.get('backend', 'torch')))}) · "
    f"**Index:** {index.kind} · **Built:** {built} UTC"
)
reads = (
    "the embedding model reads it, so the BM25 floor applies"
    if collection.model_reads_language
    else "the embedding model was not trained on it: no automatic BM25 floor"
)
st.markdown(
    f"**Language (BM25 analysis):** {display.md(collection.analyzer.describe())}; "
    f"{display.md(reads)}."
)
st.caption("Model fingerprint (sha256 of its weights, configuration, tokenizer and backend):")
st.code(collection.fingerprint, language=None)
parameters = ", ".join(f"{k} = {v}" for k, v in index.params.items())
st.caption(
    (f"Index parameters: {parameters}." if parameters else "The flat index has no parameters.")
    + (
        " " + display.md(f"Asked for {index.requested_kind}: {index.fallback_reason}.")
        if index.fallback_reason
        else ""
    )
    + (f" Chosen by size: {display.md(index.chosen_because)}." if index.chosen_because else "")
)

st.subheader("Size")
counts = manifest["counts"]
stored = sum(int(f.get("bytes", 0)) for f in manifest.get("files", {}).values())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
columns = st.columns(5)
columns[0].metric("Documents", f"{counts['documents']:,}")
columns[1].metric("Chunks", f"{counts['chunks']:,}")
columns[2].metric(
    "Vectors, mapped from disk" if collection.vectors_mapped else "Vectors in memory",
    megabytes(collection.embeddings.nbytes),
    help="Read from the collection's file as searches use them: the system's file cache holds "
    "them, and gives the memory back when it is needed elsewhere."
    if collection.vectors_mapped
    else None,
)
columns[3].metric("Index in memory", megabytes(index.memory_bytes()))
columns[4].metric("On disk", megabytes(stored))
st.caption(
    f"{counts.get('skipped_empty', 0)} empty documents were skipped when building. "
    f"This app's process peaked at {megabytes(rss)} of memory (pid {os.getpid()})."
)

st.subheader("Index recall against exact search")
with st.spinner("Measuring the index against exact search..."):
    health = state.index_health(collection)
st.metric(
    f"Recall@{health.k}",
    f"{health.recall:.3f}",
    help="Share of the true nearest neighbours the index returns, with its default settings.",
)
st.caption(
    f"{health.sample} chunks of the collection used as queries; 1.000 means the index finds "
    "exactly what an exhaustive search finds."
)
st.dataframe(
    pd.DataFrame(
        [
            {
                "index kind": row["kind"],
                "this collection": "yes" if row["current"] else "",
                "bytes per vector": round(row["bytes_per_vector"], 1),
                "total": megabytes(row["total_bytes"]),
                "can be built": "no, see below" if row["note"] else "yes",
            }
            for row in health.memory
        ]
    ),
    hide_index=True,
    key="health_memory",
)
# A note is a sentence: in a table cell it was cut off, so each is written out in full here.
st.caption(
    display.md(
        "\n".join(
            [
                "Estimated memory of each index kind for this collection's size and vector size.",
                *(f"{row['note']}." for row in health.memory if row["note"]),
            ]
        )
    )
)

st.subheader("Latency of recent queries")
latency = QUERY_LOG.latency(collection.name)
latency_columns = st.columns(4)
latency_columns[0].metric("Embed p50", milliseconds(latency.embed_p50_ms))
latency_columns[1].metric("Embed p99", milliseconds(latency.embed_p99_ms))
latency_columns[2].metric("Search p50", milliseconds(latency.search_p50_ms))
latency_columns[3].metric("Search p99", milliseconds(latency.search_p99_ms))
records = QUERY_LOG.recent(collection.name)
if records:
    st.plotly_chart(
        display.latency_chart(records),
        key="health_latency_chart",
    )
    st.caption(
        f"The last {len(records)} queries on this collection since the app started, from every "
        "session: time to embed the query (vector and hybrid modes) and to search."
    )
else:
    st.caption("No query yet since the app started: search on the Search page.")

st.subheader("Model drift")
st.caption(
    "Re-embeds sentences stored with the collection when it was built and compares the "
    "vectors: a different model or library version shows as a lower similarity."
)
if st.button("Run the drift check", key="health_drift", icon=":material/troubleshoot:"):
    with st.spinner("Embedding the stored probe sentences again..."):
        try:
            st.session_state["health_drift_report"] = (collection.name, drift_check(collection))
        except state.USER_ERRORS as exc:
            display.error(exc)
kept = st.session_state.get("health_drift_report")
if kept and kept[0] == collection.name:
    report = kept[1]
    verdict = (
        f"No drift: {report.probes} probes, mean cosine {report.mean_cosine:.4f} "
        f"(lowest {report.min_cosine:.4f}, needs {report.threshold})."
    )
    if report.passed:
        st.success(verdict, icon=":material/check_circle:")
    else:
        st.error(
            f"The model has drifted: mean cosine {report.mean_cosine:.4f} is below "
            f"{report.threshold}. Re-index the collection with the model installed now.",
            icon=":material/warning:",
        )

st.subheader("Similarity of recent top results")
reference, recorded = state.similarity_reference(collection)
recent = QUERY_LOG.top_similarities(collection.name)
shift = compare_similarities(recent, reference)
st.plotly_chart(display.similarity_chart(recent, reference), key="health_similarity_chart")
st.caption(
    "How similar each query's best match is (cosine), for recent queries and for the "
    "reference: short snippets of the collection's own text searched as queries"
    + (", recorded when it was built." if recorded else ", computed now.")
)
medians = f"median {shift.recent_median:.2f} against {shift.reference_median:.2f}"
if not len(recent):
    st.caption("No vector or hybrid query yet to compare.")
elif not shift.shifted:
    st.info(
        f"No significant difference from the reference over {shift.recent} recent queries "
        f"({medians}; Kolmogorov-Smirnov test at 5%).",
        icon=":material/check_circle:",
    )
elif shift.recent_median < shift.reference_median:
    st.warning(
        f"Recent queries match less closely than the reference ({medians}): people may be "
        "asking for what the collection does not hold, or the model changed.",
        icon=":material/trending_down:",
    )
else:
    st.success(
        f"Recent queries match more closely than the reference ({medians}).",
        icon=":material/check_circle:",
    )
