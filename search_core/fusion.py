"""Fusion: combine the ranked lists of several retrievers into one.

Each method is a :class:`FusionMethod` in the ``FUSION_METHODS`` registry: reciprocal rank
fusion (``rrf``, the default), and two convex combinations of normalized scores
(``minmax`` and ``zscore``). Every method works on numpy arrays and breaks ties the same way:
the fused score, then the best rank any retriever gave, then the id, so the result never
depends on the order in which the lists are given.

A retriever's list is its candidate ids, best first, and their scores (higher is better):
cosine similarities for the vector retriever, BM25 scores for BM25.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FUSION_METHODS",
    "FusionMethod",
    "ScoredList",
    "fuse",
    "fuse_lists",
    "reciprocal_rank_fusion",
]


@dataclass(frozen=True)
class ScoredList:
    """One retriever's candidates, best first.

    Attributes:
        ids: item ids (no repeats).
        scores: the retriever's score of each (higher is better); rank-based methods ignore
            them.
    """

    ids: np.ndarray
    scores: np.ndarray

    @classmethod
    def ranked(cls, ids: Sequence[int] | np.ndarray) -> ScoredList:
        """A list known only by its order: scores fall from ``len(ids)`` to 1."""
        ids = np.asarray(ids, dtype=np.int64)
        return cls(ids, np.arange(len(ids), 0, -1, dtype=np.float64))


Contribution = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
"""``(ranks from 1, scores, k) -> each item's share of the fused score``, before its weight."""


@dataclass(frozen=True)
class FusionMethod:
    """A fusion method: how one retriever's list contributes to the fused score.

    The fused score of item d is ``sum over lists r of w_r * contribution_r(d)``, where
    ``w_r`` is the list's weight divided by the sum of the weights (only their ratio matters)
    and an item missing from a list gets nothing from it.

    Attributes:
        name: the registry key.
        label: a plain name for the interface.
        contribution: each item's unweighted share, from its rank, its score and ``k``.
        uses_k: whether the RRF constant ``k`` matters.
    """

    name: str
    label: str
    contribution: Contribution
    uses_k: bool = False


def _rrf(ranks: np.ndarray, scores: np.ndarray, k: float) -> np.ndarray:
    """Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009).

    contribution(d) = 1 / (k + rank(d)), rank starting at 1. Scale-free: only ranks count.
    """
    return 1.0 / (k + ranks)


def _minmax(ranks: np.ndarray, scores: np.ndarray, k: float) -> np.ndarray:
    """Min-max normalization (Lee, SIGIR 1997; the convex combination of Bruch, Gai and
    Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023).

    contribution(d) = (s(d) - min s) / (max s - min s) over the list, so the list's best item
    gets 1 and its worst 0 (a missing item also gets 0); a list whose scores are all equal
    gives each item 1.
    """
    low, high = float(scores.min()), float(scores.max())
    if high <= low:
        return np.ones(len(scores))
    return (scores - low) / (high - low)


def _zscore(ranks: np.ndarray, scores: np.ndarray, k: float) -> np.ndarray:
    """Z-score normalization (Montague and Aslam, CIKM 2001, "Relevance score normalization
    for metasearch"), shifted so that the list's worst item gets 0, like a missing one.

    contribution(d) = (s(d) - min s) / std s over the list (the z-score plus a constant
    per list, so the order within a list is the z-scores' order, and an item a retriever did
    not return never beats one it did); a list whose scores are all equal gives each item 1.
    """
    spread = float(scores.std())
    if spread <= 0:
        return np.ones(len(scores))
    return (scores - float(scores.min())) / spread


FUSION_METHODS: dict[str, FusionMethod] = {
    method.name: method
    for method in (
        FusionMethod("rrf", "reciprocal rank fusion (RRF)", _rrf, uses_k=True),
        FusionMethod("minmax", "min-max normalized scores", _minmax),
        FusionMethod("zscore", "z-score normalized scores", _zscore),
    )
}
"""Fusion methods by name; ``rrf`` is the default."""


def _method(name: str) -> FusionMethod:
    try:
        return FUSION_METHODS[name]
    except KeyError:
        raise ValueError(
            f"unknown fusion method {name!r}; valid: {sorted(FUSION_METHODS)}"
        ) from None


def fuse_lists(
    lists: Sequence[ScoredList],
    weights: Sequence[float],
    *,
    method: str = "rrf",
    k: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse retrievers' lists with a method of ``FUSION_METHODS``.

    Args:
        lists: each retriever's candidates, best first.
        weights: the weight of each list; a weight of 0 removes the list.
        method: the fusion method's name.
        k: the RRF constant (``rrf`` only); larger values flatten the top ranks' advantage.

    Returns:
        ``(ids, scores)``: the fused ids, best first, and their fused scores. RRF scores are
        not divided by the sum of the weights (``w_r / (k + rank)``, as published); the
        convex combinations are.

    Raises:
        ValueError: an unknown method (the message lists the valid ones), ``k`` or a weight
            negative, or as many weights as lists missing.
    """
    fusion = _method(method)
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    if len(weights) != len(lists):
        raise ValueError(f"{len(lists)} lists need {len(lists)} weights, got {len(weights)}")
    if any(float(w) < 0 for w in weights):
        raise ValueError(f"every weight must be >= 0, got {list(weights)}")
    used = [(lst, float(w)) for lst, w in zip(lists, weights, strict=True) if float(w) > 0]
    used = [(lst, w) for lst, w in used if len(lst.ids)]
    if not used:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    total = 1.0 if fusion.uses_k else sum(w for _, w in used)
    ids = np.concatenate([np.asarray(lst.ids, dtype=np.int64) for lst, _ in used])
    unique, inverse = np.unique(ids, return_inverse=True)
    score = np.zeros(len(unique))
    best = np.full(len(unique), np.inf)
    start = 0
    for lst, weight in used:
        where = inverse[start : start + len(lst.ids)]
        start += len(lst.ids)
        ranks = np.arange(1, len(lst.ids) + 1, dtype=np.float64)
        share = fusion.contribution(ranks, np.asarray(lst.scores, dtype=np.float64), k)
        score[where] += (weight / total) * share
        best[where] = np.minimum(best[where], ranks)
    order = np.lexsort((unique, best, -score))
    return unique[order], score[order]


def fuse(
    rankings: Mapping[str, Sequence[int]],
    weights: Mapping[str, float] | None = None,
    *,
    method: str = "rrf",
    k: float = 60.0,
) -> list[tuple[int, float]]:
    """Fuse rankings known only by their order (see :func:`fuse_lists`).

    Args:
        rankings: for each retriever name, its item ids best first.
        weights: weight of each retriever (default 1.0); a weight of 0 removes it.
        method: the fusion method's name.
        k: the RRF constant.

    Returns:
        ``(id, fused score)`` pairs, best first.

    Raises:
        ValueError: as :func:`fuse_lists`.
    """
    weights = weights or {}
    names = list(rankings)
    ids, scores = fuse_lists(
        [ScoredList.ranked(rankings[name]) for name in names],
        [float(weights.get(name, 1.0)) for name in names],
        method=method,
        k=k,
    )
    return list(zip(ids.tolist(), scores.tolist(), strict=True))


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[int]],
    weights: Mapping[str, float] | None = None,
    *,
    k: float = 60.0,
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: ``score(d) = sum over r of w_r / (k + rank_r(d))``.

    See :func:`fuse` (this is ``fuse(..., method="rrf")``).
    """
    return fuse(rankings, weights, method="rrf", k=k)
