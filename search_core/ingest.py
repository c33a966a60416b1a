"""Read a source (a file, a folder, a BEIR dataset or a zip archive) into documents.

The pipeline's first stage. A source is walked into `SourceFile` objects (files on disk or
members of a zip archive), and each file is handed to the reader registered for its extension in
`READERS`. Readers yield `Record` objects; `read_source` then drops documents with empty text,
checks that ids are unique across the whole source and returns an `IngestReport`.

Conventions:

* ``source`` of a document and the file named in errors is the file's path relative to the
  source root (posix style) for folders and zips, else the file name. A zip inside a folder adds
  its own path: ``data/archive.zip/notes/a.txt``.
* Text, Markdown and PDF files give one document each, with id = ``source``.
* CSV, TSV and JSONL files give one document per row. A row without an id column gets the id
  ``<source without extension>:<row>``, where ``row`` is the 1-based position of the row among
  the file's records (the CSV header and blank lines are not counted): ``faq:3``,
  ``2024/data:17``.
* Ids and sources made from file names are safe to print and to judge: control characters,
  line breaks and whitespace at either end are percent-encoded as UTF-8 bytes (a zip entry
  ``a\\nb.txt`` gives ``a%0Ab.txt``), and an id so changed that would equal another id gets the
  first free suffix ``~2``, ``~3``... (the same source always gives the same ids). An id column
  holding a control character or a line break is refused: such an id could never be judged.
* Metadata holds scalars only. CSV cells that look like numbers become ``int`` or ``float`` (a
  number with a leading zero such as ``02139`` stays a string; so do numbers beyond 64 bits) and
  empty cells become ``None``. JSON values keep their types; JSON lists and objects are left out
  of metadata. A JSONL ``metadata`` key holding an object is merged into the row's fields (a
  top-level field of the same name wins), so its keys can be chosen like any other field.
* Text, Markdown and PDF documents carry ``file_type`` in metadata (``"txt"``, ``"md"``,
  ``"pdf"``), PDFs also ``page_count``.
* A PDF page's hard line breaks inside a paragraph become spaces, and a word hyphenated across
  two lines is joined (see `_reflow`); each page keeps its span of the document text.
* `infer_source_fields` chooses a `FieldMap` for CSV, TSV and JSONL sources from their first
  rows (the text is the column with the longest texts, the id a column named like an id with
  unique values), so the app and the command line read a new file the same way.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice, pairwise
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, TypeVar

import pypdf
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

from search_core.embedding import clean_text
from search_core.errors import InputError
from search_core.types import Document, MetadataValue, PageSpan

__all__ = [
    "READERS",
    "SUPPORTED_EXTENSIONS",
    "FieldInference",
    "FieldMap",
    "IngestReport",
    "Limits",
    "ReadContext",
    "Reader",
    "Record",
    "SourceFile",
    "clean_name",
    "infer_fields",
    "infer_source_fields",
    "list_fields",
    "preview_source",
    "read_source",
]

_MB = 1024 * 1024
_INT64 = 2**63
_PAGE_SEPARATOR = "\n\n"
_BEIR_CORPUS = "corpus.jsonl"
_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_INT = re.compile(r"[+-]?(?:0|[1-9]\d*)")
_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)")
_HEADING = re.compile(r" {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r" {0,3}(```|~~~)")
# Column names: an id (``_id``, ``doc_id``, ``review-id``, ``reviewId``, ``uuid``) or a title.
_ID_NAME = re.compile(r"_?id|docid|uuid|guid|uid|key|.*[_\-. ](?:id|uuid|guid|uid|key)", re.I)
_CAMEL_ID = re.compile(r".*[a-z0-9](?:Id|ID)")
_PREFERRED_IDS = ("_id", "id", "doc_id", "docid", "document_id")
_TITLE_NAMES = frozenset({"title", "name", "subject", "headline", "heading", "caption"})
_TITLE_SUFFIX = re.compile(r".*[_\-. ]title", re.I)
_MAX_TITLE_CHARS = 120
_SHORT_TEXT_WORDS = 5
# PDF lines: a list item starts a line of its own; a sentence end may end a paragraph.
_LIST_ITEM = re.compile(r"(?:[•▪◦‣∙*–—-]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s")
_SENTENCE_END = re.compile(r"[.!?:;][\"'”’)\]]*$")
_MIN_FULL_LINE = 40  # characters; shorter lines (labels, table cells, slides) keep their breaks
_HYPHENATED = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)+")
_LETTERS = re.compile(r"[^\W\d_]+")


# --- options and results -------------------------------------------------------------------


@dataclass(frozen=True)
class FieldMap:
    """Which column (CSV, TSV) or field (JSONL) holds what.

    Every name left as None falls back to a default. A name given explicitly must exist: in
    the header for CSV and TSV; for JSONL, ``text`` and ``id`` must be in every object, while a
    missing ``title`` gives an empty title and a missing metadata field gives None.

    Attributes:
        text: the body text; default ``"text"``.
        title: the title; default ``"title"`` if present, else no title.
        id: the document id; default ``"_id"``, then ``"id"`` if present, else generated.
        metadata: fields kept as metadata; None keeps every other field (scalars only), an empty
            tuple keeps none.
        delimiter: CSV/TSV cell delimiter; None takes it from the extension (``.csv`` ",",
            ``.tsv`` tab).

    Raises:
        ValueError: a name is empty, ``metadata`` is a single string, or the delimiter is not a
            single character other than a quote or a line break.
    """

    text: str | None = None
    title: str | None = None
    id: str | None = None
    metadata: tuple[str, ...] | None = None
    delimiter: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.metadata, str):
            raise ValueError("FieldMap.metadata must be a sequence of names, not one string")
        if self.metadata is not None:
            # A list (say from a multiselect widget) would make the map unhashable for caching.
            object.__setattr__(self, "metadata", tuple(self.metadata))
        names = (self.text, self.title, self.id, *(self.metadata or ()))
        if any(name == "" for name in names):
            raise ValueError("FieldMap names must not be empty strings")
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'):
            raise ValueError(
                f"delimiter must be one character other than a quote or a line break, "
                f"got {self.delimiter!r}"
            )


@dataclass(frozen=True)
class FieldInference:
    """Which column of a table most likely holds what, chosen from its first rows, and why.

    Attributes:
        fields: the field map to read the source with: the names given explicitly, the others
            chosen from the data (``metadata`` stays as given: None keeps every other column).
        columns: the columns (CSV, TSV) and fields (JSONL) of the rows read, in order of first
            appearance; empty for sources without columns (text, Markdown, PDF).
        metadata: the columns that become metadata.
        reasons: why each role (``"text"``, ``"id"``, ``"title"``) got its column, or none,
            in plain words.
        warnings: doubts to show before building (texts mostly very short or looking like
            ids, rows without text, repeated ids).
        rows: how many rows were read to choose.
    """

    fields: FieldMap
    columns: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    rows: int = 0

    def summary(self) -> str:
        """One line saying what was chosen and why, or "" for a source without columns.

        For example: ``text: review_text (longest texts, mean 165 characters) · id: review_id
        (named like an id, unique in the 33 rows read) · title: - · metadata: rating``.
        """
        if not self.columns:
            return ""
        chosen = {"text": self.fields.text, "id": self.fields.id, "title": self.fields.title}
        parts = [
            f"{role}: {name or '-'}" + (f" ({self.reasons[role]})" if role in self.reasons else "")
            for role, name in chosen.items()
        ]
        parts.append(f"metadata: {', '.join(self.metadata) or '-'}")
        return " · ".join(parts)


@dataclass(frozen=True)
class Limits:
    """Guards against files that would exhaust memory or time.

    Attributes:
        max_file_size: largest file read, in bytes (also the uncompressed size of a zip entry).
        max_zip_total_size: largest total uncompressed size of one zip archive's entries.
        max_compression_ratio: largest uncompressed/compressed size ratio of a zip entry, and
            of a PDF's decoded page contents to the PDF's size (decoded contents are also capped
            at ``max_file_size``).
        min_size_for_ratio_check: entries (and PDF contents) smaller than this, uncompressed,
            skip the ratio check, since a small, very repetitive file is harmless whatever its
            ratio.
        max_files: most files (including zip entries) in one source.
        max_depth: deepest folder nesting walked.
        max_csv_field_size: longest CSV/TSV cell, in characters.

    Raises:
        ValueError: a limit is not positive.
    """

    max_file_size: int = 200 * _MB
    max_zip_total_size: int = 1024 * _MB
    max_compression_ratio: float = 100.0
    min_size_for_ratio_check: int = 1 * _MB
    max_files: int = 100_000
    max_depth: int = 32
    max_csv_field_size: int = 16 * _MB

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0 and name != "min_size_for_ratio_check":
                raise ValueError(f"Limits.{name} must be positive, got {value}")


@dataclass(frozen=True)
class IngestReport:
    """What reading a source produced.

    Attributes:
        documents: the documents read, in source order (files sorted by path, rows in order;
            those whose id was cleaned from a file name last).
        skipped_empty: documents skipped because their text is empty or only whitespace.
        pages_without_text: (file, 1-based page) of each PDF page without a text layer.
        files_read: files parsed for documents (a zip counts its entries, not itself).
        files_skipped: (file, reason) of each file or folder left out of a folder or zip.
    """

    documents: tuple[Document, ...]
    skipped_empty: int
    pages_without_text: tuple[tuple[str, int], ...]
    files_read: int
    files_skipped: tuple[tuple[str, str], ...]


# --- what readers work on ------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: on disk, or an entry of a zip archive.

    Attributes:
        name: path relative to the source root (posix style), or the file name when the file is
            the source itself; used as the documents' ``source`` and in error messages.
        open: opens the file's bytes; the stream enforces the size limits.
        size: size in bytes (as declared, for a zip entry).
        root: True when the file is the source itself rather than a file inside it.
    """

    name: str
    open: Callable[[], BinaryIO]
    size: int
    root: bool = False

    @property
    def suffix(self) -> str:
        """The lower-case extension, with its dot."""
        return PurePosixPath(self.name).suffix.lower()


@dataclass
class ReadContext:
    """Options for one read, and the tallies readers add to as they go.

    Attributes:
        fields: the field map for CSV, TSV and JSONL files.
        limits: the limits in force.
        files_read: files parsed so far.
        files_seen: files met so far, counted against ``limits.max_files``.
        bytes_read: bytes of the files (uncompressed, for zip entries) read so far, for
            a build's progress.
        files_skipped: (file, reason) of the files left out.
        pages_without_text: (file, page) of the PDF pages without text.
    """

    fields: FieldMap
    limits: Limits
    files_read: int = 0
    files_seen: int = 0
    bytes_read: int = 0
    files_skipped: list[tuple[str, str]] = field(default_factory=list)
    pages_without_text: list[tuple[str, int]] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        """Record a file or folder left out of the source (its name made printable)."""
        self.files_skipped.append((clean_name(name), reason))

    def count_file(self, name: str) -> None:
        """Count one more file of the source.

        Raises:
            InputError: the source holds more files than ``limits.max_files``.
        """
        self.files_seen += 1
        if self.files_seen > self.limits.max_files:
            raise InputError(name, f"the source holds more than {self.limits.max_files} files")


@dataclass(frozen=True)
class Record:
    """A document as a reader produced it.

    Attributes:
        document: the document, possibly with empty text (the caller skips and counts those).
        line: the 1-based line its row starts on, for row-based files; None otherwise.
        id_cleaned: the id was made from a file name that had to be cleaned (see
            `clean_name`); such an id takes a suffix if it would equal another id.
    """

    document: Document
    line: int | None = None
    id_cleaned: bool = False


Reader = Callable[[SourceFile, ReadContext], Iterator[Record]]
"""Reads one file: yields a record per document found in it."""


# --- public functions ----------------------------------------------------------------------


def read_source(
    path: str | Path, fields: FieldMap | None = None, *, limits: Limits | None = None
) -> IngestReport:
    """Read every document of a source.

    Args:
        path: a file with a supported extension, a folder (walked recursively, hidden files and
            unsupported files skipped), a BEIR folder (one holding ``corpus.jsonl``, of which only
            that file is read) or a zip archive (read like a folder, without extracting it).
        fields: which columns or fields hold the text, title, id and metadata; defaults as
            described in `FieldMap`.
        limits: size and count limits; `Limits()` by default.

    Returns:
        The documents with non-empty text, and what was skipped.

    Raises:
        InputError: the path does not exist or has an unsupported extension, a file is
            malformed (the message names the file and, where one applies, the line), two
            documents share an id, or a limit is exceeded.
    """
    return _collect(Path(path), fields, limits, max_documents=None)


def stream_source(
    path: str | Path, fields: FieldMap | None = None, *, limits: Limits | None = None
) -> SourceStream:
    """The documents of a source one at a time, for a build that never holds them all.

    The same documents, ids, checks and errors as `read_source`, which collects this stream.
    Documents go out in source order, except those whose id was cleaned from a file name
    (see the module's conventions), which go out last.

    Args:
        path: the source, as for `read_source`.
        fields: the field map, as for `read_source`.
        limits: the limits, as for `read_source`.

    Returns:
        The stream: iterate it once, then read its `SourceStream.report`.
    """
    return SourceStream(Path(path), fields, limits)


def preview_source(
    path: str | Path,
    fields: FieldMap | None = None,
    n: int = 20,
    *,
    limits: Limits | None = None,
) -> IngestReport:
    """Read only the first documents of a source, stopping as soon as there are enough.

    Errors and duplicate ids after the first ``n`` documents go unnoticed; the counts in the
    report cover only what was read.

    Args:
        path: the source, as for `read_source`.
        fields: the field map, as for `read_source`.
        n: how many documents to read.
        limits: the limits, as for `read_source`.

    Returns:
        A report with at most ``n`` documents.

    Raises:
        ValueError: ``n`` is smaller than 1.
        InputError: as for `read_source`, for the part of the source read.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return _collect(Path(path), fields, limits, max_documents=n)


def list_fields(
    path: str | Path,
    *,
    delimiter: str | None = None,
    rows: int = 100,
    limits: Limits | None = None,
) -> list[str]:
    """List the column names and JSON keys of a source, for choosing a `FieldMap`.

    Args:
        path: the source, as for `read_source`. For a folder or zip, the fields of all its
            CSV, TSV and JSONL files are listed together.
        delimiter: the CSV/TSV delimiter, as in `FieldMap`.
        rows: how many JSONL objects to look at in each file.
        limits: the limits, as for `read_source`.

    Returns:
        The names in order of first appearance: each CSV header, then the keys of JSONL objects
        (with the keys of a nested ``metadata`` object). Empty for sources without columns
        (text, Markdown, PDF).

    Raises:
        InputError: as for `read_source`, for the part of the source read.
    """
    ctx = ReadContext(FieldMap(delimiter=delimiter), limits or Limits())
    names: dict[str, None] = {}
    for file, lister in _table_files(Path(path), ctx, _FIELD_LISTERS):
        names.update(dict.fromkeys(lister(file, ctx, rows)))
    return list(names)


def infer_source_fields(
    path: str | Path,
    given: FieldMap | None = None,
    *,
    rows: int = 200,
    limits: Limits | None = None,
) -> FieldInference:
    """Choose the text, id and title columns of a source's tables from their first rows.

    Reads the first ``rows`` rows of each CSV, TSV and JSONL file of the source (a BEIR folder
    gives its ``corpus.jsonl``) and hands them to `infer_fields`. Text, Markdown and PDF files
    have a fixed layout: a source of only those gives back ``given`` with no columns.

    Args:
        path: the source, as for `read_source`.
        given: the names chosen explicitly (command-line flags, the page's selections); they
            are kept, and only the roles left as None are inferred. Its delimiter is used.
        rows: how many rows to read from each file.
        limits: the limits, as for `read_source`.

    Returns:
        The chosen field map with the reasons and warnings.

    Raises:
        ValueError: ``rows`` is smaller than 1.
        InputError: as for `read_source`, for the part of the source read.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    given = given or FieldMap()
    ctx = ReadContext(given, limits or Limits())
    sample: list[Mapping[str, object]] = []
    for file, read_rows in _table_files(Path(path), ctx, _ROW_READERS):
        with closing(read_rows(file, ctx)) as table:
            sample.extend(row for _line, row in islice(table, rows))
    return infer_fields(sample, given)


_Handler = TypeVar("_Handler")


def _table_files(
    path: Path, ctx: ReadContext, handlers: Mapping[str, _Handler]
) -> Iterator[tuple[SourceFile, _Handler]]:
    """The source's files that a registry of table handlers (by extension) knows, each with its
    handler; every file's size is checked before it is handed out."""
    files = _leaf_files(path, ctx)
    with closing(files):
        for file in files:
            handler = handlers.get(file.suffix)
            if handler is not None:
                _check_size(file, ctx.limits)
                yield file, handler


def infer_fields(
    rows: Sequence[Mapping[str, object]], given: FieldMap | None = None
) -> FieldInference:
    """Choose the text, id and title columns of table rows, keeping the names given.

    The rules, each in plain words in the result's ``reasons``:

    * id: a column named like an id (``_id``, ``id``, ``doc_id``, ``review_id``, ``uuid``...)
      whose values are all present and different. ``_id`` and ``id`` are taken even with
      repeated values (with a warning), since reading takes them when no id is named.
    * text: among the columns holding text (not numbers) in every row and not looking like an
      id, the one with the longest values (median length, then mean; empty counts as 0).
      A BEIR corpus (``_id`` and ``text``) keeps its ``text``.
    * title: ``title`` if present, else a column named like a title (``name``, ``subject``,
      ``headline``...) whose values are short (median at most 120 characters) and shorter than
      the texts.
    * metadata: every other column holding scalars (numbers stay numbers when read).

    Warnings are about the columns given or chosen: a text column whose values look like ids
    (short and different in every row), are mostly very short (median under five words), are
    numbers or are missing in some rows, and an id column with empty or repeated values.

    Args:
        rows: the rows, as read from CSV (cells as strings) or JSONL (JSON values).
        given: names chosen explicitly; see `infer_source_fields`.

    Returns:
        The chosen field map with the reasons and warnings.
    """
    given = given or FieldMap()
    # An empty name cannot be chosen (a FieldMap refuses it): a nameless CSV column stays out.
    names = list(dict.fromkeys(key for row in rows for key in row if key))
    if not names:
        return FieldInference(given)
    columns = {name: _Column.of(name, rows) for name in names}
    reasons: dict[str, str] = {}
    id_name, reasons["id"] = _choose_id(columns, given)
    text_name, reasons["text"] = _choose_text(columns, given, taken={id_name})
    title_name, reasons["title"] = _choose_title(columns, given, text_name, taken={id_name})
    chosen = {text_name, id_name, title_name}
    metadata = given.metadata
    if metadata is None:
        metadata = tuple(n for n in names if n not in chosen and columns[n].scalars)
    return FieldInference(
        fields=FieldMap(
            text=text_name,
            title=title_name,
            id=id_name,
            metadata=given.metadata,
            delimiter=given.delimiter,
        ),
        columns=tuple(names),
        metadata=tuple(metadata),
        reasons=reasons,
        warnings=tuple(_warnings(columns, text_name, id_name)),
        rows=len(rows),
    )


# --- the driver ----------------------------------------------------------------------------


def _collect(
    path: Path, fields: FieldMap | None, limits: Limits | None, max_documents: int | None
) -> IngestReport:
    stream = SourceStream(path, fields, limits)
    documents = tuple(islice(stream, max_documents))
    return replace(stream.report(), documents=documents)


class SourceStream:
    """The documents of a source one at a time, as they are read (see `stream_source`).

    Iterate it once; afterwards (or after an early stop) `report` gives the tallies. Every
    document read goes out at once, except those whose id was cleaned from a file name: an
    id taken as it is may still come later and win, so they are held back and go out last,
    each with its final id. Only their ids and the ids seen are kept, never the documents
    already handed out.
    """

    def __init__(self, path: Path, fields: FieldMap | None, limits: Limits | None) -> None:
        self._path = path
        self._ctx = ReadContext(fields or FieldMap(), limits or Limits())
        self._skipped_empty = 0

    def __iter__(self) -> Generator[Document, None, None]:
        first_seen: dict[str, str] = {}
        held: list[Document] = []  # documents whose id was cleaned from a file name
        records = _records(self._path, self._ctx)
        # closing() so that an early stop (preview) closes the files the generators hold open.
        with closing(records):
            for record in records:
                document = record.document
                if not document.text.strip():
                    self._skipped_empty += 1
                    continue
                if record.id_cleaned:
                    held.append(document)
                    continue
                if document.doc_id in first_seen:
                    raise InputError(
                        document.source,
                        f"duplicate id {document.doc_id!r}, first used in "
                        f"{first_seen[document.doc_id]}",
                        record.line,
                    )
                first_seen[document.doc_id] = document.source
                yield document
        # Cleaned ids yield to every id taken as it is, so adding a file never renames another.
        for document in held:
            doc_id, suffix = document.doc_id, 2
            while doc_id in first_seen:
                doc_id, suffix = f"{document.doc_id}~{suffix}", suffix + 1
            first_seen[doc_id] = document.source
            yield replace(document, doc_id=doc_id)

    @property
    def bytes_read(self) -> int:
        """Bytes of the source's files read so far (uncompressed, for zip entries)."""
        return self._ctx.bytes_read

    def total_bytes(self) -> int:
        """Bytes of every file the stream will read: a walk of the source, reading no file
        (a zip's directory only). Files it will skip or refuse count too, so this is an
        estimate of the work, for progress.

        Raises:
            InputError: as reading would, for the source's layout (it does not exist, a
                zip is damaged, too many files...).
        """
        ctx = ReadContext(self._ctx.fields, self._ctx.limits)
        return sum(_leaf_sizes(self._path, ctx))

    def report(self) -> IngestReport:
        """What was read so far: the tallies, with no documents (they were handed out)."""
        ctx = self._ctx
        return IngestReport(
            documents=(),
            skipped_empty=self._skipped_empty,
            pages_without_text=tuple(ctx.pages_without_text),
            files_read=ctx.files_read,
            files_skipped=tuple(ctx.files_skipped),
        )


def _leaf_sizes(path: Path, ctx: ReadContext) -> Iterator[int]:
    for file in _source_files(path, ctx):
        if file.suffix in _ARCHIVES:
            yield from (member.size for member in _ARCHIVES[file.suffix](file, ctx))
        elif file.suffix in READERS:
            yield file.size


def _records(path: Path, ctx: ReadContext) -> Generator[Record, None, None]:
    for file in _source_files(path, ctx):
        yield from _read_file(file, ctx)


def _read_file(file: SourceFile, ctx: ReadContext) -> Iterator[Record]:
    reader = READERS.get(file.suffix)
    if reader is None:
        ctx.skip(file.name, f"unsupported extension {file.suffix or '(none)'!r}")
        return
    _check_size(file, ctx.limits)
    if file.suffix not in _ARCHIVES:
        ctx.files_read += 1
        opener = file.open
        file = replace(file, open=lambda: io.BufferedReader(_CountedStream(opener(), ctx)))
    yield from reader(file, ctx)


class _CountedStream(io.RawIOBase):
    """A file's bytes, added to ``ctx.bytes_read`` as a reader takes them."""

    def __init__(self, raw: IO[bytes], ctx: ReadContext) -> None:
        self._raw = raw
        self._ctx = ctx

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        self._ctx.bytes_read += len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _check_size(file: SourceFile, limits: Limits) -> None:
    if file.size > limits.max_file_size:
        raise InputError(
            file.name,
            f"file is {_megabytes(file.size)}, over the limit of "
            f"{_megabytes(limits.max_file_size)}",
        )


def _megabytes(size: float) -> str:
    return f"{size / _MB:.1f} MB"


def _unsupported(path: Path | str, problem: str) -> InputError:
    return InputError(
        path,
        f"{problem}; give a folder, a BEIR folder (with {_BEIR_CORPUS}) or a file ending in "
        f"{', '.join(SUPPORTED_EXTENSIONS)}",
    )


# --- walking a source ----------------------------------------------------------------------


def _source_files(path: Path, ctx: ReadContext) -> Iterator[SourceFile]:
    """The files of a source; a zip archive stays one file (its reader opens it)."""
    if path.is_dir():
        corpus = path / _BEIR_CORPUS
        if corpus.is_file():
            ctx.count_file(_BEIR_CORPUS)
            yield _disk_file(corpus, _BEIR_CORPUS)
        else:
            yield from _walk(path, path, ctx, depth=0)
    elif path.is_file():
        if path.suffix.lower() not in READERS:
            raise _unsupported(path.name, f"unsupported file type {path.suffix or '(none)'!r}")
        ctx.count_file(path.name)
        yield _disk_file(path, path.name, root=True)
    else:
        raise _unsupported(path, "no such file or folder")


def _leaf_files(path: Path, ctx: ReadContext) -> Generator[SourceFile, None, None]:
    """The files of a source, with zip archives opened into their entries."""
    for file in _source_files(path, ctx):
        expand = _ARCHIVES.get(file.suffix)
        yield from expand(file, ctx) if expand else (file,)


def _walk(folder: Path, root: Path, ctx: ReadContext, depth: int) -> Iterator[SourceFile]:
    if depth > ctx.limits.max_depth:
        raise InputError(
            folder.relative_to(root).as_posix(),
            f"folders nested more than {ctx.limits.max_depth} levels deep",
        )
    try:
        items = sorted(folder.iterdir(), key=lambda item: item.name)
    except OSError as exc:
        raise InputError(folder, f"cannot list the folder ({exc.strerror})") from exc
    for item in items:
        name = item.relative_to(root).as_posix()
        if _is_hidden(item.name):
            ctx.skip(name, "hidden")
        elif item.is_dir() and item.is_symlink():
            # Not followed: a link can point back up the tree and loop forever.
            ctx.skip(name, "link to a folder, not followed")
        elif item.is_dir():
            yield from _walk(item, root, ctx, depth + 1)
        elif not item.is_file():
            ctx.skip(name, "not a regular file")
        else:
            ctx.count_file(name)
            yield _disk_file(item, name)


_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""Control characters (Unicode's Cc), line and paragraph separators, and lone surrogates (the
undecodable bytes of a file name): what must not reach an id, a title or a printed line."""


def _percent(char: str) -> str:
    try:  # a file name's undecodable byte comes back as the byte it was
        data = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = char.encode("utf-8", "surrogatepass")
    return "".join(f"%{byte:02X}" for byte in data)


def clean_name(name: str) -> str:
    """A file name made safe to use as a document id or source: printable on one line.

    Control characters, line breaks and lone surrogates anywhere, and whitespace at either end,
    are percent-encoded as their UTF-8 bytes (``"a\\nb.txt"`` gives ``"a%0Ab.txt"``, ``" a.txt"``
    gives ``"%20a.txt"``); every other name is returned as it is.
    """
    start = len(name) - len(name.lstrip())
    end = start + len(name.strip())
    body = _UNSAFE_CHARS.sub(lambda match: _percent(match.group()), name[start:end])
    return "".join(map(_percent, name[:start])) + body + "".join(map(_percent, name[end:]))


def _is_hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _disk_file(path: Path, name: str, *, root: bool = False) -> SourceFile:
    return SourceFile(name, partial(_open_disk_file, path, name), path.stat().st_size, root)


def _open_disk_file(path: Path, name: str) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(name, f"cannot open the file ({exc.strerror})") from exc


# --- zip archives --------------------------------------------------------------------------


def _zip_members(file: SourceFile, ctx: ReadContext) -> Iterator[SourceFile]:
    """The entries of a zip archive as files, checked against the limits before any is read."""
    prefix = "" if file.root else f"{file.name}/"
    with file.open() as stream, _open_zip(file, stream) as archive:
        # Sorted by path components, the order a walk of the extracted folder would give.
        infos = sorted(
            (info for info in archive.infolist() if not info.is_dir()),
            key=lambda info: info.filename.split("/"),
        )
        _check_zip_headers(file, infos, ctx.limits)
        budget = _ReadBudget(file.name, ctx.limits.max_zip_total_size)
        corpus = [info for info in infos if _is_beir_corpus(info.filename)]
        for info in corpus[:1] if len(corpus) == 1 else infos:
            name = prefix + info.filename
            if any(_is_hidden(part) for part in info.filename.split("/")):
                ctx.skip(name, "hidden")
            elif PurePosixPath(info.filename).suffix.lower() in _ARCHIVES:
                ctx.skip(name, "archive inside an archive, not read")
            else:
                ctx.count_file(name)
                opener = partial(_open_zip_member, archive, info, name, budget)
                yield SourceFile(name, opener, info.file_size)


def _read_archive(file: SourceFile, ctx: ReadContext) -> Iterator[Record]:
    for member in _ARCHIVES[file.suffix](file, ctx):
        yield from _read_file(member, ctx)


def _open_zip(file: SourceFile, stream: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(file.name, f"not a valid zip archive ({exc})") from exc


def _is_beir_corpus(entry: str) -> bool:
    """A BEIR corpus at the top of an archive, or one folder down (``scifact/corpus.jsonl``)."""
    parts = entry.split("/")
    return parts[-1] == _BEIR_CORPUS and len(parts) <= 2


def _check_zip_headers(file: SourceFile, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_files:
        raise InputError(file.name, f"the archive holds more than {limits.max_files} files")
    for info in infos:
        _check_zip_entry(file, info, limits)
    total = sum(info.file_size for info in infos)
    if total > limits.max_zip_total_size:
        raise InputError(
            file.name,
            f"the archive would expand to {_megabytes(total)}, over the limit of "
            f"{_megabytes(limits.max_zip_total_size)}",
        )


def _check_zip_entry(file: SourceFile, info: zipfile.ZipInfo, limits: Limits) -> None:
    entry = info.filename
    parts = entry.replace("\\", "/").split("/")
    if entry.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", entry) or ".." in parts:
        raise InputError(
            file.name, f"refused entry {entry!r}: its path leaves the archive (absolute or '..')"
        )
    if info.flag_bits & 0x1:
        raise InputError(file.name, f"entry {entry!r} is encrypted")
    if info.file_size > limits.max_file_size:
        raise InputError(
            file.name,
            f"entry {entry!r} is {_megabytes(info.file_size)}, over the limit of "
            f"{_megabytes(limits.max_file_size)}",
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= limits.min_size_for_ratio_check and ratio > limits.max_compression_ratio:
        raise InputError(
            file.name,
            f"entry {entry!r} expands {ratio:.0f} times, over the limit of "
            f"{limits.max_compression_ratio:g} (a zip bomb?)",
        )


class _ReadBudget:
    """The bytes an archive may still deliver, across all its entries."""

    def __init__(self, name: str, limit: int) -> None:
        self._name = name
        self._limit = limit
        self._used = 0

    def spend(self, size: int) -> None:
        self._used += size
        if self._used > self._limit:
            raise InputError(
                self._name,
                f"the archive expands to more than {_megabytes(self._limit)} "
                "(more than its headers say)",
            )


class _LimitedStream(io.RawIOBase):
    """A zip entry's bytes, refused past its declared size: headers can lie."""

    def __init__(self, raw: IO[bytes], name: str, limit: int, budget: _ReadBudget) -> None:
        self._raw = raw
        self._name = name
        self._left = limit
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._raw.read(len(buffer))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise InputError(self._name, f"damaged zip entry ({exc})") from exc
        self._left -= len(data)
        if self._left < 0:
            raise InputError(self._name, "the entry holds more data than its zip header says")
        self._budget.spend(len(data))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: _ReadBudget
) -> BinaryIO:
    try:
        raw = archive.open(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as exc:
        raise InputError(name, f"cannot open the zip entry ({exc})") from exc
    limited = _LimitedStream(raw, name, info.file_size, budget)
    return io.BufferedReader(limited)


# --- text lines ----------------------------------------------------------------------------


def _text_lines(file: SourceFile, stream: BinaryIO) -> Iterator[str]:
    """Decode a file line by line as UTF-8 (a leading BOM dropped), so errors name the line."""
    for number, raw in enumerate(stream, 1):
        if b"\0" in raw:
            raise InputError(
                file.name, "binary file, not text (or UTF-16 text: save it as UTF-8)", number
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                file.name,
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start + 1} of "
                "the line); save the file as UTF-8",
                number,
            ) from exc
        yield line.removeprefix("\ufeff") if number == 1 else line


# --- rows: CSV, TSV, JSONL -----------------------------------------------------------------

Row = tuple[int, Mapping[str, object]]
"""A row of a table: the 1-based line it starts on, and its fields."""


def _csv_records(
    file: SourceFile, ctx: ReadContext
) -> Generator[tuple[int, list[str]], None, None]:
    """(first line, cells) of each non-blank CSV record, header included."""
    delimiter = ctx.fields.delimiter or _DELIMITERS.get(file.suffix, ",")
    # A process-wide setting: the default (131,072 characters) is too small for long documents.
    csv.field_size_limit(ctx.limits.max_csv_field_size)
    with file.open() as stream:
        # strict: an unclosed quote is an error, not a cell that swallows the rest of the file.
        reader = csv.reader(_text_lines(file, stream), delimiter=delimiter, strict=True)
        line = 1
        while True:
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                raise InputError(file.name, _csv_problem(exc), line) from exc
            if cells is None:
                return
            if cells:
                yield line, cells
            line = reader.line_num + 1


def _csv_problem(error: csv.Error) -> str:
    message = str(error)
    if "new-line character" in message:
        return "a line ends with a bare carriage return; save the file with \\n line endings"
    if "end of data" in message or "expected after" in message:
        return f"malformed CSV ({message}); check the quotes of this row"
    return f"malformed CSV ({message})"


def _csv_header(file: SourceFile, line: int, cells: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in cells:
        if name in seen:
            raise InputError(file.name, f"duplicate column name {name!r} in the header", line)
        seen.add(name)
    return cells


def _csv_rows(file: SourceFile, ctx: ReadContext) -> Generator[Row, None, None]:
    records = _csv_records(file, ctx)
    first = next(records, None)
    if first is None:
        raise InputError(file.name, "empty file: no header row")
    header = _csv_header(file, *first)
    for line, cells in records:
        if len(cells) != len(header):
            raise InputError(
                file.name,
                f"row has {len(cells)} cells but the header has {len(header)} columns",
                line,
            )
        yield line, dict(zip(header, cells, strict=True))


def _jsonl_rows(file: SourceFile, ctx: ReadContext) -> Generator[Row, None, None]:
    with file.open() as stream:
        for number, line in enumerate(_text_lines(file, stream), 1):
            if line.strip():
                yield number, _json_object(file, number, line)


def _json_object(file: SourceFile, line_number: int, line: str) -> dict[str, object]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise InputError(file.name, f"not valid JSON ({exc})", line_number) from exc
    if not isinstance(value, dict):
        raise InputError(file.name, f"expected a JSON object, got {_json_type(value)}", line_number)
    nested = value.get("metadata")
    if not isinstance(nested, dict):
        return value
    flat = {key: item for key, item in value.items() if key != "metadata"}
    for key, item in nested.items():
        flat.setdefault(key, item)
    return flat


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if value is not None else "null")


def _csv_fields(file: SourceFile, ctx: ReadContext, rows: int) -> list[str]:
    with closing(_csv_records(file, ctx)) as records:
        first = next(records, None)
    return first[1] if first else []


def _jsonl_fields(file: SourceFile, ctx: ReadContext, rows: int) -> list[str]:
    names: dict[str, None] = {}
    with closing(_jsonl_rows(file, ctx)) as records:
        for _line, record in islice(records, rows):
            names.update(dict.fromkeys(record))
    return list(names)


def _read_csv(file: SourceFile, ctx: ReadContext) -> Iterator[Record]:
    return _row_records(file, ctx, _csv_rows(file, ctx), from_csv=True)


def _read_jsonl(file: SourceFile, ctx: ReadContext) -> Iterator[Record]:
    return _row_records(file, ctx, _jsonl_rows(file, ctx), from_csv=False)


def _row_records(
    file: SourceFile, ctx: ReadContext, rows: Iterable[Row], *, from_csv: bool
) -> Iterator[Record]:
    """Map rows to documents with the field map.

    ``from_csv`` marks rows whose keys are a fixed header (so every explicitly named column
    must exist) and whose cells are strings (so metadata cells are converted to numbers).
    """
    for row_number, (line, record) in enumerate(rows, 1):
        yield _row_record(file, ctx.fields, line, row_number, record, from_csv)


def _row_record(
    file: SourceFile,
    fields: FieldMap,
    line: int,
    row_number: int,
    record: Mapping[str, object],
    from_csv: bool,
) -> Record:
    text_key = fields.text or "text"
    required = [text_key, fields.id]
    if from_csv:
        required += [fields.title, *(fields.metadata or ())]
    for name in required:
        if name is not None and name not in record:
            kind = "column" if from_csv else "field"
            raise InputError(
                file.name,
                f"no {kind} {name!r}; the {kind}s are: {', '.join(record) or '(none)'}",
                line,
            )
    id_key = fields.id or next((key for key in ("_id", "id") if key in record), None)
    title_key = fields.title or ("title" if "title" in record else None)
    cleaned = False
    if id_key is None:
        made = f"{PurePosixPath(file.name).with_suffix('')}:{row_number}"
        doc_id = clean_name(made)
        cleaned = doc_id != made
    else:
        doc_id = _as_text(file, line, id_key, record[id_key])
        if not doc_id.strip():
            raise InputError(file.name, f"empty id in {id_key!r}", line)
        if _UNSAFE_CHARS.search(doc_id):
            raise InputError(
                file.name,
                f"id {doc_id!r} in {id_key!r} holds a control character or a line break; "
                "such an id could never be judged",
                line,
            )
    metadata_keys = fields.metadata
    if metadata_keys is None:
        metadata_keys = tuple(key for key in record if key not in {text_key, id_key, title_key})
    document = Document(
        doc_id=doc_id,
        text=_as_text(file, line, text_key, record[text_key]),
        title=_as_text(file, line, title_key, record.get(title_key)) if title_key else "",
        metadata=_metadata(record, metadata_keys, from_csv),
        source=clean_name(file.name),
    )
    return Record(document, line, id_cleaned=cleaned)


def _as_text(file: SourceFile, line: int, key: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value)  # a "\\ud800" escape in JSON: no tokenizer takes it
    if isinstance(value, int | float):
        return str(value)
    raise InputError(file.name, f"{key!r} holds {_json_type(value)}, not text", line)


def _metadata(
    record: Mapping[str, object], keys: Iterable[str], from_csv: bool
) -> dict[str, MetadataValue]:
    metadata: dict[str, MetadataValue] = {}
    for key in keys:
        value = record.get(key)
        if from_csv and isinstance(value, str):
            metadata[key] = _cell_value(value)
        elif value is None or isinstance(value, str | int | float | bool):
            metadata[key] = value
    return metadata


def _cell_value(cell: str) -> MetadataValue:
    """A CSV cell as metadata: a number if it looks like one, None if empty, else the text."""
    stripped = cell.strip()
    if not stripped:
        return None
    if _INT.fullmatch(stripped) and abs(int(stripped)) < _INT64:
        return int(stripped)
    if _FLOAT.fullmatch(stripped) and math.isfinite(number := float(stripped)):
        return number
    return cell


# --- one document a file: text, Markdown, PDF ----------------------------------------------


def _read_text(file: SourceFile, ctx: ReadContext) -> Iterator[Record]:
    with file.open() as stream:
        text = "".join(_text_lines(file, stream)).replace("\r\n", "\n")
    title = _markdown_title(text) if file.suffix == ".md" else None
    yield _file_record(file, text, title, {"file_type": file.suffix[1:]})


def _markdown_title(text: str) -> str | None:
    """The first ATX heading (``# Title``) outside fenced code blocks."""
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (heading := _HEADING.fullmatch(line)):
            return heading.group(1)
    return None


def _file_record(
    file: SourceFile,
    text: str,
    title: str | None,
    metadata: dict[str, MetadataValue],
    pages: tuple[PageSpan, ...] = (),
) -> Record:
    """The one document of a text, Markdown or PDF file, its id and source the cleaned name."""
    name = clean_name(file.name)
    stem = _UNSAFE_CHARS.sub(" ", PurePosixPath(file.name).stem)
    document = Document(
        doc_id=name,
        text=clean_text(text),
        title=clean_text((title or "").strip() or stem.strip()),
        metadata=metadata,
        source=name,
        pages=pages,
    )
    return Record(document, id_cleaned=name != file.name)


def _read_pdf(file: SourceFile, ctx: ReadContext) -> Iterator[Record]:
    with file.open() as stream:
        data = stream.read()
    title, page_texts = _pdf_contents(file, data, ctx.limits)
    text, spans = _join_pages(_reflow_pages(page_texts))
    with_text = {span.page for span in spans}
    ctx.pages_without_text.extend(
        (file.name, page) for page in range(1, len(page_texts) + 1) if page not in with_text
    )
    metadata: dict[str, MetadataValue] = {"file_type": "pdf", "page_count": len(page_texts)}
    yield _file_record(file, text, title, metadata, spans)


def _pdf_contents(file: SourceFile, data: bytes, limits: Limits) -> tuple[str | None, list[str]]:
    """The PDF's title and the text of each page, refusing contents that expand too far."""
    # A few KB of deflated zeros can decode to gigabytes (pypdf caps one stream at 75 MB, not
    # their total), and pypdf keeps decoded streams: the budget bounds both memory and time.
    budget = min(
        limits.max_file_size,
        max(limits.min_size_for_ratio_check, limits.max_compression_ratio * len(data)),
    )
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        # Many PDFs are encrypted only against editing, with an empty password to read them.
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError(file.name, "encrypted PDF, cannot read its text")
        info = reader.metadata
        title = info.title if info is not None else None
        texts: list[str] = []
        decoded = 0
        for number, page in enumerate(reader.pages, 1):
            for size in _decoded_stream_sizes(page):
                decoded += size
                if decoded > budget:
                    raise InputError(
                        file.name,
                        f"page {number}: the page contents expand to more than "
                        f"{_megabytes(budget)} ({decoded / max(len(data), 1):.0f} times the "
                        f"file's size; limits: ratio {limits.max_compression_ratio:g}, total "
                        f"{_megabytes(limits.max_file_size)}); a PDF bomb?",
                    )
            texts.append(page.extract_text())
        return title, texts
    except InputError:
        raise
    except Exception as exc:
        # pypdf raises many kinds of errors on damaged files; the user needs the file name.
        raise InputError(file.name, f"cannot read the PDF ({type(exc).__name__}: {exc})") from exc


def _decoded_stream_sizes(page: pypdf.PageObject) -> Iterator[int]:
    """Decoded size of each stream text extraction reads on a page.

    Those are the page's content streams and its form XObjects (with theirs, recursively);
    images are not decoded for text. A stream shared by several pages counts on each, as text
    extraction parses it for each. pypdf keeps what it decodes here, so ``extract_text`` does
    not decode it again.
    """
    seen: set[tuple[int, int]] = set()  # also stops a form listed among its own resources
    pending: list[tuple[str, Any]] = [("contents", page.get("/Contents"))]
    pending.append(("resources", page.get("/Resources")))
    while pending:
        role, item = pending.pop()
        if isinstance(item, IndirectObject):
            key = (item.idnum, item.generation)
            if key in seen:
                continue
            seen.add(key)
            item = item.get_object()
        if isinstance(item, ArrayObject) and role == "contents":
            pending.extend(("contents", part) for part in item)
        elif isinstance(item, StreamObject):
            if item.get("/Subtype") != "/Image":
                yield len(item.get_data())
                pending.append(("resources", item.get("/Resources")))
        elif isinstance(item, DictionaryObject) and role == "resources":
            xobjects = item.get("/XObject")
            if isinstance(xobjects, IndirectObject):
                xobjects = xobjects.get_object()
            if isinstance(xobjects, DictionaryObject):
                pending.extend(("contents", value) for value in xobjects.values())


def _reflow_pages(page_texts: list[str]) -> list[str]:
    """Each page's text with the line breaks inside its paragraphs made spaces.

    Words hyphenated across lines are joined unless the document also writes them with a
    hyphen elsewhere (``well-known``). Pages are reflowed one by one, so each keeps its span.
    """
    hyphenated: set[str] = set()
    for text in page_texts:
        for compound in _HYPHENATED.findall(text):
            parts = compound.lower().split("-")
            hyphenated.update(f"{a}-{b}" for a, b in pairwise(parts))
    return [_reflow(text, frozenset(hyphenated)) for text in page_texts]


def _reflow(text: str, hyphenated: frozenset[str]) -> str:
    """One page's text with its paragraphs' lines joined; blank lines and short lines kept.

    PDF text comes one printed line a line. A line about as wide as the page's full lines
    continues on the next one; a shorter line ends a paragraph, a heading or a table row, so
    its break stays (as do the break before a list item and every break on a page of short
    lines).
    """
    # pypdf writes a blank line as spaces: an empty line is a clearer paragraph break.
    lines = [line if line.strip() else "" for line in text.split("\n")]
    lengths = sorted(len(line.strip()) for line in lines if line)
    if len(lengths) < 2:
        return "\n".join(lines)
    # The width of a full line, robust to one overlong line (a URL, a table row).
    width = lengths[min(len(lengths) - 1, len(lengths) * 9 // 10)]
    out = [lines[0]]
    for previous, line in pairwise(lines):
        joint = _line_joint(previous, line, width, hyphenated)
        if joint is None:
            out += ["\n", line]
            continue
        glue, drop_hyphen = joint
        out[-1] = out[-1].rstrip()
        if drop_hyphen:
            out[-1] = out[-1][:-1]
        out += [glue, line.lstrip()]
    return "".join(out)


def _line_joint(
    previous: str, line: str, width: int, hyphenated: frozenset[str]
) -> tuple[str, bool] | None:
    """What joins a line to the one before: (text between them, drop the hyphen), or None to
    keep the line break."""
    before, after = previous.rstrip(), line.lstrip()
    if not before or not after or _LIST_ITEM.match(after):
        return None
    last, first = before.split()[-1], after.split()[0]
    if len(last) > 1 and last.endswith("-") and last[-2].isalpha():
        # A word split at the line end: "exam-" + "ple". A capital or a digit after the hyphen
        # ("Jean-Paul", "COVID-19"), a compound ("state-of-the-art") or a word written with a
        # hyphen elsewhere in the document keeps its hyphen.
        head, tail = _LETTERS.findall(last)[-1], _LETTERS.match(first)
        keep = (
            tail is None
            or not first[0].islower()
            or "-" in last[:-1]
            or "-" in first
            or f"{head}-{tail.group()}".lower() in hyphenated
        )
        return "", not keep
    full = 0.85 if _SENTENCE_END.search(before) else 0.7
    if len(before) < max(_MIN_FULL_LINE, full * width):
        return None
    return " ", False


def _join_pages(page_texts: list[str]) -> tuple[str, tuple[PageSpan, ...]]:
    """Join the pages that have text, recording where each one lies in the result."""
    parts: list[str] = []
    spans: list[PageSpan] = []
    offset = 0
    for page, page_text in enumerate(page_texts, 1):
        if not page_text.strip():
            continue
        if parts:
            offset += len(_PAGE_SEPARATOR)
        spans.append(PageSpan(page, offset, offset + len(page_text)))
        parts.append(page_text)
        offset += len(page_text)
    return _PAGE_SEPARATOR.join(parts), tuple(spans)


# --- choosing the columns ------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """What one column holds in the rows read.

    Attributes:
        name: the column name.
        rows: the rows read.
        present: rows holding the column (a JSONL object may leave it out).
        filled: rows whose value is not empty.
        texts: rows whose value is text rather than a number.
        scalars: whether any value can be metadata (not only JSON lists and objects).
        unique: whether every row holds a different, non-empty value.
        compact: whether the values are mostly one word (ids, codes).
        median_chars: median length of the values (empty counts as 0).
        mean_chars: mean length of the values.
        median_words: median number of words.
        example: the first non-empty value.
    """

    name: str
    rows: int
    present: int
    filled: int
    texts: int
    scalars: bool
    unique: bool
    compact: bool
    median_chars: float
    mean_chars: float
    median_words: float
    example: str

    @classmethod
    def of(cls, name: str, rows: Sequence[Mapping[str, object]]) -> _Column:
        raw = [row.get(name) for row in rows]
        values = [_plain_value(value).strip() for value in raw]
        filled = [value for value in values if value]
        words = [len(value.split()) for value in values]
        return cls(
            name=name,
            rows=len(rows),
            present=sum(name in row for row in rows),
            filled=len(filled),
            texts=sum(
                isinstance(value, str) and isinstance(_cell_value(value), str) for value in raw
            ),
            scalars=any(not isinstance(value, list | dict) for value in raw),
            unique=len(filled) == len(rows) and len(set(filled)) == len(rows),
            compact=sum(n <= 1 for n, value in zip(words, values, strict=True) if value)
            >= 0.9 * max(len(filled), 1),
            median_chars=statistics.median(len(value) for value in values),
            mean_chars=statistics.fmean(len(value) for value in values),
            median_words=statistics.median(words),
            example=filled[0] if filled else "",
        )

    @property
    def looks_like_id(self) -> bool:
        """Named like an id, or short and different in every row (``R-1001``)."""
        return _is_id_name(self.name) or (self.rows > 1 and self.unique and self.compact)

    @property
    def holds_text(self) -> bool:
        """Present in every row read, with text (not only numbers) in some."""
        return self.present == self.rows and self.texts > 0


def _plain_value(value: object) -> str:
    """A value as the text it would give (numbers as digits); "" for what holds no text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _is_id_name(name: str) -> bool:
    return bool(_ID_NAME.fullmatch(name.strip()) or _CAMEL_ID.fullmatch(name.strip()))


def _is_title_name(name: str) -> bool:
    return name.strip().lower() in _TITLE_NAMES or bool(_TITLE_SUFFIX.fullmatch(name.strip()))


def _longest(columns: Iterable[_Column]) -> _Column | None:
    """The column with the longest values (median, then mean); the first one on a tie."""
    return max(columns, key=lambda c: (c.median_chars, c.mean_chars), default=None)


def _choose_id(columns: Mapping[str, _Column], given: FieldMap) -> tuple[str | None, str]:
    if given.id is not None:
        return given.id, "given"
    unique = f"named like an id, unique in the {next(iter(columns.values())).rows} rows read"
    for name in ("_id", "id"):
        # Reading takes these when no id is named, so choosing another would not be true.
        if name in columns:
            return name, unique if columns[name].unique else "named id"
    named = [c for c in columns.values() if _is_id_name(c.name) and c.name != given.text]
    best = min(
        (c for c in named if c.unique),
        key=lambda c: c.name.lower() not in _PREFERRED_IDS,
        default=None,
    )
    if best is not None:
        return best.name, unique
    if named:
        listed = ", ".join(c.name for c in named)
        return None, f"rows numbered: {listed} repeat values or are empty"
    return None, "rows numbered: no column named like an id"


def _choose_text(
    columns: Mapping[str, _Column], given: FieldMap, taken: set[str | None]
) -> tuple[str | None, str]:
    if given.text is not None:
        return given.text, "given"
    if "_id" in columns and "text" in columns:
        return "text", "the BEIR corpus layout"
    candidates = [c for c in columns.values() if c.name not in taken and c.holds_text]
    best = _longest(c for c in candidates if not c.looks_like_id) or _longest(candidates)
    if best is None:
        return None, "no column holds text in every row"
    return best.name, f"longest texts, mean {best.mean_chars:.0f} characters"


def _choose_title(
    columns: Mapping[str, _Column], given: FieldMap, text: str | None, taken: set[str | None]
) -> tuple[str | None, str]:
    if given.title is not None:
        return given.title, "given"
    taken = taken | {text}
    if "title" in columns and "title" not in taken:
        # As with ids: reading takes a column named title when no title is named.
        return "title", "named title"
    longest_text = columns[text].median_chars if text is not None and text in columns else math.inf
    for column in columns.values():
        if (
            column.name not in taken
            and _is_title_name(column.name)
            and column.texts
            and column.median_chars <= min(_MAX_TITLE_CHARS, longest_text - 1)
        ):
            median = column.median_chars
            return column.name, f"named like a title, median {median:.0f} characters"
    return None, "no short column named like a title"


def _warnings(columns: Mapping[str, _Column], text: str | None, id_: str | None) -> list[str]:
    """Doubts about the chosen text and id columns, worth reading before a build."""
    warnings: list[str] = []
    if id_ is not None and id_ in columns and not columns[id_].unique:
        warnings.append(
            f"The id column {id_!r} is empty or repeats a value in the rows read; a build "
            "refuses repeated ids."
        )
    if text is None:
        return [*warnings, "No column holds text in every row read: name the text column."]
    if text not in columns:
        return warnings  # a name given that the source lacks: reading says so
    column = columns[text]
    better = _longest(
        c
        for c in columns.values()
        if c.name not in {text, id_} and c.holds_text and not c.looks_like_id
    )
    hint = ""
    if better is not None and better.median_chars > column.median_chars:
        hint = f" The longest texts are in {better.name!r}."
    if not column.texts:
        warnings.append(f"The text column {text!r} holds numbers, not text.{hint}")
    elif column.looks_like_id:
        warnings.append(
            f"The text column {text!r} looks like an id: short, and different in every row "
            f"(such as {column.example!r}).{hint}"
        )
    elif column.median_words < _SHORT_TEXT_WORDS:
        warnings.append(
            f"The texts in {text!r} are very short (median {column.median_words:g} words); "
            f"search works best on sentences and paragraphs.{hint}"
        )
    if column.filled < column.rows:
        warnings.append(
            f"{column.rows - column.filled} of the {column.rows} rows read have no text in "
            f"{text!r}; documents without text are skipped."
        )
    return warnings


# --- registries ----------------------------------------------------------------------------

_ARCHIVES: dict[str, Callable[[SourceFile, ReadContext], Iterator[SourceFile]]] = {
    ".zip": _zip_members,
}

READERS: dict[str, Reader] = {
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".jsonl": _read_jsonl,
    ".txt": _read_text,
    ".md": _read_text,
    ".pdf": _read_pdf,
    ".zip": _read_archive,
}
"""The reader for each supported extension (lower case, with its dot)."""

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(READERS))

_ROW_READERS: dict[str, Callable[[SourceFile, ReadContext], Generator[Row, None, None]]] = {
    ".csv": _csv_rows,
    ".tsv": _csv_rows,
    ".jsonl": _jsonl_rows,
}

_FIELD_LISTERS: dict[str, Callable[[SourceFile, ReadContext, int], list[str]]] = {
    ".csv": _csv_fields,
    ".tsv": _csv_fields,
    ".jsonl": _jsonl_fields,
}
