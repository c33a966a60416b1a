"""Combining several judges' grades of one (query, document) pair into the one metrics use.

A judgment set keeps each judge's latest grade per pair (:mod:`.judgments`); a comparison
needs one grade per pair. The rules, by name in :data:`COMBINING_RULES`:

* ``mean``: the mean of the grades, rounded half up (1 and 2 give 2; 0, 1 and 1 give 1);
* ``median``: the middle grade; with an even count the lower middle one (0 and 3 give 0);
* ``majority``: the most common grade; a tie goes to the lowest of the tied grades;
* ``minimum``: the lowest grade (a pair counts as relevant only when every judge says so).

With ``adjudicated_first`` (the default), a grade a lead set as final after looking at the
disagreement wins over the rule. With one judge, every rule gives that judge's grade.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

__all__ = ["COMBINING_RULES", "DEFAULT_RULE", "combine", "combine_grades", "describe_rule"]

Key = TypeVar("Key", bound=Hashable)


def _mean(grades: Sequence[int]) -> int:
    return math.floor(sum(grades) / len(grades) + 0.5)


def _median(grades: Sequence[int]) -> int:
    return int(statistics.median_low(grades))


def _majority(grades: Sequence[int]) -> int:
    counts = Counter(grades)
    most = max(counts.values())
    return min(grade for grade, count in counts.items() if count == most)


COMBINING_RULES: dict[str, Callable[[Sequence[int]], int]] = {
    "mean": _mean,
    "median": _median,
    "majority": _majority,
    "minimum": min,
}
"""How several judges' grades of a pair become one, by name (see the module's docstring)."""

RULE_LABELS: dict[str, str] = {
    "mean": "the mean of the judges' grades, rounded half up",
    "median": "the median of the judges' grades (the lower middle one for an even count)",
    "majority": "the most common grade (a tie goes to the lowest tied grade)",
    "minimum": "the lowest of the judges' grades",
}
"""Each rule in words, for the tables that show it."""

DEFAULT_RULE = "mean"


def _rule(name: str) -> Callable[[Sequence[int]], int]:
    try:
        return COMBINING_RULES[name]
    except KeyError:
        valid = ", ".join(COMBINING_RULES)
        raise ValueError(f"unknown combining rule {name!r}; valid: {valid}") from None


def combine_grades(grades: Sequence[int], rule: str = DEFAULT_RULE) -> int:
    """One grade from several judges' grades of a pair.

    Raises:
        ValueError: no grade, or an unknown rule (the message lists the valid ones).
    """
    if not grades:
        raise ValueError("combining needs at least one grade")
    return int(_rule(rule)(list(grades)))


def combine(
    grades: Mapping[tuple[str, str], Mapping[str, int]],
    adjudicated: Mapping[tuple[str, str], int] | None = None,
    rule: str = DEFAULT_RULE,
    *,
    adjudicated_first: bool = True,
) -> dict[str, dict[str, int]]:
    """Qrels (``{query_id: {doc_id: grade}}``) from every judge's grades.

    Args:
        grades: (query id, doc id) to each judge's grade.
        adjudicated: (query id, doc id) to the final grade a lead set.
        rule: a key of :data:`COMBINING_RULES`.
        adjudicated_first: an adjudicated grade wins over the rule (else it is ignored).

    Raises:
        ValueError: an unknown rule (the message lists the valid ones).
    """
    combine_one = _rule(rule)
    final = dict(adjudicated or {}) if adjudicated_first else {}
    qrels: dict[str, dict[str, int]] = {}
    for (query_id, doc_id), by_judge in grades.items():
        if by_judge and (query_id, doc_id) not in final:
            qrels.setdefault(query_id, {})[doc_id] = int(combine_one(list(by_judge.values())))
    for (query_id, doc_id), grade in final.items():
        qrels.setdefault(query_id, {})[doc_id] = grade
    return qrels


def describe_rule(rule: str = DEFAULT_RULE, *, adjudicated_first: bool = True) -> str:
    """The rule in one phrase, as a comparison shows it.

    Raises:
        ValueError: an unknown rule.
    """
    _rule(rule)
    text = RULE_LABELS[rule]
    return f"the adjudicated grade where a lead set one, else {text}" if adjudicated_first else text
