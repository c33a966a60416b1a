"""Start: what the app does, in three sentences, and the sample collection in one click."""

from __future__ import annotations

import streamlit as st

from ui import state

st.title("Search Explorer")
state.sidebar()
st.markdown(
    "Search Explorer indexes a collection of documents and lets you search it three ways: "
    "by meaning (vector), by exact words (BM25), or both at once (hybrid).  \n"
    "For every result it shows why it was found, so you can see where each method wins and "
    "where it fails.  \n"
    "Judge the results, and the relevance lab measures and tunes the search on your judgments."
)

sample_built = state.SAMPLE_NAME in state.collections()
st.subheader("Try it on the sample collection")
st.caption(
    "456 short documents in four domains (legal, commerce, security, automotive), with 84 "
    "test queries judged by hand."
    + ("" if sample_built else " Building it takes about half a minute, once.")
)
label = "Open the sample collection" if sample_built else "Build and open the sample collection"
left, right = st.columns(2)
open_it = left.button(label, key="home_open_sample", type="primary", icon=":material/play_arrow:")
judge_it = right.button(
    "Try a judging session on it",
    key="home_judge_sample",
    icon=":material/rate_review:",
    help="Grade the sample's top results as a domain expert would, one document at a time.",
)
if open_it or judge_it:
    if not sample_built and not state.build_sample():
        st.stop()
    state.prepare_sample()  # a sample built before (or on the command line) gets them too
    state.open_later(state.SAMPLE_NAME)
    if judge_it:
        state.prepare_sample_session()
        st.switch_page("pages/judge.py")
    st.switch_page("pages/search.py")

st.subheader("Or bring your own documents")
st.page_link(
    "pages/corpus.py",
    label="Upload files on the Corpus page (CSV, TSV, JSONL, text, Markdown, PDF or ZIP)",
    icon=":material/upload_file:",
)
st.caption("Each page works on the collection open in the sidebar.")
