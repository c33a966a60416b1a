"""The relevance lab: metrics at a chosen k, saved configurations, run snapshots and comparisons.

* :func:`evaluate` scores a run at the user's k (nDCG@k, Recall@k, MRR@k, P@k, MAP, as ranx),
  with a per-query table, the share of queries with no result (what a threshold costs) and the
  judged coverage of the top k with the unjudged (query, document) pairs (a metric counts an
  unjudged result as not relevant, so low coverage undercounts a configuration);
* a configuration is a named :class:`~search_core.search.SearchParams`, saved as JSON
  (:func:`save_config`, :func:`load_config`, :func:`read_config_file`);
* a snapshot keeps a run in TREC run format with its time, configuration and metrics
  (:func:`take_snapshot`, :func:`load_snapshot`);
* :func:`compare` puts two or more runs side by side: metric table, per-query deltas, wins /
  ties / losses, a paired significance test (ranx ``compare``'s), bootstrap 95% intervals of
  each mean and of each difference to the baseline, and the runs whose top k is too little
  judged (under :data:`COVERAGE_WARNING`); :func:`side_by_side` shows one query's ranked lists
  with each document's rank in every list and its grade.

Everything is stored in the collection's ``lab/`` folder (kept when the collection is
re-indexed), each file written atomically with its sha256 inside and checked on reading::

    NAME/lab/configs/CONFIG.json
    NAME/lab/snapshots/ID.json      time, configuration, metrics, query ids, sha256 of the run
    NAME/lab/snapshots/ID.trec      the run: ``qid Q0 docid rank score tag`` a line
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, validate_name
from .errors import CollectionError, IntegrityError
from .evaluation import Qrels, QuerySet, RunDict, ranking_metrics, run_queries
from .judgments import from_trec_id, lab_folder, to_trec_id
from .search import SearchParams
from .storage import atomic_write, json_bytes, json_load, read_verified, sha256_bytes

__all__ = [
    "COVERAGE_WARNING",
    "STAT_TESTS",
    "Comparison",
    "RankedDoc",
    "RunReport",
    "SideBySide",
    "Snapshot",
    "compare",
    "delete_config",
    "evaluate",
    "format_trec_run",
    "lab_metrics",
    "list_configs",
    "list_snapshots",
    "load_config",
    "load_snapshot",
    "metric_intervals",
    "parse_trec_run",
    "read_config_file",
    "save_config",
    "save_snapshot",
    "side_by_side",
    "take_snapshot",
]

FORMAT_VERSION = 1
STAT_TESTS: dict[str, str] = {
    "student": "two-sided paired Student's t-test",
    "fisher": "Fisher's randomization test",
    "tukey": "Tukey's HSD test",
}
"""The significance tests ranx offers, by name (computed here as ranx computes them)."""
RANDOMIZATIONS = 1000
"""Random sign flips of Fisher's randomization test (ranx's default, with seed 42)."""
TIE_MARGIN = 1e-12
"""A per-query difference within this of zero is a tie (float noise, not a change)."""
COVERAGE_WARNING = 0.9
"""Judged coverage of a run's top k below which a comparison warns.

A metric counts an unjudged result as not relevant, so a configuration that brings up
documents nobody judged is undercounted; under 90% judged the undercount can be larger than the
differences being compared (:attr:`Comparison.low_coverage`).
"""
BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the bootstrap intervals of :func:`compare` (see :func:`bootstrap_interval`)."""


def lab_metrics(k: int = 10) -> tuple[str, ...]:
    """The lab's metric names at cutoff k, as ranx names them.

    ``ndcg@k`` (linear gains, as trec_eval), ``recall@k``, ``mrr@k``, ``precision@k`` and
    ``map`` (average precision over the whole run, 100 documents deep).

    Raises:
        ValueError: k below 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return (f"ndcg@{k}", f"recall@{k}", f"mrr@{k}", f"precision@{k}", "map")


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class RunReport:
    """The metrics of one run at cutoff k.

    Attributes:
        k: the cutoff.
        metrics: mean of each metric over the judged queries (those with a relevant document).
        per_query: one row per query run: ``query_id, query, judged, results, unjudged@k``
            and each metric (None for a query without a relevant judgment).
        judged: number of queries the means are over.
        queries: number of queries run.
        empty: ids of queries with no result at all.
        zero_result_share: share of the queries run that got no result.
        unjudged: unjudged documents in the top k, summed over the judged queries.
        unjudged_share: the share of the judged queries' top-k results that are unjudged.
        coverage: judged documents in the top k / documents in the top k, over all the queries
            run (those without a relevant grade too); 1.0 when no query returned anything.
        unjudged_pairs: the ``(query_id, doc_id)`` pairs of the top k that nobody judged, in
            run order and rank order: what to send to judging to raise the coverage.
    """

    k: int
    metrics: dict[str, float]
    per_query: tuple[dict[str, Any], ...]
    judged: int
    queries: int
    empty: tuple[str, ...]
    zero_result_share: float
    unjudged: int
    unjudged_share: float
    coverage: float
    unjudged_pairs: tuple[tuple[str, str], ...]

    def summary(self) -> dict[str, Any]:
        """The means with the result counts, one row of a metric table."""
        return {
            **self.metrics,
            "zero_result_share": self.zero_result_share,
            f"unjudged@{self.k}": self.unjudged,
            "unjudged_share": self.unjudged_share,
            "coverage": self.coverage,
            "judged_queries": self.judged,
            "queries": self.queries,
        }


def _ranking(docs: Mapping[str, float]) -> list[str]:
    """A run's documents best first (ranx's order: score descending, then id)."""
    return sorted(docs, key=lambda d: (-docs[d], d))


def evaluate(
    qrels: Qrels,
    run: RunDict,
    k: int = 10,
    *,
    queries: Mapping[str, str] | None = None,
) -> RunReport:
    """Score a run at cutoff k, with the per-query table and the unjudged count.

    The metrics are ranx's (see :func:`~search_core.evaluation.ranking_metrics`, checked
    against ranx in the tests), computed directly: ranx compiles its numba kernels in every new
    process, which made the first comparison in the app wait half a minute or more.

    A query is scored when it has a relevant judgment (grade 1 or more); a document is judged
    for a query when the judgments hold any grade for it, 0 included. The coverage and the
    unjudged pairs count every query run; ``unjudged`` and ``unjudged_share`` only the scored
    ones.

    Args:
        qrels: the judgments.
        run: ``{query_id: {doc_id: score}}``; a query with no result maps to ``{}``.
        k: the cutoff of nDCG, recall, MRR and precision, and of the unjudged count.
        queries: query texts, for the per-query table.
    """
    metrics = lab_metrics(k)
    rows = []
    scores: list[dict[str, float]] = []
    unjudged = shown = shown_all = 0
    unjudged_pairs: list[tuple[str, str]] = []
    for qid, docs in run.items():
        ranking = _ranking(docs)
        top = ranking[:k]
        judged_docs = qrels.get(qid, {})
        missing_docs = [doc for doc in top if doc not in judged_docs]
        missing = len(missing_docs)
        unjudged_pairs.extend((qid, doc) for doc in missing_docs)
        shown_all += len(top)
        scored = any(grade >= 1 for grade in judged_docs.values())
        row: dict[str, Any] = {
            "query_id": qid,
            "query": (queries or {}).get(qid, ""),
            "judged": scored,
            "results": len(docs),
            f"unjudged@{k}": missing,
        }
        if scored:
            unjudged += missing
            shown += len(top)
            values = ranking_metrics(ranking, judged_docs, k)
            scores.append(values)
            row.update(values)
        else:
            row.update(dict.fromkeys(metrics, None))
        rows.append(row)
    empty = tuple(qid for qid, docs in run.items() if not docs)
    return RunReport(
        k=k,
        metrics={m: float(np.mean([s[m] for s in scores])) if scores else 0.0 for m in metrics},
        per_query=tuple(rows),
        judged=len(scores),
        queries=len(run),
        empty=empty,
        zero_result_share=len(empty) / len(run) if run else 0.0,
        unjudged=unjudged,
        unjudged_share=unjudged / shown if shown else 0.0,
        coverage=1.0 - len(unjudged_pairs) / shown_all if shown_all else 1.0,
        unjudged_pairs=tuple(unjudged_pairs),
    )


def metric_intervals(
    report: RunReport, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, tuple[float, float]]:
    """Bootstrap 95% interval of each mean of a report, resampling its judged queries.

    The queries are taken in id order, so the interval depends on the per-query values and the
    seed only, not on the order the run lists its queries in (see :func:`bootstrap_interval`).
    """
    rows = sorted(
        (row for row in report.per_query if row["judged"]), key=lambda row: str(row["query_id"])
    )
    return {
        m: bootstrap_interval(
            np.array([row[m] for row in rows], float), seed=seed, resamples=resamples
        )
        for m in report.metrics
    }


# --------------------------------------------------------------------------- checked JSON


def _write_checked(path: Path, kind: str, body: Mapping[str, Any]) -> None:
    """Write ``body`` atomically with the sha256 of its canonical JSON inside."""
    record = {"format": FORMAT_VERSION, "kind": kind, "sha256": sha256_bytes(json_bytes(body))}
    atomic_write(path, json_bytes({**record, "body": body}))


def _read_checked(path: Path, kind: str) -> dict[str, Any]:
    """Read a file written by :func:`_write_checked`, verifying its checksum.

    Raises:
        IntegrityError: the file is not such a record or its content changed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    record = json_load(data, str(path))
    if not isinstance(record, dict) or record.get("kind") != kind or "body" not in record:
        raise IntegrityError(f"{path}: not a saved {kind}")
    body = record["body"]
    if sha256_bytes(json_bytes(body)) != record.get("sha256"):
        raise IntegrityError(
            f"{path}: checksum mismatch; the {kind} was changed after it was saved"
        )
    if not isinstance(body, dict):
        raise IntegrityError(f"{path}: not a saved {kind}")
    return body


# --------------------------------------------------------------------------- configurations


def _configs(collection: str, home: str | Path | None) -> Path:
    return lab_folder(collection, home) / "configs"


def save_config(
    collection: str, name: str, params: SearchParams, home: str | Path | None = None
) -> Path:
    """Save a named configuration with a collection (replacing one of the same name).

    Returns:
        The file written.

    Raises:
        ValueError: an invalid name.
    """
    path = _configs(collection, home) / f"{validate_name(name)}.json"
    _write_checked(path, "config", {"name": name, "saved_at": _now(), "params": params.to_dict()})
    return path


def load_config(collection: str, name: str, home: str | Path | None = None) -> SearchParams:
    """A saved configuration.

    Raises:
        CollectionError: no configuration of that name (the message lists the saved ones).
        IntegrityError: the file was changed after it was saved.
    """
    path = _configs(collection, home) / f"{validate_name(name)}.json"
    if not path.is_file():
        saved = list_configs(collection, home)
        raise CollectionError(
            f"no configuration named {name!r}; saved: {', '.join(saved) or 'none'}"
        )
    return SearchParams.from_dict(_read_checked(path, "config")["params"])


def list_configs(collection: str, home: str | Path | None = None) -> list[str]:
    """Names of the saved configurations of a collection."""
    folder = _configs(collection, home)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def delete_config(collection: str, name: str, home: str | Path | None = None) -> None:
    """Delete a saved configuration (nothing happens when there is none)."""
    (_configs(collection, home) / f"{validate_name(name)}.json").unlink(missing_ok=True)


def read_config_file(path: str | Path) -> SearchParams:
    """A configuration from a JSON file: ``SearchParams.to_dict()`` (keys may be left out for
    their defaults), or a configuration saved in a lab (its checksum is then verified).

    Raises:
        ValueError: an unknown key or an invalid value.
        IntegrityError: not JSON, or a saved configuration whose content changed.
    """
    path = Path(path)
    data = json_load(path.read_bytes(), str(path))
    if isinstance(data, dict) and data.get("kind") == "config" and "body" in data:
        data = _read_checked(path, "config")["params"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a configuration is a JSON object of search settings")
    return SearchParams.from_dict(data)


# --------------------------------------------------------------------------- TREC runs


def format_trec_run(run: RunDict, tag: str = "search-explorer") -> str:
    """A run in TREC format: ``qid Q0 docid rank score tag`` a line, each query best first.

    Ids holding whitespace or ``%`` are percent-encoded (see :func:`to_trec_id`).
    """
    lines = []
    for qid, docs in run.items():
        for rank, doc in enumerate(_ranking(docs), start=1):
            lines.append(f"{to_trec_id(qid)} Q0 {to_trec_id(doc)} {rank} {docs[doc]!r} {tag}\n")
    return "".join(lines)


def parse_trec_run(text: str, queries: Sequence[str] = ()) -> RunDict:
    """Read a TREC run; ``queries`` adds an empty entry for each query with no line.

    Raises:
        ValueError: a line without six columns or with a score that is not a number.
    """
    run: RunDict = {q: {} for q in queries}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(f"TREC run line {number}: expected 'qid Q0 docid rank score tag'")
        try:
            score = float(parts[4])
        except ValueError:
            raise ValueError(
                f"TREC run line {number}: score {parts[4]!r} is not a number"
            ) from None
        run.setdefault(from_trec_id(parts[0]), {})[from_trec_id(parts[2])] = score
    return run


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class Snapshot:
    """A run kept with its time, configuration and metrics.

    Attributes:
        snapshot_id: its id (time, name and a random suffix).
        name: the label it was saved under (usually the configuration's name).
        created_at: when, as an ISO 8601 UTC time.
        params: the configuration (``SearchParams.to_dict()``), or None for an imported run.
        collection_version: the collection version it ran on.
        k: the metrics' cutoff.
        metrics: the means when it was taken (the run can be scored again on newer judgments).
        zero_result_share: share of queries with no result.
        run: the run itself.
    """

    snapshot_id: str
    name: str
    created_at: str
    params: dict[str, Any] | None
    collection_version: str
    k: int
    metrics: dict[str, float]
    zero_result_share: float
    run: RunDict


def _snapshots(collection: str, home: str | Path | None) -> Path:
    return lab_folder(collection, home) / "snapshots"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def save_snapshot(
    collection: Collection,
    name: str,
    run: RunDict,
    report: RunReport,
    params: SearchParams | None = None,
    *,
    home: str | Path | None = None,
) -> Snapshot:
    """Keep a run and its metrics with the collection.

    The TREC run file is written first and the metadata (holding its sha256) last, so a crash
    in between leaves no snapshot, never a damaged one.

    Raises:
        ValueError: an invalid name.
    """
    validate_name(name)
    created = _now()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    snapshot_id = f"{stamp}-{name}-{secrets.token_hex(3)}"
    folder = _snapshots(collection.name, home)
    trec = format_trec_run(run, tag=name).encode("utf-8")
    atomic_write(folder / f"{snapshot_id}.trec", trec)
    snapshot = Snapshot(
        snapshot_id=snapshot_id,
        name=name,
        created_at=created,
        params=params.to_dict() if params is not None else None,
        collection_version=str(collection.manifest.get("version", "")),
        k=report.k,
        metrics=dict(report.metrics),
        zero_result_share=report.zero_result_share,
        run=run,
    )
    body = {
        "id": snapshot_id,
        "name": name,
        "created_at": created,
        "params": snapshot.params,
        "collection_version": snapshot.collection_version,
        "k": report.k,
        "metrics": snapshot.metrics,
        "zero_result_share": report.zero_result_share,
        "queries": list(run),
        "run_sha256": sha256_bytes(trec),
    }
    _write_checked(folder / f"{snapshot_id}.json", "snapshot", body)
    return snapshot


def load_snapshot(collection: str, snapshot_id: str, home: str | Path | None = None) -> Snapshot:
    """A snapshot with its run, checksums verified.

    Raises:
        CollectionError: no such snapshot (the message lists some saved ones).
        IntegrityError: a file changed after it was saved.
    """
    folder = _snapshots(collection, home)
    if "/" in snapshot_id or "\\" in snapshot_id or snapshot_id.startswith("."):
        raise ValueError(f"invalid snapshot id {snapshot_id!r}")
    meta_path = folder / f"{snapshot_id}.json"
    if not meta_path.is_file():
        saved = [s.snapshot_id for s in list_snapshots(collection, home)][-10:]
        raise CollectionError(f"no snapshot {snapshot_id!r}; saved: {', '.join(saved) or 'none'}")
    body = _read_checked(meta_path, "snapshot")
    trec = read_verified(folder / f"{snapshot_id}.trec", str(body["run_sha256"]))
    run = parse_trec_run(trec.decode("utf-8"), body.get("queries", ()))
    return _snapshot(snapshot_id, body, run)


def _snapshot(snapshot_id: str, body: dict[str, Any], run: RunDict) -> Snapshot:
    """A snapshot from its checked JSON record and its run."""
    return Snapshot(
        snapshot_id=snapshot_id,
        name=str(body["name"]),
        created_at=str(body["created_at"]),
        params=body.get("params"),
        collection_version=str(body.get("collection_version", "")),
        k=int(body["k"]),
        metrics={str(m): float(v) for m, v in body["metrics"].items()},
        zero_result_share=float(body.get("zero_result_share", 0.0)),
        run=run,
    )


def list_snapshots(collection: str, home: str | Path | None = None) -> list[Snapshot]:
    """The snapshots of a collection, oldest first (runs not loaded: ``run`` is empty)."""
    folder = _snapshots(collection, home)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            body = _read_checked(path, "snapshot")
        except IntegrityError:
            continue
        found.append(_snapshot(path.stem, body, {}))
    return sorted(found, key=lambda s: (s.created_at, s.snapshot_id))


def take_snapshot(
    collection: Collection,
    name: str,
    params: SearchParams,
    queries: QuerySet | Mapping[str, str],
    qrels: Qrels,
    *,
    k: int = 10,
    home: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Snapshot, RunReport]:
    """Run a query set with a configuration, score it and keep the run as a snapshot."""
    texts = dict(queries.queries if isinstance(queries, QuerySet) else queries)
    run = run_queries(collection, texts, params, progress=progress)
    report = evaluate(qrels, run, k, queries=texts)
    return save_snapshot(collection, name, run, report, params, home=home), report


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Comparison:
    """Two or more runs on one query set.

    Attributes:
        names: the runs, the first being the baseline the others are compared with.
        k: the metrics' cutoff.
        metric: the metric of the per-query table and of wins / ties / losses.
        reports: each run's :class:`RunReport`.
        table: one row per run: ``name``, the means, zero-result share, unjudged counts.
        per_query: one row per judged query: ``query_id, query``, each run's ``metric`` and
            ``delta:NAME`` (that run minus the baseline) for each other run.
        wins_ties_losses: per other run, on ``metric`` query by query: ``wins`` (the run
            beats the baseline), ``ties`` and ``losses`` (the baseline is better).
        p_values: per other run, each metric's p-value against the baseline.
        significant: per other run, each metric: p-value below ``max_p``.
        stat_test: the paired test used.
        max_p: the significance level.
        intervals: per run, each metric: bootstrap 95% interval ``(low, high)`` of its mean
            over the judged queries.
        difference_intervals: per other run, each metric: bootstrap 95% interval of the mean
            per-query difference, that run minus the baseline.
        low_coverage: the runs whose judged coverage of the top k is under
            :data:`COVERAGE_WARNING`, whose metrics undercount them.
        rule: how several judges' grades were combined into the judgments, in words (set by
            the caller; empty when not said).
    """

    names: tuple[str, ...]
    k: int
    metric: str
    reports: dict[str, RunReport]
    table: tuple[dict[str, Any], ...]
    per_query: tuple[dict[str, Any], ...]
    wins_ties_losses: dict[str, dict[str, int]]
    p_values: dict[str, dict[str, float]]
    significant: dict[str, dict[str, bool]]
    stat_test: str
    max_p: float
    intervals: dict[str, dict[str, tuple[float, float]]]
    difference_intervals: dict[str, dict[str, tuple[float, float]]]
    low_coverage: tuple[str, ...]
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the command line's ``--json``); intervals and pairs as lists."""

        def lists(
            intervals: Mapping[str, Mapping[str, tuple[float, float]]],
        ) -> dict[str, dict[str, list[float]]]:
            return {
                n: {m: list(v) for m, v in by_metric.items()} for n, by_metric in intervals.items()
            }

        return {
            "names": list(self.names),
            "baseline": self.names[0],
            "k": self.k,
            "metric": self.metric,
            "table": list(self.table),
            "per_query": list(self.per_query),
            "wins_ties_losses": self.wins_ties_losses,
            "p_values": self.p_values,
            "significant": self.significant,
            "stat_test": self.stat_test,
            "max_p": self.max_p,
            "intervals": lists(self.intervals),
            "difference_intervals": lists(self.difference_intervals),
            "coverage_warning": COVERAGE_WARNING,
            "low_coverage": list(self.low_coverage),
            "unjudged_pairs": {
                name: [list(pair) for pair in report.unjudged_pairs]
                for name, report in self.reports.items()
            },
            "rule": self.rule,
        }


def _student(baseline: np.ndarray, others: Sequence[np.ndarray]) -> list[float]:
    """Two-sided paired Student's t-test of each run against the baseline (ranx's default).

    With d the per-query differences over n queries::

        t = mean(d) / (sd(d) / sqrt(n)),   p = 2 * P(T(n - 1) > |t|)

    the same p-value as ``scipy.stats.ttest_rel``, which ranx calls. Identical scores give no
    t (0 / 0): p is reported as 1.
    """
    p_values = []
    for other in others:
        diff = other - baseline
        n = len(diff)
        spread = float(np.std(diff, ddof=1)) if n > 1 else 0.0
        mean = float(np.mean(diff))
        if n < 2 or spread == 0.0:
            p_values.append(1.0 if mean == 0.0 or n < 2 else 0.0)
            continue
        p_values.append(paired_t_p(diff))
    return p_values


def paired_t_p(differences: np.ndarray, *, one_sided: bool = False) -> float:
    """p-value of the paired Student's t-test on per-query differences (``b - a``).

    ``t = mean(d) / (sd(d) / sqrt(n))``; two-sided ``p = 2 * P(T(n - 1) > |t|)``, one-sided
    (``b`` better than ``a``) ``p = P(T(n - 1) > t)``: ``scipy.stats.ttest_rel``'s values.
    Needs two or more differences that are not all equal (``sd(d) > 0``).
    """
    from scipy.special import stdtr

    n = len(differences)
    t = float(np.mean(differences)) / (float(np.std(differences, ddof=1)) / math.sqrt(n))
    return float(stdtr(n - 1, -t)) if one_sided else float(2 * stdtr(n - 1, -abs(t)))


def bootstrap_interval(
    values: np.ndarray, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of per-query values.

    The values are one per query: a metric's scores (the interval of a run's mean) or the
    differences between two runs on the same queries (the interval of the mean difference).
    ``resamples`` times the queries are drawn with replacement and the mean taken; the interval
    is the 2.5th and 97.5th percentiles of those means (``scipy.stats.bootstrap``, percentile
    method). A given seed repeats the interval exactly.

    Returns:
        ``(low, high)``; a single value, or all equal, is its own interval; no value gives
        ``(0.0, 0.0)``.
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.ptp(values) == 0:
        mean = float(values.mean()) if len(values) else 0.0
        return mean, mean
    result = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=0.95,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _fisher(baseline: np.ndarray, others: Sequence[np.ndarray]) -> list[float]:
    """Fisher's paired randomization test (Smucker et al., CIKM 2007), as ranx runs it.

    Under the null hypothesis the two scores of a query are exchangeable: each of
    ``RANDOMIZATIONS`` permutations swaps every query's pair with probability 1/2 (flips the
    sign of its difference), and p is the share of permutations whose mean difference is at
    least as large (in absolute value) as the observed one. Seeded, so a comparison repeats.
    """
    p_values = []
    for other in others:
        diff = other - baseline
        rng = np.random.default_rng(42)
        signs = rng.choice((-1.0, 1.0), size=(RANDOMIZATIONS, len(diff)))
        observed = abs(float(np.mean(diff)))
        permuted = np.abs((signs * diff).mean(axis=1))
        p_values.append(float(np.mean(permuted >= observed - 1e-12)))
    return p_values


def _tukey(baseline: np.ndarray, others: Sequence[np.ndarray]) -> list[float]:
    """Tukey's HSD test over all runs at once (``scipy.stats.tukey_hsd``, as ranx runs it);
    the p-value of each run against the baseline."""
    from scipy.stats import tukey_hsd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical runs: 0 / 0 inside, reported as 1 below
        p = tukey_hsd(baseline, *others).pvalue
    return [float(p[0, i]) for i in range(1, len(others) + 1)]


_P_VALUES: dict[str, Callable[[np.ndarray, Sequence[np.ndarray]], list[float]]] = {
    "student": _student,
    "fisher": _fisher,
    "tukey": _tukey,
}
"""Each test of ``STAT_TESTS``: (baseline scores, other runs' scores) -> a p-value per run."""


def compare(
    qrels: Qrels,
    runs: Mapping[str, RunDict],
    *,
    k: int = 10,
    metric: str | None = None,
    queries: Mapping[str, str] | None = None,
    stat_test: str = "student",
    max_p: float = 0.05,
    rule: str = "",
    seed: int = 0,
) -> Comparison:
    """Compare runs on the same judged queries; the first run is the baseline.

    Only queries present in every run are compared. The significance test pairs the runs'
    per-query scores on the judged queries (ranx ``compare``'s tests, see ``_P_VALUES``); a
    p-value that cannot be computed (identical scores on every query) is reported as 1.

    Each mean and each mean difference to the baseline gets a percentile bootstrap 95%
    interval over the judged queries (:func:`bootstrap_interval`, queries in id order, the
    differences resampled in pairs), seeded so that a comparison repeats. Runs whose top k is
    under :data:`COVERAGE_WARNING` judged are listed in ``low_coverage``.

    Args:
        qrels: the judgments.
        runs: name to run, at least two; the first is the baseline.
        k: the metrics' cutoff.
        metric: the metric of the per-query deltas and wins / ties / losses (``ndcg@k``).
        queries: query texts, for the tables.
        stat_test: a key of ``STAT_TESTS``.
        max_p: the significance level.
        rule: how several judges' grades were combined into ``qrels``, in words; kept as is.
        seed: the seed of the bootstrap intervals.

    Raises:
        ValueError: fewer than two runs, an unknown test or metric (the message lists the
            valid ones), or no judged query common to all runs.
    """
    if len(runs) < 2:
        raise ValueError(f"a comparison needs at least two runs, got {len(runs)}")
    if stat_test not in STAT_TESTS:
        raise ValueError(f"unknown test {stat_test!r}; valid: {', '.join(STAT_TESTS)}")
    metrics = lab_metrics(k)
    metric = metric or metrics[0]
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(metrics)}")
    names = tuple(runs)
    common = set.intersection(*(set(run) for run in runs.values()))
    judged = {q: d for q, d in qrels.items() if q in common and any(g >= 1 for g in d.values())}
    if not judged:
        raise ValueError("the runs have no judged query in common")
    aligned = {name: {q: run[q] for q in runs[name] if q in common} for name, run in runs.items()}
    reports = {name: evaluate(qrels, run, k, queries=queries) for name, run in aligned.items()}
    # every metric of every run on every judged query, in one order
    per_metric = {
        name: {row["query_id"]: row for row in reports[name].per_query if row["judged"]}
        for name in names
    }
    order = list(judged)
    baseline = names[0]
    p_values: dict[str, dict[str, float]] = {name: {} for name in names[1:]}
    for m in metrics:
        scores = [np.array([per_metric[name][q][m] for q in order]) for name in names]
        for name, p in zip(names[1:], _P_VALUES[stat_test](scores[0], scores[1:]), strict=True):
            p_values[name][m] = 1.0 if math.isnan(p) else p
    significant = {name: {m: p_values[name][m] < max_p for m in metrics} for name in names[1:]}
    intervals = {name: metric_intervals(reports[name], seed=seed) for name in names}
    in_id_order = sorted(judged)
    difference_intervals = {
        name: {
            m: bootstrap_interval(
                np.array(
                    [per_metric[name][q][m] - per_metric[baseline][q][m] for q in in_id_order]
                ),
                seed=seed,
            )
            for m in metrics
        }
        for name in names[1:]
    }

    scores_by_query = {
        name: {qid: row[metric] for qid, row in per_metric[name].items()} for name in names
    }
    per_query = []
    wtl = {name: {"wins": 0, "ties": 0, "losses": 0} for name in names[1:]}
    for qid in (q for q in runs[baseline] if q in judged):
        row: dict[str, Any] = {"query_id": qid, "query": (queries or {}).get(qid, "")}
        base_score = scores_by_query[baseline][qid]
        for name in names:
            row[name] = scores_by_query[name][qid]
        for name in names[1:]:
            delta = scores_by_query[name][qid] - base_score
            row[f"delta:{name}"] = delta
            outcome = "wins" if delta > TIE_MARGIN else "losses" if delta < -TIE_MARGIN else "ties"
            wtl[name][outcome] += 1
        per_query.append(row)
    table = tuple({"name": name, **reports[name].summary()} for name in names)
    return Comparison(
        names=names,
        k=k,
        metric=metric,
        reports=reports,
        table=table,
        per_query=tuple(per_query),
        wins_ties_losses=wtl,
        p_values=p_values,
        significant=significant,
        stat_test=stat_test,
        max_p=max_p,
        intervals=intervals,
        difference_intervals=difference_intervals,
        low_coverage=tuple(n for n in names if reports[n].coverage < COVERAGE_WARNING),
        rule=rule,
    )


# --------------------------------------------------------------------------- side by side


@dataclass(frozen=True)
class RankedDoc:
    """A document in one ranked list of a side-by-side view.

    Attributes:
        doc_id: the document.
        rank: its rank in this list (from 1).
        grade: its grade for the query, or None when it is unjudged.
        ranks: its rank in every list compared (None where a list does not hold it).
        title: its title, when known.
    """

    doc_id: str
    rank: int
    grade: int | None
    ranks: dict[str, int | None]
    title: str = ""


@dataclass(frozen=True)
class SideBySide:
    """One query's ranked lists, side by side.

    Attributes:
        query_id: the query.
        query: its text.
        k: the depth shown.
        lists: each run's top k.
    """

    query_id: str
    query: str
    k: int
    lists: dict[str, tuple[RankedDoc, ...]]

    def rows(self) -> list[dict[str, Any]]:
        """One row per rank: for each list its document, grade and rank in the other lists."""
        rows = []
        for position in range(self.k):
            row: dict[str, Any] = {"rank": position + 1}
            for name, docs in self.lists.items():
                doc = docs[position] if position < len(docs) else None
                row[f"{name}:doc"] = doc.doc_id if doc else None
                row[f"{name}:grade"] = doc.grade if doc else None
                for other in self.lists:
                    if other != name:
                        row[f"{name}:rank in {other}"] = doc.ranks[other] if doc else None
            rows.append(row)
        return rows


def side_by_side(
    qrels: Qrels,
    runs: Mapping[str, RunDict],
    query_id: str,
    *,
    k: int = 10,
    queries: Mapping[str, str] | None = None,
    titles: Mapping[str, str] | None = None,
) -> SideBySide:
    """The ranked lists of one query, each document with its rank in every list and its grade.

    A document's rank in another list is looked up over that whole run (100 deep), not only
    its top k.

    Raises:
        ValueError: the query is in none of the runs.
    """
    if not any(query_id in run for run in runs.values()):
        raise ValueError(f"query {query_id!r} is in none of the runs")
    rankings = {name: _ranking(run.get(query_id, {})) for name, run in runs.items()}
    positions = {name: {doc: i + 1 for i, doc in enumerate(r)} for name, r in rankings.items()}
    grades = qrels.get(query_id, {})
    lists = {
        name: tuple(
            RankedDoc(
                doc_id=doc,
                rank=rank,
                grade=grades.get(doc),
                ranks={other: positions[other].get(doc) for other in runs},
                title=(titles or {}).get(doc, ""),
            )
            for rank, doc in enumerate(ranking[:k], start=1)
        )
        for name, ranking in rankings.items()
    }
    return SideBySide(query_id, (queries or {}).get(query_id, ""), k, lists)
