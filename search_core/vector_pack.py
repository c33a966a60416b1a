"""Vector packs: a corpus folder that carries its chunks' vectors, so a build need not embed.

Embedding is most of a build: 533 chunks of the sample take about 20 s on two cores with
onnx-fp32, everything else about 4 s. A corpus folder may therefore carry, in a hidden folder
``.vectors`` (which ingestion skips like any hidden file), the vectors a build made of it:

    .vectors/<backend>.npy    float32 vectors, one row per chunk text
    .vectors/<backend>.json   {"format", "fingerprint", "backend", "dim", "keys", "sha256"}

``keys`` are the sha256 of each indexed chunk text (the embedding cache's keys) and ``sha256``
covers the fingerprint, the keys and the vector bytes together, so a pack edited or damaged in
any part is refused as a whole. A build uses a pack only when its model fingerprint is the
build's own (the same model files and backend): the vectors are then the ones this model makes
of these texts, to the last bits of float rounding. A text the pack does not hold is embedded
as usual, so a pack made before the corpus changed still saves the work it can.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .embedding import manifest_backend, text_sha256
from .errors import InputError
from .storage import atomic_write, npy_bytes, npy_load, sha256_bytes

if TYPE_CHECKING:
    from .collection import Collection

PACK_FOLDER = ".vectors"
PACK_FORMAT = 1
MAX_PACK_BYTES = 2 * 1024**3
"""Largest ``.npy`` a build reads (2 GiB, 1.4 million 384-dim vectors)."""


@dataclass(frozen=True)
class VectorPack:
    """Vectors of chunk texts made by one model, keyed by the sha256 of each text.

    Attributes:
        fingerprint: the model fingerprint (model files and backend) that made them.
        backend: the embedding backend.
        keys: sha256 of each text, in the order of ``vectors``' rows.
        vectors: normalized float32 vectors, shape ``(len(keys), dim)``.
    """

    fingerprint: str
    backend: str
    keys: tuple[str, ...]
    vectors: np.ndarray

    def by_key(self) -> dict[str, np.ndarray]:
        """Each text's vector, by the sha256 of the text."""
        return dict(zip(self.keys, self.vectors, strict=True))


def pack_files(folder: str | Path, backend: str) -> tuple[Path, Path]:
    """The JSON record and the ``.npy`` vectors of a corpus folder's pack for ``backend``."""
    base = Path(folder) / PACK_FOLDER
    return base / f"{backend}.json", base / f"{backend}.npy"


def pack_checksum(fingerprint: str, keys: tuple[str, ...] | list[str], data: bytes) -> str:
    """sha256 binding a pack's vector bytes to its model fingerprint and its text keys."""
    head = json.dumps([fingerprint, list(keys)], separators=(",", ":")).encode("ascii")
    return sha256_bytes(head + b"\n" + data)


def write_vector_pack(
    folder: str | Path, texts: list[str], vectors: np.ndarray, fingerprint: str, backend: str
) -> Path:
    """Write the vectors of ``texts`` into ``folder/.vectors/`` (atomically, vectors first).

    Args:
        folder: the corpus folder the pack goes with.
        texts: the indexed chunk texts (``Collection.indexed_texts()``).
        vectors: their normalized vectors, one row per text.
        fingerprint: the fingerprint of the model that made them.
        backend: its backend; a folder holds one pack per backend.

    Returns:
        The pack's JSON file.

    Raises:
        ValueError: texts and vectors disagree in number.
    """
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(texts):
        raise ValueError(f"{len(texts)} texts but vectors of shape {array.shape}")
    keys: dict[str, int] = {}
    for row, text in enumerate(texts):
        keys.setdefault(text_sha256(text), row)  # a repeated text has one vector
    array = array[list(keys.values())]
    data = npy_bytes(array)
    record_file, data_file = pack_files(folder, backend)
    record = {
        "format": PACK_FORMAT,
        "fingerprint": fingerprint,
        "backend": backend,
        "dim": int(array.shape[1]),
        "keys": list(keys),
        "sha256": pack_checksum(fingerprint, list(keys), data),
    }
    atomic_write(data_file, data)
    atomic_write(record_file, json.dumps(record, indent=1).encode("utf-8"))
    return record_file


def pack_collection(collection: Collection, folder: str | Path) -> Path:
    """Write a collection's vectors as the pack of a corpus folder (its source, usually).

    A later build of that folder with the same model and chunking embeds nothing.

    Args:
        collection: an opened collection.
        folder: the corpus folder.

    Returns:
        The pack's JSON file.
    """
    model = collection.manifest["model"]
    return write_vector_pack(
        folder,
        collection.indexed_texts(),
        collection.embeddings,
        model["fingerprint"],
        manifest_backend(model),
    )


def read_vector_pack(folder: str | Path, backend: str) -> VectorPack | None:
    """The pack of ``backend`` that goes with a corpus folder, if it carries one.

    Args:
        folder: the corpus folder.
        backend: the embedding backend.

    Returns:
        The verified pack, or None when the folder carries none for this backend.

    Raises:
        InputError: the pack is damaged, edited, too large or not a pack (naming the file).
    """
    record_file, data_file = pack_files(folder, backend)
    if not record_file.is_file() and not data_file.exists():
        return None
    for file in (record_file, data_file):
        if file.is_symlink() or not file.is_file():
            raise InputError(str(file), "not a regular file")
    try:
        record = json.loads(record_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(str(record_file), f"not a readable vector pack ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != PACK_FORMAT:
        raise InputError(str(record_file), f"not a vector pack of format {PACK_FORMAT}")
    fingerprint, keys, dim = record.get("fingerprint"), record.get("keys"), record.get("dim")
    if (
        not isinstance(fingerprint, str)
        or not isinstance(keys, list)
        or not all(isinstance(k, str) for k in keys)
        or not isinstance(dim, int)
        or record.get("backend") != backend
    ):
        raise InputError(str(record_file), "fingerprint, backend, dim or keys missing or wrong")
    size = data_file.stat().st_size
    if size > MAX_PACK_BYTES:
        raise InputError(str(data_file), f"{size:,} bytes, more than {MAX_PACK_BYTES:,}")
    data = data_file.read_bytes()
    if pack_checksum(fingerprint, keys, data) != record.get("sha256"):
        raise InputError(
            str(data_file), "checksum mismatch: the pack was changed or damaged after it was made"
        )
    vectors = npy_load(data, str(data_file))
    if vectors.dtype != np.float32 or vectors.shape != (len(keys), dim):
        raise InputError(str(data_file), f"expected {len(keys)} float32 vectors of {dim}")
    return VectorPack(fingerprint, backend, tuple(keys), vectors)
