"""Benchmark 2: BM25 queries per second at 10k and 100k documents, the project vs rank-bm25.

Both engines index the same documents and answer the same queries (the 268 judged queries of
cranfield and msmarco-5k) for their top 10, query tokenization included:

- the project: ``search_core.lexical.Bm25sIndex`` (bm25s, Lucene BM25, a precomputed sparse
  term-by-document score matrix) through ``LexicalIndex.top_k``;
- the alternative: ``rank_bm25.BM25Okapi.get_scores`` on the same terms (the project's
  tokenizer), then the top 10 with ``numpy.argpartition``.

The documents are real sentences recombined into passages (``common.synthetic_passages``),
since no real corpus of 100k documents is at hand. rank-bm25 is slow at 100k, so it answers a
time-bounded prefix of the queries (at least 20); queries/s is per query either way.

    python bench/bm25.py --sizes 10000 100000 --out bench/results/bm25.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, real_queries, synthetic_passages, timed, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--min-seconds", type=float, default=5.0, help="time each engine at least this long"
    )
    parser.add_argument(
        "--reference-budget",
        type=float,
        default=60.0,
        help="seconds rank-bm25 may spend on queries at each size (at least 20 queries)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import rank_bm25

    from search_core.lexical import Bm25sIndex, tokenize, tokenize_many

    queries = real_queries()
    rows = []
    for size in args.sizes:
        texts = synthetic_passages(size, seed=size)
        project, project_build = timed(lambda t=texts: Bm25sIndex.build(t))
        corpus, tokenize_seconds = timed(lambda t=texts: tokenize_many(t))
        reference, reference_build = timed(lambda c=corpus: rank_bm25.BM25Okapi(c))

        def project_query(q: str, index: Bm25sIndex = project) -> np.ndarray:
            return index.top_k(q, 10)[0]

        def reference_query(q: str, model: rank_bm25.BM25Okapi = reference) -> np.ndarray:
            scores = model.get_scores(tokenize(q))
            top = np.argpartition(-scores, 10)[:10]
            return top[np.argsort(-scores[top])]

        for q in queries[:5]:
            project_query(q)
        answered, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.min_seconds or answered < len(queries):
            project_query(queries[answered % len(queries)])
            answered += 1
        project_qps = answered / (time.perf_counter() - start)

        answered, start = 0, time.perf_counter()
        overlap = []
        while answered < len(queries) and (
            answered < 20 or time.perf_counter() - start < args.reference_budget
        ):
            reference_query(queries[answered])
            answered += 1
        reference_qps = answered / (time.perf_counter() - start)
        for q in queries[:20]:  # same ranking? (rank-bm25 is classic BM25, bm25s Lucene's)
            overlap.append(len(set(project_query(q)) & set(reference_query(q))) / 10)

        row = {
            "documents": size,
            "project_qps": round(project_qps, 1),
            "rank_bm25_qps": round(reference_qps, 2),
            "rank_bm25_queries_timed": answered,
            "speedup": round(project_qps / reference_qps, 1),
            "project_build_s": round(project_build, 2),
            "rank_bm25_build_s": round(reference_build + tokenize_seconds, 2),
            "top10_overlap": round(float(np.mean(overlap)), 3),
            "vocabulary": len(project.vocabulary),
        }
        print(row, file=sys.stderr, flush=True)
        rows.append(row)

    write_result(
        args.out,
        {
            "benchmark": "BM25 queries/s, project (bm25s) vs rank-bm25",
            "machine": machine(),
            "queries": len(queries),
            "sizes": rows,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
