"""Benchmark 4: UMAP time at 5k, 20k and 50k points, and the time to place one query on a map.

The project's maps (``search_core.projection``) fit umap-learn seeded and single-threaded
(``random_state`` set, ``n_jobs=1``, cosine metric, ``low_memory``) so the same collection
always gives the same map. The alternative measured in the same run is umap-learn unseeded
with all cores (``n_jobs=-1``), its fastest configuration, which gives a different map on
every run. Placing a query is ``UMAP.transform`` of one vector on the fitted map (what
``projection.transform`` does); the first call also compiles numba code, so it is reported
apart from the warm p50 / p99, and the first map of a process (numba compiling) is timed
apart from the others.

The points are the synthetic clustered vectors of benchmark 3 (real document embeddings,
interpolated between neighbours, plus noise); queries are real judged queries.

    python bench/umap_projection.py --sizes 5000 20000 50000 --out bench/results/umap.json
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORKDIR, machine, percentiles, timed, use_workdir, write_result
from vector_search import clustered, real_vectors


def project_reducer(n: int):
    """The UMAP the project fits (``projection._new_reducer``), or the same settings by hand."""
    try:
        from search_core.projection import ProjectionSettings, _new_reducer

        return _new_reducer(ProjectionSettings(), n)
    except ImportError:
        import umap

        return umap.UMAP(
            n_components=2,
            n_neighbors=15,
            min_dist=0.1,
            metric="cosine",
            random_state=0,
            transform_seed=0,
            low_memory=True,
            n_jobs=1,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    parser.add_argument("--place", type=int, default=20, help="single queries placed on each map")
    parser.add_argument("--skip-parallel", action="store_true", help="measure the project only")
    parser.add_argument("--backend", default="onnx-int8", help="backend that embeds the real texts")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    use_workdir(args.workdir)

    _, import_seconds = timed(lambda: __import__("umap"))
    import umap

    centers, queries = real_vectors(args.workdir, args.backend)
    warnings.simplefilter("ignore")
    # numba compiles UMAP's and pynndescent's kernels on first use in a process (pynndescent
    # only from 4,096 points on): once, on a map of 4,500 points, timed apart.
    warm = clustered(centers, 4_500, seed=9)
    _, compile_seconds = timed(lambda: project_reducer(len(warm)).fit(warm).transform(queries[:1]))
    rows = []
    for size in args.sizes:
        points = clustered(centers, size, seed=size)
        reducer = project_reducer(size)
        _, fit_seconds = timed(lambda r=reducer, p=points: r.fit(p))
        _, first_place = timed(lambda r=reducer: r.transform(queries[:1]))
        placements = [
            timed(lambda r=reducer, q=q: r.transform(q[None, :]))[1]
            for q in queries[1 : args.place + 1]
        ]
        row = {
            "points": size,
            "project_fit_s": round(fit_seconds, 1),
            "place_first_query_s": round(first_place, 3),
            "place_query": percentiles(placements),
        }
        if not args.skip_parallel:
            parallel = umap.UMAP(
                n_components=2,
                n_neighbors=15,
                min_dist=0.1,
                metric="cosine",
                low_memory=True,
                n_jobs=-1,
            )
            _, parallel_seconds = timed(lambda r=parallel, p=points: r.fit(p))
            row["umap_parallel_unseeded_fit_s"] = round(parallel_seconds, 1)
        print(row, file=sys.stderr, flush=True)
        rows.append(row)

    write_result(
        args.out,
        {
            "benchmark": "UMAP fit and query placement",
            "machine": machine(),
            "umap_import_s": round(import_seconds, 2),
            "first_map_in_process_s": round(compile_seconds, 1),
            "umap_version": umap.__version__,
            "sizes": rows,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
