"""Search Explorer's engine: ingest, chunk, embed, index, search and evaluate a corpus."""

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
