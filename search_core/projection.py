"""Maps of a collection: UMAP projections of chunk embeddings in 2D or 3D, cached on disk.

A projection is fitted on a seeded sample of the chunks (all of them in a small collection;
the sample size is part of the result so it can be shown), with fixed seeds, so the same
settings give the same map. The chunks are also clustered (k-means on the embeddings) so the
map can be coloured by cluster. :func:`transform` places new vectors, a query or a chunk left
out of the sample, on an existing map with UMAP's ``transform``.

Projections are cached per collection version and model fingerprint in the collection's root
folder, beside its versions, without pickle::

    NAME/projections/KEY/projection.json   settings, collection version, sha256 of each array
    NAME/projections/KEY/chunk_ids.npy     the sampled chunks (sorted)
    NAME/projections/KEY/coords.npy        their map coordinates, float32 (sample, dims)
    NAME/projections/KEY/clusters.npy      their cluster numbers

The arrays are written first and ``projection.json`` last, each atomically, and every array
is checked against its recorded sha256 before use; a damaged or stale cache is fitted again.
The fitted UMAP model itself is not stored (it would need pickle): a projection read from disk
fits it again, on the same sample with the same seed, the first time something is placed on it.

umap-learn and scikit-learn are imported inside the functions that use them: importing them
takes seconds, which a page that only lists collections should not pay.
"""

from __future__ import annotations

import shutil
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection
from .errors import IntegrityError
from .storage import (
    atomic_write,
    json_bytes,
    json_load,
    npy_bytes,
    npy_load,
    read_verified,
    sha256_bytes,
    write_files,
)

__all__ = [
    "DEFAULT_SAMPLE",
    "Projection",
    "ProjectionSettings",
    "cluster_labels",
    "place_chunks",
    "project",
    "projection_folder",
    "sample_chunks",
    "transform",
    "warm_up",
]

FORMAT_VERSION = 1
PROJECTIONS_FOLDER = "projections"
META_FILE = "projection.json"
DEFAULT_SAMPLE = 2000
"""Chunks a map is fitted on by default: UMAP takes about ten seconds on 2,000 chunks."""
MAX_SAMPLE = 20_000
MIN_CHUNKS = 3
"""Fewest chunks UMAP can lay out."""
_SPECTRAL_MIN = 20
"""Below this many points UMAP's spectral initialization can fail; a random one is used."""


@dataclass(frozen=True)
class ProjectionSettings:
    """How a map is made.

    Attributes:
        dims: 2 or 3.
        sample: most chunks fitted (a seeded sample when the collection has more).
        n_neighbors: UMAP's neighbourhood size (lowered for tiny samples).
        min_dist: UMAP's minimum distance between points on the map.
        clusters: k of the k-means clustering used for colouring (lowered to the sample size).
        seed: the seed of the sample, UMAP and k-means.

    Raises:
        ValueError: a setting out of range.
    """

    dims: int = 2
    sample: int = DEFAULT_SAMPLE
    n_neighbors: int = 15
    min_dist: float = 0.1
    clusters: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"a map has 2 or 3 dimensions, got {self.dims}")
        if not MIN_CHUNKS <= self.sample <= MAX_SAMPLE:
            raise ValueError(
                f"sample must be between {MIN_CHUNKS} and {MAX_SAMPLE}, got {self.sample}"
            )
        if self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be at least 2, got {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"min_dist must be between 0 and 1, got {self.min_dist}")
        if self.clusters < 1:
            raise ValueError(f"clusters must be at least 1, got {self.clusters}")


@dataclass(eq=False)
class Projection:
    """A map of a collection's chunks.

    Attributes:
        key: the cache key (collection version, model, vectors and settings).
        settings: how it was made.
        chunk_ids: the chunks on the map, sorted; row i of ``coords`` is chunk ``chunk_ids[i]``.
        coords: map coordinates, float32, shape (sample size, dims).
        clusters: the k-means cluster of each chunk on the map.
        total: chunks in the collection (more than the sample size when it was sampled).
        cached: read from the disk cache rather than fitted now.
        seconds: time taken to fit it (0 when read from the cache).
        reducer: the fitted UMAP model, in memory only; fitted again on demand.
    """

    key: str
    settings: ProjectionSettings
    chunk_ids: np.ndarray
    coords: np.ndarray
    clusters: np.ndarray
    total: int
    cached: bool = False
    seconds: float = 0.0
    reducer: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sample_size(self) -> int:
        """Chunks on the map."""
        return len(self.chunk_ids)

    @property
    def sampled(self) -> bool:
        """Whether the map shows a sample rather than every chunk."""
        return self.sample_size < self.total

    def rows(self, chunk_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row of each chunk in ``coords``, or -1 for a chunk that is not on the map."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        position = np.searchsorted(self.chunk_ids, ids)
        position = np.clip(position, 0, max(len(self.chunk_ids) - 1, 0))
        found = len(self.chunk_ids) > 0
        inside = (self.chunk_ids[position] == ids) if found else np.zeros(len(ids), dtype=bool)
        return np.where(inside, position, -1)


def sample_chunks(total: int, size: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``size`` chunk ids out of ``total`` (all of them if fewer), sorted."""
    if total <= size:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=size, replace=False)).astype(np.int64)


def cluster_labels(vectors: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """k-means clusters of normalized vectors (scikit-learn, seeded, four restarts).

    Args:
        vectors: the vectors, shape (n, dim).
        clusters: k; lowered to n.
        seed: the seed.

    Returns:
        One cluster number (0 .. k-1) per vector.
    """
    n = len(vectors)
    k = min(clusters, n)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=4, random_state=seed)
    return np.asarray(model.fit_predict(np.asarray(vectors, dtype=np.float64)), dtype=np.int64)


def projection_folder(collection: Collection) -> Path:
    """The folder holding a collection's cached projections (``NAME/projections``)."""
    return collection.folder.parent / PROJECTIONS_FOLDER


def _cache_key(collection: Collection, settings: ProjectionSettings) -> str:
    import umap

    files = collection.manifest.get("files", {})
    identity = {
        "format": FORMAT_VERSION,
        "version": collection.manifest.get("version", ""),
        "model": collection.fingerprint,
        "embeddings": files.get("embeddings.npy", {}).get("sha256", ""),
        "chunks": len(collection.chunks),
        "settings": asdict(settings),
        "umap": getattr(umap, "__version__", ""),
    }
    return sha256_bytes(json_bytes(identity))[:24]


def _new_reducer(settings: ProjectionSettings, n: int) -> Any:
    import umap

    return umap.UMAP(
        n_components=settings.dims,
        n_neighbors=max(2, min(settings.n_neighbors, n - 1)),
        min_dist=settings.min_dist,
        metric="cosine",
        init="spectral" if n >= _SPECTRAL_MIN else "random",
        random_state=settings.seed,
        transform_seed=settings.seed,
        low_memory=True,
        n_jobs=1,
    )


def _fit(vectors: np.ndarray, settings: ProjectionSettings) -> tuple[Any, np.ndarray]:
    reducer = _new_reducer(settings, len(vectors))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coords = reducer.fit_transform(np.asarray(vectors, dtype=np.float32))
    return reducer, np.asarray(coords, dtype=np.float32)


def project(
    collection: Collection,
    settings: ProjectionSettings | None = None,
    *,
    use_cache: bool = True,
) -> Projection:
    """The map of a collection: read from the disk cache, or fitted and then cached.

    Args:
        collection: an opened collection.
        settings: how to make the map (default :class:`ProjectionSettings`).
        use_cache: read and write the disk cache.

    Returns:
        The projection; ``cached`` says whether it came from the disk.

    Raises:
        ValueError: the collection has fewer than 3 chunks.
    """
    settings = settings or ProjectionSettings()
    total = len(collection.chunks)
    if total < MIN_CHUNKS:
        raise ValueError(
            f"a map needs at least {MIN_CHUNKS} chunks; collection {collection.name!r} has {total}"
        )
    key = _cache_key(collection, settings)
    folder = projection_folder(collection) / key
    if use_cache:
        found = _read_cached(folder, key, settings, total)
        if found is not None:
            return found
    started = time.perf_counter()
    chunk_ids = sample_chunks(total, settings.sample, settings.seed)
    vectors = collection.embeddings[chunk_ids]
    reducer, coords = _fit(vectors, settings)
    clusters = cluster_labels(vectors, settings.clusters, settings.seed)
    projection = Projection(
        key=key,
        settings=settings,
        chunk_ids=chunk_ids,
        coords=coords,
        clusters=clusters,
        total=total,
        cached=False,
        seconds=time.perf_counter() - started,
        reducer=reducer,
    )
    if use_cache:
        _write_cached(folder, projection, str(collection.manifest.get("version", "")))
    return projection


def _write_cached(folder: Path, projection: Projection, version: str) -> None:
    _remove_stale(folder.parent, version)
    record = write_files(
        folder,
        {
            "chunk_ids.npy": npy_bytes(projection.chunk_ids),
            "coords.npy": npy_bytes(projection.coords),
            "clusters.npy": npy_bytes(projection.clusters),
        },
    )
    body = {
        "format": FORMAT_VERSION,
        "key": projection.key,
        "version": version,
        "settings": asdict(projection.settings),
        "total": projection.total,
        "seconds": round(projection.seconds, 3),
        "files": record,
    }
    atomic_write(
        folder / META_FILE, json_bytes({"sha256": sha256_bytes(json_bytes(body)), "body": body})
    )


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read") from exc
    record = json_load(data, str(path))
    if not isinstance(record, dict) or not isinstance(record.get("body"), dict):
        raise IntegrityError(f"{path}: not a projection record")
    body = record["body"]
    if sha256_bytes(json_bytes(body)) != record.get("sha256"):
        raise IntegrityError(f"{path}: checksum mismatch")
    return body


def _read_cached(
    folder: Path, key: str, settings: ProjectionSettings, total: int
) -> Projection | None:
    if not (folder / META_FILE).is_file():
        return None
    try:
        body = _read_meta(folder)
        files = body["files"]
        arrays = {
            name: npy_load(read_verified(folder / name, str(files[name]["sha256"])), name)
            for name in ("chunk_ids.npy", "coords.npy", "clusters.npy")
        }
        if body.get("key") != key or body.get("format") != FORMAT_VERSION:
            raise IntegrityError(f"{folder}: the cache is for other settings")
    except (IntegrityError, KeyError, TypeError):
        shutil.rmtree(folder, ignore_errors=True)  # a cache: fit again rather than fail
        return None
    chunk_ids = arrays["chunk_ids.npy"].astype(np.int64)
    coords = arrays["coords.npy"].astype(np.float32)
    clusters = arrays["clusters.npy"].astype(np.int64)
    consistent = (
        coords.shape == (len(chunk_ids), settings.dims)
        and clusters.shape == (len(chunk_ids),)
        and (len(chunk_ids) == 0 or int(chunk_ids.max()) < total)
    )
    if not consistent:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return Projection(key, settings, chunk_ids, coords, clusters, total, cached=True)


def _remove_stale(root: Path, version: str) -> None:
    """Drop cached projections of other collection versions (those versions are gone)."""
    if not root.is_dir():
        return
    for child in root.iterdir():
        if not child.is_dir():
            continue
        try:
            stale = _read_meta(child).get("version") != version
        except IntegrityError:
            stale = True
        if stale:
            shutil.rmtree(child, ignore_errors=True)


def _reducer(projection: Projection, collection: Collection) -> Any:
    """The fitted UMAP model of a projection, fitted again when it was read from disk.

    The fit is seeded, so it reproduces the cached coordinates; should a different library
    build give other ones, the projection takes the new coordinates, so that what is placed
    on the map and the map agree.
    """
    with projection._lock:
        if projection.reducer is None:
            reducer, coords = _fit(collection.embeddings[projection.chunk_ids], projection.settings)
            if coords.shape != projection.coords.shape or not np.allclose(
                coords, projection.coords, atol=1e-3
            ):
                projection.coords = coords
            projection.reducer = reducer
        return projection.reducer


WARM_UP_POINTS = 300
"""Points of the throw-away map :func:`warm_up` fits (fewer than 4,096: the exact-neighbour
path that maps of the default sample size take)."""


def warm_up(dim: int = 384, seed: int = 0) -> float:
    """Compile umap-learn's numba kernels now, on a small random map, and return the seconds.

    The first map of a process otherwise spends 10-30 s compiling before it starts (measured:
    placing a query on the sample's cached map took 15 s in a fresh process, 0.6 s after a
    warm-up of 12 s). The app runs this in a background thread when it starts.

    Args:
        dim: the vector dimension of the throw-away points.
        seed: their seed.
    """
    tick = time.perf_counter()
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((WARM_UP_POINTS, dim)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    reducer, _ = _fit(points, ProjectionSettings(seed=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer.transform(points[:1])
    return time.perf_counter() - tick


def transform(projection: Projection, collection: Collection, vectors: np.ndarray) -> np.ndarray:
    """Place new normalized vectors on a map (UMAP ``transform``, seeded).

    Args:
        projection: the map.
        collection: the collection it was made from.
        vectors: shape (n, dim) or (dim,).

    Returns:
        Map coordinates, shape (n, dims).
    """
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if len(matrix) == 0:
        return np.zeros((0, projection.settings.dims), dtype=np.float32)
    reducer = _reducer(projection, collection)
    # One transform at a time: the app shares a projection between sessions, and UMAP's
    # transform is not documented as thread-safe.
    with projection._lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coords = reducer.transform(matrix)
    return np.asarray(coords, dtype=np.float32)


def place_chunks(
    projection: Projection, collection: Collection, chunk_ids: Sequence[int]
) -> np.ndarray:
    """Map coordinates of chunks: their own for chunks on the map, else transformed.

    Args:
        projection: the map.
        collection: the collection.
        chunk_ids: the chunks.

    Returns:
        Coordinates, shape (len(chunk_ids), dims), in the order given.
    """
    ids = np.asarray(chunk_ids, dtype=np.int64)
    result = np.zeros((len(ids), projection.settings.dims), dtype=np.float32)
    if not len(ids):
        return result
    rows = projection.rows(ids)
    missing = rows < 0
    if missing.any():
        result[missing] = transform(projection, collection, collection.embeddings[ids[missing]])
    result[~missing] = projection.coords[rows[~missing]]
    return result
