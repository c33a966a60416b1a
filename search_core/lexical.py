"""Lexical (BM25) retrieval: the index engines and their registry.

Two engines share one interface, :class:`LexicalIndex`:

* ``"bm25s"`` (:class:`Bm25sIndex`, the default): ``bm25s.BM25`` with the Lucene variant,
  indexed on the terms of the collection's :class:`~.analysis.Analyzer` (language, stemmer,
  stopwords, tokenizer; English when none is given, see :func:`tokenize`), which also analyzes
  every query; scored from its sparse term-document matrix and persisted as plain ``.npy`` and
  JSON files (no pickle). The analyzer is stored in the collection's manifest, not here.
  :class:`Bm25sBuilder` writes the same files from batches of texts for corpora too large to
  hold, and :meth:`Bm25sIndex.from_arrays` serves them from read-only memory maps.
* ``"okapi-reference"`` (:class:`OkapiReferenceIndex`): ``rank_bm25.BM25Okapi`` over
  whitespace tokens, the plain textbook recipe, kept so users can compare against it.

References:
    S. Robertson and H. Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
    Foundations and Trends in Information Retrieval 3(4), 2009.
    Apache Lucene, ``org.apache.lucene.search.similarities.BM25Similarity``.
    C. Kamphuis, A. de Vries, L. Boytsov and J. Lin, "Which BM25 Do You Mean? A Large-Scale
    Reproducibility Study of Scoring Variants", ECIR 2020.
"""

from __future__ import annotations

import io
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .analysis import ENGLISH, JOINERS, STOPWORDS, Analyzer
from .storage import atomic_file, atomic_write, fsync_dir

if TYPE_CHECKING:
    import rank_bm25

# bm25s and rank_bm25 are imported where an index is built: the bm25s package loads numba
# and scipy (about a second), and searching a saved index needs neither.

__all__ = [
    "ARRAY_FILES",
    "ENGINES",
    "JOINERS",
    "JSON_FILES",
    "STOPWORDS",
    "Bm25sBuilder",
    "Bm25sIndex",
    "LexicalIndex",
    "OkapiReferenceIndex",
    "build_lexical_index",
    "identifier_matches",
    "is_identifier_term",
    "tokenize",
    "tokenize_many",
]

# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Split a text into terms with the English analysis (:data:`.analysis.ENGLISH`).

    The text is lower-cased and split on anything that is not a letter or digit (unicode
    letters and numbers are kept). English stopwords are dropped and alphabetic words are
    stemmed (Snowball English). An identifier, that is word parts joined by internal
    ``-``, ``_``, ``.``, ``/``, ``:`` or ``#`` (``CVE-2024-1234``, ``v2.3.1``,
    ``SKU_BT_4471``), is emitted whole (lower-cased, not stemmed) followed by its parts,
    each treated as a word, so a document matches both the identifier and its pieces.
    A collection's own analysis is its index's :attr:`Bm25sIndex.analyzer`.

    Args:
        text: the text to tokenize.

    Returns:
        The terms in text order, e.g. ``"Order ID: 12345,"`` gives
        ``["order", "id", "12345"]`` and ``"CVE-2024-1234"`` gives
        ``["cve-2024-1234", "cve", "2024", "1234"]``.
    """
    return ENGLISH.tokenize(text)


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    """Tokenize many texts as :func:`tokenize` does, stemming each distinct word once.

    Args:
        texts: the texts to tokenize.

    Returns:
        One list of terms per text, in the order given.
    """
    return ENGLISH.tokenize_many(texts)


# ---------------------------------------------------------------------------------------------
# Index interface
# ---------------------------------------------------------------------------------------------


class LexicalIndex(ABC):
    """A BM25 index over a fixed list of documents, identified by position (0..size-1).

    Attributes:
        engine: the registry name of the engine (a key of :data:`ENGINES`).
        size: the number of documents.
        params: the scoring parameters (``k1``, ``b`` and engine-specific ones).
    """

    engine: ClassVar[str]
    size: int

    @classmethod
    @abstractmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        analyzer: Analyzer = ENGLISH,
    ) -> LexicalIndex:
        """Index the texts.

        Args:
            texts: the documents; document ``i`` gets id ``i``.
            k1: BM25 term-frequency saturation.
            b: BM25 document-length normalization.
            analyzer: how texts and queries become terms (engines with a fixed recipe
                ignore it).

        Returns:
            The index.
        """

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The scoring parameters, as a new dict."""

    @abstractmethod
    def scores(self, query: str) -> np.ndarray:
        """Score every document against the query.

        Args:
            query: the query text, tokenized the way the engine tokenizes documents.

        Returns:
            A float32 array of length ``size``; 0 for documents no query term matches.
        """

    def top_k(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the best k documents for the query.

        Only documents with a score above 0 are returned, best first, ties broken by the lower
        id. The ``allowed`` mask filters inside the search, so k results come back whenever at
        least k allowed documents match.

        Args:
            query: the query text.
            k: the maximum number of results (0 gives none).
            allowed: a bool array of length ``size``; only ``True`` documents compete.

        Returns:
            ``(ids, scores)``: int64 document ids and their float32 scores, at most k of each.

        Raises:
            ValueError: if k is negative or ``allowed`` is not a bool array of length ``size``.
        """
        if k < 0:
            raise ValueError(f"k must be at least 0, got {k}")
        if allowed is not None and (
            not isinstance(allowed, np.ndarray)
            or allowed.dtype != np.bool_
            or allowed.shape != (self.size,)
        ):
            got = (
                f"{allowed.dtype} array of shape {allowed.shape}"
                if isinstance(allowed, np.ndarray)
                else type(allowed).__name__
            )
            raise ValueError(f"allowed must be a bool array of shape ({self.size},), got {got}")
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.scores(query)
        matched = scores > 0
        if allowed is not None:
            matched &= allowed
        ids = np.flatnonzero(matched)
        hit_scores = scores[ids]
        if len(ids) > k:
            # Keep everything tied with the k-th best so the tie-break by id is exact.
            kth = np.partition(hit_scores, len(ids) - k)[len(ids) - k]
            keep = hit_scores >= kth
            ids, hit_scores = ids[keep], hit_scores[keep]
        order = np.lexsort((ids, -hit_scores))[:k]
        return ids[order].astype(np.int64), hit_scores[order].astype(np.float32)


# ---------------------------------------------------------------------------------------------
# bm25s engine
# ---------------------------------------------------------------------------------------------

_FORMAT_VERSION = 1
_DATA_FILE = "bm25_data.npy"
_INDICES_FILE = "bm25_indices.npy"
_INDPTR_FILE = "bm25_indptr.npy"
_VOCAB_FILE = "bm25_vocab.json"
_PARAMS_FILE = "bm25_params.json"
_NPY_MAGIC = b"\x93NUMPY"
_CHECK_BLOCK = 1 << 20  # entries checked at once when an index is opened

ARRAY_FILES: dict[str, type[np.generic]] = {
    _DATA_FILE: np.float32,
    _INDICES_FILE: np.int64,
    _INDPTR_FILE: np.int64,
}
"""The index's ``.npy`` files and their dtypes: what an opened collection memory-maps."""

JSON_FILES: tuple[str, ...] = (_VOCAB_FILE, _PARAMS_FILE)
"""The index's JSON files (vocabulary, parameters): read into memory."""


class Bm25sIndex(LexicalIndex):
    """BM25 (Lucene variant) with ``bm25s`` over the terms of an :class:`~.analysis.Analyzer`.

    The score of document d for query q is the sum over query terms t (a repeated query term
    counts again) of::

        idf(t)    = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
        score(t)  = idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))

    with N the number of documents, df(t) the number containing t, tf the count of t in d,
    dl the number of terms of d and avgdl the mean over documents. This is bm25s's
    ``method="lucene"``, as Lucene >= 8 computes it: the classic numerator factor
    ``(k1 + 1)`` of Robertson & Zaragoza (2009) is left out, which scales every score by
    ``1 / (k1 + 1)`` and does not change the ranking. The per-term scores are computed once
    at indexing time and kept as a sparse term-by-document matrix (CSC arrays); a query adds
    up the columns of its terms. Query terms absent from the vocabulary are ignored.

    Documents and queries are analyzed alike, by :attr:`analyzer`.

    Build with :meth:`build` (or :func:`build_lexical_index`), or write the files batch by
    batch with :class:`Bm25sBuilder`; store with :meth:`to_files` and :meth:`from_files`, or
    serve from memory-mapped files with :meth:`from_arrays`.
    """

    engine: ClassVar[str] = "bm25s"

    def __init__(
        self,
        *,
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        vocabulary: Sequence[str],
        size: int,
        k1: float,
        b: float,
        analyzer: Analyzer = ENGLISH,
    ) -> None:
        """Wrap precomputed matrix arrays; use :meth:`build` or :meth:`from_files` instead.

        Args:
            data: float32 per-(term, document) BM25 scores, column by column.
            indices: int document ids of ``data``, column by column.
            indptr: int64 offsets of each term's column in ``data``, length vocabulary + 1.
            vocabulary: the terms, in column order.
            size: the number of documents.
            k1: BM25 term-frequency saturation used to compute ``data``.
            b: BM25 length normalization used to compute ``data``.
            analyzer: the analysis the vocabulary was made with; queries get the same.

        Raises:
            ValueError: if the arrays do not form a valid matrix of that size and vocabulary.
        """
        _check_matrix(data, indices, indptr, vocabulary, size)
        self._data = np.ascontiguousarray(data, dtype=np.float32)
        self._indices = np.ascontiguousarray(indices, dtype=np.int64)
        self._indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self._vocabulary = list(vocabulary)
        self._term_ids = {term: i for i, term in enumerate(self._vocabulary)}
        self.size = size
        self._k1 = float(k1)
        self._b = float(b)
        self.analyzer = analyzer

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        analyzer: Analyzer = ENGLISH,
    ) -> Bm25sIndex:
        """Analyze the texts and index their terms with ``bm25s.BM25``.

        Args:
            texts: the documents; document ``i`` gets id ``i``.
            k1: BM25 term-frequency saturation.
            b: BM25 document-length normalization.
            analyzer: how texts and queries become terms (English by default).

        Returns:
            The index.
        """
        corpus = analyzer.tokenize_many(texts)
        if not any(corpus):
            # bm25s cannot index an empty vocabulary; no term can ever match anyway.
            empty = np.zeros(0, dtype=np.float32)
            return cls(
                data=empty,
                indices=np.zeros(0, dtype=np.int64),
                indptr=np.zeros(1, dtype=np.int64),
                vocabulary=[],
                size=len(corpus),
                k1=k1,
                b=b,
                analyzer=analyzer,
            )
        import bm25s

        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index(corpus, create_empty_token=False, show_progress=False)
        vocabulary = [""] * len(model.vocab_dict)
        for term, column in model.vocab_dict.items():
            vocabulary[column] = term
        return cls(
            data=model.scores["data"],
            indices=model.scores["indices"],
            indptr=model.scores["indptr"],
            vocabulary=vocabulary,
            size=len(corpus),
            k1=k1,
            b=b,
            analyzer=analyzer,
        )

    @property
    def params(self) -> dict[str, Any]:
        """``k1``, ``b`` and ``method`` (always ``"lucene"``)."""
        return {"k1": self._k1, "b": self._b, "method": "lucene"}

    @property
    def vocabulary(self) -> list[str]:
        """The indexed terms, in column order."""
        return list(self._vocabulary)

    def documents_with(self, term: str) -> np.ndarray:
        """Ids of the documents that contain an indexed term (empty for unknown terms)."""
        column = self._term_ids.get(term)
        if column is None:
            return np.zeros(0, dtype=np.int64)
        return self._indices[self._indptr[column] : self._indptr[column + 1]]

    def scores(self, query: str) -> np.ndarray:
        """Score every document; see the class docstring for the formula.

        Args:
            query: the query text, analyzed as the documents were (:attr:`analyzer`).

        Returns:
            A float32 array of length ``size``; 0 for documents no query term matches.
        """
        scores = np.zeros(self.size, dtype=np.float32)
        for term in self.analyzer.tokenize(query):
            column = self._term_ids.get(term)
            if column is not None:
                start, end = self._indptr[column], self._indptr[column + 1]
                # A column lists each document once, so a fancy-indexed add is exact.
                scores[self._indices[start:end]] += self._data[start:end]
        return scores

    def to_files(self) -> dict[str, bytes]:
        """Serialize the index as ``.npy`` and JSON files, without pickle.

        Returns:
            File name to content: ``bm25_data.npy`` (float32), ``bm25_indices.npy`` (int64),
            ``bm25_indptr.npy`` (int64), ``bm25_vocab.json`` (the terms in column order) and
            ``bm25_params.json`` (engine, format version, size, k1, b, method).
        """
        return {
            _DATA_FILE: _npy_bytes(self._data),
            _INDICES_FILE: _npy_bytes(self._indices),
            _INDPTR_FILE: _npy_bytes(self._indptr),
            _VOCAB_FILE: _vocab_json(self._vocabulary),
            _PARAMS_FILE: _params_json(self.size, self._k1, self._b),
        }

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], analyzer: Analyzer = ENGLISH) -> Bm25sIndex:
        """Rebuild an index from the output of :meth:`to_files`, checking every file.

        Every array is read into memory; :meth:`from_arrays` takes them memory-mapped instead.

        Args:
            files: file name to content, as :meth:`to_files` returned it.
            analyzer: the analyzer it was built with (from the collection's manifest).

        Returns:
            The index; it scores exactly as the one that was saved.

        Raises:
            ValueError: if a file is missing, unreadable, or inconsistent with the others.
        """
        _check_present(files, (*ARRAY_FILES, *JSON_FILES))
        arrays = {name: _read_npy(name, files[name], dtype) for name, dtype in ARRAY_FILES.items()}
        return cls.from_arrays(arrays, {name: files[name] for name in JSON_FILES}, analyzer)

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        json_files: Mapping[str, bytes],
        analyzer: Analyzer = ENGLISH,
    ) -> Bm25sIndex:
        """Open an index from its three arrays (memory-mapped or not) and its two JSON files.

        This is how an opened collection serves BM25 from read-only memory maps
        (:func:`~.storage.map_member`): ``bm25_data.npy``, ``bm25_indices.npy`` and
        ``bm25_indptr.npy`` are used as given, not copied (when they have the dtype of
        :data:`ARRAY_FILES` and are contiguous, as mapped ``.npy`` files are), so their pages
        come from the files as queries touch them; the checks below read them once. The
        vocabulary (``bm25_vocab.json``, with a dict from term to column) and the parameters
        (``bm25_params.json``) are loaded into memory. Searching never writes to the arrays.

        The checks are those of :meth:`from_files`: dtypes, matching lengths, ``indptr``
        rising from 0 to the number of scores, document ids below the size, finite scores, a
        vocabulary of distinct strings, a params file of this engine and format version.

        Args:
            arrays: ``.npy`` file name to its array (each name of :data:`ARRAY_FILES`).
            json_files: ``bm25_vocab.json`` and ``bm25_params.json``, name to content.
            analyzer: the analyzer it was built with (from the collection's manifest).

        Returns:
            The index; it scores exactly as :meth:`from_files` over the same files would.

        Raises:
            ValueError: if a file is missing or not of its dtype, or the files are inconsistent.
        """
        _check_present(arrays, ARRAY_FILES)
        _check_present(json_files, JSON_FILES)
        size, k1, b, vocabulary = _read_meta(json_files)
        for name, dtype in ARRAY_FILES.items():
            array = arrays[name]
            if not isinstance(array, np.ndarray):
                raise ValueError(f"{name}: expected a numpy array, got {type(array).__name__}")
            if array.dtype != dtype:
                raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {array.dtype}")
        return cls(
            data=arrays[_DATA_FILE],
            indices=arrays[_INDICES_FILE],
            indptr=arrays[_INDPTR_FILE],
            vocabulary=vocabulary,
            size=size,
            k1=k1,
            b=b,
            analyzer=analyzer,
        )


def _check_present(files: Mapping[str, object], names: Iterable[str]) -> None:
    missing = [name for name in names if name not in files]
    if missing:
        raise ValueError(f"BM25 index files missing: {', '.join(missing)}")


def _read_meta(json_files: Mapping[str, bytes]) -> tuple[int, float, float, list[str]]:
    """Size, k1, b and vocabulary from the params and vocabulary files, each checked."""
    params = _read_json(_PARAMS_FILE, json_files[_PARAMS_FILE])
    if not isinstance(params, dict):
        raise ValueError(f"{_PARAMS_FILE}: expected a JSON object")
    if params.get("engine") != Bm25sIndex.engine or params.get("method") != "lucene":
        raise ValueError(
            f"{_PARAMS_FILE}: not a bm25s/lucene index (engine={params.get('engine')!r}, "
            f"method={params.get('method')!r})"
        )
    if params.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{_PARAMS_FILE}: format version {params.get('format_version')!r} is not "
            f"supported (expected {_FORMAT_VERSION})"
        )
    size = _param(params, "size")
    if size != int(size):
        raise ValueError(f"{_PARAMS_FILE}: size must be an integer, got {size!r}")
    k1, b = _param(params, "k1"), _param(params, "b")
    vocabulary = _read_json(_VOCAB_FILE, json_files[_VOCAB_FILE])
    if not isinstance(vocabulary, list) or not all(isinstance(t, str) for t in vocabulary):
        raise ValueError(f"{_VOCAB_FILE}: expected a JSON list of strings")
    return int(size), k1, b, vocabulary


def _vocab_json(vocabulary: Sequence[str]) -> bytes:
    return json.dumps(list(vocabulary), ensure_ascii=False).encode("utf-8")


def _params_json(size: int, k1: float, b: float) -> bytes:
    params = {"engine": Bm25sIndex.engine, "format_version": _FORMAT_VERSION, "size": size}
    params.update({"k1": float(k1), "b": float(b), "method": "lucene"})
    return json.dumps(params, indent=2).encode("utf-8")


def _param(params: dict[str, Any], name: str) -> float:
    """Read one number >= 0 from the params file; ValueError if missing or not such a number."""
    value = params.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{_PARAMS_FILE}: {name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_matrix(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    vocabulary: Sequence[str],
    size: int,
) -> None:
    """Raise ValueError unless the CSC arrays describe a size x vocabulary score matrix."""
    for name, array in (("data", data), ("indices", indices), ("indptr", indptr)):
        if array.ndim != 1:
            raise ValueError(f"BM25 {name} must be 1-D, got shape {array.shape}")
    if data.dtype != np.float32:
        raise ValueError(f"BM25 data must be float32, got {data.dtype}")
    for name, array in (("indices", indices), ("indptr", indptr)):
        if array.dtype.kind not in "iu":
            raise ValueError(f"BM25 {name} must be integers, got {array.dtype}")
    if len(indptr) != len(vocabulary) + 1:
        raise ValueError(
            f"BM25 indptr has length {len(indptr)}, but the vocabulary has "
            f"{len(vocabulary)} terms (expected {len(vocabulary) + 1})"
        )
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError("BM25 vocabulary has duplicate terms")
    if len(indices) != len(data):
        raise ValueError(f"BM25 indices has length {len(indices)}, but data has length {len(data)}")
    if indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr) < 0):
        raise ValueError(
            f"BM25 indptr must rise from 0 to the data length {len(data)} without decreasing"
        )
    # Block by block: on memory-mapped arrays a whole-array temporary would cost what the
    # mapping saves.
    for start in range(0, len(data), _CHECK_BLOCK):
        ids = indices[start : start + _CHECK_BLOCK]
        if ids.min() < 0 or ids.max() >= size:
            raise ValueError(f"BM25 indices must be document ids in [0, {size})")
        if not np.isfinite(data[start : start + _CHECK_BLOCK]).all():
            raise ValueError("BM25 data contains non-finite scores")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _read_npy(name: str, content: bytes, dtype: type[np.generic]) -> np.ndarray:
    """Load one ``.npy`` file of the given dtype, never unpickling; ValueError if unreadable."""
    if not content.startswith(_NPY_MAGIC):
        raise ValueError(f"{name}: not a .npy file")
    try:
        array = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise ValueError(f"{name}: cannot read the array ({error})") from error
    if array.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {array.dtype}")
    return np.asarray(array)


def _read_json(name: str, content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8"))
    except ValueError as error:  # also covers JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{name}: not valid UTF-8 JSON ({error})") from error


# ---------------------------------------------------------------------------------------------
# Streaming bm25s builder
# ---------------------------------------------------------------------------------------------

# One (document, term) pair of a batch, as spilled to the work folder: the term's id in
# first-seen order (its column once finish knows the order), its count in the document, the
# document's length in terms and the document's id.
_POSTING = np.dtype([("term", "<i4"), ("tf", "<i4"), ("dl", "<i4"), ("doc", "<i8")])
_SPILL_FILE = "bm25_postings.bin"
_READ_POSTINGS = 1 << 18  # postings read from the spill at once (5 MB)
_BUCKET_POSTINGS = 1 << 20  # postings sorted at once, at least (about 100 MB at the peak)
_MAX_BUCKETS = 256  # bucket files open at once; past 2**28 postings, buckets grow instead


class Bm25sBuilder:
    """Build the files of a :class:`Bm25sIndex` from batches of texts, never holding them all.

    Feed the texts batch after batch, in document order, with :meth:`add`, then write the
    index with :meth:`finish`. Each batch is analyzed and reduced to one record per distinct
    (document, term) pair (term id, count, document length, document id: 20 bytes) appended
    to a file in ``work_dir``; only the vocabulary (term to id) and one count per term stay
    in memory. :meth:`finish` sorts the records by column in buckets of about a million
    (an external distribution sort: one pass spreads them over bucket files by column range,
    then each bucket is sorted in memory, scored and appended to the output files), so memory
    stays bounded by the vocabulary and a bucket, whatever the corpus size.

    The files equal those of ``Bm25sIndex.build(texts, ...).to_files()`` over the
    concatenated texts byte for byte, when built in the same process: the scores repeat
    bm25s's float operations in the same order, and the columns come in bm25s's order, the
    iteration order of a Python set of the terms filled in text order (which, as for
    :meth:`Bm25sIndex.build`, depends on the process's string hash seed).

    Attributes:
        analyzer: the analysis of the texts (and later of the index's queries).
        size: the number of documents added so far.

    Example:
        builder = Bm25sBuilder(analyzer, k1=1.5, b=0.75, work_dir=scratch)
        for batch in batches:
            builder.add(batch)
        names = builder.finish(folder)
    """

    def __init__(
        self, analyzer: Analyzer = ENGLISH, *, k1: float = 1.5, b: float = 0.75, work_dir: Path
    ) -> None:
        """Start an empty index.

        Args:
            analyzer: how texts and queries become terms (see :mod:`.analysis`).
            k1: BM25 term-frequency saturation.
            b: BM25 document-length normalization.
            work_dir: an existing folder for the builder's temporary files; the caller
                removes it. It needs about 20 bytes per distinct (document, term) pair, twice
                during :meth:`finish`.
        """
        self.analyzer = analyzer
        self._k1 = float(k1)
        self._b = float(b)
        self._spill = Path(work_dir) / _SPILL_FILE
        self._spill.write_bytes(b"")
        self._work_dir = Path(work_dir)
        self._term_ids: dict[str, int] = {}  # term to id, in first-seen order
        self._df = np.zeros(0, dtype=np.int64)  # documents per term id
        self.size = 0  # documents added
        self._terms = 0  # terms over all documents, for the mean document length
        self._finished = False

    def add(self, texts: Sequence[str]) -> None:
        """Analyze the next documents; the first gets the id after the last one added.

        Args:
            texts: the documents' texts, in document order.

        Raises:
            ValueError: if :meth:`finish` was called already.
        """
        self._check_open()
        docs = self.analyzer.tokenize_many(texts)
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        term_ids = self._term_ids
        total = int(lengths.sum())
        # New terms get the next ids in first-seen order; the batch's distinct terms are few.
        for term in dict.fromkeys(chain.from_iterable(docs)):
            if term not in term_ids:
                term_ids[term] = len(term_ids)
        ids = np.fromiter(
            map(term_ids.__getitem__, chain.from_iterable(docs)), dtype=np.int64, count=total
        )
        first = self.size
        self.size += len(docs)
        self._terms += total
        del docs
        if not total:
            return
        n_terms = len(term_ids)
        local = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        pairs, counts = np.unique(local * n_terms + ids, return_counts=True)
        del local, ids
        records = np.empty(len(pairs), dtype=_POSTING)
        records["term"] = pairs % n_terms
        records["tf"] = counts
        records["dl"] = lengths[pairs // n_terms]
        records["doc"] = pairs // n_terms + first
        df = np.bincount(records["term"], minlength=n_terms)
        df[: len(self._df)] += self._df
        self._df = df
        with open(self._spill, "ab") as handle:
            records.tofile(handle)

    def finish(self, folder: Path) -> list[str]:
        """Write the index's files into ``folder`` (each atomically, fsynced).

        Args:
            folder: an existing folder; files of the same names are replaced.

        Returns:
            The names written: the keys of :meth:`Bm25sIndex.to_files`.

        Raises:
            ValueError: if :meth:`finish` was called already.
        """
        self._check_open()
        self._finished = True
        folder = Path(folder)
        vocabulary, column = self._columns()
        n_terms = len(vocabulary)
        df = np.zeros(n_terms, dtype=np.int64)
        df[column] = self._df
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        postings = int(indptr[-1])
        with (
            atomic_file(folder / _DATA_FILE) as data_file,
            atomic_file(folder / _INDICES_FILE) as indices_file,
        ):
            data_file.write(_npy_header(np.float32, postings))
            indices_file.write(_npy_header(np.int64, postings))
            if postings:
                idf = _lucene_idf(df, self.size)
                # bm25s averages with numpy: a float64 sum of exact integers, then one division
                mean_length = float(np.float64(self._terms) / self.size)
                for bucket in self._sorted_buckets(column, indptr):
                    scores = _lucene_scores(bucket, idf, mean_length, self._k1, self._b)
                    data_file.write(scores.data)
                    indices_file.write(np.ascontiguousarray(bucket["doc"], "<i8").data)
        small = {
            _INDPTR_FILE: _npy_bytes(indptr),
            _VOCAB_FILE: _vocab_json(vocabulary),
            _PARAMS_FILE: _params_json(self.size, self._k1, self._b),
        }
        for name, content in small.items():
            atomic_write(folder / name, content)
        fsync_dir(folder)
        self._spill.unlink(missing_ok=True)
        return [_DATA_FILE, _INDICES_FILE, _INDPTR_FILE, _VOCAB_FILE, _PARAMS_FILE]

    def _check_open(self) -> None:
        if self._finished:
            raise ValueError("this Bm25sBuilder has finished; start a new one to build again")

    def _columns(self) -> tuple[list[str], np.ndarray]:
        """bm25s's column order: the terms and, for each first-seen id, its column."""
        # bm25s collects the vocabulary with set.update over each document's terms; adding
        # the distinct terms in first-seen order makes the same insertions, so the same set.
        unique: set[str] = set()
        unique.update(list(self._term_ids))
        vocabulary = list(unique)
        del unique
        column = np.empty(len(vocabulary), dtype=np.int64)
        first_seen = np.fromiter(
            map(self._term_ids.__getitem__, vocabulary), dtype=np.int64, count=len(vocabulary)
        )
        column[first_seen] = np.arange(len(vocabulary), dtype=np.int64)
        return vocabulary, column

    def _sorted_buckets(self, column: np.ndarray, indptr: np.ndarray) -> Iterator[np.ndarray]:
        """The spilled postings by column then document, a bucket of columns at a time.

        Pass one spreads the spill over bucket files, each a range of columns; pass two
        sorts each bucket by column. Both keep document order within a column (the spill is in
        document order and the sorts are stable), so each column lists its documents rising,
        as bm25s's CSC matrix does.
        """
        postings = int(indptr[-1])
        size = max(_BUCKET_POSTINGS, -(-postings // _MAX_BUCKETS))
        # The column holding every size-th posting starts a bucket.
        starts = np.unique(np.searchsorted(indptr, np.arange(0, postings, size), "right") - 1)
        paths = [self._work_dir / f"bm25_bucket_{i}.bin" for i in range(len(starts))]
        with ExitStack() as stack:
            outs = [stack.enter_context(open(path, "wb")) for path in paths]
            with open(self._spill, "rb") as spill:
                while len(chunk := np.fromfile(spill, dtype=_POSTING, count=_READ_POSTINGS)):
                    chunk["term"] = column[chunk["term"]]
                    bucket = np.searchsorted(starts, chunk["term"], "right") - 1
                    chunk = chunk[_stable_order(bucket)]
                    ends = np.cumsum(np.bincount(bucket, minlength=len(starts)))
                    for out, start, end in zip(outs, [0, *ends[:-1]], ends, strict=True):
                        if end > start:
                            chunk[start:end].tofile(out)
        self._spill.unlink()
        for path in paths:
            records = np.fromfile(path, dtype=_POSTING)
            path.unlink()
            yield records[_stable_order(records["term"])]


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """The order that sorts integer keys in [0, 2**32), equal keys kept in their order.

    Two stable sorts of 16-bit digits, the low one first: numpy radix-sorts 16-bit keys, so
    this is about four times as fast as a stable sort of the keys themselves.
    """
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if len(keys) and keys.max() > 0xFFFF:
        high = (keys[order] >> 16).astype(np.uint16)
        order = order[np.argsort(high, kind="stable")]
    return order


def _lucene_idf(df: np.ndarray, size: int) -> np.ndarray:
    """float32 ``ln(1 + (N - df + 0.5) / (df + 0.5))`` per term, with ``math.log`` as bm25s."""
    values = np.unique(df)
    idf = [math.log(1 + (size - d + 0.5) / (d + 0.5)) for d in values.tolist()]
    return np.asarray(idf, dtype=np.float64).astype(np.float32)[np.searchsorted(values, df)]


def _lucene_scores(
    postings: np.ndarray, idf: np.ndarray, mean_length: float, k1: float, b: float
) -> np.ndarray:
    """float32 scores of postings (the :class:`Bm25sIndex` formula), as bm25s computes them.

    bm25s scores each document in float64 (its float32 counts meet the float64 mean length),
    multiplies by the float32 idf and stores float32; the same operations in the same order
    give the same bits.
    """
    tf = postings["tf"].astype(np.float32).astype(np.float64)
    # k1 * ((1 - b) + b * dl / avgdl) + tf in place: x * y and y * x round alike, as do sums
    norm = postings["dl"].astype(np.float64)
    norm *= b
    norm /= mean_length
    norm += 1 - b
    norm *= k1
    norm += tf
    tf /= norm
    del norm
    tf *= idf[postings["term"]]
    return tf.astype(np.float32)


def _npy_header(dtype: type[np.generic], length: int) -> bytes:
    """The header ``np.save`` writes for a 1-D array of ``length`` items of ``dtype``."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": (length,),
    }
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# rank-bm25 reference engine
# ---------------------------------------------------------------------------------------------


class OkapiReferenceIndex(LexicalIndex):
    """Classic Okapi BM25 with ``rank_bm25.BM25Okapi`` over whitespace tokens.

    Documents and queries are split with ``text.lower().split()``: no stemming, stopwords or
    punctuation handling, the plain recipe to compare :class:`Bm25sIndex` against. The score
    of document d for query q sums over query terms t::

        idf(t)    = ln((N - df(t) + 0.5) / (df(t) + 0.5)), floored at epsilon * mean idf
        score(t)  = idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    (Robertson & Zaragoza, 2009, with rank-bm25's floor on negative idf). It is not persisted:
    build it from the texts when needed. It ignores the collection's analyzer by design.
    """

    engine: ClassVar[str] = "okapi-reference"

    def __init__(self, model: rank_bm25.BM25Okapi | None, size: int, k1: float, b: float):
        """Wrap a fitted model; use :meth:`build` instead.

        Args:
            model: the fitted model, or None when the corpus has no tokens at all.
            size: the number of documents.
            k1: BM25 term-frequency saturation.
            b: BM25 length normalization.
        """
        self._model = model
        self.size = size
        self._k1 = float(k1)
        self._b = float(b)
        self._epsilon = float(model.epsilon) if model is not None else 0.25

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        analyzer: Analyzer = ENGLISH,
    ) -> OkapiReferenceIndex:
        """Index the texts with ``rank_bm25.BM25Okapi``.

        Args:
            texts: the documents; document ``i`` gets id ``i``.
            k1: BM25 term-frequency saturation.
            b: BM25 document-length normalization.
            analyzer: ignored: the reference splits on whitespace.

        Returns:
            The index.
        """
        import rank_bm25

        corpus = [text.lower().split() for text in texts]
        # rank-bm25 divides by the corpus size and the vocabulary size.
        model = rank_bm25.BM25Okapi(corpus, k1=k1, b=b) if any(corpus) else None
        return cls(model, len(corpus), k1, b)

    @property
    def params(self) -> dict[str, Any]:
        """``k1``, ``b`` and ``epsilon`` (rank-bm25's idf floor)."""
        return {"k1": self._k1, "b": self._b, "epsilon": self._epsilon}

    def scores(self, query: str) -> np.ndarray:
        """Score every document with ``BM25Okapi.get_scores``; see the class docstring.

        Args:
            query: the query text, split with ``query.lower().split()``.

        Returns:
            A float32 array of length ``size``; 0 for documents no query term matches.
        """
        terms = query.lower().split()
        if self._model is None or not terms:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._model.get_scores(terms), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

ENGINES: dict[str, type[LexicalIndex]] = {
    Bm25sIndex.engine: Bm25sIndex,
    OkapiReferenceIndex.engine: OkapiReferenceIndex,
}
"""Lexical engines by name; ``"bm25s"`` is the default."""


def identifier_limit(size: int) -> int:
    """Most documents a term may occur in and still count as an identifier: sqrt(N), at least 5.

    An identifier names one thing, so it is rare; sqrt(N) lets an order id recur in the
    handful of tickets about that order while a year or a version like ``2024`` does not count.
    """
    return max(5, math.isqrt(size))


def is_identifier_term(term: str) -> bool:
    """Whether a term looks like an identifier: three or more characters, one a digit."""
    return len(term) >= 3 and any(c.isdigit() for c in term)


def identifier_matches(index: Bm25sIndex, query: str) -> np.ndarray:
    """Documents that contain every rare identifier of the query (``ORD-58213``, ``P0301``).

    Embeddings blur identifiers (``ORD-58213`` and ``ORD-58231`` look alike to a model), so the
    search treats an exact identifier match as evidence of its own. Identifier terms that are
    common in the corpus (a year, say) are ignored.

    Args:
        index: the BM25 index (its vocabulary and postings).
        query: the query text.

    Returns:
        Sorted document ids; empty when the query has no rare identifier.
    """
    limit = identifier_limit(index.size)
    postings = [
        ids
        for term in dict.fromkeys(index.analyzer.tokenize(query))
        if is_identifier_term(term)
        for ids in [index.documents_with(term)]
        if 0 < len(ids) <= limit
    ]
    if not postings:
        return np.zeros(0, dtype=np.int64)
    matches = postings[0]
    for ids in postings[1:]:
        matches = np.intersect1d(matches, ids)
    return np.unique(matches)


def build_lexical_index(
    texts: Sequence[str],
    engine: str = "bm25s",
    *,
    k1: float = 1.5,
    b: float = 0.75,
    analyzer: Analyzer = ENGLISH,
) -> LexicalIndex:
    """Build a lexical index with the named engine.

    Args:
        texts: the documents; document ``i`` gets id ``i``.
        engine: a key of :data:`ENGINES`.
        k1: BM25 term-frequency saturation.
        b: BM25 document-length normalization.
        analyzer: how texts and queries become terms (see :mod:`.analysis`).

    Returns:
        The index.

    Raises:
        ValueError: if the engine name is unknown (the message lists the valid names).
    """
    try:
        engine_class = ENGINES[engine]
    except KeyError:
        raise ValueError(
            f"unknown lexical engine {engine!r}; choose one of: {', '.join(ENGINES)}"
        ) from None
    return engine_class.build(texts, k1=k1, b=b, analyzer=analyzer)
