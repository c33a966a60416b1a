"""Rank fusion: combine the ranked lists of several retrievers into one.

Fusion methods live in the ``FUSION_METHODS`` registry; reciprocal rank fusion is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

Ranking = Sequence[int]
"""Item ids, best first."""

FusedList = list[tuple[int, float]]


def reciprocal_rank_fusion(
    rankings: Mapping[str, Ranking],
    weights: Mapping[str, float] | None = None,
    *,
    k: float = 60.0,
) -> FusedList:
    """Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009), weighted.

    score(d) = sum over retrievers r of  w_r / (k + rank_r(d)),  rank starting at 1; a retriever
    that did not return d contributes nothing.

    Ties are broken by the best rank any retriever gave, then by id, so the result does not
    depend on the order in which the rankings are given.

    Args:
        rankings: for each retriever name, its item ids best first.
        weights: weight of each retriever (default 1.0); a weight of 0 removes it.
        k: the RRF constant; larger values flatten the difference between top ranks.

    Returns:
        ``(id, fused score)`` pairs, best first.

    Raises:
        ValueError: ``k`` is negative or a weight is negative.
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    weights = weights or {}
    scores: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for name, ranking in rankings.items():
        weight = float(weights.get(name, 1.0))
        if weight < 0:
            raise ValueError(f"weight of {name!r} must be >= 0, got {weight}")
        if weight == 0:
            continue
        for rank, item in enumerate(ranking, start=1):
            item = int(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], best_rank[pair[0]], pair[0]))


FusionMethod = Callable[..., FusedList]

FUSION_METHODS: dict[str, FusionMethod] = {"rrf": reciprocal_rank_fusion}


def fuse(
    rankings: Mapping[str, Ranking],
    weights: Mapping[str, float] | None = None,
    *,
    method: str = "rrf",
    k: float = 60.0,
) -> FusedList:
    """Fuse rankings with a method from ``FUSION_METHODS``.

    Raises:
        ValueError: unknown method (the message lists the valid ones).
    """
    try:
        function = FUSION_METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown fusion method {method!r}; valid: {sorted(FUSION_METHODS)}"
        ) from None
    return function(rankings, weights, k=k)
