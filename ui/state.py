"""App-side state shared by the pages: cached loaders, the open collection, builds and actions.

Only this module holds Streamlit caches: ``st.cache_resource`` for what is kept in memory and
shared (opened collections, judgment sets, maps with their fitted UMAP model, which cannot be
pickled) and ``st.cache_data`` for tables computed from one collection version (document
previews, runs, sweeps, ANN health). Every cache key holds the collections home, the
collection's name and its version, so a rebuilt collection is never served from a stale entry.

What a session chooses, the open collection, its uploads, its recent searches, lives in
``st.session_state`` and nowhere else: two browser sessions never see each other's choices.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from search_core.collection import (
    BUILD_STAGES,
    BuildOptions,
    Collection,
    CollectionInfo,
    build_collection,
    list_collections,
    open_collection,
    read_manifest,
    validate_name,
)
from search_core.errors import InputError, SearchExplorerError
from search_core.evaluation import Qrels, RunDict, load_qrels, run_configurations
from search_core.ingest import (
    FieldInference,
    FieldMap,
    IngestReport,
    infer_source_fields,
    preview_source,
)
from search_core.judgments import (
    DEFAULT_SET,
    ImportReport,
    JudgmentStore,
    Pool,
    check_id,
    import_judgments,
    list_judgment_sets,
    open_judgments,
)
from search_core.lab import list_configs, load_config, save_config
from search_core.pooling import check_depth, create_pool
from search_core.projection import Projection, ProjectionSettings, project
from search_core.search import SearchParams, run_search
from search_core.settings import collections_home
from search_core.sweeps import (
    AnnHealth,
    SweepResult,
    ann_health,
    ann_sweep,
    fusion_sweep,
    threshold_sweep,
)
from search_core.telemetry import QUERY_LOG, collection_reference
from search_core.types import SearchResponse
from ui import display

SAMPLE_NAME = "sample"
SAMPLE_SOURCE = Path(__file__).resolve().parents[1] / "sample_data"
SAMPLE_QRELS = SAMPLE_SOURCE / "qrels" / "test.tsv"

USER_ERRORS: tuple[type[Exception], ...] = (SearchExplorerError, ValueError, OSError)
"""What the engine raises on purpose (and file errors): shown as a message, never a traceback."""

OPEN_KEY = "open_collection"
"""Session key of the open collection."""
_PICKER = "sidebar_collection"
_OPEN_NEXT = "_open_next"
_SET_KEY = "judgment_set"
_RESPONSES = "_responses"
_KEPT_RESPONSES = 16
_QUERY_VECTORS = "_query_vectors"


# --------------------------------------------------------------------------- the open collection


def home() -> str:
    """The collections home of this process, as part of every cache key."""
    return str(collections_home().resolve())


@st.cache_resource(show_spinner="Opening the collection...", max_entries=8)
def _collection(home: str, name: str, version: str) -> Collection:
    return open_collection(name, home)


def collections() -> dict[str, CollectionInfo]:
    """Saved collections by name."""
    return {info.name: info for info in list_collections()}


def open_later(name: str) -> None:
    """Open a collection at the next run (after a build, when the sidebar is already drawn)."""
    st.session_state[_OPEN_NEXT] = name


def choose(name: str) -> None:
    """Open a collection now: for a button's ``on_click``, which runs before the sidebar."""
    st.session_state[OPEN_KEY] = name


def sync_widget(key: str, value: Any) -> None:
    """Show ``value`` in a picker whose choice is kept elsewhere (call before drawing it)."""
    if st.session_state.get(key) != value:
        st.session_state[key] = value


def _picked() -> None:
    st.session_state[OPEN_KEY] = st.session_state[_PICKER]


WARM_UP_ENV = "SEARCH_EXPLORER_WARM_UP"
"""Set to 0 to skip compiling the map's kernels in the background when the app starts."""


@st.cache_resource(show_spinner=False)
def warm_up_maps() -> threading.Thread | None:
    """Start, once per server process, a background thread that compiles UMAP's kernels.

    Without it the first map a visitor opens waits 10-30 s for numba to compile.
    """
    if os.environ.get(WARM_UP_ENV, "1") == "0":
        return None
    thread = threading.Thread(target=_warm_up_quietly, name="map-warm-up", daemon=True)
    thread.start()
    return thread


def _warm_up_quietly() -> None:
    from search_core.projection import warm_up

    # Only an optimisation: should it fail, the first map compiles the kernels itself and
    # shows any error on its page.
    with contextlib.suppress(Exception):
        warm_up()


def sidebar() -> None:
    """The collection picker in the sidebar; every page shows which collection is open.

    The open collection is kept under its own session key, not only as the picker's widget
    value, so that it survives whatever happens to widget state between pages.
    """
    infos = collections()
    pending = st.session_state.pop(_OPEN_NEXT, None)
    if pending in infos:
        st.session_state[OPEN_KEY] = pending
    with st.sidebar:
        if not infos:
            st.session_state.pop(OPEN_KEY, None)
            st.caption("No collection is open yet.")
            return
        if st.session_state.get(OPEN_KEY) not in infos:
            st.session_state[OPEN_KEY] = SAMPLE_NAME if SAMPLE_NAME in infos else next(iter(infos))
        name = st.session_state[OPEN_KEY]
        sync_widget(_PICKER, name)
        st.selectbox(
            "Open collection",
            list(infos),
            key=_PICKER,
            on_change=_picked,
            help="Every page works on this collection. Build or delete collections on Corpus.",
        )
        info = infos[name]
        st.caption(
            f"{info.documents:,} documents · {info.chunks:,} chunks · {info.index_kind} index"
        )


def current_collection() -> Collection:
    """Draw the sidebar and return the collection this session has open.

    Without one, says where to start and stops the page.
    """
    sidebar()
    name = st.session_state.get(OPEN_KEY)
    if not name:
        st.info(
            "No collection is open. Open the sample collection on the Start page, "
            "or build one from your own files on the Corpus page."
        )
        st.page_link("pages/home.py", label="Start", icon=":material/home:")
        st.page_link("pages/corpus.py", label="Corpus", icon=":material/folder_open:")
        st.stop()
    try:
        _, manifest = read_manifest(name)
        return _collection(home(), name, str(manifest["version"]))
    except USER_ERRORS as exc:
        display.error(exc)
        st.stop()


def key(collection: Collection, name: str) -> str:
    """A widget key for a setting that depends on the collection (its fields, its index).

    Each collection gets its own widget, so a value chosen for one (a field, a sample size)
    is never offered to another that cannot take it.
    """
    return f"{name}@{collection.name}"


def version(collection: Collection) -> str:
    """The collection's version (part of cache keys)."""
    return str(collection.manifest.get("version", ""))


# --------------------------------------------------------------------------- building


STAGE_LABELS = BUILD_STAGES
"""What each build stage is doing, in words (the engine's, so the command line says the same)."""
STAGE_SPANS = {
    "model": (0.0, 0.05),
    "embed": (0.05, 0.93),
    "index": (0.93, 0.99),
    "save": (0.99, 1.0),
}
"""Share of the progress bar each build stage fills: embedding takes nearly all the time."""


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def format_duration(seconds: float) -> str:
    """A duration in plain words: ``a few seconds``, ``40 s``, ``2 min 10 s``."""
    if seconds < 5:
        return "a few seconds"
    if seconds < 60:
        return f"{round(seconds / 5) * 5:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


class BuildProgress:
    """Turns a build's ``progress(stage, done, total)`` calls into a bar with the time left.

    The time left is estimated from the embedding rate measured so far (embedding takes nearly
    all of a build's time); before the first batch of vectors there is no estimate yet.

    Args:
        show: draws the bar, as ``show(fraction, text)``.
        clock: a monotonic clock in seconds (a test passes its own).
    """

    def __init__(
        self, show: Callable[[float, str], Any], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.show = show
        self.clock = clock
        self._embed_start: tuple[float, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        low, high = STAGE_SPANS.get(stage, (0.0, 1.0))
        share = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        label = STAGE_LABELS.get(stage, stage)
        counts = f": {_megabytes(done)} of {_megabytes(total)} read" if stage == "embed" else ""
        self.show(
            low + (high - low) * share, f"{label}{counts} · {self.time_left(stage, done, total)}"
        )

    def time_left(self, stage: str, done: int, total: int) -> str:
        """The estimate shown next to the bar."""
        if stage in ("index", "save"):
            return "almost done"
        if stage != "embed":
            return "estimating the time left"
        now = self.clock()
        if self._embed_start is None:
            self._embed_start = (now, done)
        started, first = self._embed_start
        if done <= first or now - started <= 0:
            return "estimating the time left"
        seconds = (total - done) * (now - started) / (done - first)
        return f"about {format_duration(seconds)} left"


def progress_callback(bar: Any, label: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that moves a ``st.progress`` bar."""

    def update(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{label}: {done:,} of {total:,}")

    return update


def build(
    name: str,
    source: str | Path | IngestReport,
    options: BuildOptions,
    ray_address: str | None = None,
) -> Collection | None:
    """Build a collection with a progress bar; a failure is shown and leaves any old one as it was.

    Args:
        name: the collection's name.
        source: what to build it from.
        options: the build settings.
        ray_address: a Ray cluster to chunk and embed on (see :mod:`search_core.distributed`),
            or None to build in this process.

    Returns:
        The new collection, or None when the build failed (the message is on the page).
    """
    from search_core.distributed import build_engine

    bar = st.progress(0.0, text="Starting the build · estimating the time left")
    try:
        with build_engine(ray_address, options) as engine:
            collection = build_collection(
                name,
                source,
                options,
                progress=BuildProgress(lambda f, t: bar.progress(f, text=t)),
                engine=engine,
            )
    except USER_ERRORS as exc:
        display.error(exc)
        return None
    finally:
        bar.empty()
    # whatever was kept for an older version of this name is stale now
    st.cache_data.clear()
    _collection.clear()
    _projection.clear()
    return collection


def build_sample() -> bool:
    """Build the bundled sample collection with a progress bar, and open it at the next run.

    The new sample comes with its judged queries and the default configurations
    (:func:`prepare_sample`).

    Returns:
        Whether it was built (a failure is shown on the page).
    """
    if build(SAMPLE_NAME, SAMPLE_SOURCE, BuildOptions()) is None:
        return False
    prepare_sample()
    open_later(SAMPLE_NAME)
    return True


# --------------------------------------------------------------------------- uploads


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_file_name(name: str) -> str:
    """A file name that stays inside its folder and is not hidden (hidden files are skipped)."""
    base = _UNSAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .") or "upload"
    return base


def session_folder() -> Path:
    """This session's own temporary folder (uploads are written here, never shared)."""
    root = st.session_state.get("_session_folder")
    if not root or not Path(root).is_dir():
        root = tempfile.mkdtemp(prefix="search-explorer-session-")
        st.session_state["_session_folder"] = root
    return Path(root)


def save_uploads(files: Sequence[Any]) -> Path:
    """Write this session's uploaded corpus files into its own temporary folder.

    Returns:
        The source to read: the file itself when there is one, else the folder.
    """
    signature = [(f.file_id, f.name, f.size) for f in files]
    saved = st.session_state.get("_upload")
    if saved and saved["signature"] == signature and Path(saved["source"]).exists():
        return Path(saved["source"])
    folder = session_folder() / f"corpus-{time.time_ns()}"
    folder.mkdir(parents=True)
    if saved:
        shutil.rmtree(Path(saved["folder"]), ignore_errors=True)
    names: list[str] = []
    for upload in files:
        name = safe_file_name(upload.name)
        stem, suffix = Path(name).stem, Path(name).suffix
        count = 1
        while name in names:
            count += 1
            name = f"{stem}-{count}{suffix}"
        (folder / name).write_bytes(upload.getvalue())
        names.append(name)
    source = folder / names[0] if len(names) == 1 else folder
    st.session_state["_upload"] = {
        "signature": signature,
        "source": str(source),
        "folder": str(folder),
    }
    return source


IMPORT_LAYOUT = {
    "csv": {"judgments": "judgments.csv"},
    "trec": {"judgments": "qrels.txt", "queries": "topics"},
    "beir": {"judgments": "qrels/test.tsv", "queries": "queries.jsonl"},
}
"""Where each uploaded file of a judgment import goes (BEIR needs its folder layout)."""


def import_uploads(store: JudgmentStore, fmt: str, uploads: Mapping[str, Any]) -> ImportReport:
    """Import uploaded judgment files into a set, laid out as the format expects.

    Args:
        store: the judgment set.
        fmt: ``csv``, ``trec`` or ``beir``.
        uploads: ``judgments`` and, for trec and beir, ``queries``: uploaded files.

    Raises:
        InputError, ValueError: a file cannot be read (the message names the line).
    """
    folder = session_folder() / f"import-{time.time_ns()}"
    paths: dict[str, Path] = {}
    for role, relative in IMPORT_LAYOUT[fmt].items():
        upload = uploads.get(role)
        if upload is None:
            continue
        name = relative
        if role == "queries" and fmt == "trec":  # TSV or JSONL topics: keep the extension
            name = relative + (".jsonl" if upload.name.lower().endswith(".jsonl") else ".tsv")
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.getvalue())
        paths[role] = path
    if "judgments" not in paths:
        raise ValueError("choose the file of judgments to import")
    try:
        if fmt == "beir":
            return import_judgments(store, "beir", folder, judge=judge_name())
        if fmt == "trec":
            return import_judgments(
                store, "trec", paths["judgments"], queries=paths.get("queries"), judge=judge_name()
            )
        return import_judgments(store, fmt, paths["judgments"], judge=judge_name())
    except InputError as exc:  # name the uploaded file, not this session's temporary copy
        names = {str(path): uploads[role].name for role, path in paths.items()}
        raise InputError(names.get(exc.path, Path(exc.path).name), exc.problem, exc.line) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@st.cache_data(show_spinner="Reading the columns...", max_entries=16)
def inferred_fields(source: str, stamp: float, given: FieldMap | None = None) -> FieldInference:
    """The columns of a source and which one holds what, chosen from its first rows.

    Args:
        source: the source.
        stamp: its modification time, for the cache.
        given: the columns already chosen (kept, and checked for warnings).
    """
    return infer_source_fields(source, given)


@st.cache_data(show_spinner="Reading the first documents...", max_entries=16)
def preview_of(source: str, stamp: float, fields: FieldMap, n: int = 20) -> IngestReport:
    """The first documents of a source, as they would be indexed."""
    return preview_source(source, fields, n)


def stamp(path: Path) -> float:
    """Modification time of a file or folder, for cache keys."""
    return path.stat().st_mtime


@st.cache_resource(show_spinner="Loading the model's tokenizer...")
def embedder(model: str | None) -> Any:
    """The embedding model (for chunk previews: its tokenizer and sequence length)."""
    from search_core.embedding import shared_embedder

    return shared_embedder(model)


# --------------------------------------------------------------------------- searching


@dataclass(frozen=True)
class QueryEmbedding:
    """The query's embedding as a search used it.

    Attributes:
        ms: milliseconds the embedding took (when this session first embedded the query).
        cached: reused from this session, not embedded for this search.
    """

    ms: float
    cached: bool


@dataclass(frozen=True)
class Answer:
    """A search as this session got it.

    Attributes:
        response: the engine's answer; its timings are the retrievers' own, embedding excluded
            (``embed_ms`` is 0: the query's embedding, shared by the modes, is ``embedding``).
        cached: this session's earlier answer to the very same search, shown again without
            searching: its timings are those of that first search.
        embedding: the query's embedding (None in BM25 mode, which embeds nothing).
    """

    response: SearchResponse
    cached: bool
    embedding: QueryEmbedding | None


def _forget_oldest(kept: dict[str, Any], limit: int) -> None:
    """Drop the entries first put in until ``kept`` holds at most ``limit`` (dicts keep order)."""
    while len(kept) > limit:
        kept.pop(next(iter(kept)))


def answer(collection: Collection, query: str, params: SearchParams) -> Answer:
    """Search, reusing this session's answer when the same search was just made.

    Streamlit reruns a page on every click (judging a result, say); searching again each
    time would also log the same query again in the latency figures. A new search of the same
    query (other settings) reuses its vector: only a query embedded now counts in the
    embedding latency.
    """
    key = json.dumps([collection.name, version(collection), query, params.to_dict()], default=str)
    kept: dict[str, Answer] = st.session_state.setdefault(_RESPONSES, {})
    if key in kept:
        first = kept[key]
        embedding = None if first.embedding is None else replace(first.embedding, cached=True)
        return Answer(first.response, True, embedding)
    vector, embedding = None, None
    if params.mode != "bm25" and query.strip():
        vector, embedding = _query_vector(collection, query)
    response = run_search(collection, query, params, query_vector=vector)
    # The log counts an embedding once, with the search that made it.
    embed_ms = None if embedding is None or embedding.cached else embedding.ms
    logged = replace(response.timings, embed_ms=embed_ms or 0.0)
    QUERY_LOG.record(
        collection.name, replace(response, timings=logged), embedded=embed_ms is not None
    )
    kept[key] = Answer(response, False, embedding)
    _forget_oldest(kept, _KEPT_RESPONSES)
    return kept[key]


def search(collection: Collection, query: str, params: SearchParams) -> SearchResponse:
    """Search, reusing this session's answer when the same search was just made.

    The answer's timings leave the query's embedding out (see :func:`answer`).
    """
    return answer(collection, query, params).response


def query_vector(collection: Collection, query: str) -> np.ndarray:
    """The query's vector, embedded once per session and collection version.

    The map page reruns on every widget change; the query need not be embedded each time.
    """
    return _query_vector(collection, query)[0]


def _query_vector(collection: Collection, query: str) -> tuple[np.ndarray, QueryEmbedding]:
    """The query's vector and how long embedding it took (cached when this session had it)."""
    key = json.dumps([collection.name, version(collection), query])
    kept: dict[str, tuple[np.ndarray, float]] = st.session_state.setdefault(_QUERY_VECTORS, {})
    if key in kept:
        vector, ms = kept[key]
        return vector, QueryEmbedding(ms, cached=True)
    embedder = collection.embedder
    embedder.load()  # the model's first load is not the query's embedding time
    tick = time.perf_counter()
    vector = embedder.embed_query(query)
    ms = (time.perf_counter() - tick) * 1000
    kept[key] = (vector, ms)
    _forget_oldest(kept, _KEPT_RESPONSES)
    return vector, QueryEmbedding(ms, cached=False)


@dataclass(frozen=True)
class FieldSummary:
    """What a metadata field holds, for filters and map colours.

    Attributes:
        name: the field.
        numeric: every value is a number.
        low: the smallest number (numeric fields).
        high: the largest number (numeric fields).
        values: the distinct values, most common first (at most 200).
        count: documents that have the field.
    """

    name: str
    numeric: bool
    low: float
    high: float
    values: tuple[Any, ...]
    count: int


@st.cache_data(show_spinner=False, max_entries=8)
def _fields(home: str, name: str, version: str) -> dict[str, FieldSummary]:
    collection = _collection(home, name, version)
    seen: dict[str, list[Any]] = {}
    for metadata in collection.document_metadata():
        for field, value in metadata.items():
            if value is not None:
                seen.setdefault(field, []).append(value)
    summaries = {}
    for field, values in sorted(seen.items()):
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        counts: dict[Any, int] = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        common = tuple(sorted(counts, key=lambda v: (-counts[v], str(v)))[:200])
        summaries[field] = FieldSummary(
            field,
            numeric,
            float(min(values)) if numeric else 0.0,
            float(max(values)) if numeric else 0.0,
            common,
            len(values),
        )
    return summaries


def metadata_fields(collection: Collection) -> dict[str, FieldSummary]:
    """The collection's metadata fields."""
    return _fields(home(), collection.name, version(collection))


# --------------------------------------------------------------------------- judgments


def judgment_set() -> str:
    """The judgment set this session works on."""
    return str(st.session_state.get(_SET_KEY, DEFAULT_SET))


def use_judgment_set(name: str) -> None:
    """Work on another judgment set."""
    st.session_state[_SET_KEY] = name


@st.cache_resource(show_spinner=False, max_entries=16)
def _store(home: str, name: str, set_name: str) -> JudgmentStore:
    return open_judgments(name, set_name, home)


def judgments(collection: Collection) -> JudgmentStore:
    """This session's judgment set of the collection (shared on disk by everyone judging it)."""
    return _store(home(), collection.name, judgment_set())


def judgment_store(collection: Collection, set_name: str) -> JudgmentStore:
    """A judgment set of the collection, by name."""
    return _store(home(), collection.name, set_name)


def all_pools(collection: Collection) -> dict[tuple[str, str], Pool]:
    """Every judging pool of every judgment set of the collection, by (set, pool), the most
    recently made last."""
    found = {
        (set_name, name): pool
        for set_name in list_judgment_sets(collection.name)
        for name, pool in judgment_store(collection, set_name).pools().items()
    }
    return dict(sorted(found.items(), key=lambda item: (item[1].created_at, item[0])))


def query_id_for(store: JudgmentStore, text: str) -> str:
    """The id of a query in a set: the query with this text, else the id an import would give."""
    for query in store.queries.values():
        if query.text == text:
            return query.query_id
    return "q-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def judge(store: JudgmentStore, query: str, doc_id: str, grade: int) -> None:
    """Record a grade for a document and a query, adding the query to the set when it is new."""
    query_id = query_id_for(store, query)
    if query_id not in store.queries:
        store.add_query(query_id, query)
    store.judge(query_id, doc_id, grade, judge=judge_name())


def judge_clear(store: JudgmentStore, query: str, doc_id: str) -> None:
    """Forget this session's judge's grade of a document for a query (others' are kept)."""
    query_id = query_id_for(store, query)
    if query_id in store.queries:
        store.remove_judgment(query_id, doc_id, judge_name())


def judge_name(default: str = "app") -> str:
    """Who is judging, as recorded with each judgment (asked once per browser session)."""
    return str(st.session_state.get(JUDGE_KEY) or default).strip() or default


def set_judge_name(name: str) -> None:
    """Record who judges in this browser session ("" forgets it).

    Raises:
        ValueError: a name with a line break, or longer than 64 characters.
    """
    name = (name or "").strip()
    if name:
        check_id("your name", name)
        if len(name) > 64:
            raise ValueError("a name of at most 64 characters, please")
    st.session_state[JUDGE_KEY] = name


JUDGE_KEY = "judge_name"
SAMPLE_POOL = "sample-session"


def pool_configurations(
    collection: Collection,
    store: JudgmentStore,
    name: str,
    configs: Mapping[str, SearchParams],
    *,
    depth: int,
    replicates: int,
    progress: Callable[[int, int], None] | None = None,
) -> Pool:
    """Pool the top documents of saved configurations for judging (their runs are kept, as a
    comparison's are: comparing them afterwards runs nothing again).

    Raises:
        ValueError: no configuration chosen, or as :func:`search_core.pooling.create_pool`.
    """
    if not configs:
        raise ValueError("choose at least one configuration to pool")
    check_depth(depth)
    found = runs(collection, configs, store.query_set().queries, progress)
    return create_pool(
        store, name, found, depth=depth, replicates=replicates, created_by=judge_name()
    )


def pool_unjudged(store: JudgmentStore, found: Mapping[str, RunDict], k: int) -> Pool:
    """Pool the top k of a comparison's runs for judging, one grade each: the queue hands out
    only what nobody judged (a judged document already has its grade).

    The pool is named ``unjudged-topK`` (made again, it is replaced).
    """
    return create_pool(
        store, f"unjudged-top{k}", found, depth=k, replicates=1, created_by=judge_name()
    )


def prepare_sample_session(name: str = SAMPLE_NAME) -> None:
    """Make the sample's judging session, once: its judged queries (with their information
    needs) and a pool of the documents the sample graded among the top 5 of the three default
    modes, each needing a second grade: from the first grade on, a judge's grades can be
    compared with the sample's own (Relevance lab, Agreement). The session's judgment set
    becomes the default one.

    Runs as a button's ``on_click`` or before a page switch; an error waits in the session for
    the Judging page.
    """
    try:
        prepare_sample(name)
        use_judgment_set(DEFAULT_SET)
        _, manifest = read_manifest(name)
        collection = _collection(home(), name, str(manifest["version"]))
        store = judgments(collection)
        if SAMPLE_POOL not in store.pools():
            graded = store.qrels()
            made = runs(collection, DEFAULT_CONFIGS, store.query_set().queries)
            found = {
                name: {
                    q: {d: v for d, v in docs.items() if d in graded.get(q, {})}
                    for q, docs in run.items()
                }
                for name, run in made.items()
            }
            create_pool(store, SAMPLE_POOL, found, depth=5, replicates=2, created_by="sample")
    except USER_ERRORS as exc:
        st.session_state["judging_notice"] = f"The session could not start: {exc}"


def grades_for(store: JudgmentStore, query: str) -> dict[str, int]:
    """The grades of a query's documents: this session's judge's own, else the grade the other
    judges' combine to (empty when the query is not in the set)."""
    query_id = query_id_for(store, query)
    if query_id not in store.queries:
        return {}
    own = {j.doc_id: j.grade for j in store.judgments(query_id, judge=judge_name())}
    return {**store.qrels().get(query_id, {}), **own}


# --------------------------------------------------------------------------- lab tables


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


_KEPT_RUNS = 64
_RUNS_LOCK = threading.Lock()


@st.cache_resource(show_spinner=False, max_entries=8)
def _kept_runs(home: str, name: str, version: str) -> dict[str, RunDict]:
    """The runs made on one collection version, by settings and queries (see :func:`runs`)."""
    return {}


def runs(
    collection: Collection,
    configs: Mapping[str, SearchParams],
    queries: Mapping[str, str],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, RunDict]:
    """Run a query set with each configuration, embedding each query once for all of them.

    Runs are kept per collection version, settings and queries, for every session: comparing
    again, or with one more configuration, runs only what was not run yet. (Not
    ``st.cache_data``: the progress bar moves while the runs are made.)

    Args:
        collection: the collection.
        configs: name to configuration.
        queries: query id to text.
        progress: ``progress(done, total)`` over the queries of the configurations run now.

    Returns:
        Name to run (copies: changing one changes nothing kept).
    """
    kept = _kept_runs(home(), collection.name, version(collection))
    keys = {name: _json([params.to_dict(), dict(queries)]) for name, params in configs.items()}
    with _RUNS_LOCK:
        missing = {name: params for name, params in configs.items() if keys[name] not in kept}
    made = run_configurations(collection, queries, missing, progress=progress) if missing else {}
    with _RUNS_LOCK:
        kept.update({keys[name]: run for name, run in made.items()})
        found = {name: made.get(name) or kept[keys[name]] for name in configs}
        _forget_oldest(kept, _KEPT_RUNS)
    return {name: {q: dict(docs) for q, docs in run.items()} for name, run in found.items()}


_SWEEPS: dict[str, Callable[..., SweepResult]] = {
    "threshold": threshold_sweep,
    "fusion": fusion_sweep,
}


@st.cache_data(show_spinner=False, max_entries=16)
def _sweep(
    home: str, name: str, version: str, kind: str, queries: str, qrels: str, params: str
) -> SweepResult:
    collection = _collection(home, name, version)
    texts, judged = json.loads(queries), json.loads(qrels)
    if kind == "ann":
        return ann_sweep(collection, texts, judged)
    base = SearchParams.from_dict(json.loads(params))
    return _SWEEPS[kind](collection, texts, judged, base)


def sweep(
    collection: Collection,
    kind: str,
    queries: Mapping[str, str],
    qrels: Qrels,
    params: SearchParams,
) -> SweepResult:
    """A threshold, fusion or ANN sweep (kept per collection version, queries and settings)."""
    return _sweep(
        home(),
        collection.name,
        version(collection),
        kind,
        _json(dict(queries)),
        _json(qrels),
        _json(params.to_dict()),
    )


@st.cache_data(show_spinner=False, max_entries=8)
def _ann_health(home: str, name: str, version: str) -> AnnHealth:
    return ann_health(_collection(home, name, version))


def index_health(collection: Collection) -> AnnHealth:
    """Recall of the index against exact search, and memory per index kind."""
    return _ann_health(home(), collection.name, version(collection))


@st.cache_data(show_spinner=False, max_entries=8)
def _reference(home: str, name: str, version: str) -> tuple[list[float], bool]:
    values, recorded = collection_reference(_collection(home, name, version))
    return values.tolist(), recorded


def similarity_reference(collection: Collection) -> tuple[np.ndarray, bool]:
    """The collection's reference distribution of top-result similarities (and whether it was
    recorded at build time)."""
    values, recorded = _reference(home(), collection.name, version(collection))
    return np.asarray(values), recorded


# --------------------------------------------------------------------------- maps


@st.cache_resource(show_spinner=False, max_entries=6)
def _projection(home: str, name: str, version: str, settings: ProjectionSettings) -> Projection:
    return project(_collection(home, name, version), settings)


def projection(collection: Collection, settings: ProjectionSettings) -> Projection:
    """The collection's map (from memory, the disk cache, or fitted now)."""
    return _projection(home(), collection.name, version(collection), settings)


def by_difference(queries: Mapping[str, str], result: Any) -> list[str]:
    """Query ids, those where the compared runs differ most first (as they are, for one run)."""
    rows = getattr(result, "per_query", ())
    gap = {
        row["query_id"]: max((abs(v) for c, v in row.items() if c.startswith("delta:")), default=0)
        for row in rows
        if isinstance(row, Mapping) and "query_id" in row
    }
    return sorted(queries, key=lambda q: -gap.get(q, 0.0))


# --------------------------------------------------------------------------- lab edits


def validate_set_name(name: str) -> str:
    """Check the name of a new judgment set (the rules of collection names)."""
    return validate_name(name.strip())


def _from_sample(manifest: Mapping[str, Any]) -> bool:
    """Whether a collection's manifest says it was built from the bundled sample data."""
    source = Path(str(manifest.get("source", {}).get("path", "")))
    try:
        return source.resolve() == SAMPLE_SOURCE.resolve()
    except OSError:
        return False


def is_sample(collection: Collection) -> bool:
    """Whether a collection is the sample (built from the bundled sample data, or so named)."""
    return _from_sample(collection.manifest) or collection.name == SAMPLE_NAME


def import_sample(store: JudgmentStore) -> ImportReport:
    """Import the sample's judged queries (BEIR queries.jsonl and qrels/test.tsv).

    Idempotent: what is already in the set is left as it is.
    """
    return import_judgments(store, "beir", SAMPLE_SOURCE, judge="sample")


DEFAULT_CONFIGS = {
    f"default-{mode}": SearchParams(mode=mode) for mode in ("hybrid", "vector", "bm25")
}
"""The three modes with their default settings, compared first: hybrid is the baseline."""


def save_default_configs(name: str) -> None:
    """Save the configurations of ``DEFAULT_CONFIGS`` for a collection."""
    for config, params in DEFAULT_CONFIGS.items():
        save_config(name, config, params)


def prepare_sample(name: str = SAMPLE_NAME) -> None:
    """Give the sample its judged queries and the default configurations, the first time.

    When the default judgment set does not exist yet, the sample's judgments go into it and
    the default configurations are saved if none is: a demo goes from the Start page to a
    comparison without uploading anything. Done once: a set someone emptied stays empty,
    deleted configurations stay deleted. A collection that does not hold the sample's judged
    documents is left alone.
    """
    try:
        if DEFAULT_SET in list_judgment_sets(name):
            return
        _, manifest = read_manifest(name)
        if not (_from_sample(manifest) or name == SAMPLE_NAME):
            return
        # a relative source path, or a collection only named so: it must hold the documents
        collection = _collection(home(), name, str(manifest["version"]))
        judged = {doc for docs in load_qrels(SAMPLE_QRELS).values() for doc in docs}
        if not judged <= set(collection.doc_index):
            return
        import_sample(_store(home(), name, DEFAULT_SET))
        if not list_configs(name):
            save_default_configs(name)
    except USER_ERRORS as exc:
        display.error(exc)


def configurations(collection: Collection) -> dict[str, SearchParams]:
    """The collection's saved configurations (a damaged one is left out and reported)."""
    found = {}
    for name in list_configs(collection.name):
        try:
            found[name] = load_config(collection.name, name)
        except USER_ERRORS as exc:
            display.error(exc)
    return found


def queries_table(store: JudgmentStore) -> pd.DataFrame:
    """The set's queries, for editing."""
    counts: dict[str, int] = {}
    for judgment in store.judgments():
        counts[judgment.query_id] = counts.get(judgment.query_id, 0) + 1
    rows = [
        {
            "query_id": q.query_id,
            "query": q.text,
            "description": q.description or "",
            "tag": q.tag or "",
            "judgments": counts.get(q.query_id, 0),
        }
        for q in store.queries.values()
    ]
    return pd.DataFrame(rows, columns=["query_id", "query", "description", "tag", "judgments"])


def _cell(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def save_query_edits(store: JudgmentStore, edited: pd.DataFrame) -> str:
    """Apply the query editor's changes: new rows, changed texts, descriptions or tags,
    deleted rows.

    Returns:
        What was changed, in words.
    """
    before = store.queries
    kept: set[str] = set()
    added = changed = 0
    for row in edited.to_dict("records"):
        text, description, tag, query_id = (
            _cell(row.get(column)) for column in ("query", "description", "tag", "query_id")
        )
        if not text:
            if query_id:
                kept.add(query_id)
            continue
        if not query_id:
            query_id = query_id_for(store, text)
            added += 1
        elif (
            before[query_id].text,
            before[query_id].description or "",
            before[query_id].tag or "",
        ) == (text, description, tag):
            kept.add(query_id)
            continue
        else:
            changed += 1
        store.add_query(query_id, text, tag or None, description or None)
        kept.add(query_id)
    removed = [q for q in before if q not in kept]
    for query_id in removed:
        store.remove_query(query_id)
    return f"Saved: {added} added, {changed} changed, {len(removed)} removed."


def judgments_table(store: JudgmentStore, collection: Collection) -> pd.DataFrame:
    """The set's judgments with query texts and document titles, for editing."""
    queries = store.queries
    rows = [
        {
            "query_id": j.query_id,
            "query": queries[j.query_id].text if j.query_id in queries else "",
            "doc_id": j.doc_id,
            "grade": j.grade,
            "title": collection.titles.get(j.doc_id, "(not in this collection)"),
            "judge": j.judge,
            "judged_at": j.judged_at,
        }
        for j in sorted(store.judgments(), key=lambda j: (j.query_id, -j.grade, j.doc_id))
    ]
    columns = ["query_id", "query", "doc_id", "grade", "title", "judge", "judged_at"]
    return pd.DataFrame(rows, columns=columns)


def save_judgment_edits(store: JudgmentStore, edited: pd.DataFrame) -> str:
    """Apply the judgment editor's changes: new grades and deleted rows (a row is one judge's
    grade: a change or a deletion touches that judge's grade only).

    Returns:
        What was changed, in words.
    """
    before = {(j.query_id, j.doc_id, j.judge): j.grade for j in store.judgments()}
    seen: set[tuple[str, str, str]] = set()
    changed = 0
    for row in edited.to_dict("records"):
        key = (_cell(row.get("query_id")), _cell(row.get("doc_id")), _raw(row.get("judge")))
        if key not in before:
            continue
        seen.add(key)
        grade = int(row["grade"])
        if grade != before[key]:
            store.judge(key[0], key[1], grade, judge=key[2])
            changed += 1
    removed = [key for key in before if key not in seen]
    for query_id, doc_id, judge in removed:
        store.remove_judgment(query_id, doc_id, judge)
    return f"Saved: {changed} grades changed, {len(removed)} judgments removed."


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else ""
