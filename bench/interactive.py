"""Benchmark 6: the waits a user sees, against the original code in the same run.

What is timed, each for this checkout ("main") and for the original code ("baseline", a
checkout of commit 95578bb, ``--baseline``), run alternately in fresh interpreters, each
side with its own collections home and caches (``SEARCH_EXPLORER_HOME``,
``SEARCH_EXPLORER_CACHE``, ``SEARCH_EXPLORER_MODEL_CACHE``) so they share nothing:

1. **Sample build**: ``build_collection("sample", sample_data, BuildOptions())`` as the
   app's "Build and open the sample collection" and ``search-explorer index sample_data``
   run it, from a fresh interpreter to a searchable collection (the process's wall time),
   with each side's default backend. "first" is the first build on the machine (for main
   it includes exporting the model to ONNX), "again" a build in a new home whose model
   cache is kept, "no pack" (main only) a build of a copy of the sample without the vector
   pack it ships (``sample_data/.vectors``), so every chunk is embedded. The progress
   callback's events give the time to the first event and the longest time without one.
2. **Query latency in the app**: what the Search page does per query: embed it with the
   collection's model (loaded beforehand, as the app keeps it), then ``run_search`` with the
   vector; per mode, embedding included, on the sample collection (its 84 queries) and on a
   100k-chunk collection (the judged cranfield and msmarco-5k queries). Measured on an idle
   machine and again while ``--load`` processes spin (``while True: pass``), one per core:
   a build or a test run beside the app. The 100k collection has the passages of
   ``common.synthetic_passages`` and random unit vectors (a text's vector seeded by its
   sha256, so both sides index the same vectors); queries are embedded by the real model.
3. **First comparison** (``--only compare``): the Relevance lab's "Run and compare" of the
   three default configurations on the sample's 84 queries, in a fresh process whose
   collection is open and model loaded, three times per side.
4. **Cold command-line search**: ``search-explorer search sample QUERY --mode M`` in a new
   interpreter, wall time, ``--repeat`` times per mode (files in the OS cache after the
   first run; that is the usual case).

Each side runs with the bytecode of its modules cached (``PYTHONPYCACHEPREFIX``, warmed up
before anything is timed), as in any installation: this machine sets
``PYTHONDONTWRITEBYTECODE``, which would add the compiling of every module to each command.
A fifth part (``--only threads``) shows why PyTorch collapses on busy cores: one short
query on sentence-transformers by intra-op threads and OpenMP wait policy, wall and CPU time.

Results go to ``--out`` (markdown tables) and ``--json``. Needs ``../shared/data``.

    python bench/interactive.py --out bench/results/interactive.md \\
        --json bench/results/interactive.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORKDIR, ROOT, machine, percentiles, read_jsonl

MODES = ("vector", "bm25", "hybrid")
PARTS = ("build", "queries", "cli", "compare", "threads")
SAMPLE = "sample_data"
ENTRY = "import sys; from search_core.cli import main; sys.exit(main())"
"""What the installed ``search-explorer`` script runs."""
CLEARED = ("SEARCH_EXPLORER_", "OMP_", "MKL_", "HF_", "TOKENIZERS_", "PYTHONDONTWRITEBYTECODE")
"""Environment variables not passed to a side: each starts as a user's shell would."""
WARM_UP = (
    "import search_core.cli, search_core.collection, search_core.search, search_core.ingest,"
    " search_core.lexical, sentence_transformers, onnxruntime, tokenizers, bm25s"
)
"""Imported once per side before anything is timed, so that their bytecode is cached."""


# --------------------------------------------------------------------------- workers
# Run inside a side's interpreter (``--worker``): only APIs the baseline has too.


def worker_build(args: argparse.Namespace) -> dict[str, Any]:
    from search_core.collection import BuildOptions, build_collection

    events: list[tuple[float, str, int, int]] = []
    start = time.perf_counter()
    options = BuildOptions(backend=args.backend) if args.backend else BuildOptions()
    collection = build_collection(
        args.name,
        args.source,
        options,
        progress=lambda s, d, t: events.append((time.perf_counter() - start, s, d, t)),
    )
    moments = [0.0] + [at for at, *_ in events]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "in_process_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),  # the process's, imports included
        "first_event_s": round(events[0][0], 2) if events else None,
        "longest_silence_s": round(max(b - a for a, b in itertools.pairwise(moments)), 2),
        "stages": [s for s in dict.fromkeys(s for _, s, _, _ in events)],
        "backend": collection.manifest["model"].get("backend", "torch"),
        "chunks": len(collection.chunks),
        "build_seconds": collection.manifest["build_seconds"],
        "vectors_from_pack": collection.manifest.get("vector_pack", {}).get("used", 0),
    }


def worker_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    import hashlib

    import numpy as np
    from common import synthetic_passages

    from search_core.collection import BuildOptions, build_collection
    from search_core.embedding import Embedder, normalize_rows
    from search_core.ingest import IngestReport
    from search_core.types import Document

    class RandomVectors(Embedder):
        """The real model (name, fingerprint, tokenizer, queries); random chunk vectors."""

        def embed(self, texts: Any, *, cache: Any = None, progress: Any = None) -> Any:
            rows = [
                np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:16], 16))
                .standard_normal(self.dim)
                .astype(np.float32)
                for t in texts
            ]
            return normalize_rows(np.stack(rows)) if rows else np.zeros((0, self.dim), "float32")

    passages = synthetic_passages(args.chunks, seed=5)
    documents = tuple(Document(doc_id=f"p{i}", title="", text=t) for i, t in enumerate(passages))
    backend = args.backend or BuildOptions().backend
    start = time.perf_counter()
    collection = build_collection(
        args.name,
        IngestReport(documents, 0, (), 1, ()),
        BuildOptions(backend=backend),
        embedder=RandomVectors(backend=backend),
    )
    return {"chunks": len(collection.chunks), "seconds": round(time.perf_counter() - start, 1)}


def worker_query(args: argparse.Namespace) -> dict[str, Any]:
    from search_core.collection import open_collection
    from search_core.search import SearchParams, run_search

    collection = open_collection(args.name)
    embedder = collection.embedder
    embedder.load()  # the app keeps the model loaded: its first load is not a query's time
    every = [q["text"] for q in read_jsonl(Path(args.query_file))]
    queries = every[args.offset : args.offset + args.n]
    result: dict[str, Any] = {"backend": embedder.backend, "chunks": len(collection.chunks)}
    for mode in args.modes:
        params = SearchParams(mode=mode, k=10)
        totals, embeds = [], []
        for i, query in enumerate([*every[:5], *queries]):  # 5 warm-up queries first
            start = time.perf_counter()
            vector = embedder.embed_query(query) if mode != "bm25" else None
            embedded = time.perf_counter()
            run_search(collection, query, params, query_vector=vector)
            if i >= 5:
                totals.append(time.perf_counter() - start)
                embeds.append(embedded - start)
        result[mode] = {"end_to_end_s": totals, "embed_s": embeds}
    return result


def worker_threads(args: argparse.Namespace) -> dict[str, Any]:
    """sentence-transformers on PyTorch embedding one short query: wall and CPU time."""
    import torch
    from sentence_transformers import SentenceTransformer

    from search_core.embedding import bundled_model_path

    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
    torch.set_num_threads(args.threads)
    every = [q["text"] for q in read_jsonl(ROOT / SAMPLE / "queries.jsonl")]
    walls, cpus = [], []
    for i, query in enumerate([*every[:5], *every[args.offset : args.offset + args.n]]):
        wall, cpu = time.perf_counter(), time.process_time()
        model.encode([query], convert_to_numpy=True)
        if i >= 5:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return {"wall_s": walls, "cpu_s": cpus}


def worker_compare(args: argparse.Namespace) -> dict[str, Any]:
    """The Relevance lab's first comparison of the three default configurations.

    The collection is open and its model loaded (the user comes from the Search page); what
    is timed is what "Run and compare" does: run the sample's 84 queries with each
    configuration, score and keep each run, and compare them, in a process that has not
    compared anything yet.
    """
    from search_core.collection import BuildOptions, build_collection, open_collection
    from search_core.errors import CollectionError
    from search_core.evaluation import load_qrels, load_queries
    from search_core.lab import compare, evaluate, save_snapshot
    from search_core.search import SearchParams

    try:
        collection = open_collection(args.name)
    except CollectionError:
        collection = build_collection(args.name, args.source, BuildOptions())
    collection.embedder.load()
    queries = load_queries(Path(args.source) / "queries.jsonl").queries
    qrels = load_qrels(Path(args.source) / "qrels" / "test.tsv")
    configs = {f"default-{m}": SearchParams(mode=m) for m in ("hybrid", "vector", "bm25")}
    start = time.perf_counter()
    try:  # main embeds each query once for every configuration
        from search_core.evaluation import run_configurations

        runs = run_configurations(collection, queries, configs)
    except ImportError:  # the baseline runs each configuration on its own
        from search_core.evaluation import run_queries

        runs = {name: run_queries(collection, queries, p) for name, p in configs.items()}
    for name, run in runs.items():
        scored = evaluate(qrels, run, 10, queries=queries)
        save_snapshot(collection, name, run, scored, configs[name])
    compare(qrels, runs, k=10, queries=queries)
    return {"seconds": round(time.perf_counter() - start, 2), "queries": len(queries)}


WORKERS = {
    "compare": worker_compare,
    "build": worker_build,
    "synthetic": worker_synthetic,
    "query": worker_query,
    "threads": worker_threads,
}


# --------------------------------------------------------------------------- driver


class Side:
    """One checkout of the project, run in its own interpreters with its own folders."""

    def __init__(self, name: str, repo: Path, folder: Path) -> None:
        self.name, self.repo, self.folder = name, repo, folder

    def env(self, home: str = "home", cache: str = "cache", models: str = "models") -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
        return env | {
            "PYTHONPATH": str(self.repo),
            # Bytecode cached as in any installation (this machine sets PYTHONDONTWRITEBYTECODE),
            # kept out of the checkouts.
            "PYTHONPYCACHEPREFIX": str(self.folder.parent / "pycache"),
            "SEARCH_EXPLORER_HOME": str(self.folder / home),
            "SEARCH_EXPLORER_CACHE": str(self.folder / cache),
            "SEARCH_EXPLORER_MODEL_CACHE": str(self.folder / models),  # unknown to baseline
        }

    def run(self, argv: list[str], env: dict, timeout: float = 3600) -> tuple[float, str]:
        """Run ``python ARGV`` in the side's checkout: (wall seconds, stdout)."""
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *argv],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(argv[:3])} failed:\n{done.stderr[-3000:]}")
        return seconds, done.stdout

    def worker(self, kind: str, env: dict, *options: str) -> tuple[float, dict]:
        seconds, out = self.run([str(Path(__file__).resolve()), "--worker", kind, *options], env)
        return seconds, json.loads(out.splitlines()[-1])


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU while the block runs (none when 0)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0 if spinners else 0.0)
        yield
    finally:
        for process in spinners:
            process.kill()
            process.wait()


def measure_builds(sides: list[Side], report: dict) -> None:
    """The sample built three ways: on a machine without the model's ONNX export yet (first),
    again with it (again), and, on sides whose sample carries a vector pack, from a copy
    without the pack, embedding every chunk (no pack)."""
    rows = report.setdefault("sample_build", {})
    for round_name in ("first", "again", "no pack"):
        for side in sides:
            source = side.repo / SAMPLE
            if round_name == "no pack":
                if not (source / ".vectors").is_dir():
                    continue
                copy = side.folder / "sample-without-pack"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".vectors"))
                source = copy
            for sub in ("home", "cache") + (("models",) if round_name == "first" else ()):
                shutil.rmtree(side.folder / sub, ignore_errors=True)
            load = os.getloadavg()[0]
            options = ("--name", "sample", "--source", str(source))
            seconds, row = side.worker("build", side.env(), *options)
            row |= {"wall_s": round(seconds, 2), "load_before": round(load, 2)}
            rows.setdefault(side.name, {})[round_name] = row
            log(f"sample build {round_name:7} {side.name:8} {row}")


def measure_torch_sample(side: Side, report: dict) -> None:
    """The sample built with torch by this checkout: the PyTorch fix, apart from the default."""
    source = str(side.repo / SAMPLE)
    seconds, row = side.worker(
        "build", side.env(), "--name", "sample-torch", "--source", source, "--backend", "torch"
    )
    report["sample_build_torch"] = row | {"wall_s": round(seconds, 2)}
    log(f"sample build torch {side.name} {row}")


def build_synthetic(sides: list[Side], chunks: int, report: dict) -> None:
    for side in sides:
        env = side.env(home="home-100k", cache="cache-100k")
        home = side.folder / "home-100k"
        if (home / "big" / "CURRENT").is_file():
            log(f"{side.name}: reusing {home / 'big'}")
            continue
        seconds, row = side.worker("synthetic", env, "--name", "big", "--chunks", str(chunks))
        report.setdefault("synthetic_build", {})[side.name] = row | {"wall_s": round(seconds, 1)}
        log(f"100k build {side.name} {row}")


def measure_queries(
    sides: list[Side], main_side: Side, n: int, rounds: int, spinners: int, report: dict
) -> None:
    """Each setup in turn, ``rounds`` times over (other queries each round), so that bursts
    of load on the machine fall on every side alike; percentiles over all rounds."""
    sample_queries = str(ROOT / SAMPLE / "queries.jsonl")
    big_queries = str(shared_queries())
    setups = [(side, "sample", side.env(), sample_queries) for side in sides]
    setups.append((main_side, "sample-torch", main_side.env(), sample_queries))
    setups += [
        (side, "big", side.env(home="home-100k", cache="cache-100k"), big_queries) for side in sides
    ]
    rows = report.setdefault("queries", {})
    for load_name, count in (("idle", 0), ("busy", spinners)):
        raw: dict[str, dict] = {}
        with busy_cores(count):
            for turn in range(rounds):
                for side, name, env, queries in setups:
                    load = os.getloadavg()[0]
                    options = ["--name", name, "--query-file", queries, "--n", str(n)]
                    options += ["--offset", str(turn * n), "--modes", *MODES]
                    _, got = side.worker("query", env, *options)
                    key = f"{name} {side.name}"
                    kept = raw.setdefault(key, {"loads": []} | {m: ([], []) for m in MODES})
                    kept |= {"backend": got["backend"], "chunks": got["chunks"]}
                    kept["loads"].append(round(load, 2))
                    for mode in MODES:
                        kept[mode][0].extend(got[mode]["end_to_end_s"])
                        kept[mode][1].extend(got[mode]["embed_s"])
        for key, kept in raw.items():
            row = {k: kept[k] for k in ("backend", "chunks", "loads")}
            for mode in MODES:
                totals, embeds = kept[mode]
                row[mode] = {"end_to_end": percentiles(totals), "embed": percentiles(embeds)}
            rows.setdefault(key, {})[load_name] = row
            log(f"queries {load_name} {key}: " + summary(row))


def diagnose_torch(side: Side, n: int, rounds: int, spinners: int, report: dict) -> None:
    """Why PyTorch collapses on busy cores: one query, by intra-op threads and wait policy.

    Settings take turns, ``rounds`` times over, as in :func:`measure_queries`."""
    rows = report.setdefault("torch_threads", {})
    setups = [(2, "default"), (2, "PASSIVE"), (1, "default")]
    for load_name, count in (("idle", 0), ("busy", spinners)):
        raw: dict[str, tuple[list[float], list[float]]] = {}
        with busy_cores(count):
            for turn in range(rounds):
                for threads, policy in setups:
                    env = side.env() | ({"OMP_WAIT_POLICY": policy} if policy != "default" else {})
                    options = ["--threads", str(threads), "--n", str(n), "--offset", str(turn * n)]
                    _, got = side.worker("threads", env, *options)
                    key = f"{threads} thread{'s' if threads > 1 else ''}, OMP_WAIT_POLICY {policy}"
                    walls, cpus = raw.setdefault(key, ([], []))
                    walls.extend(got["wall_s"])
                    cpus.extend(got["cpu_s"])
        for key, (walls, cpus) in raw.items():
            row = {"wall": percentiles(walls), "cpu": percentiles(cpus)}
            rows.setdefault(key, {})[load_name] = row
            log(f"torch {load_name} {key}: {row}")


def measure_cli(sides: list[Side], repeat: int, report: dict) -> None:
    rows = report.setdefault("cli_search", {})
    query = "how long before I can quit"
    targets = [(side, "sample") for side in sides] + [(sides[-1], "sample-torch")]
    for mode in MODES:
        for side, name in targets:
            argv = ["-c", ENTRY, "search", name, query, "--mode", mode]
            times = [side.run(argv, side.env())[0] for _ in range(repeat)]
            rows.setdefault(f"{name} {side.name}", {})[mode] = {
                "median_s": round(sorted(times)[len(times) // 2], 2),
                "min_s": round(min(times), 2),
                "max_s": round(max(times), 2),
                "n": repeat,
            }
            log(f"cli {mode} {name} {side.name} {rows[f'{name} {side.name}'][mode]}")


def measure_compare(sides: list[Side], repeat: int, report: dict) -> None:
    rows = report.setdefault("compare", {})
    for _ in range(repeat):
        for side in sides:
            source = str(side.repo / SAMPLE)
            wall, row = side.worker("compare", side.env(), "--name", "sample", "--source", source)
            rows.setdefault(side.name, []).append(row["seconds"])
            log(f"first comparison {side.name:8} {row['seconds']} s (process {wall:.1f} s)")


def shared_queries() -> Path:
    """The cranfield and msmarco-5k queries, in one JSONL file."""
    from common import real_queries

    path = DEFAULT_WORKDIR / "interactive-queries.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": q}) + "\n" for q in real_queries()))
    return path


def summary(row: dict) -> str:
    return ", ".join(
        f"{m} {row[m]['end_to_end']['p50_ms']:.1f} ms (embed {row[m]['embed']['p50_ms']:.1f})"
        for m in MODES
        if m in row
    )


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- tables


def _table(title: str, columns: list[str], rows: list[list[object]]) -> list[str]:
    """A markdown table under its ``###`` title, followed by a blank line."""
    return [
        f"### {title}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(map(str, row)) + " |" for row in rows),
        "",
    ]


def markdown(report: dict) -> str:
    lines = [f"Run {report['started']} to {report['finished']}; machine: {report['machine']}", ""]
    builds = report.get("sample_build", {})
    if builds:
        lines += _table(
            "Sample build, fresh interpreter to searchable (s)",
            [
                "side",
                "backend",
                "round",
                "wall",
                "in process",
                "CPU",
                "first progress",
                "longest gap",
            ],
            [
                [
                    side,
                    row["backend"],
                    name,
                    f"{row['wall_s']:.1f}",
                    f"{row['in_process_s']:.1f}",
                    row.get("cpu_s", ""),
                    row["first_event_s"],
                    row["longest_silence_s"],
                ]
                for side, rounds in builds.items()
                for name, row in rounds.items()
            ],
        )
    for load in ("idle", "busy"):
        rows = {k: v[load] for k, v in report.get("queries", {}).items() if load in v}
        if not rows:
            continue
        lines += _table(
            f"Query latency in the app, embedding included, {load} machine "
            "(p50 / p99 ms; embedding p50)",
            ["collection", "side", "backend", *MODES],
            [
                [f"{key.split(' ')[0]} ({row['chunks']:,} chunks)", key.split(" ")[1]]
                + [row["backend"]]
                + [
                    f"{row[m]['end_to_end']['p50_ms']:.1f} / {row[m]['end_to_end']['p99_ms']:.1f}"
                    f" (embed {row[m]['embed']['p50_ms']:.1f})"
                    for m in MODES
                ]
                for key, row in rows.items()
            ],
        )
    torch_rows = report.get("torch_threads", {})
    if torch_rows:
        lines += _table(
            "One short query on PyTorch (sentence-transformers), by threads (p50 ms)",
            ["setting", "idle: wall", "idle: CPU", "busy: wall", "busy: CPU"],
            [
                [key]
                + [
                    f"{row[load][kind]['p50_ms']:.1f}"
                    for load in ("idle", "busy")
                    for kind in ("wall", "cpu")
                    if load in row
                ]
                for key, row in torch_rows.items()
            ],
        )
    cli = report.get("cli_search", {})
    if cli:
        lines += _table(
            "Cold `search-explorer search`, wall time (median, min-max s)",
            ["collection", "side", *MODES],
            [
                key.split(" ")
                + [
                    f"{row[m]['median_s']:.2f} ({row[m]['min_s']:.2f}-{row[m]['max_s']:.2f})"
                    for m in MODES
                ]
                for key, row in cli.items()
            ],
        )
    compared = report.get("compare", {})
    if compared:
        lines += _table(
            "First comparison of the three default configurations, 84 queries (s)",
            ["side", "median", "min-max"],
            [
                [side, f"{statistics.median(t):.2f}", f"{min(t):.2f}-{max(t):.2f}"]
                for side, t in compared.items()
            ],
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, default=ROOT.parent / "baseline")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "interactive")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks of the big collection")
    parser.add_argument("--queries", type=int, default=28, help="queries timed per mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every query setup")
    parser.add_argument("--load", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeat", type=int, default=5, help="cold searches per mode")
    parser.add_argument("--only", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--out", type=Path, default=None, help="markdown tables")
    parser.add_argument("--json", type=Path, default=None, help="all figures")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--query-file", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=60, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--modes", nargs="+", default=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return

    sides = [
        Side("baseline", args.baseline.resolve(), args.workdir / "baseline"),
        Side("main", ROOT, args.workdir / "main"),
    ]
    report: dict[str, Any] = {
        "benchmark": "interactive waits, against the original code",
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {k: str(v) for k, v in vars(args).items() if v is not None},
    }
    for side in sides:
        side.run(["-c", WARM_UP], side.env())
    if "build" in args.only:
        measure_builds(sides, report)
        measure_torch_sample(sides[1], report)
    if "queries" in args.only:
        build_synthetic(sides, args.chunks, report)
        measure_queries(sides, sides[1], args.queries, args.rounds, args.load, report)
    if "cli" in args.only:
        measure_cli(sides, args.repeat, report)
    if "compare" in args.only:
        measure_compare(sides, 3, report)
    if "threads" in args.only:
        diagnose_torch(sides[1], args.queries, args.rounds, args.load, report)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report["machine_after"] = machine()
    text = markdown(report)
    print(text)
    for path, content in ((args.out, text), (args.json, json.dumps(report, indent=2))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
