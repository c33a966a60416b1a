"""Helpers shared by the benchmark scripts: the machine, timing, data and result files.

Not part of the package: the scripts in ``bench/`` are run by hand (see BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_WORKDIR = Path(os.environ.get("BENCH_WORKDIR", "/tmp/search-explorer-bench"))
"""Where scripts keep what is slow to make and safe to reuse: the ONNX export, embedding
caches and generated vectors. Timed work never reads from it unless a script says so."""


def use_workdir(workdir: Path) -> Path:
    """Point the project's embedding cache (and so the ONNX export cache) into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["SEARCH_EXPLORER_CACHE"] = str(workdir / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return workdir


def machine() -> dict[str, Any]:
    """Cores, CPU model and SIMD flags, memory and the load average right now."""
    flags: list[str] = []
    model = platform.processor()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        flags = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M).group(1).split()  # type: ignore[union-attr]
        model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    simd = [f for f in flags if re.match(r"(sse4|avx|fma|f16c|amx|vnni)", f)]
    memory = 0
    try:
        meminfo = Path("/proc/meminfo").read_text()
        memory = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) * 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": model,
        "simd_flags": simd,
        "memory_gib": round(memory / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def percentiles(seconds: Iterable[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds, and the count."""
    values = np.asarray(list(seconds), dtype=float) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "n": len(values),
    }


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``function`` and return (its result, wall seconds)."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def dataset(name: str) -> Path:
    """A judged collection from ../shared/data (exits with a message when it is absent)."""
    folder = SHARED_DATA / name
    if not (folder / "corpus.jsonl").is_file():
        raise SystemExit(f"{folder} is not available: the benchmarks need ../shared/data")
    return folder


def real_queries() -> list[str]:
    """The judged queries of cranfield and msmarco-5k (268 real queries)."""
    return [
        q["text"]
        for name in ("cranfield", "msmarco-5k")
        for q in read_jsonl(dataset(name) / "queries.jsonl")
    ]


def real_documents() -> list[dict[str, Any]]:
    """The documents of cranfield and msmarco-5k (6,400 real passages and abstracts)."""
    return [
        d
        for name in ("cranfield", "msmarco-5k")
        for d in read_jsonl(dataset(name) / "corpus.jsonl")
    ]


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def synthetic_passages(n: int, seed: int = 0) -> list[str]:
    """``n`` passages of 2-5 sentences drawn from the real cranfield and msmarco-5k texts.

    The real collections hold 6,400 documents; larger corpora are made by recombining their
    sentences (about 40,000), so vocabulary, term frequencies and passage lengths (about
    60-150 tokens) stay those of real text. Each passage gets a made-up identifier in a
    quarter of cases (``REF-123456``), as support tickets and reports carry them.
    """
    sentences = [
        s.strip()
        for d in real_documents()
        for s in _SENTENCE.split(d["text"])
        if len(s.split()) >= 4
    ]
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 6, size=n)
    picks = rng.integers(0, len(sentences), size=int(counts.sum()))
    ids = rng.integers(100_000, 1_000_000, size=n)
    passages, at = [], 0
    for i, count in enumerate(counts):
        text = " ".join(sentences[j] for j in picks[at : at + count])
        at += count
        passages.append(f"{text} REF-{ids[i]}" if i % 4 == 0 else text)
    return passages


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    """Print the result as JSON and also write it to ``path`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")


def qdrant_text_index(q: Any) -> Any:
    """Qdrant Edge's BM25 text index as the peer benchmarks configure it: words, lower case,
    English stopwords and Snowball English stemmer, scored (``q`` is ``qdrant_edge``)."""
    return q.TextIndexParams(
        tokenizer=q.TokenizerType.Word,
        lowercase=True,
        stopwords=q.Language.English,
        stemmer=q.SnowballParams(q.SnowballLanguage.English),
        scoring=True,
    )
