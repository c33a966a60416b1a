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
* Metadata holds scalars only. CSV cells that look like numbers become ``int`` or ``float`` (a
  number with a leading zero such as ``02139`` stays a string; so do numbers beyond 64 bits) and
  empty cells become ``None``. JSON values keep their types; JSON lists and objects are left out
  of metadata. A JSONL ``metadata`` key holding an object is merged into the row's fields (a
  top-level field of the same name wins), so its keys can be chosen like any other field.
* Text, Markdown and PDF documents carry ``file_type`` in metadata (``"txt"``, ``"md"``,
  ``"pdf"``), PDFs also ``page_count``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

import pypdf
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

from search_core.errors import InputError
from search_core.types import Document, MetadataValue, PageSpan

__all__ = [
    "READERS",
    "SUPPORTED_EXTENSIONS",
    "FieldMap",
    "IngestReport",
    "Limits",
    "ReadContext",
    "Reader",
    "Record",
    "SourceFile",
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
        documents: the documents read, in source order (files sorted by path, rows in order).
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
        files_skipped: (file, reason) of the files left out.
        pages_without_text: (file, page) of the PDF pages without text.
    """

    fields: FieldMap
    limits: Limits
    files_read: int = 0
    files_seen: int = 0
    files_skipped: list[tuple[str, str]] = field(default_factory=list)
    pages_without_text: list[tuple[str, int]] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        """Record a file or folder left out of the source."""
        self.files_skipped.append((name, reason))

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
    """

    document: Document
    line: int | None = None


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
    files = _leaf_files(Path(path), ctx)
    with closing(files):
        for file in files:
            lister = _FIELD_LISTERS.get(file.suffix)
            if lister is not None:
                _check_size(file, ctx.limits)
                names.update(dict.fromkeys(lister(file, ctx, rows)))
    return list(names)


# --- the driver ----------------------------------------------------------------------------


def _collect(
    path: Path, fields: FieldMap | None, limits: Limits | None, max_documents: int | None
) -> IngestReport:
    ctx = ReadContext(fields or FieldMap(), limits or Limits())
    documents: list[Document] = []
    first_seen: dict[str, str] = {}
    skipped_empty = 0
    records = _records(path, ctx)
    # closing() so that an early stop (preview) closes the files the generators hold open.
    with closing(records):
        for record in records:
            document = record.document
            if not document.text.strip():
                skipped_empty += 1
                continue
            if document.doc_id in first_seen:
                raise InputError(
                    document.source,
                    f"duplicate id {document.doc_id!r}, first used in "
                    f"{first_seen[document.doc_id]}",
                    record.line,
                )
            first_seen[document.doc_id] = document.source
            documents.append(document)
            if max_documents is not None and len(documents) >= max_documents:
                break
    return IngestReport(
        documents=tuple(documents),
        skipped_empty=skipped_empty,
        pages_without_text=tuple(ctx.pages_without_text),
        files_read=ctx.files_read,
        files_skipped=tuple(ctx.files_skipped),
    )


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
    yield from reader(file, ctx)


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


def _csv_rows(file: SourceFile, ctx: ReadContext) -> Iterator[Row]:
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
        document = _row_document(file, ctx.fields, line, row_number, record, from_csv)
        yield Record(document, line)


def _row_document(
    file: SourceFile,
    fields: FieldMap,
    line: int,
    row_number: int,
    record: Mapping[str, object],
    from_csv: bool,
) -> Document:
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
    if id_key is None:
        doc_id = f"{PurePosixPath(file.name).with_suffix('')}:{row_number}"
    else:
        doc_id = _as_text(file, line, id_key, record[id_key])
        if not doc_id.strip():
            raise InputError(file.name, f"empty id in {id_key!r}", line)
    metadata_keys = fields.metadata
    if metadata_keys is None:
        metadata_keys = tuple(key for key in record if key not in {text_key, id_key, title_key})
    return Document(
        doc_id=doc_id,
        text=_as_text(file, line, text_key, record[text_key]),
        title=_as_text(file, line, title_key, record.get(title_key)) if title_key else "",
        metadata=_metadata(record, metadata_keys, from_csv),
        source=file.name,
    )


def _as_text(file: SourceFile, line: int, key: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
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
    yield Record(_file_document(file, text, title, {"file_type": file.suffix[1:]}))


def _markdown_title(text: str) -> str | None:
    """The first ATX heading (``# Title``) outside fenced code blocks."""
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (heading := _HEADING.fullmatch(line)):
            return heading.group(1)
    return None


def _file_document(
    file: SourceFile,
    text: str,
    title: str | None,
    metadata: dict[str, MetadataValue],
    pages: tuple[PageSpan, ...] = (),
) -> Document:
    return Document(
        doc_id=file.name,
        text=text,
        title=(title or "").strip() or PurePosixPath(file.name).stem,
        metadata=metadata,
        source=file.name,
        pages=pages,
    )


def _read_pdf(file: SourceFile, ctx: ReadContext) -> Iterator[Record]:
    with file.open() as stream:
        data = stream.read()
    title, page_texts = _pdf_contents(file, data, ctx.limits)
    text, spans = _join_pages(page_texts)
    with_text = {span.page for span in spans}
    ctx.pages_without_text.extend(
        (file.name, page) for page in range(1, len(page_texts) + 1) if page not in with_text
    )
    metadata: dict[str, MetadataValue] = {"file_type": "pdf", "page_count": len(page_texts)}
    yield Record(_file_document(file, text, title, metadata, spans))


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

_FIELD_LISTERS: dict[str, Callable[[SourceFile, ReadContext, int], list[str]]] = {
    ".csv": _csv_fields,
    ".tsv": _csv_fields,
    ".jsonl": _jsonl_fields,
}
