"""Search Explorer's engine: ingest, chunk, embed, index, search and evaluate a corpus.

The names below are imported on first use, not with the package: ``search-explorer list``
or a search then loads only the libraries its path needs (PDF reading, BM25 indexing and the
model's libraries take seconds to import).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chunking import ChunkingConfig
    from .collection import (
        BuildOptions,
        Collection,
        build_collection,
        delete_collection,
        list_collections,
        open_collection,
    )
    from .embedding import Embedder
    from .ingest import FieldMap, read_source
    from .search import SearchParams, search
    from .types import Chunk, Document, Hit, SearchResponse

_MODULE_OF = {
    "BuildOptions": "collection",
    "Chunk": "types",
    "ChunkingConfig": "chunking",
    "Collection": "collection",
    "Document": "types",
    "Embedder": "embedding",
    "FieldMap": "ingest",
    "Hit": "types",
    "SearchParams": "search",
    "SearchResponse": "types",
    "build_collection": "collection",
    "delete_collection": "collection",
    "list_collections": "collection",
    "open_collection": "collection",
    "read_source": "ingest",
    "search": "search",
}

__all__ = [
    "BuildOptions",
    "Chunk",
    "ChunkingConfig",
    "Collection",
    "Document",
    "Embedder",
    "FieldMap",
    "Hit",
    "SearchParams",
    "SearchResponse",
    "build_collection",
    "delete_collection",
    "list_collections",
    "open_collection",
    "read_source",
    "search",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
