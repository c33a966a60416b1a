from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_core.agreement import (
    AgreementReport,
    Disagreement,
    PairAgreement,
    agreement,
    ordinal_alpha,
    raw_agreement,
    weighted_kappa,
)


@dataclass(frozen=True)
class Grade:
    """A stand-in for ``judgments.Judgment`` (the ``Graded`` protocol)."""

    query_id: str
    doc_id: str
    judge: str
    grade: int


# --------------------------------------------------------------------------- references
# Both statistics straight from their definitions, in exact fractions, to check the library
# calls against.


def kappa_by_definition(a: list[int], b: list[int]) -> Fraction:
    """Quadratic weighted kappa with weights (grade_a - grade_b) ** 2.

    sum_ij w_ij O_ij = sum_u (a_u - b_u) ** 2, and sum_ij w_ij E_ij with E_ij = O_i. O_.j / n
    is sum_u sum_v (a_u - b_v) ** 2 / n.
    """
    n = len(a)
    observed = sum((Fraction((x - y) ** 2) for x, y in zip(a, b, strict=True)), Fraction(0))
    expected = sum((Fraction((x - y) ** 2) for x in a for y in b), Fraction(0)) / n
    return 1 - observed / expected


def alpha_by_definition(units: list[list[int]]) -> Fraction:
    """Krippendorff's ordinal alpha from the coincidence matrix (Krippendorff 2011)."""
    pairable = [grades for grades in units if len(grades) >= 2]
    o: defaultdict[tuple[int, int], Fraction] = defaultdict(Fraction)
    for grades in pairable:
        for i, j in permutations(range(len(grades)), 2):
            o[grades[i], grades[j]] += Fraction(1, len(grades) - 1)
    values = sorted({g for grades in pairable for g in grades})
    n_c = {c: sum((o[c, k] for k in values), Fraction(0)) for c in values}
    n = sum(n_c.values(), Fraction(0))

    def d(c: int, k: int) -> Fraction:
        low, high = min(c, k), max(c, k)
        between = sum((n_c[g] for g in values if low <= g <= high), Fraction(0))
        return (between - (n_c[c] + n_c[k]) / 2) ** 2

    observed = sum((o[c, k] * d(c, k) for c in values for k in values), Fraction(0))
    expected = sum((n_c[c] * n_c[k] * d(c, k) for c in values for k in values), Fraction(0))
    return 1 - (n - 1) * observed / expected


# --------------------------------------------------------------------------- worked examples


def test_weighted_kappa_worked_example():
    # a = [0, 1, 2, 2], b = [0, 2, 2, 1]; grades 0..2, rows a, columns b.
    # Observed O:        Row sums (a): 1, 1, 2; column sums (b): 1, 1, 2; n = 4
    #   [1 0 0]          Expected E_ij = row_i * col_j / 4:
    #   [0 0 1]            [1/4 1/4 2/4]
    #   [0 1 1]            [1/4 1/4 2/4]
    #                      [2/4 2/4 4/4]
    # Weights w_ij = (i - j)^2: [[0 1 4], [1 0 1], [4 1 0]].
    # sum w*O = 1*O_12 + 1*O_21 = 2
    # sum w*E = 1/4 + 4*2/4 + 1/4 + 2/4 + 4*2/4 + 2/4 = 11/2
    expected = 1 - Fraction(2) / Fraction(11, 2)  # = 7/11
    assert weighted_kappa([0, 1, 2, 2], [0, 2, 2, 1]) == pytest.approx(float(expected))
    assert kappa_by_definition([0, 1, 2, 2], [0, 2, 2, 1]) == expected


def test_weighted_kappa_weighs_by_grade_not_by_rank_of_grades_used():
    # Nobody gave a 2: 1 against 3 is still two steps. With quadratic weights
    # kappa = 2 cov(a, b) / (var a + var b + (mean a - mean b)^2) (Fleiss & Cohen 1973).
    # a = [0, 1, 3], b = [1, 0, 3]: means 4/3; E[ab] = 9/3; cov = 3 - 16/9 = 11/9;
    # var a = var b = 10/3 - 16/9 = 14/9.
    cov, var = Fraction(11, 9), Fraction(14, 9)
    expected = 2 * cov / (var + var + 0)  # = 11/14; by rank of the grades used it would be 1/2
    assert weighted_kappa([0, 1, 3], [1, 0, 3]) == pytest.approx(float(expected))


def test_raw_agreement_worked_example():
    assert raw_agreement([0, 1, 2, 2], [0, 2, 2, 1]) == pytest.approx(2 / 4)


def test_ordinal_alpha_two_grades_worked_example():
    # Units (0,0), (1,1), (0,1), two judges each (m_u = 2, so each pair counts 1/(2-1)).
    # Coincidences: o_00 = 2, o_11 = 2, o_01 = o_10 = 1; n_0 = n_1 = 3, n = 6.
    # Ordinal difference d_01 = (n_0 + n_1 - (n_0 + n_1)/2)^2 = 3^2 = 9.
    # alpha = 1 - (n - 1) * sum o d / sum n_c n_k d = 1 - 5 * (2 * 9) / (2 * 3 * 3 * 9)
    expected = 1 - Fraction(5 * 2 * 9, 2 * 3 * 3 * 9)  # = 1 - 5/9
    ratings = {"u1": {"a": 0, "b": 0}, "u2": {"a": 1, "b": 1}, "u3": {"a": 0, "b": 1}}
    assert expected == 1 - Fraction(5, 9)
    assert ordinal_alpha(ratings) == pytest.approx(float(expected))


def test_ordinal_alpha_three_judges_missing_grades_worked_example():
    # u1: A=0 B=0 C=1 (m_u = 3, each ordered pair counts 1/2): o_00 += 1, o_01 += 1, o_10 += 1
    # u2: A=2 B=2:                                            o_22 += 2
    # u3: A=1 C=2:                                            o_12 += 1, o_21 += 1
    # n_0 = 2, n_1 = 2, n_2 = 3, n = 7.
    # d_01 = (2 + 2 - (2 + 2)/2)^2 = 4; d_12 = (2 + 3 - (2 + 3)/2)^2 = 25/4;
    # d_02 = (2 + 2 + 3 - (2 + 3)/2)^2 = 81/4.
    # sum o d = 2 * (1 * 4) + 2 * (1 * 25/4) = 41/2
    # sum n_c n_k d = 2 * (2*2*4 + 2*3*81/4 + 2*3*25/4) = 350
    expected = 1 - 6 * Fraction(41, 2) / 350  # = 227/350
    units = [[0, 0, 1], [2, 2], [1, 2]]
    ratings = {
        "u1": {"A": 0, "B": 0, "C": 1},
        "u2": {"A": 2, "B": 2},
        "u3": {"A": 1, "C": 2},
    }
    assert alpha_by_definition(units) == expected
    assert ordinal_alpha(ratings) == pytest.approx(float(expected))


def test_ordinal_alpha_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers x 12 units
    # with missing values. The ordinal alpha published there, 0.815, is confirmed by the
    # ``krippendorff`` package's own doctest, which cites this example (the paper's page 8)
    # and prints 0.815 for it; here it is also computed from the definition, exactly.
    __ = None  # missing
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, __, __, __],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, __, 3],
        [__, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, __],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, __],
    ]
    ratings = {
        unit: {
            f"observer {i}": row[unit] for i, row in enumerate(observers) if row[unit] is not None
        }
        for unit in range(12)
    }
    units = [list(grades.values()) for grades in ratings.values()]
    alpha = ordinal_alpha(ratings)
    assert alpha is not None
    assert alpha == pytest.approx(float(alpha_by_definition(units)), abs=1e-12)
    assert round(alpha, 3) == 0.815  # the published figure


# --------------------------------------------------------------------------- None and errors


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([], []),
        ([2], [3]),  # one unit: too few
        ([1, 1, 1], [1, 1, 1]),  # one grade in common: 0 / 0
    ],
)
def test_weighted_kappa_is_none_when_undefined(a, b):
    assert weighted_kappa(a, b) is None


def test_weighted_kappa_of_opposite_judges_is_minus_one():
    # b = 12 - a: cov = -var a = -var b and equal means, so kappa = 2 cov / (2 var) = -1.
    # Found by Hypothesis: computed in floats this came out as -1.0000000000000004.
    a, b = [4, 4, 10], [8, 8, 2]
    assert kappa_by_definition(a, b) == -1
    assert weighted_kappa(a, b) == -1.0


def test_weighted_kappa_of_two_different_constant_judges_is_zero():
    # Not 0 / 0: sum w*E = 4 * n > 0, and sum w*O = sum w*E, so kappa = 1 - 1.
    assert weighted_kappa([1, 1, 1], [3, 3, 3]) == pytest.approx(1 - Fraction(4 * 3, 4 * 3))


def test_raw_agreement_is_none_for_no_units():
    assert raw_agreement([], []) is None


@pytest.mark.parametrize("function", [weighted_kappa, raw_agreement])
def test_grades_of_different_lengths_are_refused(function):
    with pytest.raises(ValueError, match="3 and 2"):
        function([0, 1, 2], [0, 1])


@pytest.mark.parametrize("bad", [1.5, True, "2"])
def test_weighted_kappa_refuses_grades_that_are_not_whole_numbers(bad):
    with pytest.raises(ValueError, match="whole numbers"):
        weighted_kappa([0, bad, 2], [0, 1, 2])


@pytest.mark.parametrize(
    "ratings",
    [
        {},
        {"u1": {"a": 0, "b": 3}},  # one pairable unit: D_o = D_e whatever the grades
        {"u1": {"a": 0, "b": 3}, "u2": {"a": 1}, "u3": {"b": 2}},  # the others are single
        {"u1": {"a": 2, "b": 2}, "u2": {"a": 2, "b": 2, "c": 2}},  # one grade: D_e = 0
        {"u1": {"a": 2, "b": 2}, "u2": {"a": 2, "b": 2}, "u3": {"a": 0}},  # single unit: left out
    ],
)
def test_ordinal_alpha_is_none_when_undefined(ratings):
    assert ordinal_alpha(ratings) is None


def test_ordinal_alpha_ignores_units_graded_once():
    base = {"u1": {"a": 0, "b": 0}, "u2": {"a": 1, "b": 1}, "u3": {"a": 0, "b": 1}}
    with_singles = {**base, "u4": {"a": 3}, "u5": {"c": 0}}
    assert ordinal_alpha(with_singles) == ordinal_alpha(base)


# --------------------------------------------------------------------------- properties

grades = st.one_of(st.integers(0, 3), st.integers(0, 10))
paired = st.lists(st.tuples(grades, grades), max_size=25)
judge_names = ["ann", "bob", "cy", "dee"]
ratings_strategy = st.dictionaries(
    keys=st.tuples(st.sampled_from(["q1", "q2", "q3"]), st.sampled_from(["d1", "d2", "d3", "d4"])),
    values=st.dictionaries(st.sampled_from(judge_names), grades, max_size=4),
    max_size=12,
)


@settings(deadline=None)
@given(pairs=paired)
def test_weighted_kappa_matches_its_definition_and_lies_in_range(pairs):
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    kappa = weighted_kappa(a, b)
    if len(pairs) < 2 or (len(set(a)) == 1 and set(a) == set(b)):
        assert kappa is None
        return
    assert kappa is not None
    assert -1 <= kappa <= 1
    assert kappa == pytest.approx(float(kappa_by_definition(a, b)), abs=1e-9)


@settings(deadline=None)
@given(pairs=paired, seed=st.randoms(use_true_random=False))
def test_weighted_kappa_ignores_order_of_judges_and_of_units(pairs, seed):
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    shuffled = list(pairs)
    seed.shuffle(shuffled)
    kappa = weighted_kappa(a, b)
    # The same confusion counts: exactly equal.
    assert weighted_kappa([x for x, _ in shuffled], [y for _, y in shuffled]) == kappa
    # The transposed matrix: sums taken in another order, equal to rounding.
    swapped = weighted_kappa(b, a)
    assert (swapped is None) == (kappa is None)
    if kappa is not None:
        assert swapped == pytest.approx(kappa, rel=1e-12, abs=1e-12)
    assert raw_agreement(b, a) == raw_agreement(a, b)


@settings(deadline=None)
@given(a=st.lists(grades, min_size=2, max_size=25))
def test_perfect_agreement_gives_kappa_one(a):
    kappa = weighted_kappa(a, list(a))
    if len(set(a)) == 1:
        assert kappa is None
    else:
        assert kappa == pytest.approx(1.0)
    assert raw_agreement(a, list(a)) == 1.0


def _pairable_values(ratings) -> int:
    return sum(len(g) for g in ratings.values() if len(g) >= 2)


@settings(deadline=None)
@given(ratings=ratings_strategy)
def test_ordinal_alpha_matches_its_definition_and_lies_in_range(ratings):
    alpha = ordinal_alpha(ratings)
    pairable = [list(g.values()) for g in ratings.values() if len(g) >= 2]
    if len(pairable) < 2 or len({v for unit in pairable for v in unit}) < 2:
        assert alpha is None
        return
    assert alpha is not None
    assert alpha == pytest.approx(float(alpha_by_definition(pairable)), abs=1e-9)
    assert -1 <= alpha <= 1
    # Tighter, and a reason to expect no alpha below -1: the ordinal difference is a squared
    # distance between positions x_c on a line, so sum_u (1/(m_u-1)) sum_{i!=j in u} d
    # <= 4 sum_i (x_i - mean)^2 while sum_{i,j} d = 2 n sum_i (x_i - mean)^2, whence
    # alpha >= 1 - 2 (n - 1) / n = -1 + 2 / n for n pairable values.
    assert alpha >= -1 + 2 / _pairable_values(ratings) - 1e-9


@settings(deadline=None)
@given(ratings=ratings_strategy, seed=st.randoms(use_true_random=False))
def test_ordinal_alpha_ignores_judge_names_and_unit_order(ratings, seed):
    alpha = ordinal_alpha(ratings)
    items = list(ratings.items())
    seed.shuffle(items)
    assert ordinal_alpha(dict(items)) == alpha  # sorted before the array is built: exact
    renamed_to = list(judge_names)
    seed.shuffle(renamed_to)
    rename = dict(zip(judge_names, renamed_to, strict=True))
    renamed = ordinal_alpha(
        {unit: {rename[j]: g for j, g in grades.items()} for unit, grades in ratings.items()}
    )
    assert (renamed is None) == (alpha is None)
    if alpha is not None:
        assert renamed == pytest.approx(alpha, rel=1e-12, abs=1e-12)


@settings(deadline=None)
@given(
    units=st.dictionaries(
        st.integers(0, 30), st.tuples(grades, st.integers(2, 4)), min_size=2, max_size=12
    )
)
def test_perfect_agreement_gives_alpha_one(units):
    ratings = {unit: dict.fromkeys(judge_names[:m], grade) for unit, (grade, m) in units.items()}
    alpha = ordinal_alpha(ratings)
    if len({grade for grade, _ in units.values()}) == 1:
        assert alpha is None
    else:
        assert alpha == pytest.approx(1.0)


@settings(deadline=None)
@given(ratings=ratings_strategy, seed=st.randoms(use_true_random=False))
def test_agreement_ignores_input_order(ratings, seed):
    judgments = [
        Grade(q, d, judge, grade) for (q, d), by in ratings.items() for judge, grade in by.items()
    ]
    shuffled = list(judgments)
    seed.shuffle(shuffled)
    assert agreement(shuffled).to_dict() == agreement(judgments).to_dict()


# --------------------------------------------------------------------------- agreement()

TABLE = {
    ("q1", "d1"): {"ann": 3, "bob": 3, "cy": 3},
    ("q1", "d2"): {"ann": 2, "bob": 0, "cy": 1},  # spread 2
    ("q1", "d3"): {"ann": 1, "bob": 1},
    ("q2", "d1"): {"ann": 0, "cy": 3},  # spread 3
    ("q2", "d2"): {"bob": 2, "cy": 1},  # spread 1
    ("q2", "d3"): {"ann": 0},  # graded once: not a unit
    ("q3", "d1"): {"ann": 1, "bob": 2},  # spread 1
    ("q3", "d2"): {"bob": 0, "cy": 0},
    ("q0", "d9"): {"ann": 1, "cy": 2},  # spread 1
}


def _judgments(table) -> list[Grade]:
    return [Grade(q, d, judge, g) for (q, d), by in table.items() for judge, g in by.items()]


def test_agreement_of_three_judges():
    report = agreement(reversed(_judgments(TABLE)))

    assert report.judges == ("ann", "bob", "cy")
    assert report.graded == 9
    assert report.units == 8
    assert report.alpha == pytest.approx(ordinal_alpha(TABLE))
    assert report.alpha == pytest.approx(
        float(alpha_by_definition([list(g.values()) for g in TABLE.values()]))
    )
    # Common units in (query, doc) order.
    ann_bob = ([3, 2, 1, 1], [3, 0, 1, 2])  # q1/d1 q1/d2 q1/d3 q3/d1
    ann_cy = ([1, 3, 2, 0], [2, 3, 1, 3])  # q0/d9 q1/d1 q1/d2 q2/d1
    bob_cy = ([3, 0, 2, 0], [3, 1, 1, 0])  # q1/d1 q1/d2 q2/d2 q3/d2
    assert report.pairs == (
        PairAgreement("ann", "bob", 4, weighted_kappa(*ann_bob), 2 / 4),
        PairAgreement("ann", "cy", 4, weighted_kappa(*ann_cy), 1 / 4),
        PairAgreement("bob", "cy", 4, weighted_kappa(*bob_cy), 2 / 4),
    )
    assert report.pairs[0].kappa == pytest.approx(float(kappa_by_definition(*ann_bob)))

    assert [(d.spread, d.query_id, d.doc_id) for d in report.disagreements] == [
        (3, "q2", "d1"),
        (2, "q1", "d2"),
        (1, "q0", "d9"),
        (1, "q2", "d2"),
        (1, "q3", "d1"),
    ]
    assert report.disagreements[1] == Disagreement("q1", "d2", {"ann": 2, "bob": 0, "cy": 1}, 2)
    assert list(report.disagreements[1].grades) == ["ann", "bob", "cy"]

    by_query = report.by_query()
    # q2 (widest 3), q1 (2), then q0 and q3 (both 1) by id.
    assert list(by_query) == ["q2", "q1", "q0", "q3"]
    assert [d.doc_id for d in by_query["q2"]] == ["d1", "d2"]


def test_agreement_restricted_to_some_judges():
    report = agreement(_judgments(TABLE), judges=["bob", "ann"])

    assert report.judges == ("ann", "bob")
    only = {
        unit: {j: g for j, g in by.items() if j in ("ann", "bob")} for unit, by in TABLE.items()
    }
    only = {unit: by for unit, by in only.items() if by}
    assert report.graded == len(only) == 9
    assert report.units == 4  # q1/d1 q1/d2 q1/d3 q3/d1
    assert report.pairs == (
        PairAgreement("ann", "bob", 4, weighted_kappa([3, 2, 1, 1], [3, 0, 1, 2]), 2 / 4),
    )
    assert report.alpha == pytest.approx(ordinal_alpha(only))
    assert [(d.query_id, d.doc_id, d.grades) for d in report.disagreements] == [
        ("q1", "d2", {"ann": 2, "bob": 0}),
        ("q3", "d1", {"ann": 1, "bob": 2}),
    ]


def test_agreement_refuses_unknown_judges():
    with pytest.raises(ValueError, match=r"'zed'.*'ann', 'bob', 'cy'"):
        agreement(_judgments(TABLE), judges=["ann", "zed"])
    with pytest.raises(ValueError, match="not the string"):
        agreement(_judgments(TABLE), judges="ann")


def test_agreement_refuses_grades_that_are_not_whole_numbers():
    with pytest.raises(ValueError, match=r"2\.5 by 'ann' of 'd1' for query 'q1'"):
        agreement([Grade("q1", "d1", "ann", 2.5)])


def test_agreement_keeps_the_last_of_duplicate_grades():
    first = Grade("q1", "d1", "ann", 0)
    report = agreement([first, Grade("q1", "d1", "bob", 2), Grade("q1", "d1", "ann", 2)])
    assert report.disagreements == ()
    assert report.pairs[0].raw == 1.0
    assert report.graded == report.units == 1


def test_agreement_none_cases():
    report = agreement(
        [
            Grade("q1", "d1", "ann", 1),
            Grade("q1", "d1", "bob", 1),
            Grade("q1", "d2", "ann", 1),
            Grade("q1", "d2", "bob", 1),
            Grade("q1", "d3", "cy", 2),  # cy shares no unit with anyone
            Grade("q2", "d1", "dee", 0),
            Grade("q2", "d1", "ann", 3),  # ann and dee share one unit
        ]
    )
    pairs = {(p.judge_a, p.judge_b): p for p in report.pairs}
    assert pairs["ann", "bob"] == PairAgreement("ann", "bob", 2, None, 1.0)  # one grade: 0/0
    assert pairs["ann", "cy"] == PairAgreement("ann", "cy", 0, None, None)
    assert pairs["ann", "dee"] == PairAgreement("ann", "dee", 1, None, 0.0)
    assert len(report.pairs) == 6  # every pair of 4 judges, even with nothing in common
    assert report.units == 3
    assert report.alpha is not None

    empty = agreement([])
    assert empty == AgreementReport((), (), None, 0, 0, ())
    assert empty.by_query() == {}

    one_unit = agreement([Grade("q", "d", "ann", 0), Grade("q", "d", "bob", 3)])
    assert one_unit.alpha is None
    assert one_unit.units == 1


def test_report_to_dict_is_json():
    report = agreement(_judgments(TABLE))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["judges"] == ["ann", "bob", "cy"]
    assert data["units"] == 8
    assert data["graded"] == 9
    assert data["alpha"] == pytest.approx(report.alpha)
    assert data["pairs"][0] == {
        "judge_a": "ann",
        "judge_b": "bob",
        "common": 4,
        "kappa": pytest.approx(report.pairs[0].kappa),
        "raw": 0.5,
    }
    assert data["disagreements"][0] == {
        "query_id": "q2",
        "doc_id": "d1",
        "grades": {"ann": 0, "cy": 3},
        "spread": 3,
    }
    none_cases = agreement([Grade("q", "d", "ann", 1), Grade("q", "e", "bob", 1)]).to_dict()
    assert json.dumps(none_cases, allow_nan=False)
    assert none_cases["alpha"] is None
    assert none_cases["pairs"] == [
        {"judge_a": "ann", "judge_b": "bob", "common": 0, "kappa": None, "raw": None}
    ]


def test_random_shuffles_of_a_fixed_table_give_one_report():
    judgments = _judgments(TABLE)
    expected = agreement(judgments)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(judgments)
        assert agreement(judgments) == expected
