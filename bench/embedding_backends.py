"""Benchmark 1: embedding throughput of each backend on the cranfield texts, and its quality.

For each backend (sentence-transformers PyTorch fp32, the reference, then ONNX Runtime fp32 and
int8) in one run: chunks embedded per second over every cranfield chunk as the project indexes
it (title + chunk text, default chunking), the mean and minimum cosine of its vectors to the
PyTorch ones, and cranfield nDCG@10 of a collection built with it (vector and hybrid modes).

The ONNX export is cached in the work folder; its one-time cost is reported apart from the
throughput (a model is loaded and warmed up before it is timed).

    python bench/embedding_backends.py --out bench/results/embedding.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORKDIR, dataset, machine, timed, use_workdir, write_result

BACKENDS = ("torch", "onnx-fp32", "onnx-int8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument(
        "--limit", type=int, default=None, help="first N documents only (a quick try)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed passes per backend (best is kept)"
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    use_workdir(args.workdir)

    import numpy as np

    from search_core.chunking import ChunkingConfig, chunk_documents, index_title, indexed_texts
    from search_core.collection import BuildOptions, build_collection, embedding_cache
    from search_core.embedding import Embedder, text_sha256
    from search_core.evaluation import evaluate_collection, load_qrels, load_queries
    from search_core.ingest import IngestReport, read_source
    from search_core.search import SearchParams

    folder = dataset("cranfield")
    report = read_source(folder)
    documents = list(report.documents)[: args.limit]
    reference = Embedder()
    tokenizer = reference.tokenizer
    chunks = chunk_documents(
        documents,
        tokenizer,
        ChunkingConfig(),
        max_seq_length=reference.max_seq_length,
        special_tokens=reference.special_tokens,
    )
    titles = {d.doc_id: index_title(tokenizer, d.title) for d in documents}
    texts = indexed_texts(chunks, titles)
    tokens = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    queries = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(folder / "qrels" / "test.tsv")

    results: dict[str, dict] = {}
    vectors_of: dict[str, np.ndarray] = {}
    for backend in args.backends:
        embedder = Embedder(backend=backend)
        _, load_seconds = timed(embedder.load)  # includes the ONNX export when not cached
        embedder.embed(texts[:32])  # warm-up: first-call allocations, thread pools
        best = float("inf")
        for _ in range(args.repeat):
            vectors, seconds = timed(lambda e=embedder: e.embed(texts))
            best = min(best, seconds)
        vectors_of[backend] = vectors
        # The collection reuses the vectors just timed (through the embedding cache).
        home = args.workdir / "embedding-bench" / backend
        cache = embedding_cache(home)
        try:
            cache.put_many(
                embedder.fingerprint,
                {text_sha256(t): v for t, v in zip(texts, vectors, strict=True)},
            )
        finally:
            cache.close()
        collection = build_collection(
            "cranfield",
            IngestReport(tuple(documents), 0, (), 1, ()),
            BuildOptions(),
            home=home,
            embedder=embedder,
        )
        ndcg = {
            mode: round(
                evaluate_collection(collection, queries, qrels, SearchParams(mode=mode)).metrics[
                    "ndcg@10"
                ],
                4,
            )
            for mode in ("vector", "hybrid")
        }
        results[backend] = {
            "chunks_per_s": round(len(texts) / best, 1),
            "seconds": round(best, 2),
            "load_seconds": round(load_seconds, 2),
            "ndcg@10_vector": ndcg["vector"],
            "ndcg@10_hybrid": ndcg["hybrid"],
        }
        print(backend, results[backend], file=sys.stderr, flush=True)

    if "torch" in vectors_of:
        base = vectors_of["torch"]
        for backend, row in results.items():
            cosines = np.sum(vectors_of[backend] * base, axis=1)
            row["cosine_to_torch_mean"] = round(float(cosines.mean()), 6)
            row["cosine_to_torch_min"] = round(float(cosines.min()), 6)
            row["speedup_vs_torch"] = round(
                row["chunks_per_s"] / results["torch"]["chunks_per_s"], 2
            )
            row["ndcg@10_vector_delta"] = round(
                row["ndcg@10_vector"] - results["torch"]["ndcg@10_vector"], 4
            )

    write_result(
        args.out,
        {
            "benchmark": "embedding backends on cranfield",
            "machine": machine(),
            "corpus": {
                "documents": len(documents),
                "chunks": len(texts),
                "mean_tokens": round(float(np.mean(tokens)), 1),
                "max_tokens": int(np.max(tokens)),
            },
            "batch_size": Embedder().batch_size,
            "backends": results,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
