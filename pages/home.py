"""Start: what the app does, in three sentences, and the sample collection in one click."""

from __future__ import annotations

import streamlit as st

from search_core.links import (
    COMPARE_SETTINGS,
    MAP_SETTINGS,
    PAGE_PARAMETER,
    SEARCH_SETTINGS,
    write_link,
)
from ui import links, state

ID_QUERY = "ORD-58213"
PARAPHRASE = "customer charged twice for one purchase"
DEMO = (
    (
        "1. Exact ids against paraphrases",
        "An order id is a string of characters to an embedding model: the vector search "
        "returns other orders, BM25 finds the one named, and hybrid keeps it first. A question "
        "in other words than the documents' is the reverse.",
        [
            (
                "pages/search.py",
                f"The order id {ID_QUERY}, in the three modes side by side",
                write_link(
                    {"collection": state.SAMPLE_NAME, "q": ID_QUERY, "mode": "all"},
                    SEARCH_SETTINGS,
                ),
            ),
            (
                "pages/search.py",
                f'The paraphrase "{PARAPHRASE}", in the three modes side by side',
                write_link(
                    {"collection": state.SAMPLE_NAME, "q": PARAPHRASE, "mode": "all"},
                    SEARCH_SETTINGS,
                ),
            ),
        ],
    ),
    (
        "2. The map of meanings",
        "Every passage laid out by meaning: the four domains form their own regions, and the "
        "query lands among the passages that answer it.",
        [
            (
                "pages/map.py",
                "The paraphrase placed on the map, with lines to its results",
                write_link({"collection": state.SAMPLE_NAME, "q": PARAPHRASE}, MAP_SETTINGS),
            )
        ],
    ),
    (
        "3. The numbers",
        "The three modes measured on the 84 judged queries: nDCG with confidence intervals, "
        "wins and losses query by query, and a report to download.",
        [
            (
                "pages/lab.py",
                "Hybrid against vector and BM25 in the relevance lab",
                write_link(
                    {
                        "collection": state.SAMPLE_NAME,
                        "config": list(state.DEFAULT_CONFIGS),
                        "k": 10,
                    },
                    COMPARE_SETTINGS,
                ),
            )
        ],
    ),
)
"""The Start page's demo path: each step's title, what it shows, and its links."""

st.title("Search Explorer")
state.sidebar()
asked = st.query_params.get(PAGE_PARAMETER)
if asked and asked not in links.PAGES:
    st.warning(
        f"This link asks for a page named {asked!r}, which the app does not have "
        f"(pages a link can open: {', '.join(links.PAGES)}).",
        icon=":material/link_off:",
    )
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

st.subheader("A demo in three steps")
if sample_built:
    st.caption("Each step is a link: it opens the page with everything set, nothing to type.")
    for title, words, steps in DEMO:
        st.markdown(f"**{title}**")
        st.caption(words)
        for page, label, parameters in steps:
            st.page_link(page, label=label, query_params=parameters, icon=":material/link:")
else:
    st.caption(
        "Once the sample is built, three links here walk through it: an order id against a "
        "paraphrase on Search, the map, and the three modes measured in the relevance lab."
    )

st.subheader("Or bring your own documents")
st.page_link(
    "pages/corpus.py",
    label="Upload files on the Corpus page (CSV, TSV, JSONL, text, Markdown, PDF or ZIP)",
    icon=":material/upload_file:",
)
st.caption("Each page works on the collection open in the sidebar.")
