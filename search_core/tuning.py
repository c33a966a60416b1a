"""Auto-tuning: fusion weights, RRF ``k``, BM25 ``k1``/``b`` and threshold for the best nDCG@10.

A tuning score measured on the queries it was tuned on flatters the tuned setting, so
:func:`tune` reports a held-out score from k-fold cross-validation over the queries: the
queries are split into ``folds`` parts; for each part, the grid point with the best mean
nDCG@10 on the other parts is scored on that part. The held-out score is the mean over all
queries of the score each got from a setting chosen without it. It is an honest estimate of
what tuning buys, to compare with the three default modes (which are not tuned, so their
score on all queries is already held-out). The configuration returned is then the grid point
with the best nDCG@10 on all queries.

Every grid point is ranked in memory from one :class:`~search_core.sweeps.CandidatePool`
(retrievers run once per query and BM25 setting), exactly as a run would rank it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .collection import Collection
from .evaluation import Qrels, QuerySet, ndcg_at_k
from .search import SearchParams
from .sweeps import CandidatePool, QueriesLike
from .types import SEARCH_MODES

__all__ = ["FoldResult", "TuneGrid", "TuneReport", "describe_params", "tune"]

METRIC = "ndcg@10"
CUTOFF = 10


@dataclass(frozen=True)
class TuneGrid:
    """The settings :func:`tune` tries; the defaults of each setting are always included.

    Attributes:
        weights: ``(vector_weight, bm25_weight)`` pairs of the hybrid mode (RRF is
            scale-free, so only their ratio matters); the pure vector and bm25 modes are
            always tried as well.
        rrf_ks: RRF constants.
        bm25: ``(k1, b)`` pairs; ``(None, None)`` is the collection's own. Each new pair builds
            a BM25 index in memory (seconds on thousands of chunks), so keep this list short.
        thresholds: similarity thresholds (vector and hybrid modes).
    """

    weights: tuple[tuple[float, float], ...] = (
        (1.0, 1.0),
        (1.0, 0.75),
        (1.0, 0.5),
        (1.0, 0.25),
        (0.75, 1.0),
        (0.5, 1.0),
        (0.25, 1.0),
    )
    rrf_ks: tuple[float, ...] = (60.0, 10.0, 30.0, 100.0)
    bm25: tuple[tuple[float | None, float | None], ...] = ((None, None), (0.9, 0.4), (1.2, 0.75))
    thresholds: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)

    def points(self, base: SearchParams) -> list[SearchParams]:
        """Every distinct setting to try, the three default modes first.

        Settings that do not apply to a mode are left at their defaults, so each distinct
        search is listed once (bm25 ignores weights, rrf_k and the threshold; vector ignores
        the BM25 settings and rrf_k).
        """
        defaults = [replace(base, mode=mode) for mode in ("hybrid", "vector", "bm25")]
        weights = dict.fromkeys([(base.vector_weight, base.bm25_weight), *self.weights])
        rrf_ks = dict.fromkeys([base.rrf_k, *self.rrf_ks])
        bm25 = dict.fromkeys([(base.bm25_k1, base.bm25_b), *self.bm25])
        thresholds = dict.fromkeys([base.threshold, *self.thresholds])
        points: list[SearchParams] = list(defaults)
        points += [replace(base, mode="vector", threshold=t) for t in thresholds]
        points += [replace(base, mode="bm25", bm25_k1=k1, bm25_b=b) for k1, b in bm25]
        points += [
            replace(
                base,
                mode="hybrid",
                vector_weight=wv,
                bm25_weight=wb,
                rrf_k=k,
                bm25_k1=k1,
                bm25_b=b,
                threshold=t,
            )
            for k1, b in bm25
            for wv, wb in weights
            for k in rrf_ks
            for t in thresholds
        ]
        unique: dict[str, SearchParams] = {}
        for point in points:
            unique.setdefault(repr(sorted(point.to_dict().items())), point)
        return list(unique.values())


@dataclass(frozen=True)
class FoldResult:
    """One fold of the cross-validation.

    Attributes:
        fold: its number, from 1.
        params: the setting chosen on the other folds (``SearchParams.to_dict()``).
        train: its mean nDCG@10 on the other folds.
        test: its mean nDCG@10 on this fold's queries.
        queries: the ids of this fold's queries.
    """

    fold: int
    params: dict[str, Any]
    train: float
    test: float
    queries: tuple[str, ...]


@dataclass(frozen=True)
class TuneReport:
    """What :func:`tune` chose and how well tuning does on queries it did not see.

    Attributes:
        chosen: the best setting on all queries.
        held_out: nDCG@10 of the tuning procedure on held-out queries (cross-validated).
        chosen_score: nDCG@10 of ``chosen`` on all queries (tuned on them: optimistic).
        defaults: nDCG@10 of each default mode on all queries.
        best_default: the default mode with the highest score.
        folds: each fold's choice and scores.
        reason: why this setting, in plain words.
        queries: judged queries used.
        grid_size: settings tried.
        seconds: time taken.
        metric: the metric optimized.
    """

    chosen: SearchParams
    held_out: float
    chosen_score: float
    defaults: dict[str, float]
    best_default: str
    folds: tuple[FoldResult, ...]
    reason: str
    queries: int
    grid_size: int
    seconds: float
    metric: str = METRIC
    per_query: dict[str, float] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        """Held-out score minus the best default mode's score."""
        return self.held_out - self.defaults[self.best_default]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the command line's ``--json``)."""
        return {
            "chosen": self.chosen.to_dict(),
            "metric": self.metric,
            "held_out": self.held_out,
            "chosen_score": self.chosen_score,
            "defaults": self.defaults,
            "best_default": self.best_default,
            "gain": self.gain,
            "reason": self.reason,
            "queries": self.queries,
            "grid_size": self.grid_size,
            "seconds": self.seconds,
            "folds": [
                {
                    "fold": f.fold,
                    "params": f.params,
                    "train": f.train,
                    "test": f.test,
                    "queries": len(f.queries),
                }
                for f in self.folds
            ],
        }


def describe_params(params: SearchParams) -> str:
    """A setting in plain words, naming only what differs from the mode's defaults."""
    default = SearchParams(mode=params.mode)
    parts = [f"{params.mode} mode"]
    if params.mode == "hybrid" and (params.vector_weight, params.bm25_weight) != (1.0, 1.0):
        parts.append(
            f"vector weight {params.vector_weight:g} and BM25 weight {params.bm25_weight:g}"
        )
    if params.mode == "hybrid" and params.rrf_k != default.rrf_k:
        parts.append(f"rrf_k {params.rrf_k:g}")
    if params.mode != "vector" and (params.bm25_k1, params.bm25_b) != (None, None):
        stored = "the collection's"
        k1 = stored if params.bm25_k1 is None else f"{params.bm25_k1:g}"
        b = stored if params.bm25_b is None else f"{params.bm25_b:g}"
        parts.append(f"BM25 k1 {k1} and b {b}")
    if params.mode != "bm25" and params.threshold != default.threshold:
        parts.append(f"similarity threshold {params.threshold:g}")
    if len(parts) == 1:
        return f"the default {parts[0]}"
    return f"{parts[0]} with " + ", ".join(parts[1:])


def _split(count: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    return [np.sort(part) for part in np.array_split(order, folds)]


def _score_grid(
    pool: CandidatePool,
    qrels: Qrels,
    points: Sequence[SearchParams],
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """nDCG@10 of every grid point (rows) on every query of the pool (columns)."""
    grades = [qrels[qid] for qid in pool.ids]
    scores = np.zeros((len(points), len(pool.ids)))
    for row, point in enumerate(points):
        for col, docs in enumerate(pool.rank(point, limit=CUTOFF)):
            scores[row, col] = ndcg_at_k([pool.doc_ids[d] for d in docs], grades[col], CUTOFF)
        if progress is not None:
            progress(row + 1, len(points))
    return scores


def tune(
    collection: Collection,
    queries: QueriesLike,
    qrels: Qrels,
    folds: int = 5,
    *,
    grid: TuneGrid | None = None,
    base: SearchParams | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> TuneReport:
    """Choose the search setting with the best nDCG@10, with a cross-validated held-out score.

    Args:
        collection: an opened collection.
        queries: the queries (only those with a relevant judgment are used).
        qrels: their judgments.
        folds: parts the queries are split into for cross-validation (at least 2).
        grid: the settings to try (default :class:`TuneGrid`).
        base: settings kept fixed (candidates, nprobe, ef_search, BM25 engine); default
            :class:`SearchParams` defaults.
        seed: the seed of the split of queries into folds.
        progress: called as ``progress(done, total)`` over the grid points.

    Returns:
        The chosen setting, its held-out score next to the default modes' scores, and why.

    Raises:
        ValueError: fewer judged queries than folds, fewer than 2 folds, or filters in ``base``.
    """
    started = time.perf_counter()
    base = base or SearchParams()
    if base.filters:
        raise ValueError(
            "tuning runs unfiltered searches; remove the filters from the base setting"
        )
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    texts = dict(queries.queries if isinstance(queries, QuerySet) else queries)
    judged = {q: t for q, t in texts.items() if any(g >= 1 for g in qrels.get(q, {}).values())}
    if len(judged) < folds:
        raise ValueError(f"{len(judged)} judged queries are too few for {folds} folds")
    points = (grid or TuneGrid()).points(replace(base, k=CUTOFF, collapse=False))
    pool = CandidatePool(
        collection, judged, nprobe=base.nprobe, ef_search=base.ef_search, candidates=base.candidates
    )
    scores = _score_grid(pool, qrels, points, progress)

    parts = _split(len(pool.ids), folds, seed)
    held_out = np.zeros(len(pool.ids))
    fold_results = []
    for number, test in enumerate(parts, start=1):
        train = np.setdiff1d(np.arange(len(pool.ids)), test)
        train_means = scores[:, train].mean(axis=1)
        best = int(np.argmax(train_means))  # the first maximum: defaults are listed first
        held_out[test] = scores[best, test]
        fold_results.append(
            FoldResult(
                number,
                points[best].to_dict(),
                float(train_means[best]),
                float(scores[best, test].mean()),
                tuple(pool.ids[i] for i in test),
            )
        )
    means = scores.mean(axis=1)
    chosen = int(np.argmax(means))
    defaults = {mode: float(means[i]) for i, mode in enumerate(("hybrid", "vector", "bm25"))}
    best_default = max(SEARCH_MODES, key=lambda mode: defaults[mode])
    report_args: dict[str, Any] = {
        "chosen": replace(points[chosen], k=base.k, collapse=base.collapse),
        "held_out": float(held_out.mean()),
        "chosen_score": float(means[chosen]),
        "defaults": defaults,
        "best_default": best_default,
        "folds": tuple(fold_results),
        "queries": len(pool.ids),
        "grid_size": len(points),
        "per_query": dict(zip(pool.ids, held_out.tolist(), strict=True)),
    }
    reason = _reason(report_args, fold_results, points, chosen, folds)
    return TuneReport(reason=reason, seconds=time.perf_counter() - started, **report_args)


def _reason(
    report: Mapping[str, Any],
    folds: Sequence[FoldResult],
    points: Sequence[SearchParams],
    chosen: int,
    fold_count: int,
) -> str:
    best_default = report["best_default"]
    default_score = report["defaults"][best_default]
    gain = report["held_out"] - default_score
    same = sum(f.params == points[chosen].to_dict() for f in folds)
    what = describe_params(points[chosen])
    lines = [
        f"Chose {what}: of {report['grid_size']} settings it has the best nDCG@10 on all "
        f"{report['queries']} judged queries ({report['chosen_score']:.4f}, tuned on them).",
        f"Tuned on {fold_count - 1} of {fold_count} parts of the queries and scored on the part "
        f"left out ({fold_count}-fold cross-validation), tuning reaches {report['held_out']:.4f} "
        f"nDCG@10 on queries it did not see, against {default_score:.4f} for the best default "
        f"mode ({best_default}): {gain:+.4f}.",
        f"{same} of {fold_count} folds chose this same setting.",
    ]
    if chosen < len(SEARCH_MODES):
        lines.append("No other setting did better, so the default is kept.")
    elif gain <= 0.005:
        lines.append(
            "The held-out gain is within noise: on new queries the default mode is as good."
        )
    return " ".join(lines)
