"""One search call for the three modes: vector, BM25 and hybrid.

The pipeline of a query:

1. metadata filters become a chunk mask, applied inside both retrievers (FAISS IDSelector,
   BM25 candidate mask), so k results come back whenever k chunks match the filter;
2. the query is embedded (vector and hybrid modes) and each retriever returns its candidates
   (:func:`search_core.candidates.gather`);
3. the candidates are ranked by the setting (:mod:`search_core.candidates`: the similarity
   threshold, the BM25 floor, identifier matches and fusion in hybrid mode), collapsed to one
   hit per document when asked, then cut to k.
"""

from __future__ import annotations

import math
import numbers
import reprlib
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .candidates import AGGREGATIONS, GatherTimes, RetrieverList, gather, rank_deepening
from .collection import Collection
from .embedding import clean_text
from .filters import validate_filters
from .fusion import FUSION_METHODS
from .lexical import ENGINES
from .settings import (
    DEFAULT_CANDIDATES,
    DEFAULT_K,
    DEFAULT_RRF_K,
    DEFAULT_THRESHOLD,
)
from .types import SEARCH_MODES, Hit, RetrieverScore, SearchResponse, Timings
from .vector_index import INDEX_PARAM_RANGES

MAX_K = 1000
"""Most results a search returns (evaluation runs ask for 100 documents a query)."""

MAX_CANDIDATES = 100_000
"""Most candidates taken from each retriever: fusion and the exact cosines work on all of
them in memory for every query."""

INTEGER_SETTINGS: dict[str, tuple[int, int]] = {
    "k": (1, MAX_K),
    "candidates": (1, MAX_CANDIDATES),
    "nprobe": INDEX_PARAM_RANGES["nprobe"],
    "ef_search": INDEX_PARAM_RANGES["ef_search"],
}
"""Valid range of each integer setting of :class:`SearchParams`, bounds included."""

NUMBER_SETTINGS: dict[str, tuple[float, float]] = {
    "threshold": (-1.0, 1.0),
    "rrf_k": (0.0, 10_000.0),
    "vector_weight": (0.0, 1_000.0),
    "bm25_weight": (0.0, 1_000.0),
    "bm25_k1": (0.0, 10.0),
    "bm25_b": (0.0, 1.0),
    "lexical_margin": (-2.0, 2.0),
}
"""Valid range of each real-valued setting of :class:`SearchParams`, bounds included."""


@dataclass(frozen=True)
class SearchParams:
    """Every setting of a search; a saved configuration is one of these.

    Attributes:
        mode: ``vector``, ``bm25`` or ``hybrid``.
        k: number of results.
        threshold: minimum cosine similarity of a result (vector and hybrid modes).
        rrf_k: the RRF constant (hybrid).
        vector_weight: weight of the vector ranking in RRF.
        bm25_weight: weight of the BM25 ranking in RRF.
        candidates: candidates taken from each retriever (at least k).
        nprobe: IVF lists probed (ivf, ivfpq); None for the index default.
        ef_search: HNSW search breadth; None for the index default.
        bm25_engine: ``bm25s`` or ``okapi-reference``.
        bm25_k1: BM25 k1; None for the collection's.
        bm25_b: BM25 b; None for the collection's.
        filters: metadata filters (see :mod:`search_core.filters`).
        collapse: one hit per document (its best chunk).
        fusion: fusion method name.
        identifier_match: in hybrid mode, fuse a third ranking of the chunks that contain every
            rare identifier of the query (see :func:`search_core.lexical.identifier_matches`).
        lexical_margin: in hybrid mode, BM25 ranks a chunk only when its cosine to the query is
            at least ``threshold + lexical_margin`` (the BM25 floor), unless chunks hold the
            query's rare identifiers (then BM25 ranks every candidate): a BM25 match on common
            words ("opened", "returned") with a low cosine is not evidence. None (the default)
            is automatic: ``DEFAULT_LEXICAL_MARGIN`` (0.2) where the embedding model reads the
            collection's language (:attr:`Collection.model_reads_language`), no floor where it
            does not. -2 sets no floor.
        aggregation: with ``collapse``, how a document's chunks make its score: ``best`` (its
            best chunk) or ``best-two`` (the sum of its two best), see
            :data:`search_core.candidates.AGGREGATIONS`.

    Why the floor: on the sample's 31 paraphrase queries, BM25 alone reaches nDCG@10 0.069 and
    its ranks pulled hybrid down to 0.375 against 0.650 for vector alone; with a margin of 0.2
    hybrid reaches 0.644 there and keeps its exact-id and mixed scores (BENCHMARKS.md, quality
    section).

    Every number has a valid range, bounds included (``INTEGER_SETTINGS``,
    ``NUMBER_SETTINGS``); it must be finite, and a bool is not a number (NaN would make every
    score NaN, and ``True`` would be a silent 1):

    ==============  ==============  ===========================================================
    setting         range           why
    ==============  ==============  ===========================================================
    k               1 .. 1,000      results shown or scored (evaluation runs take 100)
    candidates      1 .. 100,000    each retriever's candidates, fused in memory per query
    nprobe          1 .. 1,048,576  IVF lists probed, capped at the index's nlist
    ef_search       1 .. 100,000    HNSW beam: FAISS takes a C int and allocates the beam
    threshold       -1 .. 1         a cosine similarity
    rrf_k           0 .. 10,000     RRF adds w / (rrf_k + rank): past 10,000 ranks barely count
    vector_weight   0 .. 1,000      RRF weights: only their ratio matters
    bm25_weight     0 .. 1,000      (as vector_weight)
    bm25_k1         0 .. 10         BM25 term-frequency saturation (usually 0.9 to 2)
    bm25_b          0 .. 1          BM25 length normalization, a share
    lexical_margin  -2 .. 2         added to a cosine threshold: -2 lets every cosine through
    ==============  ==============  ===========================================================

    Raises:
        ValueError: an unknown choice, a number outside its range, not finite or of the wrong
            type, or a malformed filter; the message names the valid choices or the range.
    """

    mode: str = "hybrid"
    k: int = DEFAULT_K
    threshold: float = DEFAULT_THRESHOLD
    rrf_k: float = DEFAULT_RRF_K
    vector_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = DEFAULT_CANDIDATES
    nprobe: int | None = None
    ef_search: int | None = None
    bm25_engine: str = "bm25s"
    bm25_k1: float | None = None
    bm25_b: float | None = None
    filters: Mapping[str, Any] | None = field(default=None, hash=False)
    collapse: bool = False
    fusion: str = "rrf"
    identifier_match: bool = True
    lexical_margin: float | None = None
    aggregation: str = "best"

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, SEARCH_MODES)
        _check_choice("BM25 engine", self.bm25_engine, sorted(ENGINES))
        _check_choice("fusion method", self.fusion, sorted(FUSION_METHODS))
        _check_choice("aggregation", self.aggregation, sorted(AGGREGATIONS))
        optional = {"nprobe", "ef_search", "bm25_k1", "bm25_b", "lexical_margin"}
        for name, (low, high) in (INTEGER_SETTINGS | NUMBER_SETTINGS).items():
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            integer = name in INTEGER_SETTINGS
            if not _number_between(value, low, high, integer=integer):
                kind = "an integer" if integer else "a finite number"
                none = " (or unset, for the default)" if name in optional else ""
                raise ValueError(
                    f"{name} must be {kind} from {_bound(low)} to {_bound(high)}{none}, "
                    f"got {reprlib.repr(value)}"
                )
        for name in ("collapse", "identifier_match"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.filters is not None:
            validate_filters(self.filters)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for saved configurations)."""
        data = asdict(self)
        data["filters"] = dict(self.filters) if self.filters else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchParams:
        """Build from a saved configuration.

        Raises:
            ValueError: an unknown key (the message lists the valid ones) or an invalid value.
        """
        valid = set(cls.__dataclass_fields__)
        unknown = set(data) - valid
        if unknown:
            raise ValueError(f"unknown search settings {sorted(unknown)}; valid: {sorted(valid)}")
        return cls(**dict(data))


def _check_choice(name: str, value: Any, valid: Any) -> None:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {list(valid)}")


def _number_between(value: Any, low: float, high: float, *, integer: bool) -> bool:
    """Whether ``value`` is a number (an integer if asked; never a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(
        value, numbers.Integral if integer else numbers.Real
    ):
        return False
    if isinstance(value, numbers.Integral):  # exact: float() would overflow past 1e308
        return low <= int(value) <= high
    number = float(value)
    return math.isfinite(number) and low <= number <= high


def _bound(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def search(
    collection: Collection,
    query: str,
    mode: str = "hybrid",
    k: int = DEFAULT_K,
    **options: Any,
) -> SearchResponse:
    """Search a collection.

    Args:
        collection: an opened collection.
        query: the query text.
        mode: ``vector``, ``bm25`` or ``hybrid``.
        k: number of results.
        **options: any other :class:`SearchParams` field (threshold, rrf_k, filters, ...).

    Returns:
        The hits, best first, with per-retriever ranks and scores, and stage timings.

    Raises:
        ValueError: an invalid setting (the message names the valid choices).
        FingerprintMismatchError: the model loaded now is not the collection's.
    """
    return run_search(collection, query, SearchParams(mode=mode, k=k, **options))


def run_search(
    collection: Collection,
    query: str,
    params: SearchParams,
    *,
    query_vector: np.ndarray | None = None,
) -> SearchResponse:
    """Search with a full :class:`SearchParams` (the relevance lab's entry point).

    Args:
        collection: an opened collection.
        query: the query text.
        params: the settings.
        query_vector: the query's normalized embedding, when already computed (batch runs).

    Raises:
        ValueError: a filter on a field the collection's documents do not have (the message
            names the valid fields).
        FingerprintMismatchError: the model loaded now is not the collection's.
    """
    query = clean_text(query)
    mask = collection.chunk_mask(params.filters)
    uses_vector = params.mode in ("vector", "hybrid")
    embed_ms = 0.0
    if uses_vector:
        embedder = collection.embedder  # checks the model fingerprint, even for given vectors
    if uses_vector and query_vector is None:
        embedder.load()  # a first query should not report the model's load time as embedding
        tick = time.perf_counter()
        query_vector = embedder.embed_query(query)
        embed_ms = (time.perf_counter() - tick) * 1000
    if (mask is not None and not mask.any()) or not query.strip():
        return SearchResponse(query, params.mode, (), Timings(embed_ms=embed_ms))

    times = GatherTimes()
    tick = time.perf_counter()
    ranking, candidates = rank_deepening(
        lambda depth: gather(
            collection, query, params, query_vector, depth, mask=mask, times=times
        ),
        params,
        want=params.k,
        total=len(collection.chunks),
        chunk_doc=collection.chunk_doc_index,
    )
    # Only the k hits shown are looked up in each list: no table of every candidate.
    shown = ranking.ids[: params.k]
    counted = candidates.counted()
    cosine = candidates.cosines_of(np.concatenate([shown, counted]))
    similarity = [None] * len(shown) if cosine is None else cosine[: len(shown)].tolist()
    vector_at = candidates.vector.positions(shown).tolist()
    bm25_at = candidates.bm25.positions(shown).tolist()
    hits = tuple(
        _hit(
            collection,
            rank,
            chunk_id,
            score,
            similarity[rank - 1],
            _retriever_score(candidates.vector, vector_at[rank - 1]),
            _retriever_score(candidates.bm25, bm25_at[rank - 1]),
            chunk_id in ranking.identifiers,
            ranking.floor if chunk_id in ranking.gated else None,
        )
        for rank, (chunk_id, score) in enumerate(
            zip(shown.tolist(), ranking.scores[: params.k].tolist(), strict=True), start=1
        )
    )
    fusion_ms = (time.perf_counter() - tick) * 1000 - times.vector_ms - times.bm25_ms
    return SearchResponse(
        query=query,
        mode=params.mode,
        hits=hits,
        timings=Timings(
            embed_ms=embed_ms, vector_ms=times.vector_ms, bm25_ms=times.bm25_ms, fusion_ms=fusion_ms
        ),
        candidates=len(counted),
        below_threshold=ranking.below_threshold,
        candidate_similarities=() if cosine is None else tuple(cosine[len(shown) :].tolist()),
    )


def _retriever_score(part: RetrieverList, position: int) -> RetrieverScore:
    """A retriever's 1-based rank and score of a hit at ``position`` of its list (-1: absent)."""
    if position < 0:
        return RetrieverScore(None, None)
    return RetrieverScore(position + 1, float(part.scores[position]))


def _hit(
    collection: Collection,
    rank: int,
    chunk_id: int,
    score: float,
    similarity: float | None,
    vector: RetrieverScore,
    bm25: RetrieverScore,
    identifier_match: bool,
    bm25_floor: float | None = None,
) -> Hit:
    chunk = collection.chunks[chunk_id]
    return Hit(
        rank=rank,
        doc_id=chunk.doc_id,
        chunk_id=chunk_id,
        text=chunk.text,
        title=collection.titles[chunk.doc_id],
        score=score,
        similarity=None if similarity is None or math.isnan(similarity) else float(similarity),
        vector=vector,
        bm25=bm25,
        metadata=collection.metadata_at(int(collection.chunk_doc_index[chunk_id])),
        pages=chunk.pages,
        identifier_match=identifier_match,
        bm25_floor=bm25_floor,
    )
