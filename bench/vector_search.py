"""Benchmark 3: vector search on 1M clustered 384-d vectors, exact vs ivf vs hnsw vs ivfpq.

Each index kind is built with ``search_core.vector_index.build_vector_index`` and its default
parameters; ivf sweeps nprobe, hnsw sweeps efSearch. For each setting: recall@10 against
exact search, single-query latency p50 / p99 (``VectorIndex.search``, one query per call),
build time and the index's bytes per vector (its serialized size / n). The project also keeps
the float32 vectors beside any index (1,536 bytes each at 384-d), reported separately.

Data: no real corpus of a million chunks is at hand, so the vectors are made around real
ones. The 6,400 cranfield and msmarco-5k documents are embedded with the bundled model
(cached in the work folder); each synthetic vector is a random point between a real document
and one of its 10 nearest real neighbours, plus Gaussian noise of norm ~0.35, normalized. The
corpus so keeps the real embeddings' clusters and low-dimensional structure, which ivf and hnsw
depend on (uniform random vectors would make every index look bad). Queries: the 268 real
judged queries (embedded) and 732 held-out synthetic points.

    python bench/vector_search.py --n 1000000 --out bench/results/vector.json
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEFAULT_WORKDIR,
    machine,
    percentiles,
    real_documents,
    real_queries,
    timed,
    use_workdir,
    write_result,
)

DIM = 384
NOISE = 0.35
NEIGHBOURS = 10


def real_vectors(workdir: Path, backend: str) -> tuple[np.ndarray, np.ndarray]:  # noqa: F821
    """Embeddings of the real documents and queries (cached as .npy in the work folder)."""
    import numpy as np

    docs_file = workdir / f"real-docs-{backend}.npy"
    queries_file = workdir / f"real-queries-{backend}.npy"
    if not docs_file.is_file() or not queries_file.is_file():
        from search_core.embedding import Embedder

        embedder = Embedder(backend=backend)
        texts = [f"{d.get('title', '')}. {d['text']}" for d in real_documents()]
        np.save(docs_file, embedder.embed(texts))
        np.save(queries_file, embedder.embed_queries(real_queries()))
    return np.load(docs_file), np.load(queries_file)


def clustered(centers: np.ndarray, n: int, seed: int) -> np.ndarray:  # noqa: F821
    """``n`` unit vectors between real documents and their neighbours, plus noise."""
    import faiss
    import numpy as np

    index = faiss.IndexFlatIP(centers.shape[1])
    index.add(centers)
    _, neighbours = index.search(centers, NEIGHBOURS + 1)
    rng = np.random.default_rng(seed)
    out = np.empty((n, centers.shape[1]), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        a = rng.integers(0, len(centers), size=m)
        b = neighbours[a, rng.integers(1, NEIGHBOURS + 1, size=m)]
        t = rng.random(m, dtype=np.float32)[:, None] * 0.5
        noise = rng.standard_normal((m, centers.shape[1]), dtype=np.float32) * (
            NOISE / np.sqrt(centers.shape[1])
        )
        block = (1 - t) * centers[a] + t * centers[b] + noise
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the corpus")
    parser.add_argument(
        "--queries", type=int, default=1000, help="queries for recall (268 real + synthetic)"
    )
    parser.add_argument(
        "--latency-queries", type=int, default=300, help="single queries timed per setting"
    )
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw", "ivfpq"])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--backend", default="onnx-int8", help="backend that embeds the real texts")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    use_workdir(args.workdir)

    import faiss
    import numpy as np

    from search_core.vector_index import build_vector_index

    centers, real_q = real_vectors(args.workdir, args.backend)
    vectors, generate_seconds = timed(lambda: clustered(centers, args.n, seed=1))
    synthetic_q = clustered(centers, max(args.queries - len(real_q), 0), seed=2)
    queries = np.ascontiguousarray(
        np.vstack([real_q, synthetic_q])[: args.queries], dtype=np.float32
    )
    is_real = np.arange(len(queries)) < len(real_q)
    print(f"generated {args.n} vectors in {generate_seconds:.1f} s", file=sys.stderr, flush=True)

    exact = build_vector_index(vectors, "flat")
    truth = np.stack([ids for ids, _ in exact.search_batch(queries, 10)])

    def measure(index, label: str, **search) -> dict:
        found = [ids for ids, _ in index.search_batch(queries, 10, **search)]
        hits = np.array([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        for q in queries[:10]:
            index.search(q, 10, **search)  # warm-up
        latencies = []
        for q in queries[: args.latency_queries]:
            start = time.perf_counter()
            index.search(q, 10, **search)
            latencies.append(time.perf_counter() - start)
        row = {
            "setting": label,
            "recall@10": round(float(hits.mean()), 4),
            "recall@10_real_queries": round(float(hits[is_real].mean()), 4),
            "recall@10_synthetic_queries": round(float(hits[~is_real].mean()), 4),
            **percentiles(latencies),
        }
        print(row, file=sys.stderr, flush=True)
        return row

    kinds = []
    for kind in args.kinds:
        if kind == "flat":
            index, build_seconds = exact, timed(lambda: build_vector_index(vectors, "flat"))[1]
        else:
            index, build_seconds = timed(lambda k=kind: build_vector_index(vectors, k))
        size = len(index.to_bytes())
        entry = {
            "kind": kind,
            "params": index.params,
            "build_s": round(build_seconds, 1),
            "index_bytes_per_vector": round(size / args.n, 1),
            "with_stored_vectors_bytes_per_vector": round(size / args.n + DIM * 4, 1),
            "settings": [],
        }
        print(
            kind, {k: v for k, v in entry.items() if k != "settings"}, file=sys.stderr, flush=True
        )
        if kind in ("ivf", "ivfpq"):
            sweep = (
                sorted({*args.nprobe, index.params["nprobe"]})
                if kind == "ivf"
                else [index.params["nprobe"]]
            )
            for nprobe in sweep:
                default = " (default)" if nprobe == index.params["nprobe"] else ""
                entry["settings"].append(measure(index, f"nprobe={nprobe}{default}", nprobe=nprobe))
        elif kind == "hnsw":
            for ef in sorted({*args.ef_search, index.params["ef_search"]}):
                default = " (default)" if ef == index.params["ef_search"] else ""
                entry["settings"].append(measure(index, f"efSearch={ef}{default}", ef_search=ef))
        else:
            entry["settings"].append(measure(index, "exact"))
        kinds.append(entry)
        if index is not exact:
            del index
            gc.collect()

    write_result(
        args.out,
        {
            "benchmark": "vector search, exact vs ivf vs hnsw vs ivfpq",
            "machine": machine(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "n": args.n,
            "dim": DIM,
            "queries": {"total": len(queries), "real": int(is_real.sum())},
            "generate_s": round(generate_seconds, 1),
            "kinds": kinds,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
