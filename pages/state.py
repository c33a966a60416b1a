"""App-side helpers shared by the pages: cached loaders and the open collection.

Only this module holds Streamlit caches; the pages call it and ``search_core``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from search_core.collection import Collection, list_collections, open_collection
from search_core.settings import collections_home

SAMPLE_NAME = "sample"
SAMPLE_SOURCE = Path(__file__).resolve().parents[1] / "sample_data"


@st.cache_resource(show_spinner="Opening the collection...")
def load_collection(name: str, built_at: str) -> Collection:
    """An opened collection, cached per name and build time (a rebuild gives a new entry)."""
    return open_collection(name)


def collection_names() -> dict[str, str]:
    """Saved collections, name to build time."""
    return {info.name: info.created_at for info in list_collections()}


def home_label() -> str:
    """Where collections are stored, for captions."""
    return str(collections_home())


def sidebar_collection() -> Collection | None:
    """Show the collection picker in the sidebar and return the open collection, if any."""
    names = collection_names()
    if not names:
        st.sidebar.info("No collection yet.")
        st.info(
            "Search Explorer indexes a corpus and lets you search it in vector, BM25 or hybrid "
            "mode. Build the bundled sample collection to start."
        )
        if st.button("Build the sample collection", key="build_sample", type="primary"):
            build_sample()
            st.rerun()
        return None
    default = list(names).index(SAMPLE_NAME) if SAMPLE_NAME in names else 0
    name = st.sidebar.selectbox("Collection", list(names), index=default, key="collection_name")
    collection = load_collection(name, names[name])
    counts = collection.manifest["counts"]
    st.sidebar.caption(f"{counts['documents']} documents, {counts['chunks']} chunks")
    return collection


def build_sample() -> None:
    """Build the sample collection with a progress bar."""
    from search_core.collection import build_collection

    bar = st.progress(0.0, text="Reading the sample corpus...")
    labels = {
        "read": "Reading",
        "chunk": "Chunking",
        "embed": "Embedding",
        "index": "Indexing",
        "save": "Saving",
    }

    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(
            min(done / max(total, 1), 1.0), text=f"{labels.get(stage, stage)}: {done} of {total}"
        )

    build_collection(SAMPLE_NAME, SAMPLE_SOURCE, progress=progress)
    bar.empty()
