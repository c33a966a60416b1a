from __future__ import annotations

import numpy as np
import pytest

from search_core.filters import chunk_mask, matches, merge_filters, parse_filter_expression

DOCS = [
    {"domain": "legal", "notice_days": 30},
    {"domain": "security", "severity": 9.8},
    {"domain": "security", "severity": 5.0},
    {"domain": "commerce", "amount": 120, "status": "open"},
]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"domain": "security"}, [False, True, True, False]),
        ({"severity": {"gte": 7.0}}, [False, True, False, False]),
        ({"severity": {"gt": 4, "lt": 6}}, [False, False, True, False]),
        ({"domain": ["legal", "commerce"]}, [True, False, False, True]),
        ({"domain": "security", "severity": {"lte": 5}}, [False, False, True, False]),
        ({"missing": "x"}, [False, False, False, False]),
        ({"domain": {"gte": 1}}, [False, False, False, False]),
    ],
)
def test_matches(filters: dict, expected: list[bool]) -> None:
    assert [matches(d, filters) for d in DOCS] == expected


def test_chunk_mask_follows_documents() -> None:
    mask = chunk_mask({"domain": "security"}, DOCS, np.array([0, 1, 1, 2, 3]))
    assert mask is not None
    assert mask.tolist() == [False, True, True, True, False]
    assert chunk_mask(None, DOCS, np.array([0])) is None


@pytest.mark.parametrize(
    "bad", [{"severity": {"between": 1}}, {"severity": {"gte": "high"}}, {"x": []}]
)
def test_invalid_filters_raise(bad: dict) -> None:
    with pytest.raises(ValueError):
        chunk_mask(bad, DOCS, np.array([0]))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("domain=legal", ("domain", "legal")),
        ("severity>=7.5", ("severity", {"gte": 7.5})),
        ("amount<100", ("amount", {"lt": 100})),
        ("active=true", ("active", True)),
    ],
)
def test_parse_filter_expression(expression: str, expected: tuple) -> None:
    assert parse_filter_expression(expression) == expected


def test_merge_filters_combines_ranges() -> None:
    assert merge_filters(["severity>=7", "severity<9", "domain=security"]) == {
        "severity": {"gte": 7, "lt": 9},
        "domain": "security",
    }
    with pytest.raises(ValueError, match="expected"):
        parse_filter_expression("severity")
