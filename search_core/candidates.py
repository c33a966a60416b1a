"""The candidate stage: each retriever's candidates for a query, and how a setting ranks them.

Every search ranks here, once:

* :func:`~search_core.search.run_search` gathers one query's candidates at a depth
  (:func:`gather`) and ranks them (:func:`rank_deepening`);
* the sweeps and ``tune`` gather each query's candidates once, deep, in a
  :class:`~search_core.sweeps.CandidatePool`, and rank every setting of their grid from the
  same lists with the same two functions.

So anything in the ranking (the threshold, the BM25 floor, identifier matches, fusion, the
collapse to documents and the deepening it needs) exists once, and a setting is tuned exactly
as it is searched.

Ranking a query's candidates (:func:`rank`):

1. the similarity threshold drops vector candidates whose exact cosine to the query is under
   it; with none left the query is out of domain and the answer is empty (vector and hybrid
   modes), not the nearest noise;
2. bm25 mode ranks BM25's candidates, vector mode the vector candidates left;
3. hybrid fuses the vector candidates left, BM25's candidates and the chunks that hold the
   query's rare identifiers (which embeddings blur). Unless there are identifier matches, BM25
   ranks only chunks whose cosine reaches the BM25 floor (``SearchParams.lexical_margin``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .fusion import ScoredList, fuse_lists
from .lexical import identifier_matches
from .settings import DEFAULT_LEXICAL_MARGIN

if TYPE_CHECKING:  # search imports this module
    from .collection import Collection
    from .search import SearchParams

__all__ = [
    "AGGREGATIONS",
    "Candidates",
    "GatherTimes",
    "Ranking",
    "RetrieverList",
    "cosines",
    "gather",
    "identifier_list",
    "lexical_floor",
    "rank",
    "rank_deepening",
]

_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_SCORES = np.zeros(0, dtype=np.float32)


def cosines(
    collection: Collection, ids: np.ndarray, vector: np.ndarray | None
) -> np.ndarray | None:
    """Exact cosines of chunks to a normalized query vector, from the stored vectors.

    Computed row by row (a sum over each row's products), so a chunk's cosine is the same
    float whichever other chunks are computed with it: a setting ranks alike from a deep
    list and from a shallow one.
    """
    if vector is None:
        return None
    rows = collection.embeddings[np.asarray(ids, dtype=np.int64)]
    return np.asarray(np.sum(rows * np.asarray(vector, dtype=np.float32), axis=1, dtype=np.float32))


@dataclass(frozen=True)
class RetrieverList:
    """One retriever's candidates for a query, best first.

    Attributes:
        ids: chunk ids.
        scores: the retriever's scores (the index's inner product, BM25 score).
        cosine: each chunk's exact cosine to the query; None when the query is not embedded.
        complete: the retriever has no candidates beyond these (fewer matched than asked).
    """

    ids: np.ndarray = field(default_factory=lambda: _NO_IDS)
    scores: np.ndarray = field(default_factory=lambda: _NO_SCORES)
    cosine: np.ndarray | None = None
    complete: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Each of ``ids``' 0-based position in this list, -1 where the list lacks it.

        Sorts the list once (``O(n log n)``) and looks up only ``ids``: a search asks for the
        k hits it shows, not for a table of every candidate.
        """
        return _positions(self.ids, ids)

    def head(self, depth: int) -> RetrieverList:
        """The first ``depth`` candidates."""
        if depth >= len(self.ids):
            return self
        cosine = None if self.cosine is None else self.cosine[:depth]
        return RetrieverList(self.ids[:depth], self.scores[:depth], cosine, complete=False)

    def where(self, keep: np.ndarray) -> RetrieverList:
        """The candidates where ``keep`` is true, in order."""
        cosine = None if self.cosine is None else self.cosine[keep]
        return RetrieverList(self.ids[keep], self.scores[keep], cosine, self.complete)


@dataclass(frozen=True)
class Candidates:
    """Each retriever's candidates for one query.

    Attributes:
        vector: the vector index's candidates (empty in bm25 mode).
        bm25: BM25's candidates (empty in vector mode).
        identifier: chunks holding every rare identifier of the query, best BM25 score first
            (hybrid mode with identifier matching; empty otherwise).
        model_reads_language: the embedding model reads the collection's language, so cosines
            are evidence (the automatic BM25 floor applies).
    """

    vector: RetrieverList = field(default_factory=RetrieverList)
    bm25: RetrieverList = field(default_factory=RetrieverList)
    identifier: RetrieverList = field(default_factory=RetrieverList)
    model_reads_language: bool = True

    def cosines_of(self, ids: np.ndarray) -> np.ndarray | None:
        """The exact cosine to the query of each of ``ids``; None when it is not embedded.

        Looks up only ``ids`` (the hits shown, say), without a table of every candidate; an
        id that is no candidate gets NaN. A chunk's cosine is the same float in every list
        that holds it (:func:`cosines` works row by row), so any copy gives it.
        """
        parts = [p for p in (self.vector, self.bm25, self.identifier) if p.cosine is not None]
        if not parts:
            return None
        at = _positions(np.concatenate([p.ids for p in parts]), ids)
        found = at >= 0
        cosine = np.full(len(at), np.nan, dtype=np.float32)
        cosine[found] = np.concatenate([p.cosine for p in parts if p.cosine is not None])[at[found]]
        return cosine

    def counted(self) -> np.ndarray:
        """The chunks the retrievers proposed (vector and BM25 candidates), by ascending id."""
        return np.union1d(self.vector.ids, self.bm25.ids).astype(np.int64, copy=False)


@dataclass(frozen=True)
class Ranking:
    """A setting's ranking of one query's candidates.

    Attributes:
        ids: chunk ids, best first (one per document when collapsed).
        scores: the final score of each (cosine, BM25 score or fused score, by mode).
        below_threshold: vector candidates dropped by the similarity threshold.
        identifiers: chunks ranked for holding the query's rare identifiers.
        floor: the cosine BM25 needed to rank a chunk, when the floor applied.
        gated: BM25 candidates that did not count because their cosine is under ``floor``.
    """

    ids: np.ndarray
    scores: np.ndarray
    below_threshold: int = 0
    identifiers: frozenset[int] = frozenset()
    floor: float | None = None
    gated: frozenset[int] = frozenset()

    def collapsed(self, chunk_doc: np.ndarray, aggregation: str = "best") -> Ranking:
        """One chunk per document, its best, ranked by an ``AGGREGATIONS`` rule."""
        keep, scores = AGGREGATIONS[aggregation](chunk_doc[self.ids], self.scores)
        return Ranking(
            self.ids[keep],
            scores,
            self.below_threshold,
            self.identifiers,
            self.floor,
            self.gated,
        )


def _best_chunk(docs: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A document ranks as its best chunk: ``score(d) = max over its chunks``."""
    _, first = np.unique(docs, return_index=True)
    keep = np.sort(first)
    return keep, scores[keep]


def _best_two(docs: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A document ranks by the sum of its two best chunks' scores (a second matching passage
    is more evidence; Callan, SIGIR 1994, on passage-level evidence), shown by its best chunk;
    ties keep the order of the best chunks."""
    _, first, inverse = np.unique(docs, return_index=True, return_inverse=True)
    total = scores[first].astype(np.float64).copy()
    seen = np.zeros(len(first), dtype=np.int64)
    np.add.at(seen, inverse, 1)
    # the second chunk of each document, in rank order: its position after the first
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate(([0], np.cumsum(seen)[:-1]))
    second = seen >= 2
    total[second] += scores[order[starts[second] + 1]]
    rank = np.lexsort((first, -total))
    return first[rank], total[rank]


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Each of ``wanted``'s position in ``ids``, -1 where absent (one of an id's positions,
    when it repeats): a sort of ``ids`` and a binary search for each of ``wanted``."""
    wanted = np.asarray(wanted, dtype=np.int64)
    if not len(ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    at = np.minimum(np.searchsorted(ids, wanted, sorter=order), len(ids) - 1)
    return np.where(ids[order[at]] == wanted, order[at], -1)


Aggregation = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

AGGREGATIONS: dict[str, Aggregation] = {"best": _best_chunk, "best-two": _best_two}
"""How a document's chunks make its score when hits collapse to documents:
``(each ranked chunk's document, its score) -> (positions kept, document scores)``."""


def lexical_floor(params: SearchParams, model_reads_language: bool = True) -> float | None:
    """The cosine a chunk needs for BM25 to rank it in hybrid mode, or None for no floor.

    ``threshold + lexical_margin``; an automatic margin (None) is ``DEFAULT_LEXICAL_MARGIN``
    where the model reads the collection's language and no floor where it does not.
    """
    margin = params.lexical_margin
    if margin is None:
        if not model_reads_language:
            return None
        margin = DEFAULT_LEXICAL_MARGIN
    return params.threshold + margin


def rank(candidates: Candidates, params: SearchParams) -> Ranking:
    """Rank one query's candidates with a setting (see the module's description).

    Args:
        candidates: the query's candidates, gathered for ``params``' mode.
        params: the setting (mode, threshold, fusion, weights, floor).

    Returns:
        Every ranked chunk, best first (not collapsed, not cut to k).
    """
    vector, bm25 = candidates.vector, candidates.bm25
    if params.mode == "bm25":
        return Ranking(bm25.ids, bm25.scores.astype(np.float64))
    below = 0
    if vector.cosine is not None:
        passed = vector.cosine >= params.threshold
        below = len(vector) - int(np.count_nonzero(passed))
        if below:
            vector = vector.where(passed)
    if params.mode == "vector":
        return Ranking(vector.ids, vector.scores.astype(np.float64), below)
    if not len(vector):
        return Ranking(_NO_IDS, np.zeros(0), below)
    identifiers = candidates.identifier if params.identifier_match else RetrieverList()
    floor = None
    gated: frozenset[int] = frozenset()
    if not len(identifiers) and bm25.cosine is not None:
        floor = lexical_floor(params, candidates.model_reads_language)
    if floor is not None and bm25.cosine is not None:  # the floor is set only then
        on_topic = bm25.cosine >= floor
        gated = frozenset(bm25.ids[~on_topic].tolist())
        bm25 = bm25.where(on_topic)
    lists = [ScoredList(vector.ids, vector.cosine if vector.cosine is not None else vector.scores)]
    lists += [ScoredList(bm25.ids, bm25.scores), ScoredList(identifiers.ids, identifiers.scores)]
    weights = [params.vector_weight, params.bm25_weight, params.bm25_weight]
    ids, scores = fuse_lists(lists, weights, method=params.fusion, k=float(params.rrf_k))
    return Ranking(ids, scores, below, frozenset(identifiers.ids.tolist()), floor, gated)


def rank_deepening(
    gather_at: Callable[[int], Candidates],
    params: SearchParams,
    *,
    want: int,
    total: int,
    chunk_doc: np.ndarray,
) -> tuple[Ranking, Candidates]:
    """Rank at the setting's candidate depth, deeper while collapsing leaves too few documents.

    The first depth is ``max(params.candidates, want)``; when hits collapse to documents and
    fewer than ``want`` documents are left while the threshold cut nothing, the depth grows
    four times over, up to every chunk.

    Args:
        gather_at: the query's candidates at a depth.
        params: the setting.
        want: results wanted (``k``).
        total: chunks in the collection.
        chunk_doc: each chunk's document index.

    Returns:
        The ranking (collapsed when ``params.collapse``) and the candidates it came from.
    """
    depth = min(max(params.candidates, want), total)
    while True:
        candidates = gather_at(depth)
        ranking = rank(candidates, params)
        if params.collapse:
            ranking = ranking.collapsed(chunk_doc, params.aggregation)
        enough = len(ranking.ids) >= want or ranking.below_threshold > 0
        if not params.collapse or enough or depth >= total:
            return ranking, candidates
        depth = min(depth * 4, total)


def identifier_list(
    collection: Collection,
    query: str,
    vector: np.ndarray | None,
    mask: np.ndarray | None = None,
    stored_bm25: RetrieverList | None = None,
) -> RetrieverList:
    """Chunks holding every rare identifier of the query, best BM25 score first.

    Args:
        collection: the collection.
        query: the query text.
        vector: the query's normalized embedding (None when not embedded).
        mask: chunks allowed by the filters.
        stored_bm25: the query's BM25 candidates from the collection's stored index
            (``collection.lexical``), when gathered: chunks holding a rare identifier nearly
            always rank among them, and their scores are read from there instead of scoring
            every chunk of the collection a second time.
    """
    ids = identifier_matches(collection.lexical, query)
    if mask is not None:
        ids = ids[mask[ids]]
    if not len(ids):
        return RetrieverList(cosine=None if vector is None else np.zeros(0, dtype=np.float32))
    known = stored_bm25 if stored_bm25 is not None else RetrieverList()
    at = known.positions(ids)
    scores = known.scores[at] if bool(np.all(at >= 0)) else collection.lexical.scores(query)[ids]
    order = np.lexsort((ids, -scores))
    ids = ids[order]
    return RetrieverList(ids, scores[order], cosines(collection, ids, vector))


@dataclass
class GatherTimes:
    """Milliseconds each retriever took in :func:`gather`."""

    vector_ms: float = 0.0
    bm25_ms: float = 0.0


def gather(
    collection: Collection,
    query: str,
    params: SearchParams,
    vector: np.ndarray | None,
    depth: int,
    *,
    mask: np.ndarray | None = None,
    times: GatherTimes | None = None,
) -> Candidates:
    """One query's candidates from each retriever its mode uses, at a depth.

    Args:
        collection: the collection.
        query: the query text.
        params: the setting (mode, index and BM25 settings).
        vector: the query's normalized embedding (None in bm25 mode).
        depth: candidates asked of each retriever.
        mask: chunks allowed by the filters, applied inside the retrievers.
        times: filled with each retriever's time.

    Returns:
        The candidates, with their exact cosines when the query is embedded.
    """
    times = times if times is not None else GatherTimes()
    vector_list = bm25_list = identifiers = RetrieverList()
    stored_bm25 = None
    if params.mode in ("vector", "hybrid") and vector is not None:
        tick = time.perf_counter()
        ids, scores = collection.vector_index.search(
            vector, depth, nprobe=params.nprobe, ef_search=params.ef_search, allowed=mask
        )
        times.vector_ms += (time.perf_counter() - tick) * 1000
        vector_list = RetrieverList(ids, scores, cosines(collection, ids, vector), len(ids) < depth)
    if params.mode in ("bm25", "hybrid"):
        tick = time.perf_counter()
        engine = collection.lexical_engine(params.bm25_engine, params.bm25_k1, params.bm25_b)
        ids, scores = engine.top_k(query, depth, allowed=mask)
        times.bm25_ms += (time.perf_counter() - tick) * 1000
        bm25_list = RetrieverList(ids, scores, cosines(collection, ids, vector), len(ids) < depth)
        stored_bm25 = bm25_list if engine is collection.lexical else None
    if params.mode == "hybrid" and params.identifier_match:
        identifiers = identifier_list(collection, query, vector, mask, stored_bm25)
    return Candidates(vector_list, bm25_list, identifiers, collection.model_reads_language)
