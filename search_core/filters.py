"""Metadata filters, turned into a mask over chunks before any retriever runs.

A filter is a mapping from a metadata field to a condition:

- a scalar (string, number, bool): equality, e.g. ``{"domain": "legal"}``;
- a list of scalars: any of them, e.g. ``{"status": ["open", "pending"]}``;
- a range: ``{"severity": {"gte": 7.0, "lt": 9.0}}`` with any of ``gt``, ``gte``, ``lt``, ``lte``.

All conditions must hold. A document without the field never matches a condition on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .types import Metadata, MetadataValue

Filters = Mapping[str, Any]

RANGE_OPERATORS: dict[str, Any] = {
    "gt": lambda value, bound: value > bound,
    "gte": lambda value, bound: value >= bound,
    "lt": lambda value, bound: value < bound,
    "lte": lambda value, bound: value <= bound,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_filters(filters: Filters) -> None:
    """Check a filter's shape.

    Raises:
        ValueError: an unknown range operator, a non-numeric bound, or an empty condition.
    """
    for field, condition in filters.items():
        if isinstance(condition, Mapping):
            if not condition:
                raise ValueError(f"filter on {field!r} is an empty range")
            for op, bound in condition.items():
                if op not in RANGE_OPERATORS:
                    raise ValueError(
                        f"filter on {field!r}: unknown operator {op!r}; "
                        f"valid: {sorted(RANGE_OPERATORS)}"
                    )
                if not _is_number(bound):
                    raise ValueError(f"filter on {field!r}: bound of {op!r} must be a number")
        elif isinstance(condition, list | tuple) and not condition:
            raise ValueError(f"filter on {field!r} lists no values")


def matches(metadata: Metadata, filters: Filters) -> bool:
    """Whether one document's metadata satisfies every condition."""
    for field, condition in filters.items():
        if field not in metadata:
            return False
        value: MetadataValue = metadata[field]
        if isinstance(condition, Mapping):
            if not _is_number(value):
                return False
            if not all(RANGE_OPERATORS[op](value, bound) for op, bound in condition.items()):
                return False
        elif isinstance(condition, list | tuple):
            if value not in condition:
                return False
        elif value != condition:
            return False
    return True


def chunk_mask(
    filters: Filters | None,
    doc_metadata: Sequence[Metadata],
    chunk_doc_index: np.ndarray,
) -> np.ndarray | None:
    """Boolean mask of the chunks whose document satisfies ``filters``.

    Args:
        filters: the filters; None or empty means no filtering.
        doc_metadata: metadata of each document, by document index.
        chunk_doc_index: for each chunk, the index of its document.

    Returns:
        The mask, or None when there is nothing to filter.
    """
    if not filters:
        return None
    validate_filters(filters)
    doc_ok = np.fromiter(
        (matches(m, filters) for m in doc_metadata), dtype=bool, count=len(doc_metadata)
    )
    return doc_ok[chunk_doc_index]


def parse_filter_expression(expression: str) -> tuple[str, Any]:
    """Parse one command-line filter: ``field=value``, ``field>=3``, ``field<9.5`` ...

    Values are read as JSON where possible (numbers, true/false), else as strings.

    Raises:
        ValueError: the expression has no operator.
    """
    for symbol, op in ((">=", "gte"), ("<=", "lte"), (">", "gt"), ("<", "lt")):
        if symbol in expression:
            field, raw = expression.split(symbol, 1)
            value = _json_scalar(raw.strip())
            if not _is_number(value):
                raise ValueError(f"filter {expression!r}: {symbol} needs a number")
            return field.strip(), {op: value}
    if "=" in expression:
        field, raw = expression.split("=", 1)
        return field.strip(), _json_scalar(raw.strip())
    raise ValueError(
        f"filter {expression!r}: expected field=value, field>=N, field<=N, field>N or field<N"
    )


def _json_scalar(raw: str) -> MetadataValue:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, str | int | float | bool) or value is None else raw


def merge_filters(expressions: Sequence[str]) -> dict[str, Any]:
    """Combine command-line filter expressions; ranges on one field are merged."""
    merged: dict[str, Any] = {}
    for expression in expressions:
        field, condition = parse_filter_expression(expression)
        if isinstance(condition, dict) and isinstance(merged.get(field), dict):
            merged[field] = {**merged[field], **condition}
        else:
            merged[field] = condition
    return merged
