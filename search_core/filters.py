"""Metadata filters, turned into a mask over chunks before any retriever runs.

A filter is a mapping from a metadata field to a condition:

- a scalar (string, number, bool): equality, e.g. ``{"domain": "legal"}``;
- a list of scalars: any of them, e.g. ``{"status": ["open", "pending"]}``;
- a range: ``{"severity": {"gte": 7.0, "lt": 9.0}}`` with any of ``gt``, ``gte``, ``lt``, ``lte``.

All conditions must hold. A document without the field never matches a condition on it.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
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

EXPRESSION_FORMS = "field=value, field>=N, field<=N, field>N or field<N"
"""The forms of a command-line filter, as error messages name them."""

_SYMBOLS = ((">=", "gte"), ("<=", "lte"), (">", "gt"), ("<", "lt"))
_LISTED_FIELDS = 40
"""Fields named in an error message at most; a wide CSV can have hundreds."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    """A value a metadata field can hold and a filter can compare with: finite if a number."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


def metadata_fields(doc_metadata: Iterable[Metadata]) -> list[str]:
    """The metadata fields of a collection: every field any document has, sorted."""
    fields: set[str] = set()
    for metadata in doc_metadata:
        fields.update(metadata)
    return sorted(fields)


def valid_fields_text(fields: Collection[str]) -> str:
    """``valid fields: a, b, c`` for an error message, or that there are none."""
    if not fields:
        return "this collection has no metadata fields to filter on"
    names = sorted(fields)
    shown = ", ".join(names[:_LISTED_FIELDS])
    more = len(names) - _LISTED_FIELDS
    return f"valid fields: {shown}" + (f" and {more} more" if more > 0 else "")


def _unknown_field(field: str, fields: Collection[str]) -> str:
    close = difflib.get_close_matches(field, list(fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown filter field {field!r}{hint}; {valid_fields_text(fields)}"


def validate_filters(filters: Filters, fields: Collection[str] | None = None) -> None:
    """Check a filter's shape and, when the valid fields are known, its field names.

    Args:
        filters: the filters.
        fields: the metadata fields of the collection searched (:func:`metadata_fields`);
            None to check the shape only.

    Raises:
        ValueError: filters that are not a mapping, a field that is not a name or not one of
            ``fields`` (the message names the valid ones), an unknown range operator, a bound
            that is not a finite number, an empty condition, or a value that is not a scalar.
    """
    if not isinstance(filters, Mapping):
        raise ValueError(
            f"filters must map a metadata field to a condition, got a {type(filters).__name__}"
        )
    for field, condition in filters.items():
        if not isinstance(field, str) or not field.strip():
            where = "" if fields is None else f"; {valid_fields_text(fields)}"
            raise ValueError(f"filter field {field!r} is not a field name{where}")
        if fields is not None and field not in fields:
            raise ValueError(_unknown_field(field, fields))
        if isinstance(condition, Mapping):
            if not condition:
                raise ValueError(f"filter on {field!r} is an empty range")
            for op, bound in condition.items():
                if op not in RANGE_OPERATORS:
                    raise ValueError(
                        f"filter on {field!r}: unknown operator {op!r}; "
                        f"valid: {sorted(RANGE_OPERATORS)}"
                    )
                if not _is_number(bound) or not _is_scalar(bound):
                    raise ValueError(
                        f"filter on {field!r}: bound of {op!r} must be a finite number, "
                        f"got {bound!r}"
                    )
        elif isinstance(condition, list | tuple):
            if not condition:
                raise ValueError(f"filter on {field!r} lists no values")
            for value in condition:
                if not _is_scalar(value):
                    raise ValueError(
                        f"filter on {field!r}: {value!r} is not a string, a finite number, "
                        "true, false or null"
                    )
        elif not _is_scalar(condition):
            raise ValueError(
                f"filter on {field!r}: {condition!r} is not a string, a finite number, true, "
                "false or null, a list of them, or a range"
            )


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

    Raises:
        ValueError: an invalid filter, or one on a field no document has: a misspelt field
            would otherwise match nothing and look like an empty answer (the message names
            the valid fields).
    """
    if not filters:
        return None
    validate_filters(filters, metadata_fields(doc_metadata))
    doc_ok = np.fromiter(
        (matches(m, filters) for m in doc_metadata), dtype=bool, count=len(doc_metadata)
    )
    return doc_ok[chunk_doc_index]


def parse_filter_expression(
    expression: str, fields: Collection[str] | None = None
) -> tuple[str, Any]:
    """Parse one command-line filter: ``field=value``, ``field>=3``, ``field<9.5`` ...

    Values are read as JSON where possible (numbers, true/false, null, ``"quoted text"``),
    else as strings.

    Args:
        expression: the filter as typed.
        fields: the metadata fields of the collection, when known: an unknown field is then
            refused here, and every error names the valid fields.

    Raises:
        ValueError: the expression is malformed (no operator, no field name, no value, a
            range without a finite number) or names an unknown field.
    """
    parsed = _parse(expression)
    if isinstance(parsed, str):
        where = "" if fields is None else f"; {valid_fields_text(fields)}"
        raise ValueError(f"filter {expression!r}: {parsed}; expected {EXPRESSION_FORMS}{where}")
    field, _ = parsed
    if fields is not None and field not in fields:
        raise ValueError(f"filter {expression!r}: {_unknown_field(field, fields)}")
    return parsed


def _parse(expression: str) -> tuple[str, Any] | str:
    """The field and condition of an expression, or what is wrong with it."""
    symbol, op = next(((sym, op) for sym, op in _SYMBOLS if sym in expression), ("=", ""))
    if symbol not in expression:
        return "no operator"
    field, raw = (part.strip() for part in expression.split(symbol, 1))
    if not field:
        return "no field name"
    if any(c in field for c in "<>=!"):
        return f"field name {field!r} holds an operator"
    value = _json_scalar(raw)
    if op:
        if not _is_number(value) or not _is_scalar(value):
            return f"{symbol} needs a finite number"
        return field, {op: value}
    if not raw:
        return "no value after '=' (write field=\"\" for an empty value)"
    if raw.startswith("="):
        return "use a single '=' for equality"
    return field, value


def _json_scalar(raw: str) -> MetadataValue:
    # NaN and Infinity are not JSON: with them refused, "NaN" stays the text "NaN".
    try:
        value = json.loads(raw, parse_constant=_refuse)
    except ValueError:  # JSONDecodeError, or an integer of more than 4300 digits
        return raw
    if isinstance(value, float) and not math.isfinite(value):  # 1e999
        return raw
    return value if isinstance(value, str | int | float | bool) or value is None else raw


def _refuse(name: str) -> Any:
    raise ValueError(name)


def merge_filters(
    expressions: Sequence[str], fields: Collection[str] | None = None
) -> dict[str, Any]:
    """Combine command-line filter expressions; ranges on one field are merged.

    Args:
        expressions: the expressions, as :func:`parse_filter_expression` reads them.
        fields: the collection's metadata fields, when known (see there).

    Raises:
        ValueError: a malformed expression or an unknown field.
    """
    merged: dict[str, Any] = {}
    for expression in expressions:
        field, condition = parse_filter_expression(expression, fields)
        if isinstance(condition, dict) and isinstance(merged.get(field), dict):
            merged[field] = {**merged[field], **condition}
        else:
            merged[field] = condition
    return merged
