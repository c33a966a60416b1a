"""Auto-tuning: the search setting with the best nDCG@10 that holds up on queries it did not see.

Tuning many settings on few queries overfits: the best setting on the queries tuned on is
often no better, or worse, on new ones. :func:`tune` therefore guards its choice the way the
field does (Hastie, Tibshirani and Friedman, *The Elements of Statistical Learning*, 2nd ed.,
section 7.10; Cawley and Talbot, JMLR 2010, on nested cross-validation):

* **keep the default unless tuning is shown to help**: on the queries tuned on, tuning is
  itself cross-validated (an inner k-fold: choose on k-1 parts, score on the part left out),
  and the tuned setting replaces the best default mode only when those held-out scores beat
  the default's in a one-sided paired t-test (p < ``ALPHA``, over queries). The best default
  mode is the one with the best score on all queries, the reference the report compares
  with: so the held-out score measures what tuning adds to picking the best default mode;
* **the one-standard-error rule**: of the settings whose mean nDCG@10 is within one paired
  standard error of the best one's, the one that changes the fewest settings is chosen;
* **a smaller grid for fewer queries**: under ``SMALL_QUERY_SET`` judged queries,
  :meth:`TuneGrid.small` is tried instead of the full grid: one setting changed at a time
  from the defaults (10 settings instead of about 500). On 35 cranfield queries the crossed
  grid, guarded as above, still lost 0.007 on one fold seed in five.

The held-out score is the outer cross-validation's: the queries are split into ``folds``
parts; for each, the whole procedure above runs on the other parts and its choice is scored
on that part. It is an honest estimate of what tuning buys, compared with the best default
mode, with a bootstrap 95% confidence interval of the gain over queries
(``scipy.stats.bootstrap``). The setting returned is the procedure's choice on all queries.

Every grid point is ranked in memory from one :class:`~search_core.sweeps.CandidatePool`, with
the candidate stage every search uses (:mod:`search_core.candidates`), so a setting is tuned
exactly as it is searched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .collection import Collection
from .evaluation import Qrels, QuerySet, ndcg_at_k
from .lab import bootstrap_interval, paired_t_p
from .search import SearchParams
from .sweeps import CandidatePool, QueriesLike
from .types import SEARCH_MODES

__all__ = ["FoldResult", "TuneGrid", "TuneReport", "describe_params", "tune"]

METRIC = "ndcg@10"
CUTOFF = 10
SMALL_QUERY_SET = 50
"""Under this many judged queries, :func:`tune` tries :meth:`TuneGrid.small`."""
ALPHA = 0.05
"""Significance level of the paired test that lets a tuned setting replace the default."""
DEFAULT_MODES = ("hybrid", "vector", "bm25")


@dataclass(frozen=True)
class TuneGrid:
    """The settings :func:`tune` tries; the defaults of each setting are always included.

    Attributes:
        weights: ``(vector_weight, bm25_weight)`` pairs of the hybrid mode (only their ratio
            matters); the pure vector and bm25 modes are always tried as well.
        rrf_ks: RRF constants (with ``rrf`` fusion).
        bm25: ``(k1, b)`` pairs; ``(None, None)`` is the collection's own. Each new pair builds
            a BM25 index in memory (seconds on thousands of chunks), so keep this list short.
        thresholds: similarity thresholds (vector and hybrid modes).
        fusions: fusion methods of the hybrid mode (``FUSION_METHODS`` names).
        margins: BM25 floor margins of the hybrid mode (``SearchParams.lexical_margin``; None
            is automatic, -2 no floor).
        aggregations: how a document's chunks make its score (``SearchParams.aggregation``),
            tried with each mode's defaults.
        crossed: try every combination of the settings above; when False, change one
            setting at a time from the defaults (far fewer points, for few queries).
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
    fusions: tuple[str, ...] = ("rrf", "minmax", "zscore")
    margins: tuple[float | None, ...] = (None, -2.0, 0.1, 0.3)
    aggregations: tuple[str, ...] = ("best", "best-two")
    crossed: bool = True

    @classmethod
    def small(cls) -> TuneGrid:
        """The grid for small query sets: one setting changed at a time from the defaults."""
        return cls(
            weights=((1.0, 0.5), (0.5, 1.0)),
            rrf_ks=(30.0,),
            bm25=((None, None),),
            thresholds=(0.0,),
            fusions=("rrf", "minmax"),
            margins=(None, -2.0),
            aggregations=("best",),
            crossed=False,
        )

    def points(self, base: SearchParams) -> list[SearchParams]:
        """Every distinct setting to try, the three default modes first.

        Settings that do not apply to a mode are left at their defaults, so each distinct
        search is listed once (bm25 ignores weights, fusion and the threshold; vector ignores
        the BM25 settings and fusion). RRF points cross every weight, ``rrf_k``, BM25 setting
        and threshold; the score-based fusions cross the weights and thresholds; the floor
        margins are tried with each fusion at the base's weights.
        """
        defaults = [replace(base, mode=mode) for mode in DEFAULT_MODES]
        weights = dict.fromkeys([(base.vector_weight, base.bm25_weight), *self.weights])
        rrf_ks = dict.fromkeys([base.rrf_k, *self.rrf_ks])
        bm25 = dict.fromkeys([(base.bm25_k1, base.bm25_b), *self.bm25])
        thresholds = dict.fromkeys([base.threshold, *self.thresholds])
        fusions = dict.fromkeys([base.fusion, *self.fusions])
        hybrid = replace(base, mode="hybrid")
        if not self.crossed:
            return _unique(defaults + self._one_at_a_time(base, defaults))
        points: list[SearchParams] = list(defaults)
        points += [replace(base, mode="vector", threshold=t) for t in thresholds]
        points += [replace(base, mode="bm25", bm25_k1=k1, bm25_b=b) for k1, b in bm25]
        for fusion in fusions:
            rank_based = fusion == "rrf"
            points += [
                replace(
                    hybrid,
                    fusion=fusion,
                    vector_weight=wv,
                    bm25_weight=wb,
                    rrf_k=k,
                    bm25_k1=k1,
                    bm25_b=b,
                    threshold=t,
                )
                for k1, b in (bm25 if rank_based else [(base.bm25_k1, base.bm25_b)])
                for wv, wb in weights
                for k in (rrf_ks if rank_based else [base.rrf_k])
                for t in thresholds
            ]
            points += [replace(hybrid, fusion=fusion, lexical_margin=m) for m in self.margins]
        points += [replace(d, aggregation=a) for d in defaults for a in self.aggregations]
        return _unique(points)

    def _one_at_a_time(
        self, base: SearchParams, defaults: Sequence[SearchParams]
    ) -> list[SearchParams]:
        hybrid, vector, bm25 = defaults
        changes: list[SearchParams] = []
        changes += [replace(hybrid, vector_weight=wv, bm25_weight=wb) for wv, wb in self.weights]
        changes += [replace(hybrid, rrf_k=k) for k in self.rrf_ks]
        changes += [
            replace(mode, bm25_k1=k1, bm25_b=b) for mode in (hybrid, bm25) for k1, b in self.bm25
        ]
        changes += [
            replace(mode, threshold=t) for mode in (hybrid, vector) for t in self.thresholds
        ]
        changes += [replace(hybrid, fusion=f) for f in self.fusions]
        changes += [replace(hybrid, lexical_margin=m) for m in self.margins]
        changes += [replace(d, aggregation=a) for d in defaults for a in self.aggregations]
        return changes


def _unique(points: Sequence[SearchParams]) -> list[SearchParams]:
    """Each distinct setting once, in order."""
    unique: dict[str, SearchParams] = {}
    for point in points:
        unique.setdefault(repr(sorted(point.to_dict().items())), point)
    return list(unique.values())


@dataclass(frozen=True)
class FoldResult:
    """One fold of the outer cross-validation.

    Attributes:
        fold: its number, from 1.
        params: the setting chosen on the other folds (``SearchParams.to_dict()``).
        train: its mean nDCG@10 on the other folds.
        test: its mean nDCG@10 on this fold's queries.
        queries: the ids of this fold's queries.
        kept_default: the procedure kept the best default mode (tuning was not shown to help).
        p_value: the one-sided paired t-test's p-value of tuning against the default on the
            other folds' inner held-out scores (None when it could not run).
    """

    fold: int
    params: dict[str, Any]
    train: float
    test: float
    queries: tuple[str, ...]
    kept_default: bool = False
    p_value: float | None = None


@dataclass(frozen=True)
class TuneReport:
    """What :func:`tune` chose and how well tuning does on queries it did not see.

    Attributes:
        chosen: the procedure's choice on all queries.
        held_out: nDCG@10 of the procedure on held-out queries (outer cross-validation).
        chosen_score: nDCG@10 of ``chosen`` on all queries (chosen on them: optimistic).
        defaults: nDCG@10 of each default mode on all queries.
        best_default: the default mode with the highest score.
        folds: each outer fold's choice and scores.
        reason: why this setting, in plain words, naming the guards that applied.
        queries: judged queries used.
        grid_size: settings tried.
        seconds: time taken.
        metric: the metric optimized.
        per_query: each query's held-out nDCG@10.
        gain_ci: bootstrap 95% confidence interval of the held-out gain over the best
            default, over queries.
        small_grid: the small grid was used (fewer than ``SMALL_QUERY_SET`` queries).
        kept_default: the choice on all queries is the best default mode.
        p_value: the paired test's p-value for the choice on all queries.
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
    gain_ci: tuple[float, float] = (0.0, 0.0)
    small_grid: bool = False
    kept_default: bool = True
    p_value: float | None = None

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
            "gain_ci": list(self.gain_ci),
            "kept_default": self.kept_default,
            "p_value": self.p_value,
            "small_grid": self.small_grid,
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
                    "kept_default": f.kept_default,
                    "p_value": f.p_value,
                }
                for f in self.folds
            ],
        }


def describe_params(params: SearchParams) -> str:
    """A setting in plain words, naming only what differs from the mode's defaults."""
    default = SearchParams(mode=params.mode)
    parts = [f"{params.mode} mode"]
    hybrid = params.mode == "hybrid"
    if hybrid and params.fusion != default.fusion:
        parts.append(f"{params.fusion} fusion")
    if hybrid and (params.vector_weight, params.bm25_weight) != (1.0, 1.0):
        parts.append(
            f"vector weight {params.vector_weight:g} and BM25 weight {params.bm25_weight:g}"
        )
    if hybrid and params.fusion == "rrf" and params.rrf_k != default.rrf_k:
        parts.append(f"rrf_k {params.rrf_k:g}")
    if params.mode != "vector" and (params.bm25_k1, params.bm25_b) != (None, None):
        stored = "the collection's"
        k1 = stored if params.bm25_k1 is None else f"{params.bm25_k1:g}"
        b = stored if params.bm25_b is None else f"{params.bm25_b:g}"
        parts.append(f"BM25 k1 {k1} and b {b}")
    if params.mode != "bm25" and params.threshold != default.threshold:
        parts.append(f"similarity threshold {params.threshold:g}")
    if hybrid and params.lexical_margin != default.lexical_margin:
        margin = params.lexical_margin
        parts.append(
            "no BM25 floor"
            if margin is not None and margin <= -2
            else f"BM25 floor margin {margin:g}"
        )
    if params.aggregation != default.aggregation:
        parts.append("documents scored by the sum of their two best chunks")
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


def _complexity(points: Sequence[SearchParams], base: SearchParams) -> np.ndarray:
    """How many tuned settings each point changes from the base (0 for the default modes)."""
    return np.array([sum(getattr(p, f) != getattr(base, f) for f in _TUNED) for p in points])


_TUNED = (
    "fusion",
    "vector_weight",
    "bm25_weight",
    "rrf_k",
    "bm25_k1",
    "bm25_b",
    "threshold",
    "lexical_margin",
    "aggregation",
)


@dataclass(frozen=True)
class _Choice:
    row: int
    kept_default: bool
    p_value: float | None


class _Chooser:
    """The guarded choice of a setting on a set of queries (the columns of ``scores``).

    The default it keeps is ``baseline``, the best default mode on all queries: the same
    reference the report compares with, so the held-out score measures what tuning adds to
    picking the best default mode.
    """

    def __init__(
        self,
        scores: np.ndarray,
        complexity: np.ndarray,
        baseline: int,
        inner_folds: int,
        seed: int,
    ) -> None:
        self.scores = scores
        self.complexity = complexity
        self.baseline = baseline
        self.inner_folds = inner_folds
        self.seed = seed

    def best(self, cols: np.ndarray) -> int:
        """The best point by mean, then the one-standard-error rule towards fewer changes."""
        block = self.scores[:, cols]
        means = block.mean(axis=1)
        top = int(np.argmax(means))
        if len(cols) < 2:
            return top
        spread = (block[top] - block).std(axis=1, ddof=1) / math.sqrt(len(cols))
        close = np.flatnonzero(means >= means[top] - spread)
        order = np.lexsort((close, -means[close], self.complexity[close]))
        return int(close[order[0]])

    def choose(self, cols: np.ndarray) -> _Choice:
        """The best point when inner cross-validation shows it beats the baseline."""
        folds = min(self.inner_folds, len(cols))
        if folds < 2:
            return _Choice(self.baseline, True, None)
        tuned = np.zeros(len(cols))
        for part in _split(len(cols), folds, self.seed):
            train = cols[np.setdiff1d(np.arange(len(cols)), part)]
            tuned[part] = self.scores[self.best(train), cols[part]]
        kept = self.scores[self.baseline, cols]
        p_value = _paired_p(tuned, kept)
        if p_value is None or p_value >= ALPHA or tuned.mean() <= kept.mean():
            return _Choice(self.baseline, True, p_value)
        return _Choice(self.best(cols), False, p_value)


def _paired_p(better: np.ndarray, than: np.ndarray) -> float | None:
    """One-sided paired t-test p-value that ``better`` beats ``than``; None when undefined."""
    differences = better - than
    if len(differences) < 2 or np.allclose(better, than) or np.std(differences, ddof=1) == 0:
        return None
    return paired_t_p(differences, one_sided=True)


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
    """Choose the search setting with the best nDCG@10 that holds up on held-out queries.

    Args:
        collection: an opened collection.
        queries: the queries (only those with a relevant judgment are used).
        qrels: their judgments.
        folds: parts the queries are split into for cross-validation (at least 2); the inner
            cross-validation uses as many.
        grid: the settings to try (default :class:`TuneGrid`, or :meth:`TuneGrid.small` for
            fewer than ``SMALL_QUERY_SET`` judged queries).
        base: settings kept fixed (candidates, nprobe, ef_search, BM25 engine); default
            :class:`SearchParams` defaults.
        seed: the seed of the splits of queries into folds and of the bootstrap.
        progress: called as ``progress(done, total)`` over the grid points.

    Returns:
        The chosen setting, its held-out score next to the default modes' scores, and why.

    Raises:
        ValueError: fewer judged queries than folds, fewer than 2 folds, or filters in ``base``.
    """
    started = time.perf_counter()
    asked = base = base or SearchParams()
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
    small = grid is None and len(judged) < SMALL_QUERY_SET
    grid = grid or (TuneGrid.small() if small else TuneGrid())
    base = replace(base, k=CUTOFF, collapse=False)
    points = grid.points(base)
    pool = CandidatePool(
        collection, judged, nprobe=base.nprobe, ef_search=base.ef_search, candidates=base.candidates
    )
    scores = _score_grid(pool, qrels, points, progress)
    means = scores.mean(axis=1)
    defaults = {mode: float(means[i]) for i, mode in enumerate(DEFAULT_MODES)}
    best_default = max(SEARCH_MODES, key=lambda mode: defaults[mode])
    baseline = DEFAULT_MODES.index(best_default)
    chooser = _Chooser(scores, _complexity(points, base), baseline, folds, seed)

    everyone = np.arange(len(pool.ids))
    held_out = np.zeros(len(pool.ids))
    fold_results = []
    for number, test in enumerate(_split(len(pool.ids), folds, seed), start=1):
        train = np.setdiff1d(everyone, test)
        choice = chooser.choose(train)
        held_out[test] = scores[choice.row, test]
        fold_results.append(
            FoldResult(
                number,
                points[choice.row].to_dict(),
                float(scores[choice.row, train].mean()),
                float(scores[choice.row, test].mean()),
                tuple(pool.ids[i] for i in test),
                choice.kept_default,
                choice.p_value,
            )
        )
    final = chooser.choose(everyone)
    gain = held_out - scores[baseline]
    report_args: dict[str, Any] = {
        "chosen": replace(points[final.row], k=asked.k, collapse=asked.collapse),
        "held_out": float(held_out.mean()),
        "chosen_score": float(means[final.row]),
        "defaults": defaults,
        "best_default": best_default,
        "folds": tuple(fold_results),
        "queries": len(pool.ids),
        "grid_size": len(points),
        "per_query": dict(zip(pool.ids, held_out.tolist(), strict=True)),
        "gain_ci": bootstrap_interval(gain, seed=seed),
        "small_grid": small,
        "kept_default": final.kept_default,
        "p_value": final.p_value,
    }
    reason = _reason(report_args, points[final.row], folds)
    return TuneReport(reason=reason, seconds=time.perf_counter() - started, **report_args)


def _reason(report: Mapping[str, Any], chosen: SearchParams, fold_count: int) -> str:
    best_default = report["best_default"]
    default_score = report["defaults"][best_default]
    gain = report["held_out"] - default_score
    low, high = report["gain_ci"]
    folds: Sequence[FoldResult] = report["folds"]
    tuned_folds = sum(not f.kept_default for f in folds)
    what = describe_params(chosen)
    p_value = report["p_value"]
    test = "no difference to test" if p_value is None else f"p = {p_value:.3f}"
    lines = []
    if report["small_grid"]:
        lines.append(
            f"With {report['queries']} judged queries (under {SMALL_QUERY_SET}), a small grid "
            f"of {report['grid_size']} settings was tried, as many settings overfit few queries."
        )
    if report["kept_default"]:
        lines.append(
            f"Kept {what}: tuning did not beat the default on queries it did not see "
            f"(nested {fold_count}-fold cross-validation, one-sided paired t-test, {test}, "
            f"needs p < {ALPHA:g})."
        )
    else:
        lines.append(
            f"Chose {what}: on queries it did not see, tuning beat the default (nested "
            f"{fold_count}-fold cross-validation, one-sided paired t-test, {test}); of the "
            f"settings within one standard error of the best of {report['grid_size']}, it "
            f"changes the fewest (nDCG@10 {report['chosen_score']:.4f} on all "
            f"{report['queries']} queries, tuned on them)."
        )
    lines.append(
        f"Held out ({fold_count}-fold cross-validation, the whole procedure repeated on each "
        f"part), tuning reaches {report['held_out']:.4f} nDCG@10 against {default_score:.4f} "
        f"for the best default mode ({best_default}): {gain:+.4f}, 95% interval "
        f"{low:+.4f} to {high:+.4f}; {tuned_folds} of {fold_count} folds used a tuned setting."
    )
    return " ".join(lines)
