"""Shared types: the records that flow through the pipeline and the results it returns.

Everything here is a frozen dataclass or a type alias, so results can be passed around,
cached and compared without anyone mutating them by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

MetadataValue = str | int | float | bool | None
"""A metadata value as read from a source file (JSON scalars)."""

Metadata = Mapping[str, MetadataValue]

SearchMode = Literal["vector", "bm25", "hybrid"]
SEARCH_MODES: tuple[str, ...] = ("vector", "bm25", "hybrid")


@dataclass(frozen=True)
class PageSpan:
    """Where one page of a PDF lies in its document's text.

    Attributes:
        page: 1-based page number in the PDF.
        char_start: offset of the page's first character in the document text.
        char_end: offset one past the page's last character.
    """

    page: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Document:
    """One document read from a source.

    Attributes:
        doc_id: the document's id, unique within a collection.
        text: the document's body text.
        title: its title, or an empty string.
        metadata: scalar fields kept with the document (used for filters and colouring).
        source: the file the document came from (relative to the source root where known).
        pages: for PDFs, where each page with text lies in ``text``; empty otherwise.
    """

    doc_id: str
    text: str
    title: str = ""
    metadata: Metadata = field(default_factory=dict)
    source: str = ""
    pages: tuple[PageSpan, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that is embedded and indexed on its own.

    Attributes:
        chunk_id: position of the chunk in the collection (0..N-1); also its vector id.
        doc_id: id of the document it comes from.
        position: 0-based position of the chunk within its document.
        char_start: offset of the chunk's first character in the document text.
        char_end: offset one past its last character.
        text: the chunk text (``document.text[char_start:char_end]``).
        pages: PDF page numbers the chunk covers; empty for other sources.
    """

    chunk_id: int
    doc_id: str
    position: int
    char_start: int
    char_end: int
    text: str
    pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class RetrieverScore:
    """What one retriever said about a hit.

    Attributes:
        rank: 1-based rank in that retriever's candidate list, or None if it did not return it.
        score: its raw score (cosine for vector, BM25 score for bm25), or None.
    """

    rank: int | None
    score: float | None


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        rank: 1-based rank in the final list.
        doc_id: the document id.
        chunk_id: the chunk id (the best chunk of the document when results are collapsed).
        text: the chunk text.
        title: the document title.
        score: the final score (cosine, BM25 score or fused RRF score, by mode).
        similarity: cosine similarity between the query and the chunk (None in bm25 mode,
            where the query is not embedded).
        vector: the vector retriever's rank and cosine.
        bm25: the BM25 retriever's rank and score.
        metadata: the document's metadata.
        pages: PDF pages of the chunk, if any.
        identifier_match: the chunk holds every rare identifier of the query (hybrid mode).
        bm25_floor: in hybrid mode, the cosine BM25 needed to rank this chunk, when its BM25
            rank did not count because its cosine is under it (``SearchParams.lexical_margin``).
    """

    rank: int
    doc_id: str
    chunk_id: int
    text: str
    title: str
    score: float
    similarity: float | None
    vector: RetrieverScore
    bm25: RetrieverScore
    metadata: Metadata = field(default_factory=dict)
    pages: tuple[int, ...] = ()
    identifier_match: bool = False
    bm25_floor: float | None = None


@dataclass(frozen=True)
class Timings:
    """Wall-clock time of each search stage, in milliseconds."""

    embed_ms: float = 0.0
    vector_ms: float = 0.0
    bm25_ms: float = 0.0
    fusion_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        """Sum of all stages."""
        return self.embed_ms + self.vector_ms + self.bm25_ms + self.fusion_ms


@dataclass(frozen=True)
class SearchResponse:
    """The answer to one query.

    Attributes:
        query: the query text.
        mode: the search mode used.
        hits: the results, best first; empty when nothing passed the threshold.
        timings: time spent in each stage.
        candidates: number of candidates considered before the threshold and the cut to k.
        below_threshold: number of candidates dropped by the similarity threshold.
        candidate_similarities: cosine of every candidate considered (for score charts).
    """

    query: str
    mode: str
    hits: tuple[Hit, ...]
    timings: Timings
    candidates: int = 0
    below_threshold: int = 0
    candidate_similarities: tuple[float, ...] = ()
