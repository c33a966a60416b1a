"""A fast, deterministic stand-in for the embedding model, for tests about something else.

Crash, corruption, concurrency and load tests exercise saving, opening and searching; the
real model would spend their time budget on embedding. `FakeEmbedder` has the part of
`search_core.embedding.Embedder`'s interface that building, opening and searching use, and
gives each text a hashed bag-of-words vector: texts sharing words are similar, so searches
still find what they should.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search_core.embedding import Embedder, EmbeddingCache, normalize_rows, text_sha256

_WORD = re.compile(r"\S+")


class WhitespaceTokenizer:
    """Splits on whitespace; answers the calls `search_core.chunking` makes of a tokenizer."""

    model_max_length = 256

    def __call__(self, text: str, **_: Any) -> dict[str, list[tuple[int, int]]]:
        return {"offset_mapping": [(m.start(), m.end()) for m in _WORD.finditer(text)]}

    def num_special_tokens_to_add(self) -> int:
        return 2


class FakeEmbedder(Embedder):
    """Hashed bag-of-words vectors of dimension ``dim``, L2-normalized.

    A subclass of `Embedder` for the type checker; it loads no model folder, so it does not
    call ``Embedder.__init__``, and overrides everything building, opening and searching use.

    Args:
        dim: vector dimension.
        salt: changes every vector and the fingerprint (a "different model").
        tokenizer: the tokenizer chunking uses; whitespace by default (pass the real model's
            to measure chunking as it is).
    """

    def __init__(self, dim: int = 32, salt: str = "", tokenizer: Any = None) -> None:
        self._dim = dim
        self.salt = salt
        self.name = f"fake:hash-{dim}{'-' + salt if salt else ''}"
        self.path = Path(self.name)
        self.backend = "fake"
        self.batch_size = 64
        self.fingerprint = hashlib.sha256(f"fake-embedder-v1/{dim}/{salt}".encode()).hexdigest()
        self._fake_tokenizer = tokenizer or WhitespaceTokenizer()
        self.calls = 0

    @property
    def tokenizer(self) -> Any:
        return self._fake_tokenizer

    @property
    def max_seq_length(self) -> int:
        return 256

    @property
    def special_tokens(self) -> int:
        return 2

    @property
    def dim(self) -> int:
        return self._dim

    def load(self) -> None:
        """Nothing to load."""

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(f"{self.salt}/{word}".encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vector[value % self.dim] += 1.0 if (value >> 32) & 1 else -1.0
        if not vector.any():
            vector[0] = 1.0
        return vector

    def embed(
        self,
        texts: Sequence[str],
        *,
        cache: EmbeddingCache | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Vectors of ``texts``, read from and written to ``cache`` like the real model's."""
        self.calls += 1
        keys = [text_sha256(t) for t in texts]
        found = cache.get_many(self.fingerprint, keys, self.dim) if cache is not None else {}
        new = {k: self._vector(t) for k, t in zip(keys, texts, strict=True) if k not in found}
        if cache is not None and new:
            cache.put_many(self.fingerprint, new)
        found.update(new)
        if progress is not None:
            progress(len(texts), len(texts))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(np.stack([found[k] for k in keys]))

    def embed_query(self, text: str) -> np.ndarray:
        """One normalized query vector."""
        return normalize_rows(self._vector(text)[None, :])[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Normalized query vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(np.stack([self._vector(t) for t in texts]))
