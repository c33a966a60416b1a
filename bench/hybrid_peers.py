"""Hybrid query latency at 100k chunks: the project against Qdrant Edge, in one run.

Each system answers the same hybrid queries over the same chunks with the same query vectors
(embedded once beforehand with the collection's backend, so embedding is no part of the
time), and returns its top 10:

- the project, ``search_core.search.run_search`` in hybrid mode (k 10, 100 candidates from
  each retriever, exact cosines, identifier match, RRF, threshold 0.25, BM25 floor), on the
  collection opened from disk as a person's search opens it, once with the ``flat`` index
  (exact) and once with ``hnsw`` (M 32, efConstruction 200, efSearch 128);
- Qdrant Edge (``qdrant-edge-py``, Qdrant's engine in-process) built from the same vectors
  and the same indexed texts: HNSW with the same M, ef_construct and ef, plus its payload
  text index with BM25 (word tokenizer, English stopwords, Snowball English, as in
  ``bench/bm25_peers.py``), one query with two prefetches of 100 (nearest vectors, BM25) fused
  by RRF (k 60), limit 10, payload (the text) returned as the project returns it.

The corpus and queries are those of benchmark 5 (``bench/hybrid_latency.py``): 100k passages
recombined from real cranfield and msmarco-5k sentences (a quarter with a ``REF-123456``
identifier), the 268 judged queries and 32 identifier queries. The collections are built in
the work folder (its embedding cache makes a second build skip the 100k embeddings). The
systems take turns on each query, in a rotating order, so a burst of load on the machine hits
them alike; the queries run ``--rounds`` times (3) after 20 warm-up queries.

Each answer is timed on the wall clock and in CPU time of the whole process (``process_time``,
every thread, as Qdrant may search on threads of its own). The machine is shared: on a loaded one
the wall clock swings with the load while the CPU time measures the work. The project's flat
collection is also timed with FAISS on one OpenMP thread (``faiss.omp_set_num_threads(1)``
around each call), the setting a single-query exact scan may want. Besides the latencies the
result gives how far the systems agree: the share of each query's top 10 that the project's
flat search also returns.

Qdrant Edge is not a dependency of the project; run the script from an environment that has
both (``bench/bm25_peers.py`` makes one):

    python -m venv /tmp/peers-venv --system-site-packages
    /tmp/peers-venv/bin/pip install qdrant-edge-py
    nice -n 19 /tmp/peers-venv/bin/python bench/hybrid_peers.py \
        --out bench/results/hybrid_peers.json

``--reuse`` opens the collections and the Qdrant shard a previous run left in the work folder
instead of building them again (building Qdrant's HNSW takes minutes).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # search_core, from any venv

from common import (
    DEFAULT_WORKDIR,
    machine,
    percentiles,
    qdrant_text_index,
    real_queries,
    synthetic_passages,
    timed,
    use_workdir,
    write_result,
)

CANDIDATES = 100
"""Candidates each retriever gives the fusion, in every system."""
K = 10
RRF_K = 60
HNSW = {"M": 32, "ef_construction": 200, "ef_search": 128}
"""The project's HNSW defaults (``search_core.vector_index``), given to Qdrant too."""
WARM_UP = 20

Answer = Callable[[str, np.ndarray], list[int]]
"""A system's hybrid search: (query text, query vector) -> chunk ids, best first."""


def project_collections(
    passages: Sequence[str], home: Path, backend: str, reuse: bool
) -> dict[str, tuple[Any, float | None]]:
    """Build the flat and the hnsw collection, then open each from disk (and its build time).

    With ``reuse``, a collection already in ``home`` is opened as it is (build time None).
    """
    from search_core.collection import BuildOptions, build_collection, open_collection
    from search_core.embedding import Embedder
    from search_core.errors import CollectionError
    from search_core.ingest import IngestReport
    from search_core.types import Document

    documents = tuple(Document(doc_id=f"p{i}", title="", text=t) for i, t in enumerate(passages))
    embedder = Embedder(backend=backend)
    opened = {}
    for kind in ("flat", "hnsw"):
        name = f"peers-{kind}"
        if reuse:
            try:
                opened[kind] = (open_collection(name, home, embedder=embedder), None)
                continue
            except CollectionError:
                pass
        _, seconds = timed(
            lambda kind=kind, name=name: build_collection(
                name,
                IngestReport(documents, 0, (), 1, ()),
                BuildOptions(index_kind=kind),
                home=home,
                embedder=embedder,
            )
        )
        opened[kind] = (open_collection(name, home, embedder=embedder), seconds)
        print(f"project {kind}: built in {seconds:.0f} s", file=sys.stderr, flush=True)
    return opened


def project_search(
    collection: Any, stages: dict[str, list[float]] | None = None, faiss_threads: int = 0
) -> Answer:
    """The project's hybrid search; each answer's stage times (ms) go into ``stages``.

    With ``faiss_threads``, FAISS runs on that many OpenMP threads during each answer.
    """
    import faiss

    from search_core.search import SearchParams, run_search

    params = SearchParams(mode="hybrid", k=K, candidates=CANDIDATES, rrf_k=RRF_K)

    def answer(query: str, vector: np.ndarray) -> list[int]:
        if faiss_threads:
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(faiss_threads)
        try:
            response = run_search(collection, query, params, query_vector=vector)
        finally:
            if faiss_threads:
                faiss.omp_set_num_threads(before)
        if stages is not None:
            timings = response.timings
            stages["vector_ms"].append(timings.vector_ms)
            stages["bm25_ms"].append(timings.bm25_ms)
            stages["fusion_and_hits_ms"].append(timings.fusion_ms)
        return [hit.chunk_id for hit in response.hits]

    return answer


QDRANT_CONFIG = (
    "qdrant-edge-py {version}: dense vectors (cosine, in memory) with HNSW m {M}, "
    "ef_construct {ef_construction}, hnsw_ef {ef_search}; payload text index (tokenizer Word, "
    "lowercase, stopwords English, stemmer Snowball English, scoring on, default Bm25Params); "
    "one QueryRequest: Prefetch(100, Query.Nearest) and Prefetch(100, TextQuery) fused by "
    "Fusion.Rrf(k=60), limit 10, with the payload; segments merged and indexed by "
    "EdgeShard.optimize() before searching"
)


def qdrant_shard(
    folder: Path, vectors: np.ndarray, texts: Sequence[str], reuse: bool
) -> tuple[Any, float | None]:
    """A Qdrant Edge shard holding ``vectors`` and ``texts`` under point ids 0..n-1.

    With ``reuse``, a shard already in ``folder`` holding as many points is loaded instead.
    """
    import qdrant_edge as q

    if reuse and folder.is_dir():
        try:
            shard = q.EdgeShard.load(str(folder))
        except Exception as error:  # whatever the engine raises: build it again
            print(f"qdrant: cannot load {folder} ({error}); building", file=sys.stderr)
        else:
            if shard.info().points_count == len(texts):
                return shard, None
            shard.close()

    def build() -> Any:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        hnsw = q.HnswIndexConfig(
            m=HNSW["M"], ef_construct=HNSW["ef_construction"], full_scan_threshold=10_000
        )
        config = q.EdgeConfig(
            vectors={
                "dense": q.EdgeVectorParams(size=vectors.shape[1], distance=q.Distance.Cosine)
            },
            hnsw_config=hnsw,
        )
        shard = q.EdgeShard.create(str(folder), config)
        shard.update(q.UpdateOperation.create_field_index("text", qdrant_text_index(q)))
        for start in range(0, len(texts), 1000):
            points = [
                q.Point(i, {"dense": vectors[i].tolist()}, {"text": texts[i]})
                for i in range(start, min(start + 1000, len(texts)))
            ]
            shard.update(q.UpdateOperation.upsert_points(points))
        shard.optimize()
        return shard

    shard, seconds = timed(build)
    info = shard.info()
    print(
        f"qdrant: built in {seconds:.0f} s, {info.segments_count} segments, "
        f"{info.points_count} points, {info.indexed_vectors_count} vectors in HNSW",
        file=sys.stderr,
        flush=True,
    )
    return shard, seconds


def qdrant_search(shard: Any) -> Answer:
    import qdrant_edge as q

    params = q.SearchParams(hnsw_ef=HNSW["ef_search"])

    def answer(query: str, vector: np.ndarray) -> list[int]:
        request = q.QueryRequest(
            limit=K,
            prefetches=[
                q.Prefetch(
                    CANDIDATES, q.Query.Nearest(vector.tolist(), using="dense"), params=params
                ),
                q.Prefetch(CANDIDATES, q.TextQuery("text", query)),
            ],
            query=q.Fusion.Rrf(k=RRF_K),
            with_payload=True,
        )
        return [int(point.id) for point in shard.query(request)]

    return answer


def overlap(answers: Sequence[list[int]], reference: Sequence[list[int]]) -> float:
    """Mean share of each query's answer that the reference answer also holds."""
    shares = [len(set(a) & set(r)) / len(a) for a, r in zip(answers, reference, strict=True) if a]
    return round(float(np.mean(shares)), 3) if shares else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--reuse", action="store_true", help="open what a previous run built in the work folder"
    )
    parser.add_argument("--rounds", type=int, default=3, help="times each query is answered")
    args = parser.parse_args()
    use_workdir(args.workdir)

    from search_core.embedding import Embedder

    passages = synthetic_passages(args.chunks, seed=5)
    collections = project_collections(
        passages, args.workdir / "hybrid-peers", args.backend, args.reuse
    )
    flat = collections["flat"][0]
    shard, qdrant_build = qdrant_shard(
        args.workdir / "hybrid-peers-qdrant",
        np.asarray(flat.embeddings),
        flat.indexed_texts(),
        args.reuse,
    )

    identifiers = [p.rsplit(" ", 1)[1] for p in passages[::4][:32]]
    queries = real_queries() + [f"ticket {ref}" for ref in identifiers]
    embedder = Embedder(backend=args.backend)
    vectors = [embedder.embed_query(q) for q in queries]

    stages: dict[str, dict[str, list[float]]] = {
        name: {"vector_ms": [], "bm25_ms": [], "fusion_and_hits_ms": []}
        for name in ("project flat", "project hnsw")
    }
    systems: dict[str, Answer] = {
        "project flat": project_search(flat, stages["project flat"]),
        "project flat, FAISS on 1 thread": project_search(flat, faiss_threads=1),
        "project hnsw": project_search(collections["hnsw"][0], stages["project hnsw"]),
        "qdrant-edge hnsw": qdrant_search(shard),
    }
    for query, vector in list(zip(queries, vectors, strict=True))[:WARM_UP]:
        for answer in systems.values():
            answer(query, vector)
    for values in stages.values():
        for series in values.values():
            series.clear()
    load_before = machine()["load_average"]
    wall: dict[str, list[float]] = {name: [] for name in systems}
    cpu: dict[str, list[float]] = {name: [] for name in systems}
    answers: dict[str, list[list[int]]] = {name: [] for name in systems}
    names = list(systems)
    turn = 0
    for _ in range(args.rounds):
        for query, vector in zip(queries, vectors, strict=True):
            turn += 1
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                start, start_cpu = time.perf_counter(), time.process_time()
                ids = systems[name](query, vector)
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                answers[name].append(ids)
    shard.close()

    results = {
        name: {
            "wall": percentiles(wall[name]),
            "cpu": percentiles(cpu[name]),
            "empty_answers": sum(not a for a in answers[name]),
            "top10_shared_with_project_flat": overlap(answers[name], answers["project flat"]),
        }
        for name in systems
    }
    for name, values in stages.items():
        results[name]["stages_p50_ms"] = {
            stage: round(float(np.median(series)), 3) for stage, series in values.items()
        }
    for name, row in results.items():
        print(name, row, file=sys.stderr, flush=True)
    version = importlib.metadata.version("qdrant-edge-py")
    write_result(
        args.out,
        {
            "benchmark": "hybrid query latency against Qdrant Edge (query vectors given)",
            "machine": machine(),
            "chunks": len(flat.chunks),
            "queries": len(queries),
            "rounds": args.rounds,
            "load_average_before": load_before,
            "collection_backend": args.backend,
            "project": f"search_core.search.run_search, hybrid, k {K}, candidates {CANDIDATES}, "
            f"rrf_k {RRF_K}, defaults otherwise; hnsw {HNSW}",
            "qdrant": QDRANT_CONFIG.format(version=version, **HNSW),
            "build_s (null: reused)": {
                name: None if seconds is None else round(seconds, 1)
                for name, seconds in (
                    ("project flat", collections["flat"][1]),
                    ("project hnsw", collections["hnsw"][1]),
                    ("qdrant-edge hnsw", qdrant_build),
                )
            },
            "latency": results,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
