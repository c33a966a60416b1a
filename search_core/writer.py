"""A collection's big files, written batch by batch as a streaming build produces them.

:class:`CollectionWriter` appends each :class:`~.pipeline.EmbeddedBatch` to
``documents.parquet`` and ``chunks.parquet`` (one row group per batch) and to
``embeddings.npy`` (rows appended to a ``.npy`` file whose header is written last), so a
build holds one batch at a time, never the corpus or all its vectors. The indexed text of
every chunk goes to a work file for the BM25 index and the probes, which are made once the
corpus is read (:func:`text_batches`, :class:`ParquetColumn`). Checksums are computed by
streaming each finished file (:func:`record_file`).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .pipeline import EmbeddedBatch
from .types import Chunk, Document

DOCUMENTS_FILE = "documents.parquet"
CHUNKS_FILE = "chunks.parquet"
EMBEDDINGS_FILE = "embeddings.npy"
TEXTS_FILE = "texts.parquet"
"""The work file of indexed texts (title + chunk text), one row per chunk; not kept."""

DOCUMENTS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("metadata", pa.string()),
        ("pages", pa.string()),
    ]
)
CHUNKS_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.int64()),
        ("doc_id", pa.string()),
        ("position", pa.int32()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("text", pa.string()),
        ("pages", pa.list_(pa.int32())),
    ]
)
_TEXTS_SCHEMA = pa.schema([("text", pa.string())])
_NPY_HEADER = 128  # bytes: magic, version, header length and the padded header dict


def documents_table(documents: Sequence[Document]) -> pa.Table:
    """Documents as the rows of ``documents.parquet`` (metadata and pages as JSON)."""
    return pa.table(
        {
            "doc_id": [d.doc_id for d in documents],
            "title": [d.title for d in documents],
            "text": [d.text for d in documents],
            "source": [d.source for d in documents],
            "metadata": [json.dumps(dict(d.metadata), ensure_ascii=False) for d in documents],
            "pages": [
                json.dumps([[p.page, p.char_start, p.char_end] for p in d.pages]) for d in documents
            ],
        },
        schema=DOCUMENTS_SCHEMA,
    )


def chunks_table(chunks: Sequence[Chunk]) -> pa.Table:
    """Chunks as the rows of ``chunks.parquet``."""
    return pa.table(
        {
            "chunk_id": [c.chunk_id for c in chunks],
            "doc_id": [c.doc_id for c in chunks],
            "position": [c.position for c in chunks],
            "char_start": [c.char_start for c in chunks],
            "char_end": [c.char_end for c in chunks],
            "text": [c.text for c in chunks],
            "pages": [list(c.pages) for c in chunks],
        },
        schema=CHUNKS_SCHEMA,
    )


class NpyRowWriter:
    """A 2-D float32 ``.npy`` file written row block by row block.

    The header goes last, over a fixed-size space at the start, once the row count is known
    (a version 1.0 header, padded with spaces as the format allows).

    Args:
        path: the file to create.
        dim: the width of every row.
    """

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.rows = 0
        self._file = path.open("xb")
        self._file.write(b"\0" * _NPY_HEADER)

    def append(self, rows: np.ndarray) -> None:
        """Add rows (shape ``(n, dim)``), stored as little-endian float32.

        Raises:
            ValueError: rows of another width.
        """
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"rows of shape {rows.shape}, expected (n, {self.dim})")
        self._file.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
        self.rows += rows.shape[0]

    def close(self) -> None:
        """Write the header, flush and fsync."""
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.write(npy_header((self.rows, self.dim)))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def abort(self) -> None:
        """Close without finishing (the caller removes the folder)."""
        self._file.close()


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A version 1.0 ``.npy`` header of exactly 128 bytes for a C-ordered array."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape})
    body = _NPY_HEADER - 10  # magic (6), version (2), header length (2)
    if len(header) + 1 > body:
        raise ValueError(f"shape {shape} does not fit a {_NPY_HEADER}-byte header")
    assert ast.literal_eval(header)["shape"] == shape
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (header.ljust(body - 1) + "\n").encode()


class CollectionWriter:
    """Writes a collection's documents, chunks, vectors and indexed texts, batch by batch.

    Chunk ids run on across batches. Titles cut to fit a chunk are kept (the manifest lists
    them); nothing else of a batch is kept once it is written.

    Args:
        folder: the staging folder of the new version.
        work: a folder for work files (removed by the caller).
        dim: the vectors' width.
    """

    def __init__(self, folder: Path, work: Path, dim: int) -> None:
        self.folder = folder
        self.work = work
        self.documents = 0
        self.chunks = 0
        self.characters = 0
        self.cut_titles: dict[str, str] = {}
        self._documents = pq.ParquetWriter(
            folder / DOCUMENTS_FILE, DOCUMENTS_SCHEMA, compression="zstd"
        )
        self._chunks = pq.ParquetWriter(folder / CHUNKS_FILE, CHUNKS_SCHEMA, compression="zstd")
        self._texts = pq.ParquetWriter(work / TEXTS_FILE, _TEXTS_SCHEMA, compression="zstd")
        self._vectors = NpyRowWriter(folder / EMBEDDINGS_FILE, dim)

    def add(self, batch: EmbeddedBatch) -> None:
        """Append a batch; its chunk ids are moved to follow the chunks written before.

        Raises:
            ValueError: the batch's vectors do not match its chunks.
        """
        if len(batch.vectors) != len(batch.chunks):
            raise ValueError(f"{len(batch.vectors)} vectors for {len(batch.chunks)} chunks")
        chunks = [replace(c, chunk_id=self.chunks + c.chunk_id) for c in batch.chunks]
        self._documents.write_table(documents_table(batch.documents))
        if chunks:
            self._chunks.write_table(chunks_table(chunks))
            self._texts.write_table(pa.table({"text": batch.texts}, schema=_TEXTS_SCHEMA))
            self._vectors.append(batch.vectors)
        for document, title in zip(batch.documents, batch.titles, strict=True):
            if title != document.title:
                self.cut_titles[document.doc_id] = title
        self.documents += len(batch.documents)
        self.chunks += len(chunks)
        self.characters += sum(len(d.text) for d in batch.documents)

    def close(self) -> None:
        """Finish every file (the vectors' header, the parquet footers) and fsync them."""
        for writer in (self._documents, self._chunks, self._texts):
            writer.close()
        self._vectors.close()
        for name in (DOCUMENTS_FILE, CHUNKS_FILE):
            _fsync(self.folder / name)

    def abort(self) -> None:
        """Close the files without finishing them (the caller removes both folders)."""
        for writer in (self._documents, self._chunks, self._texts):
            with contextlib.suppress(OSError, pa.ArrowException):
                writer.close()
        self._vectors.abort()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def record_file(path: Path) -> dict[str, Any]:
    """The manifest's record of a finished file: its sha256 and size, read by streaming.

    The file is fsynced first, so what the record describes is on disk.
    """
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "bytes": size}


def text_batches(path: Path, column: str = "text") -> Iterator[list[str]]:
    """The values of a string column of a parquet file, one row group at a time."""
    reader = pq.ParquetFile(path)
    for group in range(reader.num_row_groups):
        yield reader.read_row_group(group, columns=[column]).column(0).to_pylist()


class ParquetColumn(Sequence[Any]):
    """A column of a parquet file as a sequence, read one row group at a time.

    Made for samples taken in increasing order (language detection, reference snippets,
    probes): each row group is read at most once then, and only one is held.
    """

    def __init__(self, path: Path, column: str) -> None:
        self._file = pq.ParquetFile(path)
        self._column = column
        sizes = [
            self._file.metadata.row_group(g).num_rows for g in range(self._file.num_row_groups)
        ]
        self._starts = np.cumsum([0, *sizes])
        self._held: tuple[int, list[Any]] | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        group = int(np.searchsorted(self._starts, index, side="right")) - 1
        if self._held is None or self._held[0] != group:
            values = self._file.read_row_group(group, columns=[self._column]).column(0)
            self._held = (group, values.to_pylist())
        return self._held[1][index - int(self._starts[group])]
