"""A build's per-batch work: documents in, chunks and their vectors out.

A streaming build (:func:`search_core.collection.build_collection`) reads its source in
batches of documents (:func:`document_batches`) and turns each into an
:class:`EmbeddedBatch` with :func:`embed_batch`: the same function runs in the build's own
process or, for a build on a Ray cluster (:mod:`.distributed`), in the cluster's actors. A
batch is independent of every other: its chunk ids run from 0, and the writer numbers them
across the collection, so the same documents in the same order give the same collection
wherever their batches ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .chunking import ChunkingConfig, chunk_documents, index_title, indexed_texts
from .embedding import Embedder, EmbeddingCache
from .types import Chunk, Document

BATCH_DOCUMENTS = 256
"""Most documents in one batch."""

BATCH_CHARACTERS = 2_000_000
"""A batch closes once its documents hold this many characters (long PDFs make few chunks
per document count otherwise)."""


@dataclass(frozen=True)
class EmbeddedBatch:
    """A batch of documents, chunked and embedded.

    Attributes:
        documents: the documents, in source order.
        chunks: their chunks, in order; chunk ids run from 0 within the batch.
        titles: the title of each document as indexed (cut to what fits in a chunk), in the
            order of ``documents``.
        vectors: one L2-normalized float32 row per chunk.
    """

    documents: tuple[Document, ...]
    chunks: tuple[Chunk, ...]
    titles: tuple[str, ...]
    vectors: np.ndarray

    @cached_property
    def texts(self) -> list[str]:
        """The text of every chunk as embedded and indexed (title + chunk text)."""
        return _indexed_texts(self.documents, self.chunks, self.titles)


def _indexed_texts(
    documents: Sequence[Document], chunks: Sequence[Chunk], titles: Sequence[str]
) -> list[str]:
    by_id = {d.doc_id: t for d, t in zip(documents, titles, strict=True)}
    return indexed_texts(chunks, by_id)


def document_batches(
    documents: Iterable[Document],
    *,
    size: int = BATCH_DOCUMENTS,
    characters: int = BATCH_CHARACTERS,
) -> Iterator[list[Document]]:
    """Group documents into batches of at most ``size``, closed early at ``characters``.

    Raises:
        ValueError: ``size`` or ``characters`` below 1.
    """
    if size < 1 or characters < 1:
        raise ValueError(f"size and characters must be at least 1, got {size} and {characters}")
    batch: list[Document] = []
    held = 0
    for document in documents:
        batch.append(document)
        held += len(document.text)
        if len(batch) >= size or held >= characters:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def embed_batch(
    documents: Iterable[Document],
    embedder: Embedder,
    chunking: ChunkingConfig,
    *,
    cache: EmbeddingCache | None = None,
) -> EmbeddedBatch:
    """Chunk a batch of documents with the model's tokenizer and embed the chunks.

    Args:
        documents: the documents, in source order.
        embedder: the model (loaded on first use).
        chunking: how documents are cut.
        cache: vectors already known (by text and model fingerprint) are taken from it and
            new ones added.

    Returns:
        The batch, chunk ids from 0.
    """
    documents = tuple(documents)
    tokenizer = embedder.tokenizer
    chunks = chunk_documents(
        documents,
        tokenizer,
        chunking,
        max_seq_length=embedder.max_seq_length,
        special_tokens=embedder.special_tokens,
    )
    titles = tuple(index_title(tokenizer, d.title) for d in documents)
    texts = _indexed_texts(documents, chunks, titles)
    vectors = (
        embedder.embed(texts, cache=cache)
        if texts
        else np.zeros((0, embedder.dim), dtype=np.float32)
    )
    return EmbeddedBatch(documents, tuple(chunks), titles, vectors.astype(np.float32, copy=False))


BatchEngine = Callable[[Iterator[list[Document]]], Iterator[EmbeddedBatch]]
"""Chunks and embeds batches of documents: one :class:`EmbeddedBatch` for each batch, in
the same order, taking the batches as they come (this process's, or a Ray cluster's from
:mod:`.distributed`)."""
