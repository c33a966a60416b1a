"""Judged queries: reading query sets and relevance judgments, running them, and scoring runs.

Metrics come from ``ranx`` (nDCG with linear gains as in trec_eval, Recall, MRR, Precision).
Chunk hits are collapsed to documents: a document's rank is the rank of its best chunk.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .collection import Collection
from .errors import InputError
from .search import SearchParams, run_search

Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]
RunDict = dict[str, dict[str, float]]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10", "precision@10")
RUN_DEPTH = 100
"""Documents retrieved per query for evaluation (Recall@100 needs 100)."""


@dataclass(frozen=True)
class QuerySet:
    """Queries with optional tags (what each query is meant to show)."""

    queries: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class EvalReport:
    """Scores of one run.

    Attributes:
        metrics: mean of each metric over the judged queries.
        per_query: each metric for each judged query.
        queries: number of judged queries scored.
        empty: ids of queries (judged or not) that got no result at all.
        by_tag: mean metrics of the queries of each tag, plus ``queries`` and ``empty_share``.
    """

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    queries: int
    empty: tuple[str, ...]
    by_tag: dict[str, dict[str, float]]


def load_queries(path: str | Path) -> QuerySet:
    """Read queries: BEIR ``queries.jsonl`` (``_id``, ``text``, optional ``metadata.tag``) or a
    TREC topics TSV (``id<TAB>text`` per line).

    Raises:
        InputError: a malformed line (the message names the file and line).
    """
    path = Path(path)
    queries: dict[str, str] = {}
    tags: dict[str, str] = {}
    lines = _read_lines(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(path, f"not valid JSON ({exc.msg})", number) from exc
            if not isinstance(record, dict) or "_id" not in record or "text" not in record:
                raise InputError(path, "a query needs '_id' and 'text'", number)
            qid, text = str(record["_id"]), str(record["text"])
            meta = record.get("metadata")
            tag = meta.get("tag") if isinstance(meta, dict) else record.get("tag")
            if tag:
                tags[qid] = str(tag)
        else:
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 2:
                raise InputError(path, "expected 'query id<TAB>query text'", number)
            qid, text = parts[0].strip(), parts[1].strip()
            if number == 1 and qid.lower() in {"query-id", "qid", "id", "_id"}:
                continue
        if qid in queries:
            raise InputError(path, f"query id {qid!r} appears twice", number)
        queries[qid] = text
    return QuerySet(queries, tags)


def load_qrels(path: str | Path) -> Qrels:
    """Read judgments: BEIR ``qrels/*.tsv`` (header ``query-id corpus-id score``) or TREC qrels
    (``qid iter docid grade``, whitespace separated).

    Raises:
        InputError: a malformed line or a grade that is not an integer.
    """
    path = Path(path)
    qrels: Qrels = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if number == 1 and parts[0].lower() in {"query-id", "qid", "query_id"}:
            continue
        if len(parts) == 3:
            qid, doc, grade = parts
        elif len(parts) == 4:
            qid, _, doc, grade = parts
        else:
            raise InputError(
                path, "expected 'query doc grade' (BEIR) or 'query iter doc grade' (TREC)", number
            )
        try:
            value = int(float(grade))
        except ValueError:
            raise InputError(path, f"grade {grade!r} is not a number", number) from None
        qrels.setdefault(qid, {})[doc] = value
    return qrels


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from None


def run_queries(
    collection: Collection,
    queries: Mapping[str, str],
    params: SearchParams,
    *,
    depth: int = RUN_DEPTH,
    progress: Callable[[int, int], None] | None = None,
) -> RunDict:
    """Search every query, collapsed to documents, and return a run.

    Queries are embedded in one batch. A document's score in the run is derived from its rank
    (``depth - rank + 1``) so that the run keeps the engine's order exactly.
    """
    params = replace(params, k=max(depth, params.k), collapse=True)
    ids = list(queries)
    vectors: np.ndarray | None = None
    if params.mode != "bm25":
        vectors = collection.embedder.embed_queries([queries[q] for q in ids])
    run: RunDict = {}
    for n, qid in enumerate(ids):
        vector = vectors[n] if vectors is not None else None
        response = run_search(collection, queries[qid], params, query_vector=vector)
        run[qid] = {h.doc_id: float(params.k - h.rank + 1) for h in response.hits}
        if progress is not None:
            progress(n + 1, len(ids))
    return run


def evaluate_run(
    qrels: Qrels,
    run: RunDict,
    metrics: Sequence[str] = DEFAULT_METRICS,
    tags: Mapping[str, str] | None = None,
) -> EvalReport:
    """Score a run against judgments with ranx.

    Only queries with at least one positive judgment are scored; queries of a tag without
    judgments (out-of-domain ones) still count in that tag's ``empty_share``.
    """
    os.environ.setdefault("NUMBA_DISABLE_PERFORMANCE_WARNINGS", "1")
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    judged = {q: d for q, d in qrels.items() if any(g > 0 for g in d.values()) and q in run}
    empty = tuple(q for q, docs in run.items() if not docs)
    per_query: dict[str, dict[str, float]] = {}
    means: dict[str, float] = dict.fromkeys(metrics, 0.0)
    if judged:
        ranx_qrels = RanxQrels.from_dict(judged)
        ranx_run = RanxRun.from_dict({q: run[q] or {} for q in judged})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = evaluate(
                ranx_qrels, ranx_run, list(metrics), make_comparable=True, return_mean=False
            )
        if len(metrics) == 1:
            scores = {metrics[0]: scores}
        order = list(ranx_qrels.keys())
        for metric in metrics:
            values = np.asarray(scores[metric], dtype=float)
            means[metric] = float(values.mean())
            for qid, value in zip(order, values, strict=True):
                per_query.setdefault(qid, {})[metric] = float(value)
    by_tag: dict[str, dict[str, float]] = {}
    for tag in sorted(set((tags or {}).values())):
        members = [q for q, t in (tags or {}).items() if t == tag and q in run]
        scored = [q for q in members if q in per_query]
        row = (
            {m: float(np.mean([per_query[q][m] for q in scored])) for m in metrics}
            if scored
            else {}
        )
        row["queries"] = float(len(members))
        row["empty_share"] = float(np.mean([not run[q] for q in members])) if members else 0.0
        by_tag[tag] = row
    return EvalReport(means, per_query, len(judged), empty, by_tag)


def evaluate_collection(
    collection: Collection,
    query_set: QuerySet,
    qrels: Qrels,
    params: SearchParams,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run the query set on a collection and score it."""
    run = run_queries(collection, query_set.queries, params, progress=progress)
    return evaluate_run(qrels, run, metrics, query_set.tags)
