"""The ``search-explorer`` command: index, search, list, info, delete, eval and drift-check.

Every command prints plain text, or JSON with ``--json``. Errors print one line and exit with
status 2 (the drift check exits 1 when the model has drifted); never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from .chunking import ChunkingConfig
from .embedding import EMBEDDING_BACKENDS
from .errors import SearchExplorerError
from .fusion import FUSION_METHODS
from .settings import (
    DEFAULT_BACKEND,
    DEFAULT_CANDIDATES,
    DEFAULT_K,
    DEFAULT_LEXICAL_MARGIN,
    DEFAULT_RRF_K,
    DEFAULT_THRESHOLD,
)
from .types import SEARCH_MODES, SearchResponse

INDEX_KIND_CHOICES = ("auto", "flat", "ivf", "hnsw", "ivfpq")


def _progress(stream: TextIO | None = None) -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback for long commands, writing to stderr.

    On a terminal, one tqdm bar per stage; otherwise (a log file, a pipe, CI) one line per
    stage when it starts and one each time it passes another 10%, so a long build is never
    silent. Stages are named as :data:`~search_core.collection.BUILD_STAGES` says.
    """
    from .collection import BUILD_STAGES

    out = sys.stderr if stream is None else stream
    show = _progress_bars if out.isatty() else _progress_lines
    return show(out, lambda stage: BUILD_STAGES.get(stage, stage))


_BYTE_STAGES = frozenset({"embed"})
"""Build stages counted in bytes of the source (see ``BUILD_STAGES``)."""


def _progress_bars(out: TextIO, label: Callable[[str], str]) -> Callable[[str, int, int], None]:
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            unit = "B" if stage in _BYTE_STAGES else ""
            bar = bars[stage] = tqdm(
                total=total,
                desc=label(stage),
                unit=unit,
                unit_scale=bool(unit),
                file=out,
                leave=False,
            )
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _progress_lines(out: TextIO, label: Callable[[str], str]) -> Callable[[str, int, int], None]:
    shown: dict[str, int] = {}  # the last tenth printed for each stage

    def update(stage: str, done: int, total: int) -> None:
        tenth = min(10 * done // total, 10) if total > 0 else 10
        if tenth > shown.get(stage, -1):
            shown[stage] = tenth
            unit = " bytes" if stage in _BYTE_STAGES else ""
            print(
                f"{label(stage)}: {10 * tenth}% ({done:,} of {total:,}{unit})", file=out, flush=True
            )

    return update


def _parse_index_params(items: Sequence[str]) -> dict[str, int]:
    params: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--index-param {item!r}: expected NAME=INTEGER, e.g. nlist=256")
        params[key.strip()] = int(value)
    return params


def cmd_index(args: argparse.Namespace) -> int:
    from .analysis import check_language
    from .collection import BuildOptions, build_collection, check_can_build
    from .ingest import FieldMap, infer_source_fields

    check_can_build(args.name, args.home)  # a home that cannot be written: say so before any work
    check_language(args.language)  # an unknown language too, naming the valid ones
    given = FieldMap(
        text=args.text_field,
        title=args.title_field,
        id=args.id_field,
        metadata=tuple(f for f in args.metadata_fields.split(",") if f)
        if args.metadata_fields is not None
        else None,
        delimiter=args.delimiter,
    )
    # The roles no flag names are chosen from the data, as the app's Corpus page does.
    inferred = infer_source_fields(args.source, given)
    fields = inferred.fields
    if not args.json:  # --json output holds them
        if inferred.columns:
            print(f"columns: {inferred.summary()}", flush=True)
        for warning in inferred.warnings:
            print(f"warning: {warning}", flush=True)
    options = BuildOptions(
        chunking=ChunkingConfig(
            method=args.chunking, size=args.chunk_size, overlap=args.chunk_overlap
        ),
        index_kind=args.index,
        index_params=_parse_index_params(args.index_param),
        model=args.model,
        backend=args.backend,
        fields=fields,
        language=args.language,
    )
    from .distributed import build_engine

    with build_engine(args.ray, options) as engine:
        collection = build_collection(
            args.name, args.source, options, home=args.home, progress=_progress(), engine=engine
        )
    counts = collection.manifest["counts"]
    seconds = collection.manifest["build_seconds"]
    index = collection.manifest["index"]
    if args.json:
        chosen = {"text": fields.text, "id": fields.id, "title": fields.title}
        _print_json(
            {
                "name": collection.name,
                "counts": counts,
                "index": index,
                "analyzer": collection.manifest["analyzer"],
                "language_detection": collection.manifest.get("language_detection"),
                "seconds": seconds,
                "vector_pack": collection.manifest.get("vector_pack"),
                "embedding_cache": collection.manifest.get("embedding_cache"),
                "files_skipped": collection.manifest["source"]["files_skipped"],
                "fields": chosen
                | {
                    "metadata": list(inferred.metadata),
                    "reasons": inferred.reasons,
                    "warnings": list(inferred.warnings),
                },
            }
        )
        return 0
    print(
        f"indexed {counts['documents']} documents as {counts['chunks']} chunks into "
        f"collection {collection.name!r} ({index['kind']} index; BM25 analyzer: "
        f"{collection.analyzer.describe()}) in {seconds['total']:.1f} s"
    )
    detection = collection.manifest.get("language_detection")
    if detection and detection.get("note"):
        print(f"note: language: {detection['note']}; set one with --language")
    if counts["files_skipped"]:  # by name and reason, the first ten (the manifest keeps more)
        skipped = collection.manifest["source"]["files_skipped"][:10]
        files = "file" if counts["files_skipped"] == 1 else "files"
        print(f"skipped {counts['files_skipped']} {files} of the source:")
        print("\n".join(f"  {name}: {reason}" for name, reason in skipped))
        if counts["files_skipped"] > len(skipped):
            print(f"  and {counts['files_skipped'] - len(skipped)} more")
    if counts["skipped_empty"]:
        print(f"skipped {counts['skipped_empty']} empty documents")
    if counts["pages_without_text"]:
        print(f"{counts['pages_without_text']} PDF pages had no text layer")
    if index.get("fallback_reason"):
        print(f"note: {index['fallback_reason']}")
    pack = collection.manifest.get("vector_pack")
    if pack and pack.get("problem"):
        print(f"note: the vector pack was not used: {pack['problem']}")
    elif pack:
        print(f"{pack['used']} of {counts['chunks']} chunk vectors came from {pack['file']}")
    cache = collection.manifest.get("embedding_cache")
    if cache:
        print(f"note: built without the on-disk embedding cache: {cache['problem']}")
    return 0


def cmd_pack_vectors(args: argparse.Namespace) -> int:
    from .collection import open_collection
    from .vector_pack import pack_collection

    collection = open_collection(args.name, args.home)
    folder = args.folder or collection.manifest["source"]["path"]
    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: not a folder; a vector pack goes with a corpus folder")
    file = pack_collection(collection, folder)
    print(f"wrote the vectors of {len(collection.chunks)} chunks to {file}")
    return 0


def _search_options(args: argparse.Namespace, collection: Any) -> dict[str, Any]:
    """The search settings the command line gives, filters checked against the collection's
    fields (so a malformed filter names them too)."""
    from .filters import merge_filters, metadata_fields

    fields = metadata_fields(collection.document_metadata()) if args.filter else None
    return {
        "threshold": args.threshold,
        "rrf_k": args.rrf_k,
        "fusion": args.fusion,
        "lexical_margin": args.lexical_margin,
        "vector_weight": args.vector_weight,
        "bm25_weight": args.bm25_weight,
        "candidates": args.candidates,
        "nprobe": args.nprobe,
        "ef_search": args.ef_search,
        "bm25_engine": args.bm25_engine,
        "filters": merge_filters(args.filter, fields=fields) if args.filter else None,
    }


def cmd_search(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from .collection import open_collection, read_manifest
    from .embedding import manifest_embedder
    from .search import search

    with ThreadPoolExecutor(1) as pool:
        loading = None
        model = read_manifest(args.name, args.home)[1]["model"]
        embedder = manifest_embedder(model) if args.mode != "bm25" else None
        if embedder is not None and embedder.fingerprint == model["fingerprint"]:
            # The model loads while the collection is read: ONNX Runtime builds its session
            # (a few tenths of a second) without holding the GIL.
            loading = pool.submit(embedder.load)
        collection = open_collection(args.name, args.home)
        if loading is not None:
            loading.result()  # the model's own error, if it has one
    response = search(
        collection,
        args.query,
        args.mode,
        args.k,
        collapse=args.collapse,
        **_search_options(args, collection),
    )
    if args.json:
        _print_json(_response_dict(response))
        return 0
    _print_response(response)
    return 0


def _response_dict(response: SearchResponse) -> dict[str, Any]:
    return {
        "query": response.query,
        "mode": response.mode,
        "hits": [asdict(h) | {"metadata": dict(h.metadata)} for h in response.hits],
        "timings_ms": asdict(response.timings) | {"total_ms": response.timings.total_ms},
        "candidates": response.candidates,
        "below_threshold": response.below_threshold,
    }


def _print_response(response: SearchResponse) -> None:
    if not response.hits:
        print(
            f"no results for {response.query!r} in {response.mode} mode"
            + (
                f" ({response.below_threshold} candidates were below the similarity threshold)"
                if response.below_threshold
                else ""
            )
        )
    for hit in response.hits:
        parts = [f"#{hit.rank}  score {hit.score:.4f}  doc {hit.doc_id}  chunk {hit.chunk_id}"]
        if hit.similarity is not None:
            parts.append(f"cosine {hit.similarity:.3f}")
        ranks = [
            f"{name} rank {r.rank}"
            for name, r in (("vector", hit.vector), ("bm25", hit.bm25))
            if r.rank is not None
        ]
        print("  ".join(parts + ranks))
        if hit.title:
            print(f"    {hit.title}")
        snippet = " ".join(hit.text.split())
        print(textwrap.indent(textwrap.fill(snippet[:300], width=96), "    "))
    t = response.timings
    print(
        f"time: embed {t.embed_ms:.1f} ms, vector {t.vector_ms:.1f} ms, "
        f"bm25 {t.bm25_ms:.1f} ms, fusion {t.fusion_ms:.1f} ms"
    )


def cmd_list(args: argparse.Namespace) -> int:
    from .collection import list_collections

    infos = list_collections(args.home)
    if args.json:
        _print_json([asdict(i) for i in infos])
        return 0
    if not infos:
        print("no collections yet; create one with: search-explorer index SOURCE --name NAME")
    for info in infos:
        print(
            f"{info.name:24} {info.documents:>8} docs {info.chunks:>8} chunks  "
            f"{info.index_kind:6} {info.created_at}  {info.source}"
        )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .collection import manifest_analyzer, read_manifest

    folder, manifest = read_manifest(args.name, args.home)
    if args.json:
        _print_json(manifest)
        return 0
    model, index, counts = manifest["model"], manifest["index"], manifest["counts"]
    lines = [
        f"collection   {manifest['name']}  (built {manifest['created_at']})",
        f"folder       {folder}",
        f"source       {manifest['source']['path']}",
        f"documents    {counts['documents']}  (skipped empty: {counts['skipped_empty']})",
        f"chunks       {counts['chunks']}  ({manifest['chunking']['method']}, size "
        f"{manifest['chunking']['size']}, overlap {manifest['chunking']['overlap']})",
        f"model        {model['name']}  ({model['dim']}-d, max {model['max_seq_length']} tokens, "
        f"{model.get('backend', 'torch')} backend)",
        f"fingerprint  {model['fingerprint']}",
        f"index        {index['kind']} {json.dumps(index.get('params', {}), sort_keys=True)}",
        "bm25         {engine} k1={k1} b={b}".format(**manifest["bm25"]),
        f"language     {manifest_analyzer(manifest).describe()}",
    ]
    if index.get("fallback_reason"):
        lines.append(f"note         {index['fallback_reason']}")
    print("\n".join(lines))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from .collection import delete_collection

    delete_collection(args.name, args.home)
    print(f"deleted collection {args.name!r}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .collection import open_collection
    from .evaluation import evaluate_collection, load_qrels, load_queries
    from .search import SearchParams

    collection = open_collection(args.name, args.home)
    query_set = load_queries(args.queries)
    qrels = load_qrels(args.qrels)
    modes = list(SEARCH_MODES) if args.mode == "all" else [args.mode]
    bars = _progress()
    results = {}
    for mode in modes:
        params = SearchParams(mode=mode, **_search_options(args, collection))
        report = evaluate_collection(
            collection, query_set, qrels, params, progress=partial(bars, f"eval {mode}")
        )
        results[mode] = report
    if args.json:
        payload = {
            mode: {
                "metrics": r.metrics,
                "queries": r.queries,
                "empty": len(r.empty),
                **({"by_tag": r.by_tag} if args.by_tag else {}),
            }
            for mode, r in results.items()
        }
        _print_json(payload[modes[0]] if len(modes) == 1 else payload)
        return 0
    for mode, report in results.items():
        metrics = "  ".join(f"{name} {value:.4f}" for name, value in report.metrics.items())
        print(
            f"{mode:7} {metrics}  "
            f"({report.queries} judged queries, {len(report.empty)} with no result)"
        )
        if args.by_tag:
            for tag, row in report.by_tag.items():
                values = "  ".join(
                    f"{name} {value:.4f}"
                    for name, value in row.items()
                    if name not in {"queries", "empty_share"}
                )
                print(
                    f"    {tag:14} {values}  ({int(row['queries'])} queries, "
                    f"{row['empty_share']:.0%} with no result)"
                )
    return 0


def cmd_drift_check(args: argparse.Namespace) -> int:
    from .collection import open_collection
    from .drift import drift_check

    collection = open_collection(args.name, args.home, check_fingerprint=False)
    report = drift_check(collection)
    if args.json:
        _print_json(asdict(report))
    else:
        verdict = (
            "no drift"
            if report.passed
            else "DRIFT: the model now installed gives different vectors"
        )
        print(
            f"{verdict}: mean cosine {report.mean_cosine:.5f} (min {report.min_cosine:.5f}, "
            f"bar {report.threshold}) over {report.probes} probes"
        )
        if report.stored_fingerprint != report.current_fingerprint:
            print(
                f"model fingerprint changed: built with {report.stored_fingerprint[:16]}, "
                f"now {report.current_fingerprint[:16]}"
            )
    return 0 if report.passed else 1


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="minimum cosine similarity of a result (vector and hybrid modes)",
    )
    parser.add_argument("--rrf-k", type=float, default=DEFAULT_RRF_K, help="RRF constant (hybrid)")
    parser.add_argument(
        "--fusion",
        default="rrf",
        help=f"hybrid fusion method, one of {', '.join(FUSION_METHODS)} (default rrf)",
    )
    parser.add_argument(
        "--lexical-margin",
        type=float,
        default=None,
        help="hybrid: BM25 ranks only chunks whose cosine is at least the threshold plus this, "
        f"unless the query's identifiers match (default: {DEFAULT_LEXICAL_MARGIN} where the "
        "embedding model reads the collection's language, no floor elsewhere; -2: no floor)",
    )
    parser.add_argument(
        "--vector-weight", type=float, default=1.0, help="weight of the vector ranking"
    )
    parser.add_argument("--bm25-weight", type=float, default=1.0, help="weight of the BM25 ranking")
    parser.add_argument(
        "--candidates", type=int, default=DEFAULT_CANDIDATES, help="candidates from each retriever"
    )
    parser.add_argument("--nprobe", type=int, default=None, help="IVF lists to probe (ivf, ivfpq)")
    parser.add_argument("--ef-search", type=int, default=None, help="HNSW search breadth")
    parser.add_argument("--bm25-engine", default="bm25s", choices=("bm25s", "okapi-reference"))
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="metadata filter: field=value, field>=N, field<N ... (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``search-explorer``."""
    parser = argparse.ArgumentParser(
        prog="search-explorer",
        description="Index a corpus and search it in vector, BM25 or hybrid mode.",
    )
    parser.add_argument(
        "--home",
        default=None,
        help="collections folder (default: $SEARCH_EXPLORER_HOME or ./collections)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="read, chunk, embed and index a source into a collection")
    p.add_argument(
        "source", help="a file (.csv .tsv .jsonl .txt .md .pdf), a folder, a .zip or a BEIR folder"
    )
    p.add_argument("--name", required=True, help="collection name")
    p.add_argument("--chunk-size", type=int, default=ChunkingConfig.size, help="tokens per chunk")
    p.add_argument(
        "--chunk-overlap", type=int, default=ChunkingConfig.overlap, help="tokens of overlap"
    )
    p.add_argument("--chunking", choices=("tokens", "paragraphs"), default="tokens")
    p.add_argument(
        "--index",
        choices=INDEX_KIND_CHOICES,
        default="auto",
        help="vector index kind (auto: flat, ivf or ivfpq by the number of chunks)",
    )
    p.add_argument(
        "--index-param",
        action="append",
        default=[],
        metavar="NAME=N",
        help="index parameter, e.g. nlist=256, nprobe=16, M=32, m=48, nbits=8",
    )
    p.add_argument("--model", default=None, help="a local sentence-transformers model folder")
    p.add_argument(
        "--backend",
        choices=tuple(EMBEDDING_BACKENDS),
        default=DEFAULT_BACKEND,
        help=f"embedding backend (default {DEFAULT_BACKEND}): onnx-fp32 (the same vectors as "
        "torch, faster), onnx-int8 (fastest, mean cosine 0.995 to torch), or torch (reference)",
    )
    p.add_argument("--text-field", default=None)
    p.add_argument("--title-field", default=None)
    p.add_argument("--id-field", default=None)
    p.add_argument(
        "--metadata-fields", default=None, help="comma-separated; default: all other fields"
    )
    p.add_argument("--delimiter", default=None, help="CSV delimiter (default from the extension)")
    p.add_argument(
        "--language",
        default="auto",
        help="BM25 analysis (stemmer, stopwords): auto (detect from the documents, the "
        "default), none (no stemming or stopwords), or an ISO 639-1 code such as de, ru, zh",
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS|local",
        help="chunk and embed on a Ray cluster: its head's HOST:PORT, or local to start Ray on "
        "this machine (needs the ray extra: pip install -e '.[ray]')",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search a collection")
    p.add_argument("name")
    p.add_argument("query")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid")
    p.add_argument("-k", type=int, default=DEFAULT_K, help="number of results")
    p.add_argument("--collapse", action="store_true", help="one result per document")
    _add_search_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("list", help="list collections")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a collection's manifest")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "pack-vectors",
        help="store a collection's vectors with its corpus folder, so rebuilding it embeds nothing",
    )
    p.add_argument("name")
    p.add_argument("folder", nargs="?", help="the corpus folder (default: the collection's source)")
    p.set_defaults(func=cmd_pack_vectors)

    p = sub.add_parser("delete", help="delete a collection")
    p.add_argument("name")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("eval", help="score judged queries (nDCG@10, Recall@100, MRR@10, P@10)")
    p.add_argument("name")
    p.add_argument("--queries", required=True, help="BEIR queries.jsonl or TREC topics TSV")
    p.add_argument("--qrels", required=True, help="BEIR qrels TSV or TREC qrels")
    p.add_argument("--mode", choices=(*SEARCH_MODES, "all"), default="hybrid")
    p.add_argument("--by-tag", action="store_true", help="break the metrics down by query tag")
    _add_search_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "drift-check", help="compare the installed model with the one used at build time"
    )
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_drift_check)

    from .cli_lab import add_lab_commands

    add_lab_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``search-explorer``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (SearchExplorerError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # only the embedding cache is a database
        print(f"error: the embedding cache cannot be used: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
