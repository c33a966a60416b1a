"""Rows of an Arrow table as objects made on demand (search_core.rows)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from search_core.rows import ITERATION_BATCH, Rows


def pair(row: dict) -> tuple[int, str]:
    return (row["n"], row["s"])


def rows(count: int) -> Rows[tuple[int, str]]:
    return Rows(pa.table({"n": list(range(count)), "s": [f"s{i}" for i in range(count)]}), pair)


def test_rows_behave_as_a_sequence_of_objects() -> None:
    table = rows(ITERATION_BATCH + 3)  # iteration crosses a batch
    expected = [(i, f"s{i}") for i in range(ITERATION_BATCH + 3)]
    assert len(table) == len(expected) and list(table) == expected
    assert table[0] == (0, "s0") and table[-1] == expected[-1] and table[2:5] == expected[2:5]
    assert table.column("s")[:2] == ["s0", "s1"] and table.value(3, "s") == "s3"
    with pytest.raises(IndexError):
        table[len(expected)]
    with pytest.raises(KeyError):
        table.column("missing")


def test_rows_equal_by_content_and_maker() -> None:
    assert rows(3) == rows(3) and rows(3) != rows(4)
    assert Rows(rows(3).table, lambda r: r) != rows(3)
    assert rows(2) != [(0, "s0"), (1, "s1")]  # a list is not rows, even with the same items
