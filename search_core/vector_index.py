"""Vector index: exact and approximate inner-product search over normalized vectors (FAISS).

Vectors arrive L2-normalized (the embedding stage's job), so the inner product is the cosine.
Four kinds are registered by name in ``INDEX_KINDS``:

- ``flat``: ``IndexFlatIP``, exact search over every vector.
- ``ivf``: ``IndexIVFFlat``, k-means lists; a query scans the ``nprobe`` lists nearest to it.
- ``hnsw``: ``IndexHNSWFlat``, a navigable small-world graph explored with a beam of
  ``ef_search`` candidates.
- ``ivfpq``: ``IndexIVFPQ``, IVF lists holding product-quantized codes (``m`` sub-vectors of
  ``nbits`` bits each); its candidates are re-ranked by exact cosine with the stored vectors.

A corpus too small to train a kind falls back to a simpler one (``ivfpq`` -> ``ivf`` ->
``flat``); ``VectorIndex.kind`` says what was built and ``fallback_reason`` says why.

Searches never change the shared FAISS index: ``nprobe``, ``ef_search`` and the ``allowed``
filter travel with each call in a fresh FAISS ``SearchParameters`` object, so one
``VectorIndex`` can serve concurrent searches with different settings.

The ``VectorIndex`` keeps a reference to the vectors it was built or loaded with, for the
exact search over a small allowed set, for the rare approximate search that comes back
short of ``k`` hits, and to re-rank ivfpq's candidates.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import faiss
import numpy as np
import numpy.typing as npt

__all__ = [
    "INDEX_KINDS",
    "INDEX_PARAM_RANGES",
    "Builder",
    "VectorIndex",
    "build_vector_index",
    "check_index_param",
    "default_params",
]

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
SearchResult = tuple[IdArray, FloatArray]
"""Ids (int64) and scores (float32) of one query's hits, best first."""

MIN_POINTS_PER_CENTROID = 39
"""FAISS's k-means warns below this many training points per centroid."""

MAX_POINTS_PER_CENTROID = 256
"""Training sample per centroid; FAISS's k-means subsamples to this anyway."""

MIN_NLIST = 4
"""Fewer IVF lists than this is no speed-up worth the recall loss: use flat."""

PQ_NBITS_MAX = 8
PQ_NBITS_MIN = 4
PQ_M_CHOICES = (48, 32, 24, 16, 8, 4, 2, 1)
"""Candidate numbers of PQ sub-vectors, largest first; the first that divides dim is used."""

PQ_RERANK = 10
"""ivfpq fetches this many candidates per hit wanted and re-ranks them by exact cosine."""

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128

MAX_NLIST = 1 << 20
"""Most IVF lists (1,048,576): 4 * sqrt(N) reaches it at 68 billion vectors."""

MAX_BEAM = 100_000
"""Widest HNSW beam, building or searching: as many as the most candidates a search takes."""

INDEX_PARAM_RANGES: dict[str, tuple[int, int]] = {
    "nlist": (1, MAX_NLIST),
    "nprobe": (1, MAX_NLIST),
    "m": (1, 4096),
    "nbits": (PQ_NBITS_MIN, 16),
    "M": (2, 512),
    "ef_construction": (1, MAX_BEAM),
    "ef_search": (1, MAX_BEAM),
}
"""The valid range of each index parameter, bounds included.

=================  ==============  =========================================================
parameter          range           why
=================  ==============  =========================================================
nlist              1 .. 1,048,576  also at most N // 39 (k-means needs 39 points per list)
nprobe             1 .. 1,048,576  lists probed; a search caps it at nlist
m                  1 .. 4,096      PQ sub-vectors; must also divide the dimension
nbits              4 .. 16         bits per PQ code; FAISS trains 2**nbits centroids
M                  2 .. 512        HNSW links per node; memory grows with 2 * M per vector
ef_construction    1 .. 100,000    HNSW beam while inserting
ef_search          1 .. 100,000    HNSW beam while searching (raised to k when smaller)
=================  ==============  =========================================================

FAISS stores these as C ints or size_t: a value past the bounds would otherwise reach it and
raise OverflowError, or allocate a beam of billions of entries.
"""

EXACT_FILTER_MAX_COUNT = 4096
EXACT_FILTER_MAX_FRACTION = 0.05
"""An allowed set of at most max(count, fraction * ntotal) vectors is searched exactly.

Approximate search with a selector degrades as the filter narrows (IVF probes lists with no
allowed vector, HNSW walks a graph mostly filtered out), while a matrix-vector product over a
few thousand vectors costs well under a millisecond.
"""

TRAINING_SEED = 0


def _default_nlist(n: int) -> int:
    """About 4 * sqrt(n) lists, but at least 39 training points per list."""
    return min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_CENTROID)


def _default_nprobe(nlist: int) -> int:
    """Lists probed per query: ``clamp(ceil(2 * sqrt(nlist)), 8, nlist)``.

    The number of lists holding a query's true neighbours grows with nlist, but more slowly
    than nlist, so a fixed fraction of lists (say nlist // 16) over-probes large indexes.
    """
    return min(nlist, max(8, math.ceil(2 * math.sqrt(nlist))))


def _default_pq_m(dim: int) -> int:
    return next(m for m in PQ_M_CHOICES if dim % m == 0)


def _pq_min_vectors(nbits: int) -> int:
    """Training points a product quantizer with 2**nbits codes per sub-vector needs."""
    return MIN_POINTS_PER_CENTROID * 2**nbits


def _training_sample(vectors: FloatArray, size: int) -> FloatArray:
    """All vectors, or a seeded random sample of ``size`` of them (deterministic)."""
    if len(vectors) <= size:
        return vectors
    rng = np.random.default_rng(TRAINING_SEED)
    return vectors[np.sort(rng.choice(len(vectors), size, replace=False))]


class Builder(ABC):
    """How one index kind is configured, built and searched.

    Subclasses hold no state; ``INDEX_KINDS`` maps each kind's name to one instance.

    Attributes:
        name: the kind's name in ``INDEX_KINDS``.
        faiss_type: the FAISS class an index of this kind is an instance of.
        exact: whether search returns the exact top k.
        fallback: the kind built instead when the corpus is too small for this one.
        rerank: candidates fetched from FAISS per hit wanted, then re-scored with the exact
            vectors (1: FAISS's own top k and scores are used as they are).
    """

    name: ClassVar[str]
    faiss_type: ClassVar[type[faiss.Index]]
    exact: ClassVar[bool] = False
    fallback: ClassVar[str | None] = None
    rerank: ClassVar[int] = 1

    def defaults(self, n: int, dim: int) -> dict[str, int]:
        """Default parameters for ``n`` vectors of ``dim`` dimensions; keys are the valid names."""
        return {}

    def too_small(self, n: int) -> str | None:
        """Why ``n`` vectors are too few for this kind, or None if they are enough."""
        return None

    def validate(self, n: int, dim: int, params: Mapping[str, int]) -> None:
        """Raise ValueError if ``params`` cannot be built on ``n`` vectors of ``dim`` dims."""
        return None

    @abstractmethod
    def create(self, vectors: FloatArray, params: Mapping[str, int]) -> faiss.Index:
        """Build and fill the FAISS index."""

    def search_parameters(
        self, params: Mapping[str, int], k: int, nprobe: int | None, ef_search: int | None
    ) -> faiss.SearchParameters:
        """Per-call FAISS search parameters; options that do not apply to the kind are ignored."""
        return faiss.SearchParameters()

    @abstractmethod
    def estimate_bytes(self, ntotal: int, dim: int, params: Mapping[str, int]) -> int:
        """Approximate size of the serialized index."""


class FlatBuilder(Builder):
    """Exact search: the inner product with every vector."""

    name = "flat"
    faiss_type = faiss.IndexFlat
    exact = True

    def create(self, vectors: FloatArray, params: Mapping[str, int]) -> faiss.Index:
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return index

    def estimate_bytes(self, ntotal: int, dim: int, params: Mapping[str, int]) -> int:
        return ntotal * dim * 4


class IVFBuilder(Builder):
    """Inverted lists over spherical k-means centroids; a query scans its ``nprobe`` nearest lists.

    ``nlist`` is about ``4 * sqrt(N)``, capped at ``N // 39`` so that k-means has at least 39
    training points per centroid; below 4 lists (N < 156) the index falls back to flat.

    The default ``nprobe`` is ``clamp(ceil(2 * sqrt(nlist)), 8, nlist)``: every list of an
    index with up to 8 lists, 46 of 512 lists at 20k vectors, 127 of 4,000 lists at 1M.
    Calibration on 30k real all-MiniLM-L6-v2 embeddings (MS MARCO and Cranfield passages and
    sentences, searched with their judged queries): recall@10 against exact search reaches
    0.95 at about 8 probes of 128 lists and 16 of 693, so the probes needed grow roughly like
    nlist**0.35, more slowly than the rule's sqrt; the rule's 23 and 53 probes measured 0.99.
    Extrapolated to 4,000 lists, 0.95 needs some 30-40 probes, and the rule's 127 leave a
    threefold margin. Work per query at 1M vectors is 4,000 centroids plus 127 lists of about
    250 vectors (280 with the 1.13 list imbalance measured on the real data), 1/25 of a flat
    scan; a fixed share such as ``nlist // 16`` (250 probes) would scan 7% of the corpus and be
    less than 15 times faster than flat.
    """

    name = "ivf"
    faiss_type: ClassVar[type[faiss.Index]] = faiss.IndexIVFFlat
    fallback = "flat"

    def defaults(self, n: int, dim: int) -> dict[str, int]:
        nlist = _default_nlist(n)
        return {"nlist": nlist, "nprobe": _default_nprobe(nlist)}

    def too_small(self, n: int) -> str | None:
        needed = MIN_NLIST * MIN_POINTS_PER_CENTROID
        if n >= needed:
            return None
        return (
            f"{self.name} needs at least {needed} vectors ({MIN_NLIST} lists of "
            f"{MIN_POINTS_PER_CENTROID} training points each), the corpus has {n}"
        )

    def validate(self, n: int, dim: int, params: Mapping[str, int]) -> None:
        most = n // MIN_POINTS_PER_CENTROID
        if params["nlist"] > most:
            raise ValueError(
                f"nlist={params['nlist']} is too many lists for {n} vectors: k-means needs "
                f"{MIN_POINTS_PER_CENTROID} training points per list, so nlist <= {most}"
            )

    def create(self, vectors: FloatArray, params: Mapping[str, int]) -> faiss.Index:
        dim = vectors.shape[1]
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(dim), dim, params["nlist"], faiss.METRIC_INNER_PRODUCT
        )
        return self._train_and_fill(index, vectors, params)

    def _train_and_fill(
        self, index: faiss.IndexIVF, vectors: FloatArray, params: Mapping[str, int]
    ) -> faiss.Index:
        # Unit-norm centroids match the cosine geometry, and measured better recall.
        index.cp.spherical = True
        index.train(_training_sample(vectors, self._training_size(params)))
        index.add(vectors)
        # Set once, so a serialized index carries its default; searches pass their own.
        index.nprobe = params["nprobe"]
        return index

    def _training_size(self, params: Mapping[str, int]) -> int:
        return MAX_POINTS_PER_CENTROID * params["nlist"]

    def search_parameters(
        self, params: Mapping[str, int], k: int, nprobe: int | None, ef_search: int | None
    ) -> faiss.SearchParameters:
        search = faiss.SearchParametersIVF()
        search.nprobe = min(params["nlist"], nprobe if nprobe is not None else params["nprobe"])
        return search

    def estimate_bytes(self, ntotal: int, dim: int, params: Mapping[str, int]) -> int:
        # Centroids, then per vector its codes and its 8-byte id.
        return params["nlist"] * dim * 4 + ntotal * (self._code_size(dim, params) + 8)

    def _code_size(self, dim: int, params: Mapping[str, int]) -> int:
        return dim * 4


class IVFPQBuilder(IVFBuilder):
    """IVF lists holding product-quantized residuals: ``m`` sub-vectors of ``nbits`` bits each.

    ``m`` defaults to the largest of 48, 32, 24, 16, 8, 4, 2, 1 that divides dim (48 for
    384-d, so 8-d sub-vectors and 48-byte codes at nbits=8). Training a sub-quantizer of
    ``2**nbits`` centroids takes about ``39 * 2**nbits`` vectors, so nbits (default 8) is lowered
    for small corpora, not below 4; under ``39 * 16 = 624`` vectors the index falls back to
    ivf. ``nlist`` and ``nprobe`` follow the ivf rules.

    The quantized codes rank the very top poorly (recall@10 0.37 against exact search on 1M
    vectors, BENCHMARKS.md), so a search fetches ``PQ_RERANK * k`` candidates and re-ranks
    them by their exact cosine with the stored vectors: hits and scores are exact among the
    candidates the lists gave.
    """

    name = "ivfpq"
    faiss_type = faiss.IndexIVFPQ
    fallback = "ivf"
    rerank = PQ_RERANK

    def defaults(self, n: int, dim: int) -> dict[str, int]:
        nbits = next(
            (
                bits
                for bits in range(PQ_NBITS_MAX, PQ_NBITS_MIN - 1, -1)
                if n >= _pq_min_vectors(bits)
            ),
            PQ_NBITS_MIN,
        )
        return {**super().defaults(n, dim), "m": _default_pq_m(dim), "nbits": nbits}

    def too_small(self, n: int) -> str | None:
        needed = _pq_min_vectors(PQ_NBITS_MIN)
        if n >= needed:
            return super().too_small(n)
        return (
            f"{self.name} needs at least {needed} vectors to train its product quantizer "
            f"({MIN_POINTS_PER_CENTROID} points for each of 2**{PQ_NBITS_MIN} codes), "
            f"the corpus has {n}"
        )

    def validate(self, n: int, dim: int, params: Mapping[str, int]) -> None:
        super().validate(n, dim, params)
        m, nbits = params["m"], params["nbits"]
        if dim % m:
            raise ValueError(f"m={m} must divide the vector dimension {dim}")
        if n < _pq_min_vectors(nbits):
            raise ValueError(
                f"nbits={nbits} needs at least {_pq_min_vectors(nbits)} training vectors, "
                f"the corpus has {n}; leave nbits unset to choose it from the corpus size"
            )

    def create(self, vectors: FloatArray, params: Mapping[str, int]) -> faiss.Index:
        dim = vectors.shape[1]
        index = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(dim),
            dim,
            params["nlist"],
            params["m"],
            params["nbits"],
            faiss.METRIC_INNER_PRODUCT,
        )
        return self._train_and_fill(index, vectors, params)

    def _training_size(self, params: Mapping[str, int]) -> int:
        return MAX_POINTS_PER_CENTROID * max(params["nlist"], 2 ** params["nbits"])

    def estimate_bytes(self, ntotal: int, dim: int, params: Mapping[str, int]) -> int:
        codebooks = 2 ** params["nbits"] * dim * 4
        return codebooks + super().estimate_bytes(ntotal, dim, params)

    def _code_size(self, dim: int, params: Mapping[str, int]) -> int:
        return math.ceil(params["m"] * params["nbits"] / 8)


class HNSWBuilder(Builder):
    """A hierarchical navigable small-world graph with ``M`` links per node (2*M on level 0).

    ``ef_construction`` is the beam width while inserting, ``ef_search`` while searching; a
    search uses ``max(ef_search, k)``, as a beam narrower than k cannot hold k results.
    """

    name = "hnsw"
    faiss_type = faiss.IndexHNSWFlat

    def defaults(self, n: int, dim: int) -> dict[str, int]:
        return {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}

    def create(self, vectors: FloatArray, params: Mapping[str, int]) -> faiss.Index:
        index = faiss.IndexHNSWFlat(vectors.shape[1], params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["ef_construction"]
        index.hnsw.efSearch = params["ef_search"]
        index.add(vectors)
        return index

    def search_parameters(
        self, params: Mapping[str, int], k: int, nprobe: int | None, ef_search: int | None
    ) -> faiss.SearchParameters:
        search = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        search.efSearch = max(k, ef_search if ef_search is not None else params["ef_search"])
        result: faiss.SearchParameters = search
        return result

    def estimate_bytes(self, ntotal: int, dim: int, params: Mapping[str, int]) -> int:
        # Vectors; 2*M links on level 0 and on average M / (M - 1) more above (int32 each);
        # a level (int32) and an offset (int64) per node.
        links = 2 * params["M"] + params["M"] / (params["M"] - 1)
        return round(ntotal * (dim * 4 + links * 4 + 4 + 8))


INDEX_KINDS: dict[str, Builder] = {
    builder.name: builder
    for builder in (FlatBuilder(), IVFBuilder(), HNSWBuilder(), IVFPQBuilder())
}
"""Index kinds by name."""


def _builder(kind: str) -> Builder:
    try:
        return INDEX_KINDS[kind]
    except KeyError:
        valid = ", ".join(INDEX_KINDS)
        raise ValueError(f"unknown index kind {kind!r}; valid kinds: {valid}") from None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_index_param(name: str, value: Any) -> int:
    """Check one index parameter against ``INDEX_PARAM_RANGES``.

    Args:
        name: a key of ``INDEX_PARAM_RANGES``.
        value: the value given.

    Returns:
        The value as an int.

    Raises:
        ValueError: the value is not an integer (bools are not), or is outside the range; the
            message states the range.
    """
    low, high = INDEX_PARAM_RANGES[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not low <= value <= high
    ):
        raise ValueError(f"{name} must be an integer from {low:,} to {high:,}, got {value!r}")
    return int(value)


def _float_matrix(array: Any, name: str, dim: int | None = None) -> FloatArray:
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    if matrix.ndim != 2 or (dim is not None and matrix.shape[1] != dim):
        width = "d" if dim is None else str(dim)
        raise ValueError(f"{name} must have shape (n, {width}), got {matrix.shape}")
    return matrix


def default_params(kind: str, n: int, dim: int) -> dict[str, int]:
    """The parameters ``build_vector_index`` uses for ``kind`` unless told otherwise.

    Args:
        kind: an index kind, a key of ``INDEX_KINDS``.
        n: number of vectors in the corpus.
        dim: their dimension.

    Returns:
        Parameter names and values; empty for ``flat``. For a corpus too small for the kind,
        ``build_vector_index`` falls back to a simpler kind and uses that kind's defaults.

    Raises:
        ValueError: if ``kind`` is unknown.
    """
    return _builder(kind).defaults(n, dim)


def _plan(
    kind: str, n: int, dim: int, overrides: Mapping[str, int]
) -> tuple[Builder, dict[str, int], str | None]:
    """Choose the kind actually built, its parameters and the reason for any fallback."""
    builder = _builder(kind)
    valid = builder.defaults(n, dim)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        names = ", ".join(valid) or "none"
        raise ValueError(f"unknown parameter(s) for {kind}: {', '.join(unknown)}; valid: {names}")
    for name, value in overrides.items():
        check_index_param(name, value)

    reasons = []
    while (reason := builder.too_small(n)) is not None and builder.fallback is not None:
        reasons.append(f"{reason}; using {builder.fallback} instead")
        builder = INDEX_KINDS[builder.fallback]
    defaults = builder.defaults(n, dim)
    params = defaults | {name: int(v) for name, v in overrides.items() if name in defaults}
    builder.validate(n, dim, params)
    return builder, params, "; ".join(reasons) or None


def build_vector_index(vectors: Any, kind: str = "flat", **params: int) -> VectorIndex:
    """Build an index of ``kind`` over ``vectors``.

    Args:
        vectors: float32 array of shape (n, dim), each row L2-normalized (not checked). The
            returned index keeps a reference to it (a copy only if it was not float32 and
            C-contiguous); do not modify it afterwards.
        kind: one of ``INDEX_KINDS``: flat, ivf, hnsw, ivfpq.
        **params: overrides of ``default_params(kind, n, dim)``: ``nlist``, ``nprobe`` (ivf,
            ivfpq), ``m``, ``nbits`` (ivfpq), ``M``, ``ef_construction``, ``ef_search``
            (hnsw). Overrides for the requested kind that do not apply to a fallback kind are
            dropped.

    Returns:
        The built index. ``kind`` may differ from the one requested when the corpus is too
        small for it; ``fallback_reason`` then says why.

    Raises:
        ValueError: for an unknown kind or parameter, a parameter that is not an integer in
            its ``INDEX_PARAM_RANGES`` range, or one the corpus is too small for (for example
            ``nlist > n // 39``).
    """
    matrix = _float_matrix(vectors, "vectors")
    n, dim = matrix.shape
    if dim == 0:
        raise ValueError("vectors must have at least one dimension")
    builder, chosen, reason = _plan(kind, n, dim, params)
    return VectorIndex(
        builder.create(matrix, chosen),
        matrix,
        requested_kind=kind,
        kind=builder.name,
        params=chosen,
        fallback_reason=reason,
    )


def _ranked(ids: IdArray, scores: FloatArray) -> SearchResult:
    """Hits sorted by descending score, ties by ascending id."""
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


def _exact_top_k(
    vectors: FloatArray, query: FloatArray, k: int, candidates: IdArray | None
) -> SearchResult:
    """Exact top ``k`` among ``candidates`` (every vector when None), with numpy."""
    pool = vectors if candidates is None else vectors[candidates]
    scores = pool @ query
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    ids = top if candidates is None else candidates[top]
    return _ranked(ids.astype(np.int64), scores[top])


def _empty_result() -> SearchResult:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


class VectorIndex:
    """A FAISS index over normalized vectors, searched by inner product (cosine).

    Create one with ``build_vector_index`` or ``VectorIndex.from_bytes``. Searching is safe
    from several threads at once: no search changes the index.

    Args:
        index: the FAISS index, of the class ``INDEX_KINDS[kind]`` builds.
        vectors: the indexed vectors, row i being id i; kept by reference.
        requested_kind: the kind asked for.
        kind: the kind built.
        params: the parameters it was built with.
        fallback_reason: why ``kind`` differs from ``requested_kind``, or None.

    Raises:
        ValueError: if ``vectors`` does not match the index's size and dimension.
    """

    def __init__(
        self,
        index: faiss.Index,
        vectors: Any,
        *,
        requested_kind: str,
        kind: str,
        params: Mapping[str, int],
        fallback_reason: str | None,
    ) -> None:
        self._builder = _builder(kind)
        self._vectors = _float_matrix(vectors, "vectors")
        if self._vectors.shape != (index.ntotal, index.d):
            raise ValueError(
                f"vectors have shape {self._vectors.shape} but the index holds "
                f"{index.ntotal} vectors of dimension {index.d}"
            )
        self._index = index
        self._requested_kind = requested_kind
        self._params = dict(params)
        self._fallback_reason = fallback_reason

    @property
    def requested_kind(self) -> str:
        """The kind asked for."""
        return self._requested_kind

    @property
    def kind(self) -> str:
        """The kind built: ``requested_kind`` unless the corpus was too small for it."""
        return self._builder.name

    @property
    def params(self) -> dict[str, int]:
        """The parameters the index was built with (a copy)."""
        return dict(self._params)

    @property
    def fallback_reason(self) -> str | None:
        """Why ``kind`` differs from ``requested_kind``, or None."""
        return self._fallback_reason

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._index.d)

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index, for inspection only: changing it is not thread-safe."""
        return self._index

    def search(
        self,
        query: Any,
        k: int,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        allowed: BoolArray | None = None,
    ) -> SearchResult:
        """Find the ``k`` indexed vectors with the highest inner product with ``query``.

        Args:
            query: one normalized vector of shape (dim,).
            k: number of hits wanted; more than ``ntotal`` is fine.
            nprobe: lists to scan for ivf and ivfpq (default: the index's ``params``); capped
                at nlist. Ignored by flat and hnsw, so one setting can be passed to any kind,
                including one that fell back.
            ef_search: beam width for hnsw (default: the index's ``params``), raised to k if
                smaller. Ignored by the other kinds.
            allowed: optional bool mask of length ``ntotal``; only ids where it is True are
                returned. An allowed set of at most 4,096 vectors (or 5% of the index, if that
                is more) is searched exactly with numpy, as approximate search degrades under
                narrow filters.

        Returns:
            ``(ids, scores)``: int64 ids and float32 scores, best first (ties by id). There are
            exactly ``min(k, number of allowed vectors)`` hits: an approximate search that
            comes back short is redone exactly over the allowed vectors. Scores are exact
            cosines (ivfpq's candidates are re-ranked with the stored vectors).

        Raises:
            ValueError: for a query of the wrong shape, k that is not a positive integer,
                nprobe or ef_search outside its ``INDEX_PARAM_RANGES`` range, or an
                ``allowed`` mask that is not bool of length ntotal.
        """
        single = np.asarray(query)
        if single.ndim != 1:
            raise ValueError(f"query must have shape ({self.dim},), got {single.shape}")
        return self.search_batch(
            single[None, :], k, nprobe=nprobe, ef_search=ef_search, allowed=allowed
        )[0]

    def search_batch(
        self,
        queries: Any,
        k: int,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        allowed: BoolArray | None = None,
    ) -> list[SearchResult]:
        """Run ``search`` for each row of ``queries`` (shape (n, dim)) in one FAISS call.

        Args and Raises are as for ``search``; ``allowed`` applies to every query.

        Returns:
            One ``(ids, scores)`` pair per query, in order.
        """
        matrix = _float_matrix(queries, "queries", self.dim)
        k = _positive_int("k", k)
        if nprobe is not None:
            check_index_param("nprobe", nprobe)
        if ef_search is not None:
            check_index_param("ef_search", ef_search)

        mask = None if allowed is None else self._checked_mask(allowed)
        candidates = None if mask is None else np.flatnonzero(mask).astype(np.int64)
        count = self.ntotal if candidates is None else len(candidates)
        if count == self.ntotal:
            mask = candidates = None  # everything allowed: no filter to apply
        k = min(k, count)
        if k == 0 or len(matrix) == 0:
            return [_empty_result() for _ in matrix]
        if candidates is not None and not self._builder.exact and count <= self._exact_limit():
            return [_exact_top_k(self._vectors, q, k, candidates) for q in matrix]

        params = self._builder.search_parameters(self._params, k, nprobe, ef_search)
        if mask is not None:
            # The selector reads these bits during the search: keep them referenced until then.
            bits = np.packbits(mask, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(bits.size, faiss.swig_ptr(bits))
        fetch = min(k * self._builder.rerank, count)
        scores, ids = self._index.search(matrix, fetch, params=params)
        results = []
        for query, row_ids, row_scores in zip(matrix, ids, scores, strict=True):
            found = row_ids >= 0
            if np.count_nonzero(found) < k:
                results.append(_exact_top_k(self._vectors, query, k, candidates))
            elif fetch > k:
                results.append(_exact_top_k(self._vectors, query, k, row_ids[found]))
            else:
                results.append(_ranked(row_ids[found], row_scores[found]))
        return results

    def _checked_mask(self, allowed: Any) -> BoolArray:
        mask = np.asarray(allowed)
        if mask.dtype != np.bool_ or mask.shape != (self.ntotal,):
            raise ValueError(
                f"allowed must be a bool array of shape ({self.ntotal},), "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask

    def _exact_limit(self) -> float:
        return max(EXACT_FILTER_MAX_COUNT, EXACT_FILTER_MAX_FRACTION * self.ntotal)

    def to_bytes(self) -> bytes:
        """The index serialized by ``faiss.serialize_index`` (the vectors are not included)."""
        return faiss.serialize_index(self._index).tobytes()

    def describe(self) -> dict[str, Any]:
        """What a manifest records to reload the index with ``from_bytes`` (JSON-able).

        Returns:
            ``kind``, ``requested_kind``, ``params``, ``fallback_reason``, ``ntotal``, ``dim``.
        """
        return {
            "kind": self.kind,
            "requested_kind": self.requested_kind,
            "params": self.params,
            "fallback_reason": self.fallback_reason,
            "ntotal": self.ntotal,
            "dim": self.dim,
        }

    @classmethod
    def from_bytes(cls, data: bytes, description: Mapping[str, Any], vectors: Any) -> VectorIndex:
        """Load an index saved with ``to_bytes``, checking it against what was recorded.

        Args:
            data: the bytes ``to_bytes`` returned.
            description: the dict ``describe`` returned.
            vectors: the indexed vectors, shape (ntotal, dim), kept by reference.

        Returns:
            The index, searching exactly as the one saved.

        Raises:
            ValueError: if the description is incomplete, the bytes are not a FAISS index of the
                described kind, or the index, description and vectors disagree on ntotal or dim.
        """
        try:
            kind = str(description["kind"])
            requested_kind = str(description["requested_kind"])
            params = {str(name): int(v) for name, v in description["params"].items()}
            for name, value in params.items():
                if name in INDEX_PARAM_RANGES:
                    check_index_param(name, value)
            reason = description["fallback_reason"]
            ntotal, dim = int(description["ntotal"]), int(description["dim"])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
            raise ValueError(f"index description is incomplete or malformed: {error!r}") from None
        builder = _builder(kind)
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as error:
            raise ValueError(f"the index bytes cannot be read by FAISS: {error}") from None
        if not isinstance(index, builder.faiss_type):
            raise ValueError(f"the index bytes hold a {type(index).__name__}, not a {kind} index")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("the index bytes hold an index that does not use inner product")
        if (index.ntotal, index.d) != (ntotal, dim):
            raise ValueError(
                f"the index holds {index.ntotal} vectors of dimension {index.d}, but its "
                f"description says {ntotal} of dimension {dim}"
            )
        return cls(
            index,
            vectors,
            requested_kind=requested_kind,
            kind=kind,
            params=params,
            fallback_reason=None if reason is None else str(reason),
        )

    def memory_bytes(self) -> int:
        """Estimated size of the serialized index, without serializing it.

        Within a few percent of ``len(self.to_bytes())``; the vectors kept for exact search
        are not counted.
        """
        return self._builder.estimate_bytes(self.ntotal, self.dim, self._params)

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self.kind!r}, ntotal={self.ntotal}, dim={self.dim})"
