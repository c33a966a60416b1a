"""Inter-rater agreement: how far several judges of one judgment set agree on their grades.

A *unit* is one (query, document) pair; each judge gives it at most one grade, a whole number
(0-3 in the app, up to 10 for imported scales). :func:`agreement` reads graded judgments from
any number of judges and reports:

1. for every pair of judges, on the units both graded: the share of identical grades
   (:func:`raw_agreement`) and Cohen's kappa with quadratic weights (:func:`weighted_kappa`);
2. over all judges at once: Krippendorff's alpha for ordinal data (:func:`ordinal_alpha`),
   which uses every unit graded by at least two judges, whoever they are;
3. the units the judges disagree on, widest spread of grades first, to discuss.

The statistics come from scikit-learn and ``krippendorff``; this module decides what goes in
(judges and units sorted first, so the result never depends on the order of the input) and
returns ``None`` where a statistic is undefined instead of ``nan``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any, Protocol, TypeVar

import krippendorff
import numpy as np

__all__ = [
    "AgreementReport",
    "Disagreement",
    "Graded",
    "PairAgreement",
    "agreement",
    "ordinal_alpha",
    "raw_agreement",
    "weighted_kappa",
]

Unit = tuple[str, str]
"""``(query_id, doc_id)``."""

UnitKey = TypeVar("UnitKey", bound=Hashable)
"""Any hashable unit key (``Mapping`` is invariant in its keys, so not plain ``Hashable``)."""


class Graded(Protocol):
    """One judge's grade of one document for one query (e.g. ``judgments.Judgment``)."""

    @property
    def query_id(self) -> str: ...

    @property
    def doc_id(self) -> str: ...

    @property
    def judge(self) -> str: ...

    @property
    def grade(self) -> int: ...


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PairAgreement:
    """How two judges agree on the units both graded.

    Attributes:
        judge_a: the first judge (``judge_a < judge_b``).
        judge_b: the second judge.
        common: units both judges graded.
        kappa: Cohen's kappa with quadratic weights (:func:`weighted_kappa`); ``None`` with
            fewer than 2 common units or when undefined (both gave one and the same grade).
        raw: share of common units given the same grade; ``None`` when ``common`` is 0.
    """

    judge_a: str
    judge_b: str
    common: int
    kappa: float | None
    raw: float | None


@dataclass(frozen=True)
class Disagreement:
    """A unit whose judges gave different grades.

    Attributes:
        query_id: the query.
        doc_id: the document.
        grades: each judge's grade, judges sorted.
        spread: highest grade minus lowest (> 0).
    """

    query_id: str
    doc_id: str
    grades: dict[str, int]
    spread: int


@dataclass(frozen=True)
class AgreementReport:
    """Agreement among the judges of a judgment set.

    Attributes:
        judges: the judges compared, sorted.
        pairs: one entry for every pair of judges, sorted by ``(judge_a, judge_b)``.
        alpha: Krippendorff's alpha for ordinal data over all judges (:func:`ordinal_alpha`);
            ``None`` when fewer than 2 units were graded by at least 2 judges, or when those
            units hold a single grade.
        units: units graded by at least 2 judges (the ones alpha uses).
        graded: units graded by at least one judge.
        disagreements: units graded differently, widest spread first, then by query and
            document id.
    """

    judges: tuple[str, ...]
    pairs: tuple[PairAgreement, ...]
    alpha: float | None
    units: int
    graded: int
    disagreements: tuple[Disagreement, ...]

    def by_query(self) -> dict[str, tuple[Disagreement, ...]]:
        """The disagreements grouped by query.

        Returns:
            query id -> its disagreements, widest spread first; the queries ordered by their
            widest spread (descending), then by id.
        """
        groups: dict[str, list[Disagreement]] = {}
        # ``disagreements`` is sorted by (-spread, query_id, doc_id), so a query first appears
        # at its widest spread, and queries with the same widest spread appear by id.
        for item in self.disagreements:
            groups.setdefault(item.query_id, []).append(item)
        return {query_id: tuple(items) for query_id, items in groups.items()}

    def to_dict(self) -> dict[str, Any]:
        """The report as plain lists, dicts, numbers and ``None`` (for ``json.dumps``)."""
        return {
            "judges": list(self.judges),
            "graded": self.graded,
            "units": self.units,
            "alpha": self.alpha,
            "pairs": [asdict(pair) for pair in self.pairs],
            "disagreements": [asdict(item) for item in self.disagreements],
        }


# --------------------------------------------------------------------------- statistics


def _check_lengths(a: Sequence[int], b: Sequence[int]) -> None:
    if len(a) != len(b):
        raise ValueError(
            f"the two judges' grades must be paired one to one; got {len(a)} and {len(b)} grades"
        )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _is_whole(grade: object) -> bool:
    return isinstance(grade, int | np.integer) and not isinstance(grade, bool)


def weighted_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's weighted kappa with quadratic weights between two judges' grades.

    ``kappa = 1 - sum_ij w_ij O_ij / sum_ij w_ij E_ij``, where ``O_ij`` counts the units
    graded ``i`` by the first judge and ``j`` by the second, ``E_ij = O_i. * O_.j / n`` is the
    count expected if the two judged independently with the same marginals, and
    ``w_ij = (i - j) ** 2`` (Cohen 1968; quadratic weights: Fleiss & Cohen 1973). It equals
    ``2 cov(a, b) / (var(a) + var(b) + (mean(a) - mean(b)) ** 2)``, so lies in [-1, 1]
    (Cauchy-Schwarz); the result is clamped to it against rounding.

    Computed by ``sklearn.metrics.cohen_kappa_score(a, b, weights="quadratic")`` with
    ``labels`` every whole number from the lowest grade to the highest: scikit-learn weighs
    by position among the labels, so without the grades nobody used, 1 against 3 would count
    as one step when no one gave a 2.

    References:
        J. Cohen (1968). "Weighted kappa: Nominal scale agreement with provision for scaled
        disagreement or partial credit". Psychological Bulletin 70(4):213-220.
        J. L. Fleiss and J. Cohen (1973). "The equivalence of weighted kappa and the intraclass
        correlation coefficient as measures of reliability". Educational and Psychological
        Measurement 33(3):613-619.

    Args:
        a: the first judge's grades, one a unit.
        b: the second judge's grades of the same units, in the same order.

    Returns:
        Kappa, or ``None`` with fewer than 2 units or when it is undefined (``0 / 0``: both
        judges gave every unit one and the same grade).

    Raises:
        ValueError: ``a`` and ``b`` differ in length, or a grade is not a whole number.
    """
    _check_lengths(a, b)
    if len(a) < 2:
        return None
    grades = [*a, *b]
    wrong = sorted({repr(grade) for grade in grades if not _is_whole(grade)})
    if wrong:
        raise ValueError(f"grades must be whole numbers (int); got {', '.join(wrong)}")
    # Imported here: scikit-learn takes seconds to import, and only this function needs it.
    from sklearn.metrics import cohen_kappa_score

    labels = list(range(int(min(grades)), int(max(grades)) + 1))
    with warnings.catch_warnings():
        # One grade in common (0 / 0) warns and returns nan; it becomes None below.
        warnings.simplefilter("ignore")
        kappa = float(cohen_kappa_score(a, b, labels=labels, weights="quadratic"))
    # |kappa| <= 1 is a theorem (above); rounding can step past it, e.g. a = [4, 4, 10] and
    # b = [8, 8, 2] give -1.0000000000000004 for an exact -1.
    return min(1.0, max(-1.0, kappa)) if math.isfinite(kappa) else None


def raw_agreement(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Observed (raw, percent) agreement: the share of units given the same grade.

    ``A_o = (1 / n) * sum_i [a_i == b_i]`` (Artstein & Poesio 2008, section 2.1). Not corrected
    for chance: two judges who grade nearly everything 0 agree often by chance alone.

    References:
        R. Artstein and M. Poesio (2008). "Inter-coder agreement for computational
        linguistics". Computational Linguistics 34(4):555-596.

    Args:
        a: the first judge's grades, one a unit.
        b: the second judge's grades of the same units, in the same order.

    Returns:
        The share in [0, 1], or ``None`` for no units.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    _check_lengths(a, b)
    if not a:
        return None
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _sorted_keys(keys: Iterable[UnitKey]) -> list[UnitKey]:
    """The keys in a fixed order: their own when they compare, else by ``repr``."""
    items = list(keys)
    try:
        return sorted(items)  # type: ignore[type-var]
    except TypeError:
        return sorted(items, key=repr)


def ordinal_alpha(ratings: Mapping[UnitKey, Mapping[str, int]]) -> float | None:
    """Krippendorff's alpha for ordinal data, over any number of judges with missing grades.

    ``alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_ck o_ck d_ck / sum_ck n_c n_k d_ck``, where the
    coincidence matrix ``o_ck = sum_u (number of ordered pairs of grades c, k in unit u) /
    (m_u - 1)`` counts pairs of grades given to the same unit by different judges (``m_u``
    judges graded unit u; units with ``m_u < 2`` are not pairable and left out),
    ``n_c = sum_k o_ck``, ``n = sum_c n_c``, and the ordinal difference is
    ``d_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2) ** 2`` (Krippendorff 2011). 1 is perfect
    agreement, 0 agreement by chance; with this difference alpha > -1 always.

    Computed by ``krippendorff.alpha`` on a judges x units array (``nan`` where a judge did not
    grade a unit), judges and units sorted, ``level_of_measurement="ordinal"`` and
    ``value_domain`` the sorted distinct grades of the pairable units.

    References:
        K. Krippendorff (2011). "Computing Krippendorff's Alpha-Reliability". Annenberg School
        for Communication, University of Pennsylvania, Departmental Papers 43.
        K. Krippendorff (2004). Content Analysis: An Introduction to Its Methodology, 2nd ed.,
        chapter 11. Sage.

    Args:
        ratings: unit -> {judge: grade}. Units are sorted by their own order when they
            compare (tuples of strings do), else by ``repr``.

    Returns:
        Alpha, or ``None`` when undefined: fewer than 2 units graded by at least 2 judges
        (with one unit, ``D_o = D_e`` and alpha is 0 whatever the grades), or a single grade
        across those units (``D_e = 0``).
    """
    pairable = {unit: grades for unit, grades in ratings.items() if len(grades) >= 2}
    if len(pairable) < 2:
        return None
    domain = sorted({grade for grades in pairable.values() for grade in grades.values()})
    if len(domain) < 2:
        return None
    units = _sorted_keys(pairable)
    judges = sorted({judge for grades in pairable.values() for judge in grades})
    row = {judge: i for i, judge in enumerate(judges)}
    data = np.full((len(judges), len(units)), np.nan)
    for column, unit in enumerate(units):
        for judge, grade in pairable[unit].items():
            data[row[judge], column] = grade
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = float(
            krippendorff.alpha(
                reliability_data=data, level_of_measurement="ordinal", value_domain=domain
            )
        )
    return _finite(alpha)


# --------------------------------------------------------------------------- report


def _collect(
    judgments: Iterable[Graded], judges: Collection[str] | None
) -> tuple[tuple[str, ...], dict[Unit, dict[str, int]]]:
    """The judges compared and each unit's grades by judge (the last grade given wins)."""
    if isinstance(judges, str):
        raise ValueError(f"judges must be a collection of names, not the string {judges!r}")
    table: dict[Unit, dict[str, int]] = {}
    for item in judgments:
        if not _is_whole(item.grade):
            raise ValueError(
                f"grade {item.grade!r} by {item.judge!r} of {item.doc_id!r} for query "
                f"{item.query_id!r} is not a whole number (int)"
            )
        table.setdefault((item.query_id, item.doc_id), {})[item.judge] = item.grade
    present = sorted({judge for grades in table.values() for judge in grades})
    if judges is None:
        return tuple(present), table
    unknown = sorted(set(judges) - set(present))
    if unknown:
        raise ValueError(
            f"unknown judge(s) {', '.join(map(repr, unknown))}; "
            f"judges in these judgments: {', '.join(map(repr, present)) or '(none)'}"
        )
    chosen = set(judges)
    kept = {
        unit: {judge: grade for judge, grade in grades.items() if judge in chosen}
        for unit, grades in table.items()
    }
    return tuple(sorted(chosen)), {unit: grades for unit, grades in kept.items() if grades}


def _pair(a: str, b: str, table: Mapping[Unit, Mapping[str, int]]) -> PairAgreement:
    common = sorted(unit for unit, grades in table.items() if a in grades and b in grades)
    grades_a = [table[unit][a] for unit in common]
    grades_b = [table[unit][b] for unit in common]
    return PairAgreement(
        judge_a=a,
        judge_b=b,
        common=len(common),
        kappa=weighted_kappa(grades_a, grades_b),
        raw=raw_agreement(grades_a, grades_b),
    )


def agreement(
    judgments: Iterable[Graded], *, judges: Collection[str] | None = None
) -> AgreementReport:
    """Agreement among the judges of a set of graded judgments.

    Args:
        judgments: grades, one per (query, document, judge); when one comes twice, the last
            one wins. Their order does not change the report.
        judges: compare only these judges (each must have graded something); ``None`` for
            every judge present.

    Returns:
        Pairwise kappa and raw agreement, ordinal alpha over all the judges, and the units
        they disagree on.

    Raises:
        ValueError: ``judges`` names a judge with no grade here (the message lists the judges
            present), or is a string; a grade is not a whole number.
    """
    names, table = _collect(judgments, judges)
    pairs = tuple(_pair(a, b, table) for a, b in combinations(names, 2))
    shared = {unit: grades for unit, grades in table.items() if len(grades) >= 2}
    disagreements = [
        Disagreement(
            query_id=query_id,
            doc_id=doc_id,
            grades=dict(sorted(grades.items())),
            spread=max(grades.values()) - min(grades.values()),
        )
        for (query_id, doc_id), grades in shared.items()
        if len(set(grades.values())) > 1
    ]
    disagreements.sort(key=lambda item: (-item.spread, item.query_id, item.doc_id))
    return AgreementReport(
        judges=names,
        pairs=pairs,
        alpha=ordinal_alpha(table),
        units=len(shared),
        graded=len(table),
        disagreements=tuple(disagreements),
    )
