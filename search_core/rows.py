"""The rows of an Arrow table as a sequence of objects, each made when it is asked for.

An opened collection keeps its documents and chunks as Arrow tables (columnar, one buffer
per column) rather than as a Python object per row: opening a collection of a million
chunks then takes a fraction of the time and memory, and a search makes objects only for
the hits it shows. Iterating still gives every row's object, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

import pyarrow as pa

T = TypeVar("T")

ITERATION_BATCH = 4096
"""Rows turned into objects at a time when a whole table is iterated."""


class Rows(Sequence[T]):
    """A read-only sequence over the rows of ``table``, made into objects by ``make``.

    Args:
        table: the rows.
        make: turns one row (a dict of column name to Python value) into an object.
    """

    def __init__(self, table: pa.Table, make: Callable[[dict[str, Any]], T]) -> None:
        self.table = table.combine_chunks()
        self._make = make
        self._columns = {name: self.table.column(name) for name in self.table.column_names}

    def __len__(self) -> int:
        return self.table.num_rows

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        return self._make({name: column[index].as_py() for name, column in self._columns.items()})

    def value(self, index: int, name: str) -> Any:
        """One cell: column ``name`` of row ``index``.

        Raises:
            KeyError: no such column.
            IndexError: no such row.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        return self._columns[name][index].as_py()

    def __iter__(self) -> Iterator[T]:
        for batch in self.table.to_batches(max_chunksize=ITERATION_BATCH):
            for row in batch.to_pylist():
                yield self._make(row)

    def column(self, name: str) -> list[Any]:
        """One column's values, in row order.

        Raises:
            KeyError: no such column.
        """
        return self.table.column(name).to_pylist()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rows):
            return NotImplemented
        return self._make is other._make and self.table.equals(other.table)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rows({len(self)} rows: {', '.join(self._columns)})"
