"""Benchmark 9: the memory an opened collection takes, vectors mapped against vectors read.

A collection of N chunks (default 100k) is built once in the work folder from passages
recombined from the real cranfield and msmarco-5k sentences (``common.synthetic_passages``;
random words when ../shared/data is absent). Memory does not depend on the vectors' values,
so they come from the tests' hashed bag-of-words embedder (384 dimensions, like the bundled
model) instead of hours of embedding; say so wherever the figures are quoted.

The collection is then opened in fresh processes, taking turns, two ways:

- ``read``: as before this change, ``embeddings.npy`` read whole into memory;
- ``mapped``: as now, memory-mapped read-only once its checksum matched.

Each process reports its RSS growth from opening, its peak RSS, and its RSS after touching
every vector once (mapped pages count in RSS once read, but they are the file cache's and
the system takes them back under pressure).

    python bench/open_memory.py --chunks 100000 --out bench/results/open_memory.json
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/fake_embedder.py
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORKDIR, SHARED_DATA, machine, synthetic_passages, write_result

ROOT = Path(__file__).resolve().parents[1]

NAME = "open-memory"
WAYS = ("read", "mapped")


def build(home: Path, chunks: int) -> None:
    """Build the collection once (one chunk per passage)."""
    from search_core.collection import BuildOptions, build_collection, list_collections
    from search_core.ingest import IngestReport
    from search_core.types import Document
    from tests.fake_embedder import FakeEmbedder

    if any(info.name == NAME and info.chunks == chunks for info in list_collections(home)):
        return
    if (SHARED_DATA / "cranfield" / "corpus.jsonl").is_file():
        texts = synthetic_passages(chunks)
    else:
        rng = random.Random(0)
        words = ["refund", "order", "brake", "engine", "invoice", "parcel", "contract", "notice"]
        texts = [" ".join(rng.choices(words, k=40)) for _ in range(chunks)]
    documents = tuple(Document(f"p{i}", text) for i, text in enumerate(texts))
    build_collection(
        NAME,
        IngestReport(documents, 0, (), 1, ()),
        BuildOptions(),
        home=home,
        embedder=FakeEmbedder(dim=384),
    )


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM its peak; a
    peak reset by exec, unlike getrusage's, which a child inherits from its parent)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1e3
    raise RuntimeError(f"/proc/self/status has no {field}")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def measure(home: Path, way: str) -> dict[str, float]:
    """Open the collection one way in this process and report its memory."""
    import search_core.collection as collection_module
    from tests.fake_embedder import FakeEmbedder

    if way == "read":  # the path before this change: the file's bytes, then an array of them

        def read_whole(folder: Path, manifest: dict, name: str):  # type: ignore[no-untyped-def]
            data = collection_module._read_listed(folder, manifest, name)
            return collection_module.npy_load(data, name)

        collection_module._map_listed = read_whole
    embedder = FakeEmbedder(dim=384)
    before = _rss_mb()
    collection = collection_module.open_collection(NAME, home, embedder=embedder)
    opened = _rss_mb()
    peak = _status_mb("VmHWM")
    vectors = collection.embeddings
    for start in range(0, len(vectors), 4096):
        float(vectors[start : start + 4096].sum())
    return {
        "vectors_mb": round(vectors.nbytes / 1e6, 1),
        "mapped": collection.vectors_mapped,
        "rss_growth_on_open_mb": round(opened - before, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_growth_after_touching_every_vector_mb": round(_rss_mb() - before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    home = args.workdir / "open-memory"
    if args.measure:
        print(json.dumps(measure(home, args.measure)))
        return
    build(home, args.chunks)
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:  # taking turns, each in a fresh process
            command = [sys.executable, __file__, "--workdir", str(args.workdir), "--measure", way]
            done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
            runs[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
    write_result(
        args.out,
        {
            "benchmark": "open_memory",
            "command": " ".join(["python", "bench/open_memory.py", *sys.argv[1:]]),
            "machine": machine(),
            "chunks": args.chunks,
            "vectors": "tests' hashed bag-of-words embedder, 384-d (memory does not depend on "
            "the values)",
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
