"""Errors the engine raises on purpose, each with a message a user can act on."""

from __future__ import annotations

from pathlib import Path


class SearchExplorerError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(SearchExplorerError, ValueError):
    """A source file cannot be read: names the file, the line or row, and the problem.

    Args:
        path: the file that is wrong.
        problem: what is wrong, in plain words.
        line: the 1-based line (or row) number, where one applies.
    """

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class CollectionError(SearchExplorerError):
    """A collection is missing, damaged or cannot be written."""


class IntegrityError(CollectionError):
    """A stored file does not match the checksum recorded when it was written."""


class FingerprintMismatchError(CollectionError):
    """The embedding model now loaded is not the one the collection was built with.

    Args:
        collection: the collection's name.
        stored: the model fingerprint stored with the collection.
        current: the fingerprint of the model loaded now.
    """

    def __init__(self, collection: str, stored: str, current: str) -> None:
        self.stored = stored
        self.current = current
        super().__init__(
            f"collection {collection!r} was built with model fingerprint {stored[:16]}, "
            f"but the model loaded now has fingerprint {current[:16]}; "
            "re-index the collection with this model, or load the model it was built with"
        )


class ModelError(SearchExplorerError):
    """An embedding model folder cannot be used."""
