from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from search_core.combining import COMBINING_RULES, combine, combine_grades, describe_rule


@pytest.mark.parametrize(
    ("grades", "rule", "expected"),
    [
        ([1, 2], "mean", 2),  # 1.5 rounds half up
        ([0, 1, 1], "mean", 1),  # 2/3
        ([0, 0, 1], "mean", 0),  # 1/3
        ([0, 3], "median", 0),  # the lower middle grade
        ([0, 2, 3], "median", 2),
        ([0, 0, 3, 3], "majority", 0),  # a tie goes to the lowest tied grade
        ([1, 2, 2], "majority", 2),
        ([3, 1, 2], "minimum", 1),
    ],
)
def test_each_rule_on_a_worked_example(grades: list[int], rule: str, expected: int) -> None:
    assert combine_grades(grades, rule) == expected


@given(
    grade=st.integers(0, 10), judges=st.integers(1, 6), rule=st.sampled_from(list(COMBINING_RULES))
)
def test_judges_who_agree_give_their_grade(grade: int, judges: int, rule: str) -> None:
    assert combine_grades([grade] * judges, rule) == grade


@given(
    grades=st.lists(st.integers(0, 3), min_size=1, max_size=7),
    rule=st.sampled_from(list(COMBINING_RULES)),
)
def test_a_combined_grade_lies_between_the_judges_and_ignores_their_order(
    grades: list[int], rule: str
) -> None:
    combined = combine_grades(grades, rule)
    assert min(grades) <= combined <= max(grades)
    assert combine_grades(list(reversed(grades)), rule) == combined


def test_an_adjudicated_grade_wins_only_when_asked() -> None:
    grades = {("q1", "a"): {"ana": 0, "ben": 3}, ("q1", "b"): {"ana": 2}}
    final = {("q1", "a"): 1, ("q2", "c"): 3}
    assert combine(grades, final, "mean") == {"q1": {"a": 1, "b": 2}, "q2": {"c": 3}}
    assert combine(grades, final, "mean", adjudicated_first=False) == {"q1": {"a": 2, "b": 2}}
    assert combine(grades, final, "minimum", adjudicated_first=False)["q1"]["a"] == 0


def test_an_unknown_rule_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: mean, median, majority, minimum"):
        combine_grades([1], "average")
    with pytest.raises(ValueError, match="at least one grade"):
        combine_grades([], "mean")
    assert "adjudicated" in describe_rule("median")
    assert "adjudicated" not in describe_rule("median", adjudicated_first=False)
