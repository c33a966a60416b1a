"""Corpus: saved collections, and building a new one from uploaded files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from search_core.chunking import ChunkingConfig, chunk_document
from search_core.collection import BuildOptions, delete_collection, validate_name
from search_core.embedding import EMBEDDING_BACKENDS
from search_core.ingest import SUPPORTED_EXTENSIONS, FieldMap
from search_core.settings import DEFAULT_BACKEND, DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from search_core.settings import ray_address as ray_address_setting
from search_core.vector_index import AUTO_KIND, INDEX_KINDS
from ui import display, state

INDEX_HELP = {
    AUTO_KIND: "chosen by size: flat, then ivf, then ivfpq as the collection grows",
    "flat": "exact search over every vector; best up to a few hundred thousand chunks",
    "ivf": "vectors grouped into lists, a few lists searched per query; faster, approximate",
    "hnsw": "a graph of neighbours; fast and accurate, more memory",
    "ivfpq": "lists of compressed vectors, candidates re-ranked exactly; the smallest index",
}
BACKEND_HELP = {
    "torch": "PyTorch, the reference",
    "onnx-fp32": "ONNX Runtime, the same vectors, faster (the default)",
    "onnx-int8": "ONNX Runtime with 8-bit weights, about 5x faster, near-identical vectors",
}
NO_TITLE, GENERATED_ID = "(no title)", "(number the rows)"
COLUMN_KEYS = (
    "corpus_text_field",
    "corpus_title_field",
    "corpus_id_field",
    "corpus_metadata_fields",
)

st.title("Corpus")
state.sidebar()
if message := st.session_state.pop("corpus_built", None):
    st.success(display.md(message), icon=":material/check_circle:")

# --- saved collections --------------------------------------------------------------------
st.subheader("Saved collections")
infos = state.collections()
if not infos:
    st.caption("None yet: build one below, or open the sample collection on the Start page.")
else:
    table = pd.DataFrame(
        [
            {
                "name": i.name,
                "documents": i.documents,
                "chunks": i.chunks,
                "index": i.index_kind,
                "model": i.model.removeprefix("bundled:"),
                "backend": i.backend,
                "built (UTC)": i.created_at.replace("T", " ").removesuffix("+00:00"),
                "open here": "yes" if i.name == st.session_state.get(state.OPEN_KEY) else "",
            }
            for i in infos.values()
        ]
    )
    st.dataframe(table, hide_index=True, key="corpus_collections")
    columns = st.columns([4, 1, 1], vertical_alignment="bottom")
    chosen = columns[0].selectbox(
        "Collection to open or delete", list(infos), key="corpus_manage_name"
    )
    columns[1].button(
        "Open",
        key="corpus_open",
        icon=":material/folder_open:",
        on_click=state.choose,
        args=(chosen,),
        disabled=chosen == st.session_state.get(state.OPEN_KEY),
    )
    with columns[2].popover("Delete", icon=":material/delete:", key="corpus_delete_menu"):
        st.write(f"Delete collection **{display.md(chosen)}** with its judgments and maps?")
        if st.button("Yes, delete it", key="corpus_delete", type="primary"):
            try:
                delete_collection(str(chosen))
            except state.USER_ERRORS as exc:
                display.error(exc)
            else:
                st.cache_resource.clear()
                st.cache_data.clear()
                st.rerun()

if (
    state.SAMPLE_NAME not in infos
    and st.button(
        "Build the sample collection",
        key="corpus_build_sample",
        icon=":material/play_arrow:",
        help="456 documents in four domains with 84 judged queries; takes about half a minute.",
    )
    and state.build_sample()
):
    st.rerun()

# --- a new collection ---------------------------------------------------------------------
st.subheader("Build a collection from your files")
uploads = st.file_uploader(
    "Files",
    type=[ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS],
    accept_multiple_files=True,
    key=f"corpus_upload_{st.session_state.get('corpus_round', 0)}",
    help="CSV or TSV (one document per row), JSONL (one per line), text, Markdown or PDF "
    "(one per file), or a ZIP of those. Several files become one collection.",
)
if not uploads:
    st.caption(
        "Upload one or more files to preview them. Nothing is indexed until you press Build."
    )
    st.stop()

try:
    source = state.save_uploads(uploads)
    inferred = state.inferred_fields(str(source), state.stamp(source))
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()

fields = FieldMap()
columns_found = list(inferred.columns)
if st.session_state.get("_corpus_columns_of") != str(source):
    # Another upload: its columns are preselected afresh, not filtered from the last file's.
    for key in COLUMN_KEYS:
        st.session_state.pop(key, None)
    st.session_state["_corpus_columns_of"] = str(source)
if columns_found:
    st.markdown("**Which columns hold what**")
    # Preselected from the data (the same choice as `search-explorer index`), still changeable.
    guess = inferred.fields
    left, middle, right = st.columns(3)
    text_column = left.selectbox(
        "Text",
        columns_found,
        index=columns_found.index(guess.text) if guess.text in columns_found else 0,
        key="corpus_text_field",
    )
    title_options = [NO_TITLE, *columns_found]
    title_column = middle.selectbox(
        "Title",
        title_options,
        index=title_options.index(guess.title) if guess.title in title_options else 0,
        key="corpus_title_field",
    )
    id_options = [GENERATED_ID, *columns_found]
    id_column = right.selectbox(
        "Document id",
        id_options,
        index=id_options.index(guess.id) if guess.id in id_options else 0,
        key="corpus_id_field",
    )
    st.caption(display.md(f"Suggested from the {inferred.rows} rows read: {inferred.summary()}"))
    chosen_columns = {text_column, title_column, id_column}
    others = [c for c in columns_found if c not in chosen_columns]
    metadata = st.multiselect(
        "Metadata (for filters and map colours)",
        others,
        default=others,
        key="corpus_metadata_fields",
    )
    try:
        fields = FieldMap(
            text=text_column,
            title=None if title_column == NO_TITLE else title_column,
            id=None if id_column == GENERATED_ID else id_column,
            metadata=tuple(metadata),
        )
    except ValueError as exc:
        display.error(exc)
        st.stop()
    try:
        checked = state.inferred_fields(str(source), state.stamp(source), fields)
    except state.USER_ERRORS as exc:
        display.error(exc)
        st.stop()
    for warning in checked.warnings:
        st.warning(display.md(warning), icon=":material/warning:")

try:
    preview = state.preview_of(str(source), state.stamp(source), fields)
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()
if not preview.documents:
    st.warning("These files hold no document with text.")
    st.stop()

st.markdown("**The first documents, as they will be indexed**")
preview_table = pd.DataFrame(
    [
        {
            "id": d.doc_id,
            "title": d.title,
            "text": display.snippet(d.text, 300),
            "metadata": ", ".join(f"{k}={v}" for k, v in d.metadata.items()),
        }
        for d in preview.documents
    ]
)
if not any(d.title for d in preview.documents):
    preview_table = preview_table.drop(columns="title")  # an empty column would take room
st.dataframe(
    preview_table,
    hide_index=True,
    # The text is what the user checks: it gets the room, whatever its length.
    column_config={
        "id": st.column_config.TextColumn(width="small"),
        "title": st.column_config.TextColumn(width="medium"),
        "text": st.column_config.TextColumn(width="large"),
        "metadata": st.column_config.TextColumn(width="medium"),
    },
    key="corpus_preview",
)
st.caption(
    f"{len(preview.documents)} documents shown from {preview.files_read} file(s); "
    "all of them are read when you build."
)

st.markdown("**Model and index**")
left, middle, right = st.columns(3)
model_folder = left.text_input(
    "Embedding model",
    "",
    placeholder="bundled all-MiniLM-L6-v2",
    key="corpus_model",
    help="Leave empty for the bundled model, or give the folder of a local "
    "sentence-transformers model.",
)
backend = middle.selectbox(
    "Embedding backend",
    list(EMBEDDING_BACKENDS),
    index=list(EMBEDDING_BACKENDS).index(DEFAULT_BACKEND),
    format_func=lambda b: f"{b}: {BACKEND_HELP.get(b, '')}",
    key="corpus_backend",
    help="How the model runs on the CPU. The collection is always searched with the backend it "
    "was built with. The first ONNX build exports the model once (about 10 seconds).",
)
index_kind = right.selectbox(
    "Index kind",
    [AUTO_KIND, *INDEX_KINDS],
    format_func=lambda k: f"{k}: {INDEX_HELP.get(k, '')}",
    key="corpus_index_kind",
)
st.markdown("**Chunking**")
left, middle, right = st.columns(3)
method = left.segmented_control(
    "Method",
    ["tokens", "paragraphs"],
    default="tokens",
    required=True,
    key="corpus_chunk_method",
    help="tokens: overlapping windows of the model's tokens; paragraphs: whole paragraphs "
    "packed up to the size",
)
size = middle.slider(
    "Chunk size (tokens)",
    32,
    512,
    DEFAULT_CHUNK_SIZE,
    16,
    key="corpus_chunk_size",
    help="The model reads at most 256 tokens; larger sizes are lowered to that.",
)
overlap = right.slider(
    "Overlap (tokens)",
    0,
    size // 2,
    min(DEFAULT_CHUNK_OVERLAP, size // 2),
    4,
    key="corpus_chunk_overlap",
)
try:
    chunking = ChunkingConfig(method=method or "tokens", size=size, overlap=overlap)
except ValueError as exc:
    display.error(exc)
    st.stop()

with st.expander("Preview the chunks of one document", expanded=True, key="corpus_chunk_preview"):
    positions = range(len(preview.documents))
    index = st.selectbox(
        "Document",
        positions,
        format_func=lambda i: display.snippet(
            " · ".join(filter(None, (preview.documents[i].doc_id, preview.documents[i].title))),
            90,
        ),
        key="corpus_chunk_doc",
    )
    document = preview.documents[index]
    try:
        model = state.embedder(model_folder.strip() or None)
        tokenizer = model.tokenizer
    except state.USER_ERRORS as exc:
        display.error(exc)
        st.stop()
    chunks = chunk_document(
        document,
        tokenizer,
        chunking,
        max_seq_length=model.max_seq_length,
        special_tokens=model.special_tokens,
    )
    st.caption(f"{len(chunks)} chunk(s) from {len(document.text):,} characters.")
    for chunk in chunks[:12]:
        with st.container(border=True):
            st.caption(
                f"chunk {chunk.position + 1} · characters {chunk.char_start}–{chunk.char_end}"
            )
            st.text(chunk.text)
    if len(chunks) > 12:
        st.caption(f"… and {len(chunks) - 12} more.")

suggested = "".join(c if c.isalnum() or c in "_-." else "-" for c in Path(uploads[0].name).stem)
name = st.text_input(
    "Collection name", suggested.strip("-.")[:64] or "my-corpus", key="corpus_name"
)
ray_address = ray_address_setting()
on_ray = ray_address is not None and st.toggle(
    "Chunk and embed with Ray on this machine"
    if ray_address == "local"
    else f"Chunk and embed on the Ray cluster at {ray_address}",
    key="corpus_on_ray",
    help="The documents are read here and sent in batches to the cluster's actors, which load "
    "the model once each; the collection is written here. Set by SEARCH_EXPLORER_RAY.",
)

if name in infos:
    st.warning(
        f"A collection named {display.md(name)} exists. Building replaces it once the new one "
        "is complete; if the build fails, the existing one stays as it is."
    )

if st.button("Build", key="corpus_build", type="primary", icon=":material/build:"):
    try:
        validate_name(name)
        options = BuildOptions(
            chunking=chunking,
            index_kind=str(index_kind),
            model=model_folder.strip() or None,
            backend=str(backend),
            fields=fields,
        )
    except state.USER_ERRORS as exc:
        display.error(exc)
        st.stop()
    built = state.build(name, source, options, ray_address if on_ray else None)
    if built is not None:
        counts = built.manifest["counts"]
        st.session_state["corpus_built"] = (
            f"Built {name}: {counts['documents']:,} documents in {counts['chunks']:,} chunks. "
            "It is now the open collection."
        )
        state.open_later(name)
        # a fresh uploader: the page goes back to the list, with the new collection in it
        st.session_state["corpus_round"] = st.session_state.get("corpus_round", 0) + 1
        st.rerun()
