"""Concurrency: searches in many threads at once answer exactly as the same searches one by one.

The app serves every session from one thread each, all sharing the cached collection and the
model, so a collection must be safe to search from many threads with different settings at
once (``nprobe``, ``ef_search``, BM25 engines and parameters built lazily), while another
collection is being built, and while the same collection is being rebuilt and reopened.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import search_core.collection as collection_module
from search_core.collection import (
    Collection,
    build_collection,
    list_collections,
    open_collection,
    read_manifest,
)
from search_core.evaluation import load_queries
from search_core.ingest import IngestReport
from search_core.search import search
from search_core.types import Document
from search_core.vector_index import build_vector_index
from tests.conftest import SAMPLE_DATA
from tests.fake_embedder import FakeEmbedder
from tests.test_crash_safety import check_collection, generation_report

Job = tuple[str, str, dict[str, Any]]


class RememberedQueries:
    """The collection's model, with each query's vector remembered after its first embedding.

    The threaded runs then spend their time in the search itself, not in the model;
    `test_the_model_embeds_queries_from_many_threads_as_from_one` covers the model.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._vectors: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_query(self, text: str) -> Any:
        with self._lock:
            vector = self._vectors.get(text)
        if vector is None:
            vector = self._inner.embed_query(text)
            with self._lock:
                self._vectors[text] = vector
        return vector


def with_index(collection: Collection, kind: str, embedder: Any = None) -> Collection:
    """The same collection searched through another kind of vector index (and model wrapper)."""
    return Collection(
        collection.name,
        collection.folder,
        collection.manifest,
        collection.documents,
        collection.chunks,
        collection.embeddings,
        build_vector_index(collection.embeddings, kind),
        collection.lexical,
        embedder or collection._embedder,
    )


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return list(load_queries(SAMPLE_DATA / "queries.jsonl").queries.values())[:24]


def answer(collection: Collection, job: Job) -> list[tuple[int, float]]:
    query, mode, options = job
    hits = search(collection, query, mode=mode, k=10, candidates=10, threshold=0.0, **options)
    return [(h.chunk_id, round(h.score, 5)) for h in hits.hits]


def jobs_for(
    queries: list[str], modes: tuple[str, ...], settings: list[dict[str, Any]]
) -> list[Job]:
    return [(query, mode, setting) for query in queries for mode in modes for setting in settings]


CASES: dict[str, tuple[str, tuple[str, ...], list[dict[str, Any]]]] = {
    "ivf-nprobe": ("ivf", ("vector", "hybrid"), [{"nprobe": n} for n in (1, 2, 4, 64)]),
    "hnsw-ef_search": ("hnsw", ("vector", "hybrid"), [{"ef_search": n} for n in (10, 40, 400)]),
    "bm25-engines": (
        "flat",
        ("bm25",),
        [{"bm25_engine": "okapi-reference"}, {"bm25_k1": 0.9, "bm25_b": 0.4}, {"bm25_k1": 2.0}, {}],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_threads_with_different_settings_answer_as_one_at_a_time(
    sample_collection: Collection, queries: list[str], case: str
) -> None:
    kind, modes, settings = CASES[case]
    embedder = RememberedQueries(sample_collection.embedder)
    collection = with_index(sample_collection, kind, embedder)
    jobs = jobs_for(queries if modes == ("bm25",) else queries[:12], modes, settings)
    sequential = [answer(collection, job) for job in jobs]
    # Fresh lazily built BM25 engines, so that threads race to build them too.
    collection = with_index(sample_collection, kind, embedder)
    order = list(range(len(jobs)))
    random.Random(3).shuffle(order)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(lambda i: answer(collection, jobs[i]), order)
        threaded = dict(zip(order, results, strict=True))
    assert [threaded[i] for i in range(len(jobs))] == sequential
    # The settings must change some answers, or a race between them could not show.
    by_setting = [
        [sequential[i] for i, job in enumerate(jobs) if job[2] == setting] for setting in settings
    ]
    assert by_setting[0] != by_setting[-1]


def test_the_model_embeds_queries_from_many_threads_as_from_one(
    embedder, queries: list[str]
) -> None:
    texts = queries[:16]
    sequential = [embedder.embed_query(text) for text in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(embedder.embed_query, texts))
    for one, many in zip(sequential, threaded, strict=True):
        assert many.tobytes() == one.tobytes()


def test_building_one_collection_while_another_is_searched(
    sample_collection: Collection, queries: list[str], embedder, tmp_path: Path
) -> None:
    collection = with_index(sample_collection, "ivf")
    jobs = jobs_for(queries[:4], ("vector", "hybrid", "bm25"), [{"nprobe": 2}])
    expected = [answer(collection, job) for job in jobs]
    stop = threading.Event()
    rounds: list[int] = []
    failures: list[BaseException] = []

    def keep_searching() -> None:
        count = 0
        try:
            while not stop.is_set():
                for job, want in zip(jobs, expected, strict=True):
                    assert answer(collection, job) == want
                count += 1
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        rounds.append(count)

    searchers = [threading.Thread(target=keep_searching) for _ in range(2)]
    for thread in searchers:
        thread.start()
    try:
        documents = [
            Document(f"n{i}", f"New note {i}: the courier lost parcel {5000 + i} in transit.")
            for i in range(12)
        ]
        built = build_collection(
            "notes", IngestReport(tuple(documents), 0, (), 1, ()), home=tmp_path, embedder=embedder
        )
    finally:
        stop.set()
        for thread in searchers:
            thread.join()
    assert not failures, failures[0]
    assert all(count >= 1 for count in rounds)
    reopened = open_collection("notes", tmp_path, embedder=embedder)
    [top] = search(reopened, "parcel 5007", mode="hybrid", k=1).hits
    assert top.doc_id == "n7"
    assert len(built.chunks) == len(reopened.chunks) == 12


def test_open_and_list_while_the_same_collection_is_rebuilt(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    build_collection("busy", generation_report(0), home=tmp_path, embedder=embedder)
    stop = threading.Event()
    counts = {"open": 0, "list": 0}
    failures: list[BaseException] = []

    def reader(kind: str) -> None:
        try:
            while not stop.is_set():
                if kind == "open":
                    opened = open_collection("busy", tmp_path, embedder=embedder)
                    assert len(opened.chunks) == opened.vector_index.ntotal
                else:
                    assert [info.name for info in list_collections(tmp_path)] == ["busy"]
                counts[kind] += 1
        except BaseException as error:
            failures.append(error)

    readers = [threading.Thread(target=reader, args=(kind,)) for kind in ("open", "list")]
    for thread in readers:
        thread.start()
    try:
        for generation in range(1, 16):
            build_collection(
                "busy", generation_report(generation), home=tmp_path, embedder=embedder
            )
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not failures, failures[0]
    assert counts["open"] > 0 and counts["list"] > 0
    assert len(open_collection("busy", tmp_path, embedder=embedder).documents) == 2 + 15 % 4


def test_a_rebuild_between_reading_the_pointer_and_the_manifest_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a reader loses when a rebuild swaps versions between its two reads, forced.

    The old version folder is gone when the reader gets to its manifest: the reader must follow
    the new pointer, not report a damaged collection (nor, in a listing, hide it).
    """
    embedder = FakeEmbedder()
    home = tmp_path / "collections"
    build_collection("crash", generation_report(1), home=home, embedder=embedder)
    real_read_verified = collection_module.read_verified
    rebuilds: list[Collection] = []

    def rebuild_first(path: Path, expected: str) -> bytes:
        if path.name == "manifest.json" and not rebuilds:
            rebuilds.append(
                build_collection("crash", generation_report(2), home=home, embedder=embedder)
            )
        return real_read_verified(path, expected)

    monkeypatch.setattr(collection_module, "read_verified", rebuild_first)
    folder, manifest = read_manifest("crash", home)
    assert folder == rebuilds[0].folder and manifest["counts"]["documents"] == 4
    rebuilds.clear()
    assert [info.name for info in list_collections(home)] == ["crash"]
    rebuilds.clear()
    assert check_collection(home, embedder) == 2
