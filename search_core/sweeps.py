"""Sweeps: how the quality and the speed of a search move with one setting, as plot-ready tables.

* :func:`threshold_sweep`: nDCG@k, precision@k, recall@k and the share of queries left with no
  result, for similarity thresholds from 0 to 1;
* :func:`fusion_sweep`: nDCG@k over a grid of RRF ``k`` and vector / BM25 weights, the two pure
  modes at the ends;
* :func:`ann_sweep`: recall@k of the approximate index against exact search, latency p50 / p95 /
  p99 per query and nDCG@k, for values of ``nprobe`` (ivf, ivfpq) or ``efSearch`` (hnsw);
* :func:`ann_health`: recall@k of the collection's index on a sample of its own chunks used as
  queries, and the memory per vector of each index kind.

The retrievers run once per query, at depth, in a :class:`CandidatePool`; every grid point is
then ranked again in memory (fusion, threshold, collapse to documents) exactly as
:func:`~search_core.search.run_search` would rank it, and scored with the direct metrics of
:mod:`search_core.evaluation` (equal to ranx's). Queries are embedded once, in one batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .candidates import Candidates, RetrieverList, cosines, identifier_list, rank_deepening
from .collection import Collection
from .evaluation import RUN_DEPTH, Qrels, QuerySet, RunDict, ranking_metrics
from .search import SearchParams
from .settings import DEFAULT_CANDIDATES
from .vector_index import INDEX_KINDS, default_params

__all__ = [
    "ANN_PARAMETERS",
    "SWEEPS",
    "AnnHealth",
    "CandidatePool",
    "SweepResult",
    "ann_health",
    "ann_sweep",
    "fusion_sweep",
    "threshold_sweep",
]

QueriesLike = Mapping[str, str] | QuerySet

ANN_PARAMETERS: dict[str, str] = {"ivf": "nprobe", "ivfpq": "nprobe", "hnsw": "ef_search"}
"""The search-time setting of each approximate index kind (flat is exact: nothing to sweep)."""

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))
DEFAULT_RRF_KS: tuple[float, ...] = (1, 5, 10, 20, 40, 60, 100, 200)
DEFAULT_VECTOR_SHARES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
DEFAULT_EF_SEARCH: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)


def _query_texts(queries: QueriesLike) -> dict[str, str]:
    return dict(queries.queries if isinstance(queries, QuerySet) else queries)


# --------------------------------------------------------------------------- candidate pool


class CandidatePool:
    """Each query's candidates, gathered once and deep, ranked by any setting in memory.

    :meth:`rank` gives, for any settings that only change how candidates are combined (mode,
    fusion, weights, ``rrf_k``, threshold, floor, BM25 ``k1``/``b``), the documents
    :func:`~search_core.evaluation.run_queries` gives: both rank with
    :func:`~search_core.candidates.rank_deepening` from the same candidates, here cut from
    lists gathered once at four times the first depth (and deeper when a ranking needs it).

    The vector candidates come from the collection's index (with this pool's ``nprobe`` and
    ``ef_search``); BM25 candidates are gathered on first use for each engine and ``k1``/``b``
    (through :meth:`Collection.lexical_engine`, which builds and keeps an index per setting).

    Args:
        collection: an opened collection.
        queries: the queries (ids to texts, or a query set).
        nprobe: IVF lists probed (ivf, ivfpq), None for the index default.
        ef_search: HNSW search breadth, None for the index default.
        candidates: candidates taken from each retriever (``SearchParams.candidates``).
        depth: documents per query in a run (``run_queries``' depth).
        vectors: the queries' normalized embeddings, in query order, when already computed.
    """

    def __init__(
        self,
        collection: Collection,
        queries: QueriesLike,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        candidates: int = DEFAULT_CANDIDATES,
        depth: int = RUN_DEPTH,
        vectors: np.ndarray | None = None,
    ) -> None:
        self.collection = collection
        self.texts = _query_texts(queries)
        self.ids = list(self.texts)
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.candidates = candidates
        self.depth = depth
        self.total = len(collection.chunks)
        self.chunk_doc = collection.chunk_doc_index
        self.doc_ids = list(collection.doc_index)  # in document order
        self.reads_language = collection.model_reads_language
        if vectors is None:
            vectors = collection.embedder.embed_queries([self.texts[q] for q in self.ids])
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self._blank = [not self.texts[q].strip() for q in self.ids]
        # Four times the first depth: the deepening of a collapsed search rarely goes further.
        self._first = min(self.total, 4 * min(max(candidates, depth), self.total))
        results = (
            collection.vector_index.search_batch(
                self.vectors, max(self._first, 1), nprobe=nprobe, ef_search=ef_search
            )
            if self.ids and self.total
            else []
        )
        self._vector: list[RetrieverList] = [
            self._listed(i, ids, scores, self._first) for i, (ids, scores) in enumerate(results)
        ]
        self._bm25: dict[tuple[str, float, float], list[RetrieverList]] = {}
        self._identifier: dict[int, RetrieverList] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _listed(self, i: int, ids: np.ndarray, scores: np.ndarray, asked: int) -> RetrieverList:
        cosine = cosines(self.collection, ids, self.vectors[i])
        return RetrieverList(ids, scores, cosine, complete=len(ids) < asked)

    def _bm25_key(self, params: SearchParams) -> tuple[str, float, float]:
        stored = self.collection.manifest["bm25"]
        k1 = float(stored["k1"] if params.bm25_k1 is None else params.bm25_k1)
        b = float(stored["b"] if params.bm25_b is None else params.bm25_b)
        return params.bm25_engine, k1, b

    def _vector_list(self, i: int, depth: int) -> RetrieverList:
        found = self._vector[i]
        if len(found) < depth and not found.complete:
            ids, scores = self.collection.vector_index.search(
                self.vectors[i], depth, nprobe=self.nprobe, ef_search=self.ef_search
            )
            found = self._vector[i] = self._listed(i, ids, scores, depth)
        return found.head(depth)

    def _bm25_list(self, key: tuple[str, float, float], i: int, depth: int) -> RetrieverList:
        lists = self._bm25.get(key)
        engine = self.collection.lexical_engine(*key)
        if lists is None:
            lists = [
                self._listed(n, *engine.top_k(self.texts[q], self._first), self._first)
                for n, q in enumerate(self.ids)
            ]
            self._bm25[key] = lists
        found = lists[i]
        if len(found) < depth and not found.complete:
            found = lists[i] = self._listed(i, *engine.top_k(self.texts[self.ids[i]], depth), depth)
        return found.head(depth)

    def _identifier_list(self, i: int) -> RetrieverList:
        if i not in self._identifier:
            self._identifier[i] = identifier_list(
                self.collection, self.texts[self.ids[i]], self.vectors[i]
            )
        return self._identifier[i]

    def gather(self, i: int, params: SearchParams, depth: int) -> Candidates:
        """Query ``i``'s candidates for a setting at a depth, as a search would gather them."""
        vector = self._vector_list(i, depth) if params.mode != "bm25" else RetrieverList()
        bm25 = (
            self._bm25_list(self._bm25_key(params), i, depth)
            if params.mode != "vector"
            else RetrieverList()
        )
        hybrid = params.mode == "hybrid" and params.identifier_match
        identifiers = self._identifier_list(i) if hybrid else RetrieverList()
        return Candidates(vector, bm25, identifiers, self.reads_language)

    def _check(self, params: SearchParams) -> None:
        if params.filters:
            raise ValueError(
                "a candidate pool ranks unfiltered searches; run filtered ones with run_queries"
            )
        if (params.nprobe, params.ef_search) != (self.nprobe, self.ef_search):
            raise ValueError(
                f"this pool was gathered with nprobe={self.nprobe}, ef_search={self.ef_search}; "
                f"the settings ask for nprobe={params.nprobe}, ef_search={params.ef_search}"
            )
        if params.candidates != self.candidates:
            raise ValueError(
                f"this pool was gathered with candidates={self.candidates}, not {params.candidates}"
            )

    def rank(self, params: SearchParams, *, limit: int | None = None) -> list[list[int]]:
        """Each query's documents (indexes into ``collection.documents``), best first.

        Args:
            params: the settings (``collapse`` is implied, as in a run).
            limit: keep only the first ``limit`` documents of each list (all of the run's by
                default); the ranking is the full one, cut afterwards.

        Raises:
            ValueError: filters, or ``nprobe``/``ef_search``/``candidates`` other than the pool's.
        """
        self._check(params)
        run_k = max(self.depth, params.k)
        keep = run_k if limit is None else min(limit, run_k)
        params = replace(params, k=run_k, collapse=True)
        return [self._rank_one(i, params, run_k)[:keep] for i in range(len(self.ids))]

    def run(self, params: SearchParams) -> RunDict:
        """The run :func:`~search_core.evaluation.run_queries` would return for these settings."""
        run_k = max(self.depth, params.k)
        return {
            qid: {self.doc_ids[d]: float(run_k - rank) for rank, d in enumerate(docs)}
            for qid, docs in zip(self.ids, self.rank(params), strict=True)
        }

    def rankings(self, params: SearchParams, *, limit: int | None = None) -> dict[str, list[str]]:
        """Each query's document ids, best first (see :meth:`rank`)."""
        return {
            qid: [self.doc_ids[d] for d in docs]
            for qid, docs in zip(self.ids, self.rank(params, limit=limit), strict=True)
        }

    def _rank_one(self, i: int, params: SearchParams, run_k: int) -> list[int]:
        if self._blank[i] or self.total == 0:
            return []
        ranking, _ = rank_deepening(
            lambda depth: self.gather(i, params, depth),
            params,
            want=run_k,
            total=self.total,
            chunk_doc=self.chunk_doc,
        )
        return self.chunk_doc[ranking.ids[:run_k]].tolist()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SweepResult:
    """A sweep's table, one row per setting tried, ready to plot.

    Attributes:
        kind: ``threshold``, ``fusion`` or ``ann``.
        parameter: the column swept (``threshold``, ``rrf_k``, ``nprobe``, ``ef_search``).
        rows: one dict per setting, the same keys in each.
        params: the base configuration (``SearchParams.to_dict()``).
        queries: queries run.
        judged: queries with a relevant judgment (the ones metrics average over).
        seconds: time taken.
    """

    kind: str
    parameter: str
    rows: tuple[dict[str, Any], ...]
    params: dict[str, Any]
    queries: int
    judged: int
    seconds: float

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self.rows[0]) if self.rows else []


def _judged(pool: CandidatePool, qrels: Qrels) -> list[int]:
    return [i for i, q in enumerate(pool.ids) if any(g >= 1 for g in qrels.get(q, {}).values())]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def _scores(
    pool: CandidatePool, qrels: Qrels, params: SearchParams, k: int, judged: Sequence[int]
) -> dict[str, float]:
    """Mean nDCG@k, P@k, recall@k over judged queries, and the share of empty results."""
    rankings = pool.rank(params, limit=k)
    rows = [
        ranking_metrics([pool.doc_ids[d] for d in rankings[i]], qrels[pool.ids[i]], k)
        for i in judged
    ]
    return {
        f"ndcg@{k}": _mean([r[f"ndcg@{k}"] for r in rows]),
        f"precision@{k}": _mean([r[f"precision@{k}"] for r in rows]),
        f"recall@{k}": _mean([r[f"recall@{k}"] for r in rows]),
        "empty_share": _mean([not docs for docs in rankings]),
    }


def _pool_for(
    collection: Collection, queries: QueriesLike, params: SearchParams, pool: CandidatePool | None
) -> CandidatePool:
    if pool is not None:
        return pool
    return CandidatePool(
        collection,
        queries,
        nprobe=params.nprobe,
        ef_search=params.ef_search,
        candidates=params.candidates,
    )


# --------------------------------------------------------------------------- sweeps


def threshold_sweep(
    collection: Collection,
    queries: QueriesLike,
    qrels: Qrels,
    params: SearchParams | None = None,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    k: int = 10,
    pool: CandidatePool | None = None,
) -> SweepResult:
    """Quality and the share of empty answers as the similarity threshold rises.

    Args:
        collection: an opened collection.
        queries: the queries.
        qrels: their judgments.
        params: the base configuration (vector or hybrid; default hybrid).
        thresholds: the thresholds to try (default 0, 0.05, ..., 1).
        k: the cutoff of nDCG, precision and recall.
        pool: candidates already gathered for these queries.

    Returns:
        Rows of ``threshold, ndcg@k, precision@k, recall@k, empty_share`` (the share of all
        queries, judged or not, left with no result).

    Raises:
        ValueError: a bm25 configuration (the threshold does not apply to it).
    """
    started = time.perf_counter()
    params = params or SearchParams()
    if params.mode == "bm25":
        raise ValueError("the similarity threshold applies to vector and hybrid modes, not bm25")
    pool = _pool_for(collection, queries, params, pool)
    judged = _judged(pool, qrels)
    rows = tuple(
        {
            "threshold": float(t),
            **_scores(pool, qrels, replace(params, threshold=float(t)), k, judged),
        }
        for t in thresholds
    )
    return SweepResult(
        "threshold",
        "threshold",
        rows,
        params.to_dict(),
        len(pool),
        len(judged),
        time.perf_counter() - started,
    )


def fusion_sweep(
    collection: Collection,
    queries: QueriesLike,
    qrels: Qrels,
    params: SearchParams | None = None,
    *,
    rrf_ks: Sequence[float] = DEFAULT_RRF_KS,
    vector_shares: Sequence[float] = DEFAULT_VECTOR_SHARES,
    k: int = 10,
    pool: CandidatePool | None = None,
) -> SweepResult:
    """nDCG@k over a grid of RRF ``k`` and vector / BM25 weights.

    The weights are ``vector_weight = s`` and ``bm25_weight = 1 - s`` for each vector share
    ``s``; ``s = 0`` is the pure bm25 mode and ``s = 1`` the pure vector mode (their rows repeat
    for every ``rrf_k``, so each ``rrf_k`` is a complete line from one end to the other).

    Args:
        collection: an opened collection.
        queries: the queries.
        qrels: their judgments.
        params: the base configuration (threshold, BM25 settings...).
        rrf_ks: the RRF constants to try.
        vector_shares: the vector weight shares to try, between 0 and 1.
        k: the nDCG cutoff.
        pool: candidates already gathered for these queries.

    Returns:
        Rows of ``rrf_k, vector_weight, bm25_weight, mode, ndcg@k, empty_share``.

    Raises:
        ValueError: a share outside [0, 1].
    """
    started = time.perf_counter()
    params = params or SearchParams()
    if any(not 0 <= s <= 1 for s in vector_shares):
        raise ValueError(f"vector shares must be between 0 and 1, got {list(vector_shares)}")
    pool = _pool_for(collection, queries, params, pool)
    judged = _judged(pool, qrels)
    pure: dict[str, dict[str, float]] = {}
    rows = []
    for rrf_k in rrf_ks:
        for share in vector_shares:
            mode = "bm25" if share == 0 else "vector" if share == 1 else "hybrid"
            point = replace(
                params,
                mode=mode,
                rrf_k=float(rrf_k),
                vector_weight=float(share),
                bm25_weight=float(1 - share),
            )
            if mode == "hybrid":
                scores = _scores(pool, qrels, point, k, judged)
            else:
                scores = pure.setdefault(mode, _scores(pool, qrels, point, k, judged))
            rows.append(
                {
                    "rrf_k": float(rrf_k),
                    "vector_weight": float(share),
                    "bm25_weight": float(1 - share),
                    "mode": mode,
                    f"ndcg@{k}": scores[f"ndcg@{k}"],
                    "empty_share": scores["empty_share"],
                }
            )
    return SweepResult(
        "fusion",
        "rrf_k",
        tuple(rows),
        params.to_dict(),
        len(pool),
        len(judged),
        time.perf_counter() - started,
    )


def _exact_kth(collection: Collection, vectors: np.ndarray, k: int) -> np.ndarray:
    """The k-th best exact score of each query (numpy over every vector, in blocks of queries)."""
    embeddings = collection.embeddings
    k = min(k, len(embeddings))
    block = max(1, 2**24 // max(1, len(embeddings)))
    kth = []
    for start in range(0, len(vectors), block):
        scores = vectors[start : start + block] @ embeddings.T
        kth.append(-np.partition(-scores, k - 1, axis=1)[:, k - 1])
    return np.concatenate(kth) if kth else np.zeros(0, dtype=np.float32)


def _recall(
    collection: Collection,
    vectors: np.ndarray,
    found: Sequence[np.ndarray],
    kth: np.ndarray,
    k: int,
) -> float:
    """Share of the exact top k the index found; a hit tied with the k-th exact score counts."""
    k = min(k, len(collection.chunks))
    values = []
    for query, ids, bar in zip(vectors, found, kth, strict=True):
        exact = collection.embeddings[ids[:k]] @ query
        values.append(min(k, int(np.count_nonzero(exact >= bar - 1e-6))) / k)
    return _mean(values)


def _sweep_values(collection: Collection, kind: str, values: Sequence[int] | None) -> list[int]:
    if values:
        return sorted({int(v) for v in values})
    if ANN_PARAMETERS[kind] == "nprobe":
        nlist = int(collection.vector_index.params["nlist"])
        return sorted({*(2**i for i in range(int(math.log2(nlist)) + 1)), nlist})
    return list(DEFAULT_EF_SEARCH)


def ann_sweep(
    collection: Collection,
    queries: QueriesLike | None = None,
    qrels: Qrels | None = None,
    *,
    values: Sequence[int] | None = None,
    k: int = 10,
    sample: int = 200,
    seed: int = 0,
) -> SweepResult:
    """Recall@k against exact search, latency and nDCG@k for each ``nprobe`` or ``efSearch``.

    Args:
        collection: an opened collection with an ivf, ivfpq or hnsw index.
        queries: the queries; by default a seeded sample of the collection's own chunks.
        qrels: judgments of ``queries``, for nDCG@k (omitted from the rows without them).
        values: the settings to try; by default powers of two up to ``nlist`` and ``nlist``
            itself (ivf, ivfpq) or 8 ... 512 (hnsw).
        k: the cutoff of recall and nDCG.
        sample: chunks used as queries when no queries are given.
        seed: the sample's seed.

    Returns:
        Rows of ``nprobe`` (or ``ef_search``), ``recall@k``, ``p50_ms``, ``p95_ms``, ``p99_ms``
        (time of the index search of one query) and, with judgments, ``ndcg@k`` (vector mode,
        collapsed to documents, as a run ranks it).

    Raises:
        ValueError: a flat index (exact: nothing to sweep); the message lists the kinds.
    """
    started = time.perf_counter()
    kind = collection.vector_index.kind
    if kind not in ANN_PARAMETERS:
        raise ValueError(
            f"the collection's {kind} index is exact, nothing to sweep; "
            f"sweepable kinds: {', '.join(ANN_PARAMETERS)}"
        )
    parameter = ANN_PARAMETERS[kind]
    if queries is None:
        texts, vectors = _chunk_sample(collection, sample, seed)
    else:
        texts = _query_texts(queries)
        vectors = collection.embedder.embed_queries(list(texts.values()))
    kth = _exact_kth(collection, vectors, k)
    rows = []
    judged: list[int] = []
    for value in _sweep_values(collection, kind, values):
        setting: dict[str, Any] = {parameter: value}
        collection.vector_index.search(vectors[0], k, **setting)  # warm-up
        found, times = [], []
        for query in vectors:
            tick = time.perf_counter()
            ids, _ = collection.vector_index.search(query, k, **setting)
            times.append((time.perf_counter() - tick) * 1000)
            found.append(ids)
        p50, p95, p99 = np.percentile(times, [50, 95, 99]) if times else (0.0, 0.0, 0.0)
        row: dict[str, Any] = {
            parameter: value,
            f"recall@{k}": _recall(collection, vectors, found, kth, k),
            "p50_ms": float(p50),
            "p95_ms": float(p95),
            "p99_ms": float(p99),
        }
        if qrels is not None:
            pool = CandidatePool(collection, texts, vectors=vectors, **setting)
            judged = _judged(pool, qrels)
            params = SearchParams(mode="vector", **setting)
            row[f"ndcg@{k}"] = _scores(pool, qrels, params, k, judged)[f"ndcg@{k}"]
        rows.append(row)
    base = SearchParams(mode="vector").to_dict()
    return SweepResult(
        "ann", parameter, tuple(rows), base, len(texts), len(judged), time.perf_counter() - started
    )


def _chunk_sample(
    collection: Collection, sample: int, seed: int
) -> tuple[dict[str, str], np.ndarray]:
    rng = np.random.default_rng(seed)
    total = len(collection.chunks)
    picks = np.sort(rng.choice(total, size=min(sample, total), replace=False))
    texts = {f"chunk-{i}": collection.chunks[i].text for i in picks}
    return texts, np.ascontiguousarray(collection.embeddings[picks])


# --------------------------------------------------------------------------- ANN health


@dataclass(frozen=True)
class AnnHealth:
    """How well the collection's index finds what exact search finds, and what each kind costs.

    Attributes:
        kind: the index kind built.
        params: its parameters.
        k: the recall cutoff.
        sample: chunks used as queries.
        recall: recall@k of the index with its default settings against exact search.
        memory: one row per index kind: ``kind, params, bytes_per_vector, total_bytes,
            current, note`` (estimates for this collection's size and dimension; the current
            kind also has ``stored_bytes``, the size of its saved index file).
    """

    kind: str
    params: dict[str, int]
    k: int
    sample: int
    recall: float
    memory: tuple[dict[str, Any], ...]


def ann_health(
    collection: Collection, *, sample: int = 200, k: int = 10, seed: int = 0
) -> AnnHealth:
    """Recall@k of the collection's index on its own chunks as queries, and memory per vector.

    A chunk used as a query is its own nearest neighbour, so it counts towards recall like any
    other neighbour; exact search is numpy over every vector.

    Args:
        collection: an opened collection.
        sample: chunks used as queries (a seeded sample).
        k: the recall cutoff.
        seed: the sample's seed.
    """
    index = collection.vector_index
    _, vectors = _chunk_sample(collection, sample, seed)
    kth = _exact_kth(collection, vectors, k)
    found = [ids for ids, _ in index.search_batch(vectors, k)] if len(vectors) else []
    recall = _recall(collection, vectors, found, kth, k) if len(vectors) else 1.0
    n, dim = index.ntotal, index.dim
    stored = collection.manifest.get("files", {}).get("vector.faiss", {}).get("bytes")
    memory = []
    for name, builder in INDEX_KINDS.items():
        current = name == index.kind
        params = index.params if current else default_params(name, n, dim)
        note = "" if current else builder.too_small(n) or ""
        if not builder.holds_vectors:
            note = note or "searches the stored vectors in place, mapped from disk"
        total = builder.estimate_bytes(n, dim, params)
        row: dict[str, Any] = {
            "kind": name,
            "params": params,
            "bytes_per_vector": total / n if n else 0.0,
            "total_bytes": int(total),
            "current": current,
            "note": note,
        }
        if current and stored is not None:
            row["stored_bytes"] = int(stored)
        memory.append(row)
    return AnnHealth(index.kind, index.params, k, len(vectors), recall, tuple(memory))


Sweep = Callable[..., SweepResult]

SWEEPS: dict[str, Sweep] = {"threshold": threshold_sweep, "fusion": fusion_sweep, "ann": ann_sweep}
"""Sweeps by name."""
