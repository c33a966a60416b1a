"""Recent queries, in memory: stage timings and the similarity of each query's top result.

The health page reads this log to show the latency of recent queries (embedding and search
separately, p50 and p99) and to compare the cosine similarity of recent top results with a
reference distribution of the collection. Nothing here is persisted: the log covers the
queries this process answered, which is what latency percentiles should describe.

The reference distribution is what a search of the collection's own text looks like: a seeded
sample of short snippets of its chunks (:func:`reference_snippets`), embedded as queries, and
the cosine of each one's top result (:func:`reference_similarities`). Recorded when the
collection is built, it shows later whether recent queries find as close a match as the
corpus's own words do; when they do not, people ask for what the corpus lacks, or the model
changed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .types import SearchResponse

if TYPE_CHECKING:  # the collection module may record a reference at build time with this one
    from .collection import Collection

__all__ = [
    "QUERY_LOG",
    "LatencySummary",
    "QueryLog",
    "QueryRecord",
    "SimilarityShift",
    "collection_reference",
    "compare_similarities",
    "percentile",
    "reference_record",
    "reference_similarities",
    "reference_snippets",
]

DEFAULT_CAPACITY = 1000
"""Queries kept per log; older ones are dropped first."""

REFERENCE_SAMPLE = 200
"""Snippets in the reference distribution of top-result similarities."""
SIMILARITY_BLOCK = 65_536
"""Chunk vectors compared with the reference snippets at a time."""

SNIPPET_WORDS = 8
"""Words of a reference snippet: about the length of a search query."""

REFERENCE_KEY = "similarity_reference"
"""Manifest entry holding the reference distribution recorded at build time."""


@dataclass(frozen=True)
class QueryRecord:
    """One answered query.

    Attributes:
        collection: the collection searched.
        mode: ``vector``, ``bm25`` or ``hybrid``.
        at: when it was answered (seconds since the epoch).
        embed_ms: time to embed the query (0 in bm25 mode, where nothing is embedded).
        search_ms: time of everything after embedding: both retrievers, fusion and the cut.
        hits: results returned.
        top_similarity: cosine similarity of the best candidate to the query, whether or not
            it passed the threshold; None in bm25 mode.
        embedded: whether the query was embedded for this search (vector and hybrid modes,
            unless a vector computed earlier was reused).
    """

    collection: str
    mode: str
    at: float
    embed_ms: float
    search_ms: float
    hits: int
    top_similarity: float | None
    embedded: bool


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles of recent queries, in milliseconds.

    Attributes:
        queries: queries counted.
        embedded: queries that were embedded (the embedding percentiles are over these).
        embed_p50_ms: median embedding time.
        embed_p99_ms: 99th percentile of the embedding time.
        search_p50_ms: median search time (retrievers and fusion).
        search_p99_ms: 99th percentile of the search time.
    """

    queries: int
    embedded: int
    embed_p50_ms: float
    embed_p99_ms: float
    search_p50_ms: float
    search_p99_ms: float


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as ``numpy.percentile``.

    Between the sorted values x_0 <= ... <= x_(n-1), at position p = q / 100 * (n - 1)::

        percentile = x_floor(p) + (p - floor(p)) * (x_ceil(p) - x_floor(p))

    Returns:
        The percentile, or NaN for no values.

    Raises:
        ValueError: q outside [0, 100].
    """
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, got {q}")
    if not len(values):
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))


class QueryLog:
    """A bounded, thread-safe log of recent queries, shared by every session of the app.

    Args:
        capacity: queries kept; the oldest go first.

    Raises:
        ValueError: capacity below 1.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._records: deque[QueryRecord] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def record(
        self,
        collection: str,
        response: SearchResponse,
        *,
        at: float | None = None,
        embedded: bool | None = None,
    ) -> QueryRecord:
        """Add an answered query.

        Args:
            collection: the collection searched.
            response: the search's answer (its timings and candidate similarities are kept).
            at: when (default now).
            embedded: whether the query was embedded for this search (default: in vector
                and hybrid modes); False when a vector computed earlier was reused, so its
                zero embedding time stays out of the embedding percentiles.

        Returns:
            The record added.
        """
        timings = response.timings
        similarities = response.candidate_similarities
        uses_vector = response.mode != "bm25"
        record = QueryRecord(
            collection=collection,
            mode=response.mode,
            at=time.time() if at is None else at,
            embed_ms=timings.embed_ms,
            search_ms=timings.vector_ms + timings.bm25_ms + timings.fusion_ms,
            hits=len(response.hits),
            top_similarity=float(max(similarities)) if uses_vector and similarities else None,
            embedded=uses_vector if embedded is None else embedded and uses_vector,
        )
        with self._lock:
            self._records.append(record)
        return record

    def recent(self, collection: str | None = None) -> list[QueryRecord]:
        """The records kept, oldest first; only one collection's when named."""
        with self._lock:
            records = list(self._records)
        return [r for r in records if collection is None or r.collection == collection]

    def latency(self, collection: str | None = None) -> LatencySummary:
        """p50 and p99 of the embedding and search times of recent queries.

        Embedding percentiles count only the queries that were embedded (a bm25 query takes
        no embedding time, and counting it as 0 ms would flatter the model). Percentiles of
        no query are NaN.
        """
        records = self.recent(collection)
        embeds = [r.embed_ms for r in records if r.embedded]
        searches = [r.search_ms for r in records]
        return LatencySummary(
            queries=len(records),
            embedded=len(embeds),
            embed_p50_ms=percentile(embeds, 50),
            embed_p99_ms=percentile(embeds, 99),
            search_p50_ms=percentile(searches, 50),
            search_p99_ms=percentile(searches, 99),
        )

    def top_similarities(self, collection: str | None = None) -> np.ndarray:
        """Top-result cosine similarity of each recent embedded query, oldest first."""
        values = [r.top_similarity for r in self.recent(collection)]
        return np.asarray([v for v in values if v is not None], dtype=np.float64)

    def clear(self, collection: str | None = None) -> None:
        """Forget every record, or one collection's."""
        with self._lock:
            kept = [
                r for r in self._records if collection is not None and r.collection != collection
            ]
            self._records.clear()
            self._records.extend(kept)


QUERY_LOG = QueryLog()
"""The log of this process (the app records every search here)."""


def reference_snippets(
    chunk_texts: Sequence[str],
    *,
    sample: int = REFERENCE_SAMPLE,
    words: int = SNIPPET_WORDS,
    seed: int = 0,
) -> list[str]:
    """Query-like snippets of a corpus: a few consecutive words of each of a sample of chunks.

    Args:
        chunk_texts: the text of every chunk.
        sample: chunks sampled (all of them when there are fewer); empty chunks are skipped.
        words: words per snippet.
        seed: the seed of the sample and of where each snippet starts.

    Returns:
        The snippets, in chunk order.
    """
    rng = np.random.default_rng(seed)
    total = len(chunk_texts)
    picks: Sequence[int] = (
        np.sort(rng.choice(total, size=min(sample, total), replace=False)).tolist() if total else []
    )
    snippets = []
    for i in picks:
        parts = chunk_texts[i].split()
        start = int(rng.integers(0, max(1, len(parts) - words + 1)))
        if parts:
            snippets.append(" ".join(parts[start : start + words]))
    return snippets


def reference_similarities(query_vectors: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """The top-result cosine of each query vector over every chunk, as an exact search finds it.

    With :func:`reference_snippets` embedded as queries, this is the collection's reference
    distribution of top-result similarities: short passages of its own text, searched the way
    a user's query is. On the sample collection it sits where in-domain queries do (median
    about 0.46 against 0.50), while every chunk's nearest other chunk sits far higher (0.67)
    and would make every real query look off-topic.

    Args:
        query_vectors: normalized vectors, shape (n, dim).
        embeddings: the collection's normalized chunk vectors, shape (chunks, dim).

    Returns:
        ``max_c cos(q, c)`` for each query q, float64.
    """
    queries = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
    if not len(queries) or not len(embeddings):
        return np.zeros(0, dtype=np.float64)
    # block by block: the vectors may be mapped from disk, and one product with every chunk
    # at once would hold a (queries x chunks) matrix
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    for start in range(0, len(embeddings), SIMILARITY_BLOCK):
        block = np.asarray(embeddings[start : start + SIMILARITY_BLOCK], dtype=np.float32)
        np.maximum(best, (queries @ block.T).max(axis=1), out=best)
    return best.astype(np.float64)


def reference_record(
    chunk_texts: Sequence[str],
    embed_queries: Callable[[list[str]], np.ndarray],
    embeddings: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference distribution as a manifest records it (JSON-able).

    Args:
        chunk_texts: the text of every chunk.
        embed_queries: the model's query embedding (``Embedder.embed_queries``).
        embeddings: the chunk vectors.
        seed: the snippets' seed.

    Returns:
        ``{"method", "snippet_words", "seed", "values"}``, values rounded to 4 decimals.
    """
    snippets = reference_snippets(chunk_texts, seed=seed)
    vectors = embed_queries(snippets) if snippets else np.zeros((0, 1), dtype=np.float32)
    values = reference_similarities(vectors, embeddings) if snippets else np.zeros(0)
    return {
        "method": "top-result cosine of chunk snippets searched as queries",
        "snippet_words": SNIPPET_WORDS,
        "seed": seed,
        "values": [round(float(v), 4) for v in values],
    }


def collection_reference(collection: Collection) -> tuple[np.ndarray, bool]:
    """A collection's reference distribution: the one recorded at build time, if any.

    Without a record in the manifest (``similarity_reference``), it is computed now with the
    model loaded now, which cannot show a change of model.

    Returns:
        (values, recorded at build time).
    """
    recorded = collection.manifest.get(REFERENCE_KEY)
    if isinstance(recorded, dict) and recorded.get("values"):
        return np.asarray(recorded["values"], dtype=np.float64), True
    record = reference_record(
        collection.chunk_texts(),
        collection.embedder.embed_queries,
        collection.embeddings,
    )
    return np.asarray(record["values"], dtype=np.float64), False


@dataclass(frozen=True)
class SimilarityShift:
    """How recent top-result similarities compare with the reference distribution.

    Attributes:
        recent: recent values compared.
        reference: reference values.
        recent_median: median of the recent values (NaN without any).
        reference_median: median of the reference values (NaN without any).
        ks_statistic: the two-sample Kolmogorov-Smirnov statistic D (0 = same distribution).
        critical: the value D must exceed for the difference to be significant at ``alpha``.
        shifted: D above ``critical`` (False when either side has no value).
        alpha: the significance level.
    """

    recent: int
    reference: int
    recent_median: float
    reference_median: float
    ks_statistic: float
    critical: float
    shifted: bool
    alpha: float


def compare_similarities(
    recent: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
) -> SimilarityShift:
    """Compare recent top-result similarities with the reference distribution.

    The two-sample Kolmogorov-Smirnov statistic is the largest gap between the empirical
    distribution functions F_n (recent, n values) and G_m (reference, m values)::

        D = max over x of |F_n(x) - G_m(x)|

    and the difference is significant at level alpha when (Smirnov's large-sample bound)::

        D > sqrt(-ln(alpha / 2) / 2) * sqrt((n + m) / (n * m))

    Args:
        recent: top-result similarities of recent queries.
        reference: the reference distribution (:func:`reference_similarities`).
        alpha: the significance level, between 0 and 1.

    Raises:
        ValueError: alpha outside (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    a = np.sort(np.asarray(recent, dtype=np.float64))
    b = np.sort(np.asarray(reference, dtype=np.float64))
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return SimilarityShift(
            n,
            m,
            float(np.median(a)) if n else math.nan,
            float(np.median(b)) if m else math.nan,
            math.nan,
            math.nan,
            False,
            alpha,
        )
    points = np.concatenate([a, b])
    gap = np.abs(
        np.searchsorted(a, points, side="right") / n - np.searchsorted(b, points, side="right") / m
    )
    statistic = float(gap.max())
    critical = math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))
    return SimilarityShift(
        recent=n,
        reference=m,
        recent_median=float(np.median(a)),
        reference_median=float(np.median(b)),
        ks_statistic=statistic,
        critical=critical,
        shifted=statistic > critical,
        alpha=alpha,
    )
