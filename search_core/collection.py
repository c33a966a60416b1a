"""Named collections: build, save, open, list and delete, crash-safe and checksummed.

On disk a collection is a folder under the collections home::

    NAME/CURRENT                 {"version": "v-...", "manifest_sha256": "...",
                                  "pointer_sha256": "..."}, swapped atomically
    NAME/v-<time>-<random>/      one complete version
        manifest.json            settings, counts, model fingerprint, sha256 of every other file
        documents.parquet        documents with their metadata
        chunks.parquet           chunks with their document, position and character span
        embeddings.npy           normalized float32 vectors, one row per chunk
        vector.faiss             the FAISS index (handed to FAISS only after its checksum matches)
        bm25_*.npy, bm25_*.json  the BM25 index (numpy and JSON, no pickle)
        probes.json, probes.npy  probe sentences and their vectors, for the drift check

A build writes a new version into a staging folder, renames it into place and only then swaps
``CURRENT``; until the swap, the previous version keeps answering, and a crash at any moment
leaves either the old or the new version visible, never a half-written one.

``CURRENT`` carries the sha256 of the manifest it points to and one of its own (``pointer_sha256``,
over its other fields); pointers written by the first release have no checksum of their own and
are read as they are (their manifest checksum still verifies what they point to), never
rewritten by a reader: the next build writes the new form. Opening reads only plain files
directly inside the version folder, each of the size and sha256 its manifest records (see
:mod:`.storage`). A build or a delete refuses a collection folder that is a symbolic link, so
neither changes anything outside the collections home.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .analysis import ENGLISH, Analyzer, check_language, choose_analyzer
from .chunking import ChunkingConfig, indexed_text
from .embedding import (
    Embedder,
    EmbeddingCache,
    embedding_backend,
    manifest_backend,
    manifest_embedder,
    model_fingerprint,
    resolve_model,
    shared_embedder,
    text_sha256,
)
from .errors import CollectionError, FingerprintMismatchError, InputError, IntegrityError
from .filters import Filters
from .filters import chunk_mask as filter_mask
from .lexical import ARRAY_FILES as BM25_ARRAY_FILES
from .lexical import JSON_FILES as BM25_JSON_FILES
from .lexical import Bm25sBuilder, Bm25sIndex, LexicalIndex, build_lexical_index
from .pipeline import BatchEngine, EmbeddedBatch, document_batches, embed_batch
from .rows import Rows
from .settings import (
    DEFAULT_BACKEND,
    DEFAULT_INDEX_KIND,
    MODEL_LANGUAGES,
    cache_folder,
    collections_home,
)
from .storage import (
    atomic_write,
    fsync_dir,
    json_bytes,
    json_load,
    map_member,
    npy_bytes,
    npy_load,
    read_member,
    read_small,
    read_verified,
    sha256_bytes,
    unwritable_reason,
    write_files,
)
from .telemetry import REFERENCE_KEY, reference_record
from .types import Chunk, Document, PageSpan
from .vector_index import INDEX_PARAM_RANGES, VectorIndex, build_vector_index, check_index_param
from .writer import (
    CHUNKS_FILE,
    CHUNKS_SCHEMA,
    DOCUMENTS_FILE,
    DOCUMENTS_SCHEMA,
    EMBEDDINGS_FILE,
    TEXTS_FILE,
    CollectionWriter,
    ParquetColumn,
    record_file,
    text_batches,
)

if TYPE_CHECKING:
    # ingest is imported when a build reads its source: PDF reading loads pypdf, fontTools and
    # PIL (half a second), which opening, listing and searching collections do not need.
    from .ingest import FieldMap, IngestReport

FORMAT_VERSION = 2
"""The format a build writes. Version 2 (streaming builds) stores a flat index without its own
copy of the vectors, which an app reading only version 1 could not search."""
READABLE_FORMATS = frozenset({1, FORMAT_VERSION})
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
POINTER_CHECKSUM = "pointer_sha256"
_LEGACY_POINTER_KEYS = frozenset({"version", "manifest_sha256"})  # the first release's CURRENT
_POINTER_LIMIT = 4096  # bytes; a pointer holds a version name and two checksums
SKIPPED_KEPT = 200
"""Skipped source files the manifest lists by name (the count covers them all)."""
# fullmatch only: "$" would also match before a final newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

STREAMED_FILES = (DOCUMENTS_FILE, CHUNKS_FILE, EMBEDDINGS_FILE)
"""Files a build writes batch by batch (their checksums are read back by streaming)."""

BuildProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``, stage a key of :data:`BUILD_STAGES`."""

BUILD_STAGES: dict[str, str] = {
    "model": "Loading the embedding model",
    "embed": "Reading, chunking and embedding",
    "index": "Building the indexes",
    "save": "Saving",
}
"""A build's stages in the order they run, each with what it is doing in words.

Every stage is reported as ``(stage, 0, total)`` before its work starts, so whoever shows
the progress can name the step at once, and then as work is done. ``embed`` counts the
bytes of the source read (characters, for documents already read), the only total known
before a streaming build has read everything."""

PROBE_SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Quarterly revenue grew by twelve percent compared with last year.",
    "The patient was prescribed antibiotics for a bacterial infection.",
    "Install the update and restart the computer.",
    "Either party may terminate this agreement with thirty days written notice.",
    "The engine makes a knocking noise when accelerating uphill.",
    "A critical vulnerability allows remote code execution.",
    "Refunds are issued to the original payment method within five business days.",
    "Photosynthesis converts light energy into chemical energy.",
    "The train to Berlin leaves at half past nine.",
    "Mix the flour and butter until the dough is smooth.",
)
"""Fixed sentences embedded at build time, so model drift shows even on a tiny corpus."""

PROBE_CHUNKS = 52
"""Chunks of the collection itself added to the probes (a seeded sample)."""


def validate_name(name: str) -> str:
    """Check a collection name: letters, digits, ``_ . -``, at most 64, no path tricks.

    Raises:
        ValueError: the name could escape the collections folder or is not portable.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return name


@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides how a collection is built.

    Attributes:
        chunking: chunking method and sizes.
        index_kind: ``flat``, ``ivf``, ``hnsw`` or ``ivfpq``.
        index_params: parameters of the index kind (nlist, nprobe, M, ...); defaults by size.
        model: None for the bundled model, or a local sentence-transformers folder.
        backend: the embedding backend (a key of ``EMBEDDING_BACKENDS``); part of the
            fingerprint, so the collection is always searched with the same one.
        fields: which columns or fields hold the text, title, id and metadata.
        bm25_k1: BM25 term-frequency saturation.
        bm25_b: BM25 length normalization.
        language: the BM25 analysis (stemmer, stopwords, tokenizer): ``"auto"`` detects the
            corpus's language, ``"none"`` neither stems nor drops stopwords, an ISO 639-1
            code (``"de"``) names it; see :mod:`.analysis`.
    """

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    index_kind: str = DEFAULT_INDEX_KIND
    index_params: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    backend: str = DEFAULT_BACKEND
    fields: FieldMap | None = None
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    language: str = "auto"

    def __post_init__(self) -> None:
        embedding_backend(self.backend)  # ValueError naming the valid backends
        check_language(self.language)  # ValueError naming the valid languages
        # checked now, not after reading and embedding the whole source
        for name, value in self.index_params.items():
            if name not in INDEX_PARAM_RANGES:
                valid = ", ".join(INDEX_PARAM_RANGES)
                raise ValueError(f"unknown index parameter {name!r}; valid: {valid}")
            check_index_param(name, value)


@dataclass(frozen=True)
class CollectionInfo:
    """A line of ``search-explorer list``."""

    name: str
    created_at: str
    documents: int
    chunks: int
    index_kind: str
    model: str
    fingerprint: str
    source: str
    backend: str = "torch"


MAPPED_FILES = frozenset({EMBEDDINGS_FILE, *BM25_ARRAY_FILES})
"""Files an opened collection maps from disk instead of reading: its vectors (float32, the
largest file) and the BM25 index's arrays are paged in as searches use them, so opening
never holds them in memory."""

KEPT_MASKS = 32
"""Filter masks an opened collection keeps (:meth:`Collection.chunk_mask`)."""


def _column(items: Sequence[Any], name: str) -> list[Any]:
    """One field of every document or chunk: read from the table, or from each object."""
    if isinstance(items, Rows):
        return items.column(name)
    return [getattr(item, name) for item in items]


class Collection:
    """An opened collection: documents, chunks, vectors and both indexes.

    Documents and chunks are :class:`~.rows.Rows` over Arrow tables (each object made when
    it is asked for), the vectors are mapped from disk.

    Use :func:`open_collection` or :func:`build_collection` to get one; search it with
    :func:`search_core.search.search`.
    """

    def __init__(
        self,
        name: str,
        folder: Path,
        manifest: dict[str, Any],
        documents: Sequence[Document],
        chunks: Sequence[Chunk],
        embeddings: np.ndarray,
        vector_index: VectorIndex,
        lexical: Bm25sIndex,
        embedder: Embedder | None,
    ) -> None:
        self.name = name
        self.folder = folder
        self.manifest = manifest
        self.documents = documents
        self.chunks = chunks
        self.embeddings = embeddings
        self.vector_index = vector_index
        self.lexical = lexical
        self._embedder = embedder
        doc_ids = _column(documents, "doc_id")
        self.doc_index = dict(zip(doc_ids, range(len(doc_ids)), strict=True))
        self.chunk_doc_index = np.fromiter(
            (self.doc_index[doc_id] for doc_id in _column(chunks, "doc_id")),
            dtype=np.int64,
            count=len(chunks),
        )
        self.titles = dict(zip(doc_ids, _column(documents, "title"), strict=True))
        self._engines: dict[tuple[str, float, float], LexicalIndex] = {}
        self._masks: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def analyzer(self) -> Analyzer:
        """The BM25 analysis of documents and queries (from the manifest; English before)."""
        return self.lexical.analyzer

    @property
    def model_reads_language(self) -> bool:
        """Whether the embedding model was trained on the collection's language.

        Known models list their languages in :data:`~search_core.settings.MODEL_LANGUAGES`;
        another model, or a collection analyzed with no language, counts as read.
        """
        languages = MODEL_LANGUAGES.get(str(self.manifest["model"]["name"]))
        language = self.analyzer.language
        return languages is None or language == "none" or language in languages

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the model the collection was built with."""
        return str(self.manifest["model"]["fingerprint"])

    @property
    def embedder(self) -> Embedder:
        """The embedding model, checked against the stored fingerprint."""
        if self._embedder is None:
            self._embedder = manifest_embedder(self.manifest["model"])
        if self._embedder.fingerprint != self.fingerprint:
            raise FingerprintMismatchError(self.name, self.fingerprint, self._embedder.fingerprint)
        return self._embedder

    def lexical_engine(
        self, engine: str = "bm25s", k1: float | None = None, b: float | None = None
    ) -> LexicalIndex:
        """The BM25 index of one engine and parameters; the stored one when they match.

        Other engines or parameters are built in memory on first use and kept; every one
        analyzes texts with the collection's :attr:`analyzer`.
        """
        params = self.manifest["bm25"]
        k1 = float(params["k1"] if k1 is None else k1)
        b = float(params["b"] if b is None else b)
        if engine == "bm25s" and k1 == params["k1"] and b == params["b"]:
            return self.lexical
        key = (engine, k1, b)
        with self._lock:
            if key not in self._engines:
                self._engines[key] = build_lexical_index(
                    self.indexed_texts(), engine, k1=k1, b=b, analyzer=self.analyzer
                )
            return self._engines[key]

    @property
    def vectors_mapped(self) -> bool:
        """Whether the vectors are mapped from the collection's file (an opened collection)
        rather than held in memory (one just built)."""
        base: Any = self.embeddings
        while base is not None:
            if isinstance(base, np.memmap):
                return True
            base = getattr(base, "base", None)
        return False

    def chunk_mask(self, filters: Filters | None) -> np.ndarray | None:
        """The chunks whose document passes metadata ``filters`` (None: no filter at all).

        A query without filters reads no document. A filter's mask is worked out over the
        documents once and kept (the last :data:`KEPT_MASKS` filters), so a run of many
        queries with one filter, or a person searching under it, does not go over every
        document's metadata in Python for each query. The mask is read-only.

        Raises:
            ValueError: an invalid filter, or one on a field no document has
                (:func:`search_core.filters.chunk_mask`).
        """
        if not filters:
            return None
        key = json.dumps(filters, sort_keys=True, default=repr)
        with self._lock:
            kept = self._masks.pop(key, None)
            if kept is None:
                kept = filter_mask(filters, self.document_metadata(), self.chunk_doc_index)
                assert kept is not None
                kept.flags.writeable = False
            self._masks[key] = kept  # the most recent last
            while len(self._masks) > KEPT_MASKS:
                self._masks.pop(next(iter(self._masks)))
            return kept

    def document_metadata(self) -> list[dict[str, Any]]:
        """Every document's metadata, in document order (read from its column alone, without
        making every document with its text)."""
        if isinstance(self.documents, Rows):
            return [json.loads(m) for m in self.documents.column("metadata")]
        return [dict(d.metadata) for d in self.documents]

    def metadata_at(self, position: int) -> dict[str, Any]:
        """The metadata of the document at ``position`` (its cell alone, not its text)."""
        if isinstance(self.documents, Rows):
            return dict(json.loads(self.documents.value(position, "metadata")))
        return dict(self.documents[position].metadata)

    def chunk_texts(self) -> list[str]:
        """Every chunk's text (without its title), in chunk order."""
        return _column(self.chunks, "text")

    def indexed_texts(self) -> list[str]:
        """The text of every chunk as embedded and indexed (title + chunk text)."""
        shortened = self.manifest.get("index_titles", {})
        titles = {**self.titles, **shortened}
        doc_ids = _column(self.chunks, "doc_id")
        return [
            indexed_text(titles.get(doc_id, ""), text)
            for doc_id, text in zip(doc_ids, self.chunk_texts(), strict=True)
        ]

    def document(self, doc_id: str) -> Document:
        """A document by id.

        Raises:
            KeyError: no such document.
        """
        return self.documents[self.doc_index[doc_id]]

    def info(self) -> CollectionInfo:
        """Summary for listings."""
        return _info(self.name, self.manifest)


# --------------------------------------------------------------------------- paths


def collection_folder(name: str, home: str | Path | None = None) -> Path:
    """Folder of a collection (its versions and CURRENT pointer)."""
    return collections_home(home) / validate_name(name)


def embedding_cache(home: str | Path | None = None) -> EmbeddingCache:
    """The shared on-disk embedding cache of a collections home."""
    return EmbeddingCache(cache_folder(home) / "embeddings.sqlite")


def check_can_build(name: str, home: str | Path | None = None) -> None:
    """Refuse, before any work, a build whose result could not be saved.

    Raises:
        ValueError: invalid name.
        CollectionError: the collection's folder is a symbolic link (a build would change
            files outside the home), or it (or the home, while the collection does not exist
            yet) cannot be written; the message names the folder.
    """
    root = collection_folder(name, home)
    _refuse_link(root, "build")
    problem = unwritable_reason(root)
    if problem is not None:
        raise CollectionError(
            f"cannot build collection {name!r}: {problem}; "
            "choose a collections home that can be written (--home or $SEARCH_EXPLORER_HOME)"
        )


def _refuse_link(root: Path, action: str) -> None:
    if root.is_symlink():
        raise CollectionError(
            f"{root} is a symbolic link (to {os.readlink(root)}), not a collection folder of the "
            f"home; {action} changes nothing outside the home: remove the link itself, or work "
            "on the folder it points to as a home of its own"
        )


def _open_build_cache(home: str | Path | None) -> tuple[EmbeddingCache, dict[str, str]]:
    """The on-disk embedding cache, or one in memory (with why) when that cannot be written.

    A cache only saves time, so a folder that cannot be written costs a build its reuse of
    earlier vectors, never the build itself.
    """
    folder = cache_folder(home)
    problem = unwritable_reason(folder)
    if problem is None:
        try:
            return embedding_cache(home), {}
        except (OSError, sqlite3.Error) as exc:
            problem = f"{folder / 'embeddings.sqlite'} cannot be used ({exc})"
    # ":memory:" is SQLite's name for a private database that lives and dies with the build.
    note = {"folder": str(folder), "problem": problem, "used": "in memory for this build only"}
    return EmbeddingCache(":memory:"), note


# --------------------------------------------------------------------------- build


def build_collection(
    name: str,
    source: str | Path | IngestReport,
    options: BuildOptions | None = None,
    *,
    home: str | Path | None = None,
    embedder: Embedder | None = None,
    progress: BuildProgress | None = None,
    engine: BatchEngine | None = None,
) -> Collection:
    """Read, chunk, embed and index a source, and save it as collection ``name``.

    The build streams: documents are read, chunked, embedded and written batch by batch into
    a staging folder (:mod:`.writer`), so it never holds the corpus, all its vectors or all
    its terms in memory. The indexes are then made from the written files, and the staging
    folder becomes the collection's new version in one rename. An existing collection of
    that name keeps answering until then; if anything fails, or the process is killed, the
    existing collection is left untouched and the staging folder is removed (by the next
    build, after a kill).

    Args:
        name: the collection name (see :func:`validate_name`).
        source: a file, folder, ``.zip`` or BEIR folder, or documents already read.
        options: build settings.
        home: the collections home (default ``$SEARCH_EXPLORER_HOME`` or ``./collections``).
        embedder: a loaded model to use instead of ``options.model``.
        progress: progress callback.
        engine: what chunks and embeds the batches of documents (default: this process,
            with the embedding cache); a Ray cluster's, from :mod:`.distributed`.

    Returns:
        The new collection, opened.

    Raises:
        InputError: the source cannot be read or holds no document with text.
        ValueError: invalid name or settings.
        CollectionError: the collection could not be saved (checked before any work: see
            :func:`check_can_build`).
    """
    check_can_build(name, home)
    options = options or BuildOptions()
    build = _Build(name, options, home, progress)
    embedder = build.load_model(embedder)
    root, version, staging, work = _new_staging(name, home)
    try:
        manifest = build.run(source, embedder, staging, work, engine)
        folder = _publish(root, version, staging, manifest)
        build.report("save", 1, 1)  # the save stage ends once the new version is current
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _remove_old_versions(root, keep=version)
    collection = _load(name, folder, manifest, embedder, check_fingerprint=False)
    manifest["build_seconds"]["total"] = round(time.perf_counter() - build.started, 3)
    return collection


class _Build:
    """One build's settings, progress and timings (see :func:`build_collection`)."""

    def __init__(
        self,
        name: str,
        options: BuildOptions,
        home: str | Path | None,
        progress: BuildProgress | None,
    ) -> None:
        self.name = name
        self.options = options
        self.home = home
        self.progress = progress
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def load_model(self, embedder: Embedder | None) -> Embedder:
        self.report("model", 0, 1)
        tick = time.perf_counter()
        embedder = embedder or shared_embedder(self.options.model, self.options.backend)
        # A step of its own, before reading: the first time, an ONNX backend exports the model
        # (up to a minute); otherwise loading takes a second, and chunking uses its tokenizer.
        embedder.load()
        self.report("model", 1, 1)
        self.seconds["model"] = time.perf_counter() - tick
        return embedder

    def run(
        self,
        source: str | Path | IngestReport,
        embedder: Embedder,
        staging: Path,
        work: Path,
        engine: BatchEngine | None,
    ) -> dict[str, Any]:
        """Write every file of the new version into ``staging``; return its manifest (the
        save stage is reported started; it ends when the caller has published the version)."""
        from .ingest import IngestReport, stream_source

        options = self.options
        tick = time.perf_counter()
        given: IngestReport | None = None
        if isinstance(source, IngestReport):
            given = source
            source_label = "documents"
            documents: Iterable[Document] = given.documents
            total = sum(len(d.text) for d in given.documents)
            stream = None
        else:
            source_label = str(source)
            stream = stream_source(source, options.fields)
            documents, total = stream, stream.total_bytes()
        writer = CollectionWriter(staging, work, embedder.dim)
        cache, cache_note = _open_build_cache(self.home)
        try:
            pack_note, pack_keys = _use_vector_pack(source, embedder, cache)
            pack_used = 0

            def done() -> int:
                return stream.bytes_read if stream is not None else writer.characters

            def local(batches: Iterator[list[Document]]) -> Iterator[EmbeddedBatch]:
                return (embed_batch(b, embedder, options.chunking, cache=cache) for b in batches)

            self.report("embed", 0, total)
            try:
                for batch in (engine or local)(document_batches(documents)):
                    writer.add(batch)
                    if pack_keys and engine is None:  # another engine has no access to the cache
                        pack_used += sum(text_sha256(t) in pack_keys for t in batch.texts)
                    self.report("embed", min(done(), total), total)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            ingest = stream.report() if stream is not None else given
            assert ingest is not None
            if not writer.documents:
                raise InputError(source_label, "no document with text was found")
            if not writer.chunks:
                raise InputError(source_label, "the documents hold no text the model can tokenize")
            if pack_note:
                pack_note = {**pack_note, "used": pack_used}
            self.seconds["embed"] = time.perf_counter() - tick

            tick = time.perf_counter()
            self.report("index", 0, 3)
            embeddings = np.load(staging / EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
            probe_texts = _probe_texts(ParquetColumn(work / TEXTS_FILE, "text"))
            probe_vectors = embedder.embed(probe_texts, cache=cache)
            # what top-result similarities look like for this corpus, for the health check
            chunk_texts = ParquetColumn(staging / CHUNKS_FILE, "text")
            reference = reference_record(chunk_texts, embedder.embed_queries, embeddings)
        finally:
            cache.close()
        self.report("index", 1, 3)
        vector_index = build_vector_index(embeddings, options.index_kind, **options.index_params)
        files = {"vector.faiss": vector_index.to_bytes()}
        index_description = vector_index.describe()
        del vector_index
        self.report("index", 2, 3)
        analyzer, detection = choose_analyzer(
            ParquetColumn(staging / DOCUMENTS_FILE, "text"), options.language
        )
        bm25_work = work / "bm25"
        bm25_work.mkdir()
        lexical = Bm25sBuilder(analyzer, k1=options.bm25_k1, b=options.bm25_b, work_dir=bm25_work)
        for texts_batch in text_batches(work / TEXTS_FILE):
            lexical.add(texts_batch)
        bm25_files = lexical.finish(staging)
        self.report("index", 3, 3)
        self.seconds["index"] = time.perf_counter() - tick

        self.report("save", 0, 1)
        files.update(
            {"probes.json": json_bytes(probe_texts), "probes.npy": npy_bytes(probe_vectors)}
        )
        recorded = {name: record_file(staging / name) for name in (*STREAMED_FILES, *bm25_files)}
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {
                "path": source_label,
                "fields": _fields_dict(options.fields),
                "files_read": ingest.files_read,
                # what the source held that was left out, by name and reason (the first ones)
                "files_skipped": [list(entry) for entry in ingest.files_skipped[:SKIPPED_KEPT]],
            },
            "model": {
                "name": embedder.name,
                "fingerprint": embedder.fingerprint,
                "backend": embedder.backend,
                "dim": int(embedder.dim),
                "max_seq_length": embedder.max_seq_length,
                "normalized": True,
            },
            REFERENCE_KEY: reference,
            **({"vector_pack": pack_note} if pack_note else {}),
            **({"embedding_cache": cache_note} if cache_note else {}),
            "chunking": options.chunking.to_dict(),
            "index": index_description,
            "bm25": {"engine": "bm25s", "k1": options.bm25_k1, "b": options.bm25_b},
            "analyzer": analyzer.to_dict(),
            **({"language_detection": detection.to_dict()} if detection else {}),
            "counts": {
                "documents": writer.documents,
                "chunks": writer.chunks,
                "skipped_empty": ingest.skipped_empty,
                "files_skipped": len(ingest.files_skipped),
                "pages_without_text": len(ingest.pages_without_text),
            },
            # titles are cut to what fits in a chunk; only the few that were cut are recorded
            "index_titles": writer.cut_titles,
            "build_seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }
        manifest["files"] = {**recorded, **write_files(staging, files)}
        return manifest


def _use_vector_pack(
    source: str | Path | IngestReport, embedder: Embedder, cache: EmbeddingCache
) -> tuple[dict[str, Any], frozenset[str]]:
    """Put the vectors a corpus folder carries (:mod:`.vector_pack`) into the embedding cache.

    Returns:
        What the manifest records (the pack file, or why it was not used: made by another
        model, damaged; empty when the source carries no pack), and the text keys of the
        vectors put in the cache (the build counts the chunks that used one).
    """
    from .ingest import IngestReport
    from .vector_pack import pack_files, read_vector_pack

    if isinstance(source, IngestReport) or not Path(source).is_dir():
        return {}, frozenset()
    file = str(pack_files(source, embedder.backend)[0])
    try:
        pack = read_vector_pack(source, embedder.backend)
    except InputError as exc:
        return {"file": file, "used": 0, "problem": str(exc)}, frozenset()
    if pack is None:
        return {}, frozenset()
    if pack.fingerprint != embedder.fingerprint:
        problem = f"made by another model (fingerprint {pack.fingerprint[:12]})"
        return {"file": file, "used": 0, "problem": problem}, frozenset()
    cache.put_many(embedder.fingerprint, pack.by_key())
    return {"file": file}, frozenset(pack.keys)


def _fields_dict(fields: FieldMap | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    return {
        "text": fields.text,
        "title": fields.title,
        "id": fields.id,
        "metadata": list(fields.metadata) if fields.metadata is not None else None,
        "delimiter": fields.delimiter,
    }


def _probe_texts(texts: Sequence[str]) -> list[str]:
    rng = np.random.default_rng(0)
    picks = rng.choice(len(texts), size=min(PROBE_CHUNKS, len(texts)), replace=False)
    return [*PROBE_SENTENCES, *(texts[i] for i in sorted(picks))]


def _new_staging(name: str, home: str | Path | None) -> tuple[Path, str, Path, Path]:
    """A new version's name, its staging folder and a work folder beside it.

    Both folders start with ``.staging-``: a build that was killed leaves them behind, and
    a later build removes them once they are stale (:func:`_remove_old_versions`).

    Returns:
        (collection folder, version, staging folder, work folder).
    """
    root = collection_folder(name, home)
    root.mkdir(parents=True, exist_ok=True)
    version = f"v-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    staging = root / f".staging-{version}"
    work = root / f".staging-{version}.work"
    staging.mkdir()
    work.mkdir()
    return root, version, staging, work


def _publish(root: Path, version: str, staging: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest, rename the staging folder into place and swap ``CURRENT``."""
    manifest["version"] = version
    manifest_data = json_bytes(manifest)
    atomic_write(staging / MANIFEST_FILE, manifest_data)
    final = root / version
    os.replace(staging, final)
    fsync_dir(root)
    atomic_write(root / CURRENT_FILE, pointer_bytes(version, manifest_data))
    return final


def pointer_bytes(version: str, manifest_data: bytes) -> bytes:
    """The content of ``CURRENT`` naming ``version``: the manifest's sha256 and its own."""
    pointer = {"version": version, "manifest_sha256": sha256_bytes(manifest_data)}
    return json_bytes({**pointer, POINTER_CHECKSUM: sha256_bytes(json_bytes(pointer))})


def _remove_old_versions(root: Path, keep: str) -> None:
    stale_after = time.time() - 6 * 3600
    for child in root.iterdir():
        try:
            info = child.lstat()
        except OSError:
            continue
        # a link is never followed: removing what it points to could reach outside the home
        if not stat.S_ISDIR(info.st_mode) or child.name == keep:
            continue
        old_version = child.name.startswith("v-")
        stale_staging = child.name.startswith(".staging-") and info.st_mtime < stale_after
        if old_version or stale_staging:
            shutil.rmtree(child, ignore_errors=True)


# --------------------------------------------------------------------------- tables


def _read_table(data: bytes, name: str) -> pa.Table:
    try:
        # ParquetFile, not read_table: that goes through pyarrow.dataset, whose import loads
        # pandas (a second on every command that opens a collection).
        return pq.ParquetFile(pa.BufferReader(data)).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IntegrityError(f"{name}: not a readable parquet table ({exc})") from exc


def _document_row(row: dict[str, Any]) -> Document:
    return Document(
        **{
            **row,
            "metadata": json.loads(row["metadata"]),
            "pages": tuple(PageSpan(*p) for p in json.loads(row["pages"])),
        }
    )


def _chunk_row(row: dict[str, Any]) -> Chunk:
    return Chunk(**{**row, "pages": tuple(row["pages"] or ())})


def _rows(
    data: bytes, name: str, make: Callable[[dict[str, Any]], Any], schema: pa.Schema
) -> Rows[Any]:
    table = _read_table(data, name)
    if not set(schema.names) <= set(table.column_names):
        missing = ", ".join(sorted(set(schema.names) - set(table.column_names)))
        raise IntegrityError(f"{name}: columns missing ({missing})")
    return Rows(table.select(schema.names), make)


# --------------------------------------------------------------------------- open


def read_manifest(name: str, home: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Read and verify the manifest of a collection's current version.

    Returns:
        (version folder, manifest).

    Raises:
        CollectionError: no such collection.
        IntegrityError: the pointer or the manifest is damaged.
    """
    root = collection_folder(name, home)
    pointer_path = root / CURRENT_FILE
    for attempt in range(3):
        pointer_data = _read_pointer(name, pointer_path, home)
        try:
            return _read_version_manifest(root, pointer_path, pointer_data)
        except IntegrityError:
            # A rebuild may have swapped CURRENT and removed the version it named between the
            # two reads; only a pointer that did not move means the files are damaged.
            if attempt == 2 or _read_pointer(name, pointer_path, home) == pointer_data:
                raise
    raise AssertionError("unreachable")


def _read_pointer(name: str, pointer_path: Path, home: str | Path | None) -> bytes:
    try:
        return read_small(pointer_path, _POINTER_LIMIT)
    except (FileNotFoundError, NotADirectoryError):
        available = [info.name for info in list_collections(home)]
        raise CollectionError(
            f"no collection named {name!r}"
            + (f"; available: {', '.join(available)}" if available else "")
        ) from None
    except OSError as exc:
        raise IntegrityError(f"{pointer_path}: cannot be read ({exc.strerror or exc})") from exc


def _read_version_manifest(
    root: Path, pointer_path: Path, pointer_data: bytes
) -> tuple[Path, dict[str, Any]]:
    pointer = json_load(pointer_data, str(pointer_path))
    if not isinstance(pointer, dict) or not _NAME.fullmatch(str(pointer.get("version", ""))):
        raise IntegrityError(f"{pointer_path}: damaged pointer to the current version")
    fields = {k: v for k, v in pointer.items() if k != POINTER_CHECKSUM}
    if POINTER_CHECKSUM in pointer:
        if pointer[POINTER_CHECKSUM] != sha256_bytes(json_bytes(fields)):
            raise IntegrityError(
                f"{pointer_path}: checksum mismatch; the pointer to the current version was "
                "changed or damaged after it was written"
            )
    elif set(pointer) != _LEGACY_POINTER_KEYS:  # a damaged key must not pass for the old form
        raise IntegrityError(f"{pointer_path}: damaged pointer to the current version")
    folder = root / str(pointer["version"])
    try:
        is_folder = stat.S_ISDIR(folder.lstat().st_mode)  # a link to a folder is not one
    except OSError as exc:
        raise IntegrityError(f"{folder}: cannot be read ({exc.strerror or exc})") from exc
    if not is_folder:
        raise IntegrityError(f"{folder}: not a plain folder; the pointer is not followed there")
    data = read_verified(folder / MANIFEST_FILE, str(pointer.get("manifest_sha256", "")))
    manifest = json_load(data, str(folder / MANIFEST_FILE))
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_FORMATS:
        raise IntegrityError(
            f"{folder / MANIFEST_FILE}: unsupported format version "
            f"{manifest.get('format_version') if isinstance(manifest, dict) else None}"
        )
    if not isinstance(manifest.get("files"), dict):
        raise IntegrityError(f"{folder / MANIFEST_FILE}: no list of files")
    return folder, manifest


def open_collection(
    name: str,
    home: str | Path | None = None,
    *,
    embedder: Embedder | None = None,
    check_fingerprint: bool = True,
) -> Collection:
    """Open a collection: verify every file's checksum, then load it.

    Args:
        name: the collection name.
        home: the collections home.
        embedder: the model to search with; by default the one named in the manifest.
        check_fingerprint: refuse a model whose fingerprint differs from the stored one.

    Raises:
        CollectionError: no such collection.
        IntegrityError: a file is missing, damaged or inconsistent.
        FingerprintMismatchError: the model differs from the one the collection was built with.
    """
    for attempt in range(3):
        folder, manifest = read_manifest(name, home)
        try:
            return _load(name, folder, manifest, embedder, check_fingerprint)
        except IntegrityError:
            # A concurrent build may have swapped versions between reading CURRENT and the files.
            newer, _ = read_manifest(name, home)
            if newer == folder or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _load(
    name: str,
    folder: Path,
    manifest: dict[str, Any],
    embedder: Embedder | None,
    check_fingerprint: bool,
) -> Collection:
    stored = str(manifest["model"]["fingerprint"])
    if check_fingerprint:
        current = (
            embedder.fingerprint
            if embedder is not None
            else model_fingerprint(
                resolve_model(manifest["model"]["name"])[1],
                manifest_backend(manifest["model"]),
            )
        )
        if current != stored:
            raise FingerprintMismatchError(name, stored, current)
    data, arrays = _verified_files(folder, manifest)
    try:
        documents = _rows(data[DOCUMENTS_FILE], DOCUMENTS_FILE, _document_row, DOCUMENTS_SCHEMA)
        chunks = _rows(data[CHUNKS_FILE], CHUNKS_FILE, _chunk_row, CHUNKS_SCHEMA)
        embeddings = arrays[EMBEDDINGS_FILE]
        try:
            vector_index = VectorIndex.from_bytes(
                data["vector.faiss"], manifest["index"], embeddings
            )
        except ValueError as exc:  # FAISS's message does not name the file
            raise ValueError(f"vector.faiss: {exc}") from exc
        lexical = Bm25sIndex.from_arrays(
            {n: arrays[n] for n in BM25_ARRAY_FILES},
            {n: data[n] for n in BM25_JSON_FILES},
            manifest_analyzer(manifest),
        )
    except KeyError as exc:
        raise IntegrityError(f"{folder}: file {exc} is missing from the manifest") from exc
    except ValueError as exc:
        raise IntegrityError(f"{folder}: {exc}") from exc
    sizes = {
        "chunks": len(chunks),
        "embedding rows": int(embeddings.shape[0]),
        "vectors": int(vector_index.ntotal),
        "BM25 documents": int(lexical.size),
    }
    if len(set(sizes.values())) != 1 or sizes["chunks"] != manifest["counts"]["chunks"]:
        raise IntegrityError(f"{folder}: inconsistent sizes {sizes}")
    return Collection(
        name, folder, manifest, documents, chunks, embeddings, vector_index, lexical, embedder
    )


def _verified_files(
    folder: Path, manifest: dict[str, Any]
) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """Every file the manifest lists, checked against its size and sha256: the small ones
    read, those of :data:`MAPPED_FILES` mapped.

    The checks stream each file through sha256 and run side by side, a thread per core
    (hashing and reading release the GIL): checking is most of the time a large collection
    takes to open.

    Raises:
        IntegrityError: a file is missing, damaged or not what the manifest records (the
            first such file in the manifest's order).
    """
    names = list(manifest["files"])
    workers = max(1, min(len(names), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        futures = {
            name: pool.submit(
                _map_listed if name in MAPPED_FILES else _read_listed, folder, manifest, name
            )
            for name in names
        }
        results: dict[str, Any] = {name: future.result() for name, future in futures.items()}
    data: dict[str, bytes] = {n: v for n, v in results.items() if isinstance(v, bytes)}
    arrays: dict[str, np.ndarray] = {n: v for n, v in results.items() if n in MAPPED_FILES}
    return data, arrays


def manifest_analyzer(manifest: dict[str, Any]) -> Analyzer:
    """The BM25 analyzer a manifest records; English for collections built before analyzers.

    Raises:
        ValueError: the recorded analyzer is not valid.
    """
    if "analyzer" not in manifest:
        return ENGLISH
    return Analyzer.from_dict(manifest["analyzer"])


def _read_listed(folder: Path, manifest: dict[str, Any], name: str) -> bytes:
    """A file the manifest lists: a plain file in ``folder``, of the recorded size and sha256."""
    meta = manifest["files"].get(name)
    if not isinstance(meta, dict):
        raise IntegrityError(f"{folder}: file {name!r} is missing from the manifest")
    return read_member(folder, name, meta.get("sha256"), meta.get("bytes"))


def _map_listed(folder: Path, manifest: dict[str, Any], name: str) -> np.ndarray:
    """A ``.npy`` file the manifest lists, checked, then memory-mapped read-only."""
    meta = manifest["files"].get(name)
    if not isinstance(meta, dict):
        raise IntegrityError(f"{folder}: file {name!r} is missing from the manifest")
    return map_member(folder, name, meta.get("sha256"), meta.get("bytes"))


def load_probes(collection: Collection) -> tuple[list[str], np.ndarray]:
    """The probe texts and the vectors stored for them at build time (checksums verified)."""
    folder, manifest = collection.folder, collection.manifest
    texts = json_load(_read_listed(folder, manifest, "probes.json"), "probes.json")
    vectors = npy_load(_read_listed(folder, manifest, "probes.npy"), "probes.npy")
    return list(texts), vectors


# --------------------------------------------------------------------------- list / delete


def _info(name: str, manifest: dict[str, Any]) -> CollectionInfo:
    return CollectionInfo(
        name=name,
        created_at=str(manifest.get("created_at", "")),
        documents=int(manifest["counts"]["documents"]),
        chunks=int(manifest["counts"]["chunks"]),
        index_kind=str(manifest["index"].get("kind", "")),
        model=str(manifest["model"]["name"]),
        fingerprint=str(manifest["model"]["fingerprint"]),
        source=str(manifest["source"]["path"]),
        backend=manifest_backend(manifest["model"]),
    )


def list_collections(home: str | Path | None = None) -> list[CollectionInfo]:
    """Every complete collection under the home, by name (damaged ones are skipped)."""
    root = collections_home(home)
    if not root.is_dir():
        return []
    infos = []
    for child in sorted(root.iterdir()):
        if not (child / CURRENT_FILE).is_file() or not _NAME.fullmatch(child.name):
            continue
        try:
            _, manifest = read_manifest(child.name, home)
            infos.append(_info(child.name, manifest))
        except (CollectionError, KeyError, TypeError):
            continue
    return infos


def delete_collection(name: str, home: str | Path | None = None) -> None:
    """Delete a collection: the pointer goes first, so it is never seen half-deleted.

    Nothing outside the collections home is touched: a collection folder that is a symbolic
    link is refused, and links inside the folder are removed, never followed.

    Raises:
        CollectionError: no such collection, the folder is a symbolic link, or some of its
            files could not be removed (the collection is gone from listings then).
    """
    root = collection_folder(name, home)
    _refuse_link(root, "delete")
    pointer = root / CURRENT_FILE
    if not pointer.is_file():
        raise CollectionError(f"no collection named {name!r}")
    pointer.unlink()
    fsync_dir(root)
    left: list[str] = []
    # rmtree removes a link inside the folder without following it (its fd-based walk)
    shutil.rmtree(root, onerror=lambda _f, path, exc: left.append(f"{path} ({exc[1]})"))
    if left and root.exists():
        raise CollectionError(
            f"collection {name!r} is deleted, but {len(left)} of its files could not be "
            f"removed, first {left[0]}; remove {root} by hand"
        )
