"""Benchmark 5: end-to-end hybrid query latency on a 100k-chunk collection.

One query = embed it + vector search + BM25 + identifier match + fusion + hits: the query is
embedded (``Embedder.embed_query``), then ``search_core.search.run_search`` runs the hybrid
search with that vector (what ``search(collection, query, "hybrid", k=10)`` does in one call),
timed from outside. The collection is built with the fastest backend (onnx-int8 in benchmark
1); in the same run each other backend embeds the same queries, taking turns query by query,
so the backends' share of the latency shows under the same conditions.

The collection: 100k passages recombined from real cranfield and msmarco-5k sentences
(``common.synthetic_passages``; one chunk each, a quarter with a ``REF-123456`` identifier),
built with the project's defaults (flat index, bm25s) and the fastest backend. Building embeds
100k passages once; the vectors are kept in the work folder's embedding cache, so later runs
build in about a minute. Queries: the 268 real judged queries, then 32 identifier queries
(``REF-...`` numbers of the corpus), each run once after 10 warm-up queries.

    python bench/hybrid_latency.py --chunks 100000 --out bench/results/hybrid.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEFAULT_WORKDIR,
    machine,
    percentiles,
    real_queries,
    synthetic_passages,
    timed,
    use_workdir,
    write_result,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument(
        "--backend", default="onnx-int8", help="the backend the collection is built with"
    )
    parser.add_argument(
        "--compare",
        nargs="*",
        default=["torch", "onnx-fp32"],
        help="other backends whose query embedding is measured on the same queries",
    )
    parser.add_argument("--index", default="flat", help="vector index kind of the collection")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    use_workdir(args.workdir)

    import numpy as np

    from search_core.collection import BuildOptions, build_collection
    from search_core.embedding import Embedder
    from search_core.ingest import IngestReport
    from search_core.search import SearchParams, run_search, search
    from search_core.types import Document

    passages = synthetic_passages(args.chunks, seed=5)
    documents = tuple(Document(doc_id=f"p{i}", title="", text=t) for i, t in enumerate(passages))
    embedder = Embedder(backend=args.backend)
    home = args.workdir / "hybrid-bench"
    collection, build_seconds = timed(
        lambda: build_collection(
            "hybrid",
            IngestReport(documents, 0, (), 1, ()),
            BuildOptions(index_kind=args.index),
            home=home,
            embedder=embedder,
        )
    )
    print(
        f"built {len(collection.chunks)} chunks in {build_seconds:.0f} s "
        f"{collection.manifest['build_seconds']}",
        file=sys.stderr,
        flush=True,
    )

    identifiers = [p.rsplit(" ", 1)[1] for p in passages[::4][:32]]
    queries = real_queries() + [f"ticket {ref}" for ref in identifiers]
    backends = {args.backend: embedder}
    for name in args.compare:
        backends[name] = Embedder(backend=name)
    for other in backends.values():
        other.load()
    for q in queries[:10]:
        search(collection, q, "hybrid", k=10)
        for other in backends.values():
            other.embed_query(q)

    # Backends take turns on each query, so a burst of load on the machine hits them alike.
    params = SearchParams(mode="hybrid", k=10)
    totals: dict[str, list[float]] = {name: [] for name in backends}
    embeds: dict[str, list[float]] = {name: [] for name in backends}
    stages: dict[str, list[float]] = {"vector_ms": [], "bm25_ms": [], "fusion_ms": []}
    empty = 0
    for q in queries:
        for name, other in backends.items():
            start = time.perf_counter()
            vector = other.embed_query(q)
            embedded = time.perf_counter()
            response = run_search(collection, q, params, query_vector=vector)
            end = time.perf_counter()
            embeds[name].append(embedded - start)
            totals[name].append(end - start)
            if name == args.backend:
                empty += not response.hits
                for stage, values in stages.items():
                    values.append(getattr(response.timings, stage) / 1000)
    results = {
        name: {"end_to_end": percentiles(totals[name]), "embed": percentiles(embeds[name])}
        for name in backends
    }
    results[args.backend]["stages"] = {s: percentiles(v) for s, v in stages.items()}
    results[args.backend]["empty_answers"] = empty
    for name, row in results.items():
        print(name, row, file=sys.stderr, flush=True)

    write_result(
        args.out,
        {
            "benchmark": "end-to-end hybrid query latency",
            "machine": machine(),
            "chunks": len(collection.chunks),
            "index": collection.manifest["index"]["kind"],
            "mean_words_per_chunk": round(float(np.mean([len(p.split()) for p in passages])), 1),
            "build_s": round(build_seconds, 1),
            "build_stages_s": collection.manifest["build_seconds"],
            "queries": len(queries),
            "collection_backend": args.backend,
            "backends": results,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
