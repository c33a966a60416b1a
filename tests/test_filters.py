from __future__ import annotations

import numpy as np
import pytest

from search_core.filters import (
    chunk_mask,
    matches,
    merge_filters,
    metadata_fields,
    parse_filter_expression,
    validate_filters,
)

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


# --- issue 12, D10: malformed expressions and unknown fields are errors, never "no results" ---


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("===", "no field name"),
        ("=legal", "no field name"),
        (">=5", "no field name"),
        ("domain", "no operator"),
        ("domain=", "no value after '='"),
        ("domain==legal", "use a single '='"),
        ("severity=>5", "holds an operator"),
        ("domain!=legal", "holds an operator"),
        ("severity>=nan", "needs a finite number"),
        ("severity<Infinity", "needs a finite number"),
        ("severity>=1e999", "needs a finite number"),
    ],
)
def test_malformed_expressions_are_refused(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match="expected field=value") as raised:
        parse_filter_expression(expression)
    assert problem in str(raised.value)


def test_with_the_fields_known_every_error_names_them() -> None:
    fields = metadata_fields(DOCS)
    assert fields == ["amount", "domain", "notice_days", "severity", "status"]
    with pytest.raises(ValueError, match="valid fields: amount, domain, notice_days, severity"):
        parse_filter_expression("===", fields)
    with pytest.raises(ValueError, match=r"did you mean 'domain'\?\); valid fields: amount"):
        merge_filters(["severity>=7", "domian=legal"], fields)
    assert merge_filters(["domain=legal"], fields) == {"domain": "legal"}


def test_json_constants_that_are_not_json_stay_text() -> None:
    assert parse_filter_expression("code=NaN") == ("code", "NaN")
    assert parse_filter_expression('code=""') == ("code", "")
    assert parse_filter_expression("big=" + "9" * 5000)[1] == "9" * 5000


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"domian": "legal"}, r"unknown filter field 'domian' \(did you mean 'domain'\?\)"),
        ({"colour": "red"}, "valid fields: amount, domain, notice_days, severity, status"),
        ({"": "legal"}, "not a field name"),
    ],
)
def test_chunk_mask_refuses_fields_no_document_has(filters: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chunk_mask(filters, DOCS, np.array([0, 1, 2, 3]))


def test_a_collection_without_metadata_says_there_is_nothing_to_filter_on() -> None:
    with pytest.raises(ValueError, match="no metadata fields to filter on"):
        chunk_mask({"domain": "legal"}, [{}, {}], np.array([0, 1]))


@pytest.mark.parametrize(
    "bad",
    [
        ["domain=legal"],
        {"severity": {"gte": float("nan")}},
        {"severity": {"lt": float("inf")}},
        {"severity": {"gte": True}},
        {"domain": float("nan")},
        {"domain": {"legal"}},
        {"domain": ["legal", ["security"]]},
    ],
)
def test_filters_of_the_wrong_shape_or_not_finite_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="filter"):
        validate_filters(bad)  # type: ignore[arg-type]
