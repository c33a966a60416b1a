"""Judged queries: reading query sets and relevance judgments, running them, and scoring runs.

Metrics come from ``ranx`` (nDCG with linear gains as in trec_eval, Recall, MRR, Precision).
Chunk hits are collapsed to documents: a document's rank is the rank of its best chunk.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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

MIN_GRADE = 0
MAX_GRADE = 10
"""Grades are whole numbers from ``MIN_GRADE`` to ``MAX_GRADE``: 0-3 in the app, 0-2 in
BEIR's qrels, 1-4 in Cranfield's, with room to spare; anything else is a damaged file."""

_GRADE_TEXT = re.compile(r"([+-]?)([0-9]+)(?:\.0+)?")
_GRADE_RANGE = f"grades are whole numbers from {MIN_GRADE} to {MAX_GRADE}"


@dataclass(frozen=True)
class QuerySet:
    """Queries with optional tags (what each query is meant to show) and descriptions (the
    information need behind each, as judges read it)."""

    queries: dict[str, str]
    tags: dict[str, str]
    descriptions: dict[str, str] = field(default_factory=dict)


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
    """Read queries: BEIR ``queries.jsonl`` (``_id``, ``text``, optional ``metadata.tag`` and
    ``metadata.description``, or the two at the top level) or a TREC topics TSV
    (``id<TAB>text`` per line, optionally ``<TAB>description``).

    Raises:
        InputError: a malformed line (the message names the file and line).
    """
    path = Path(path)
    queries: dict[str, str] = {}
    tags: dict[str, str] = {}
    descriptions: dict[str, str] = {}
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
            fields = meta if isinstance(meta, dict) else record
            tag, description = fields.get("tag"), fields.get("description")
            if tag:
                tags[qid] = str(tag)
            if isinstance(description, str) and description.strip():
                descriptions[qid] = description.strip()
        else:
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 2:
                raise InputError(path, "expected 'query id<TAB>query text'", number)
            qid, text = parts[0].strip(), parts[1].strip()
            if number == 1 and qid.lower() in {"query-id", "qid", "id", "_id"}:
                continue
            if len(parts) > 2 and parts[2].strip():
                descriptions[qid] = parts[2].strip()
        if qid in queries:
            raise InputError(path, f"query id {qid!r} appears twice", number)
        queries[qid] = text
    return QuerySet(queries, tags, descriptions)


def parse_grade(text: str) -> int:
    """Read a grade written in a file.

    A grade is a whole number written in decimal digits, with an optional sign and optional
    zeros after a decimal point (``"2"``, ``"+2"``, ``"2.0"``: each exactly 2). Fractions
    (``"2.7"``), exponents (``"1e3"``), ``inf``, ``nan`` and words are refused, as are
    numbers outside ``MIN_GRADE`` .. ``MAX_GRADE``.

    Args:
        text: the grade as written (surrounding whitespace is ignored).

    Returns:
        The grade.

    Raises:
        ValueError: the text is not such a number, or is out of range; the message states the
            value and the range.
    """
    match = _GRADE_TEXT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"grade {reprlib.repr(text)} is not a whole number; {_GRADE_RANGE}")
    sign, digits = match.groups()
    digits = digits.lstrip("0") or "0"
    # A grade has at most two digits: longer ones are out of range without being converted
    # (int() of thousands of digits is slow, and refused past 4300).
    value = int(sign + digits) if len(digits) <= 2 else None
    if value is None or not MIN_GRADE <= value <= MAX_GRADE:
        raise ValueError(f"grade {reprlib.repr(text)} is out of range; {_GRADE_RANGE}")
    return value


def check_grade(value: object) -> int:
    """Check a grade that is already a number (read from JSON, given by a caller).

    Args:
        value: the grade.

    Returns:
        The grade, as an int.

    Raises:
        ValueError: not an int (a bool, a float or a string is not), or out of
            ``MIN_GRADE`` .. ``MAX_GRADE``; the message states the value and the range.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"grade {reprlib.repr(value)} is not a whole number; {_GRADE_RANGE}")
    if not MIN_GRADE <= value <= MAX_GRADE:
        raise ValueError(f"grade {reprlib.repr(value)} is out of range; {_GRADE_RANGE}")
    return int(value)


def load_qrels(path: str | Path) -> Qrels:
    """Read judgments: BEIR ``qrels/*.tsv`` (header ``query-id corpus-id score``) or TREC qrels
    (``qid iter docid grade``, whitespace separated).

    Raises:
        InputError: a malformed line, or a grade that is not a whole number from
            ``MIN_GRADE`` to ``MAX_GRADE`` (see :func:`parse_grade`); the message names the
            file, the line and the value.
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
            value = parse_grade(grade)
        except ValueError as exc:
            raise InputError(path, str(exc), number) from None
        qrels.setdefault(qid, {})[doc] = value
    return qrels


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from None


def embed_queries(collection: Collection, queries: Mapping[str, str]) -> np.ndarray:
    """The queries' vectors in one batch, a row per query in the order of ``queries``."""
    return collection.embedder.embed_queries(list(queries.values()))


def run_queries(
    collection: Collection,
    queries: Mapping[str, str],
    params: SearchParams,
    *,
    depth: int = RUN_DEPTH,
    progress: Callable[[int, int], None] | None = None,
    vectors: np.ndarray | None = None,
) -> RunDict:
    """Search every query, collapsed to documents, and return a run.

    Queries are embedded in one batch (:func:`embed_queries`), unless ``vectors`` are given.
    A document's score in the run is derived from its rank (``depth - rank + 1``) so that the
    run keeps the engine's order exactly.

    Args:
        collection: the collection searched.
        queries: query id to text.
        params: the configuration (``k`` is raised to ``depth``; hits collapse to documents).
        depth: documents kept per query.
        progress: called as ``progress(done, total)`` after each query.
        vectors: the queries' vectors from :func:`embed_queries`, to embed them once for
            several configurations (ignored in BM25 mode).
    """
    params = replace(params, k=max(depth, params.k), collapse=True)
    ids = list(queries)
    if params.mode == "bm25":
        vectors = None
    elif vectors is None:
        vectors = embed_queries(collection, queries)
    run: RunDict = {}
    for n, qid in enumerate(ids):
        vector = vectors[n] if vectors is not None else None
        response = run_search(collection, queries[qid], params, query_vector=vector)
        run[qid] = {h.doc_id: float(params.k - h.rank + 1) for h in response.hits}
        if progress is not None:
            progress(n + 1, len(ids))
    return run


def run_configurations(
    collection: Collection,
    queries: Mapping[str, str],
    configs: Mapping[str, SearchParams],
    *,
    depth: int = RUN_DEPTH,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, RunDict]:
    """Run a query set with several configurations, embedding each query once for all.

    Embedding the queries is most of a run's time; every configuration gets the same vectors,
    so each run is exactly what :func:`run_queries` gives for that configuration alone.

    Args:
        collection: the collection searched.
        queries: query id to text.
        configs: name to configuration.
        depth: documents kept per query.
        progress: called as ``progress(done, total)`` after each query of each configuration;
            ``total`` is the number of queries times the number of configurations.

    Returns:
        Name to run, in the order of ``configs``.
    """
    embedded = any(params.mode != "bm25" for params in configs.values())
    vectors = embed_queries(collection, queries) if embedded and queries else None
    total = len(queries) * len(configs)
    runs: dict[str, RunDict] = {}
    for number, (name, params) in enumerate(configs.items()):
        step = _shifted(progress, number * len(queries), total) if progress else None
        runs[name] = run_queries(
            collection, queries, params, depth=depth, vectors=vectors, progress=step
        )
    return runs


def _shifted(
    progress: Callable[[int, int], None], offset: int, total: int
) -> Callable[[int, int], None]:
    """One run's ``progress(done, of)`` as a step of ``total`` that starts at ``offset``."""
    return lambda done, _of: progress(offset + done, total)


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
    # Every metric of an empty ranking is 0; ranx cannot score a run where all are empty.
    per_query: dict[str, dict[str, float]] = {
        q: dict.fromkeys(metrics, 0.0) for q in judged if not run[q]
    }
    scored = {q: d for q, d in judged.items() if run[q]}
    if scored:
        ranx_qrels = RanxQrels.from_dict(scored)
        ranx_run = RanxRun.from_dict({q: run[q] for q in scored})
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
            for qid, value in zip(order, values, strict=True):
                per_query.setdefault(qid, {})[metric] = float(value)
    means = {
        m: float(np.mean([per_query[q][m] for q in judged])) if judged else 0.0 for m in metrics
    }
    by_tag: dict[str, dict[str, float]] = {}
    for tag in sorted(set((tags or {}).values())):
        members = [q for q, t in (tags or {}).items() if t == tag and q in run]
        judged_members = [q for q in members if q in per_query]
        row = (
            {m: float(np.mean([per_query[q][m] for q in judged_members])) for m in metrics}
            if judged_members
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


def ndcg_at_k(ranking: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranked list, computed directly (the same numbers as ranx's ``ndcg@k``).

    With linear gains (Järvelin and Kekäläinen, TOIS 2002; trec_eval's definition)::

        DCG@k  = sum over ranks i = 1..k of  g(d_i) / log2(i + 1)
        nDCG@k = DCG@k / IDCG@k

    where g is the grade of a document with grade >= 1 (else 0) and IDCG@k is the DCG@k of the
    judged documents sorted by grade. A query without a relevant document scores 0.

    Meant for grids scored in memory (sweeps, tuning), where a ranx call per grid point would
    cost about 0.1 s; tests check it against ranx.
    """
    ideal = sorted((g for g in grades.values() if g >= 1), reverse=True)[:k]
    if not ideal:
        return 0.0
    dcg = 0.0
    for i, doc in enumerate(ranking[:k]):
        grade = grades.get(doc, 0)
        if grade >= 1:
            dcg += grade / math.log2(i + 2)
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def ranking_metrics(ranking: Sequence[str], grades: Mapping[str, int], k: int) -> dict[str, float]:
    """nDCG@k, Recall@k, MRR@k, P@k and AP of one ranked list, as ranx computes them.

    A document is relevant when its grade is at least 1; R is the set of relevant documents
    and ``rel_i`` is 1 when the document at rank i is relevant::

        Recall@k    = (sum of rel_i, i <= k) / |R|
        P@k         = (sum of rel_i, i <= k) / k
        MRR@k       = 1 / (rank of the first relevant document), 0 when none is in the top k
        AP          = (sum over relevant ranks i of P@i) / |R|, over the whole list ("map")

    nDCG@k is :func:`ndcg_at_k`. Every value is 0 for a query without a relevant document.

    Returns:
        ``{"ndcg@k", "recall@k", "mrr@k", "precision@k", "map"}`` with k filled in.
    """
    relevant = {doc for doc, grade in grades.items() if grade >= 1}
    names = (f"ndcg@{k}", f"recall@{k}", f"mrr@{k}", f"precision@{k}", "map")
    if not relevant:
        return dict.fromkeys(names, 0.0)
    hits = [doc in relevant for doc in ranking]
    top = sum(hits[:k])
    first = next((i for i, hit in enumerate(hits[:k]) if hit), None)
    found, precisions = 0, 0.0
    for i, hit in enumerate(hits):
        if hit:
            found += 1
            precisions += found / (i + 1)
    values = (
        ndcg_at_k(ranking, grades, k),
        top / len(relevant),
        0.0 if first is None else 1 / (first + 1),
        top / k,
        precisions / len(relevant),
    )
    return dict(zip(names, values, strict=True))
