"""Vector index: exact and approximate inner-product search over normalized vectors (FAISS).

Vectors arrive L2-normalized (the embedding stage's job), so the inner product is the cosine.
Four kinds are registered by name in ``INDEX_KINDS``:

- ``flat``: exact search over every vector, scanned where they lie (``faiss.knn_inner_product``
  over the vectors the index was given, a memory-mapped ``embeddings.npy`` included); its
  FAISS ``IndexFlatIP`` holds no copy of them.
- ``ivf``: ``IndexIVFFlat``, k-means lists; a query scans the ``nprobe`` lists nearest to it.
- ``hnsw``: ``IndexHNSWFlat``, a navigable small-world graph explored with a beam of
  ``ef_search`` candidates.
- ``ivfpq``: ``IndexIVFPQ``, IVF lists holding product-quantized codes (``m`` sub-vectors of
  ``nbits`` bits each); it fetches ``rerank`` candidates per hit and re-scores them by exact
  cosine with the stored vectors.

``kind="auto"`` picks flat, ivf or ivfpq from the corpus size (``choose_index_kind``); the
index records the choice and its reason (``chosen_because``).

A corpus too small to train a kind falls back to a simpler one (``ivfpq`` -> ``ivf`` ->
``flat``); ``VectorIndex.kind`` says what was built and ``fallback_reason`` says why.

Building reads the vectors in place and never copies them whole: ivf and ivfpq train on a
sample, and every kind is filled ``ADD_BATCH`` rows at a time, so a read-only memory-mapped
corpus is paged in piece by piece. ivf and hnsw still hold their own copy of the vectors
inside FAISS (that is what they search); flat holds none and ivfpq holds 48-byte codes.

Searches never change the shared FAISS index: ``nprobe``, ``ef_search`` and the ``allowed``
filter travel with each call in a fresh FAISS ``SearchParameters`` object, so one
``VectorIndex`` can serve concurrent searches with different settings.

The ``VectorIndex`` keeps a reference to the vectors it was built or loaded with: flat scans
them, ivfpq re-ranks with them, and every kind searches them exactly over a small allowed set
or when an approximate search comes back short of ``k`` hits.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import faiss
import numpy as np
import numpy.typing as npt

__all__ = [
    "AUTO_KIND",
    "INDEX_KINDS",
    "INDEX_PARAM_RANGES",
    "Builder",
    "IndexChoice",
    "VectorIndex",
    "build_vector_index",
    "check_index_param",
    "choose_index_kind",
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

PQ_RERANK = 20
"""Default ``rerank`` of ivfpq: candidates fetched per hit wanted, re-scored by exact cosine.

Recall@10 against exact search at the default nprobe, by rerank. Columns 50k to 1M: vectors
made around real embeddings as in BENCHMARKS.md section 3 (268 real and 732 synthetic
queries); last column: 29,492 real embeddings (the cranfield and msmarco-5k documents and
their sentences, bundled model) searched with the 268 real queries. rerank 1 keeps the
codes' own top 10 (re-scored, so its scores are still exact).

======  =====  =====  =====  =====  =====  ==========
rerank  50k    100k   200k   500k   1M     real 29.5k
======  =====  =====  =====  =====  =====  ==========
1       0.779  0.701  0.559  0.431  0.358  0.757
2       0.934  0.905  0.817  0.648  0.538  0.919
5       0.987  0.980  0.963  0.898  0.798  0.981
10      0.996  0.996  0.991  0.973  0.940  0.987
20      0.998  0.999  0.998  0.995  0.984  0.988
50      0.998  1.000  1.000  0.999  0.998  0.988
======  =====  =====  =====  =====  =====  ==========

On the real vectors recall stops at 0.988, what the probed lists hold. 20 gains 0.02 to 0.04
over 10 from 500k vectors on, for little time: p50 at 1M was 1.17, 1.23 and 1.38 ms for
rerank 10, 20 and 50 at k=10, and 1.66, 2.17 and 3.46 ms at k=100 (the candidates a hybrid
search takes). 50 gains little more and reads 2.5 times the stored rows, which come from
disk when a mapped ``embeddings.npy`` is not in the page cache.
"""

MAX_RERANK = 1_000
"""Most candidates per hit: a search reads ``k * rerank`` stored vectors."""

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
    "rerank": (1, MAX_RERANK),
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
rerank             1 .. 1,000      ivfpq candidates per hit, re-scored with the stored vectors
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

ADD_BATCH = 65_536
"""Rows handed to FAISS per ``add`` call while building.

A memory-mapped corpus is so read in pieces, and what FAISS allocates per call (8 bytes of
coarse assignment a row, HNSW's level table) stays bounded whatever the corpus size. At
1M x 384 it measured the same peak memory as one call (within 2%): FAISS's IVF adds work in
blocks of their own, and nothing here copied the input before either.
"""

PARAMS_ADDED_LATER: dict[str, int] = {"rerank": 10}
"""Parameters that descriptions saved before they existed lack, with the value those indexes
searched with (ivfpq re-ranked 10 candidates per hit then); ``from_bytes`` fills them in."""


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
    """All vectors, or a seeded random sample of ``size`` of them (deterministic).

    The sample is a copy of ``size`` rows, read in row order; all vectors are passed as they
    are, memory-mapped or not.
    """
    if len(vectors) <= size:
        return vectors
    rng = np.random.default_rng(TRAINING_SEED)
    return vectors[np.sort(rng.choice(len(vectors), size, replace=False))]


def _add_in_batches(index: faiss.Index, vectors: FloatArray) -> None:
    """Add ``vectors`` to ``index`` ``ADD_BATCH`` rows at a time, ids following row order."""
    for start in range(0, len(vectors), ADD_BATCH):
        index.add(vectors[start : start + ADD_BATCH])


class Builder(ABC):
    """How one index kind is configured, built and searched.

    Subclasses hold no state; ``INDEX_KINDS`` maps each kind's name to one instance.

    Attributes:
        name: the kind's name in ``INDEX_KINDS``.
        faiss_type: the FAISS class an index of this kind is an instance of.
        exact: whether search returns the exact top k.
        fallback: the kind built instead when the corpus is too small for this one.
        holds_vectors: whether the FAISS index stores the vectors (flat scans them in place).
        exact_scores: whether FAISS's scores are the exact inner products; if not, its
            candidates are re-scored with the stored vectors (ivfpq's codes are approximate).
    """

    name: ClassVar[str]
    faiss_type: ClassVar[type[faiss.Index]]
    exact: ClassVar[bool] = False
    fallback: ClassVar[str | None] = None
    holds_vectors: ClassVar[bool] = True
    exact_scores: ClassVar[bool] = True

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
        """Build and fill the FAISS index (never copying ``vectors`` whole)."""

    def read(self, data: bytes) -> faiss.Index:
        """The FAISS index serialized in ``data``.

        Raises:
            ValueError: the bytes hold an index of another kind or metric.
            RuntimeError: FAISS cannot read the bytes.
        """
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if not isinstance(index, self.faiss_type):
            raise ValueError(
                f"the index bytes hold a {type(index).__name__}, not a {self.name} index"
            )
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("the index bytes hold an index that does not use inner product")
        return index

    def search_parameters(
        self, params: Mapping[str, int], k: int, nprobe: int | None, ef_search: int | None
    ) -> faiss.SearchParameters:
        """Per-call FAISS search parameters; options that do not apply to the kind are ignored."""
        return faiss.SearchParameters()

    def candidates_per_hit(self, params: Mapping[str, int], rerank: int | None) -> int:
        """Candidates fetched per hit wanted (more than 1 only for kinds that re-rank)."""
        return 1

    def knn(
        self,
        index: faiss.Index,
        vectors: FloatArray,
        queries: FloatArray,
        k: int,
        params: faiss.SearchParameters,
    ) -> tuple[FloatArray, IdArray]:
        """FAISS's top ``k`` of each query: scores and ids, -1 where fewer were found."""
        scores, ids = index.search(queries, k, params=params)
        return scores, ids

    @abstractmethod
    def estimate_bytes(self, ntotal: int, dim: int, params: Mapping[str, int]) -> int:
        """Approximate size of the serialized index."""


class FlatBuilder(Builder):
    """Exact search: the inner product with every vector, scanned where the vectors lie.

    A filled ``IndexFlatIP`` would hold a second copy of the vectors (1.5 GB at 1M x 384)
    beside the memory-mapped ``embeddings.npy`` a collection keeps anyway, so the flat index
    holds none: ``knn`` runs ``faiss.knn_inner_product`` over the ``VectorIndex``'s vectors,
    the very function ``IndexFlatIP.search`` runs over its own copy (the same kernels, the same
    ``IDSelector`` filter, the same results). Its serialized form is an empty ``IndexFlatIP``
    of the right dimension (45 bytes); one saved with the vectors inside, as before, still
    loads, and its copy is dropped once read.
    """

    name = "flat"
    faiss_type = faiss.IndexFlat
    exact = True
    holds_vectors = False

    def create(self, vectors: FloatArray, params: Mapping[str, int]) -> faiss.Index:
        return faiss.IndexFlatIP(vectors.shape[1])

    def read(self, data: bytes) -> faiss.Index:
        # An index saved before flat scanned in place holds a copy of the vectors: drop it.
        return faiss.IndexFlatIP(super().read(data).d)

    def knn(
        self,
        index: faiss.Index,
        vectors: FloatArray,
        queries: FloatArray,
        k: int,
        params: faiss.SearchParameters,
    ) -> tuple[FloatArray, IdArray]:
        return _scan(vectors, queries, k, params.sel)

    def estimate_bytes(self, ntotal: int, dim: int, params: Mapping[str, int]) -> int:
        return len(faiss.serialize_index(faiss.IndexFlatIP(dim)))


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
        _add_in_batches(index, vectors)
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
    vectors, BENCHMARKS.md), so a search fetches ``rerank * k`` candidates (``rerank``
    defaults to ``PQ_RERANK``) and re-scores them by their exact cosine with the stored
    vectors, which a collection maps from ``embeddings.npy``: hits and scores are exact among
    the candidates the lists gave. ``rerank=1`` re-scores only the k hits the codes ranked
    first: their scores are still true cosines, but the codes alone chose them.
    """

    name = "ivfpq"
    faiss_type = faiss.IndexIVFPQ
    fallback = "ivf"
    exact_scores = False

    def defaults(self, n: int, dim: int) -> dict[str, int]:
        nbits = next(
            (
                bits
                for bits in range(PQ_NBITS_MAX, PQ_NBITS_MIN - 1, -1)
                if n >= _pq_min_vectors(bits)
            ),
            PQ_NBITS_MIN,
        )
        return {
            **super().defaults(n, dim),
            "m": _default_pq_m(dim),
            "nbits": nbits,
            "rerank": PQ_RERANK,
        }

    def candidates_per_hit(self, params: Mapping[str, int], rerank: int | None) -> int:
        return rerank if rerank is not None else params["rerank"]

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
        _add_in_batches(index, vectors)
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

AUTO_KIND = "auto"
"""The kind to ask for to have ``choose_index_kind`` pick one from the corpus size."""

AUTO_KINDS = ("flat", "ivf", "ivfpq")
"""The kinds ``auto`` picks from, in the order of the corpus sizes they are picked for."""

AUTO_FLAT_MAX_FLOATS = 100_000 * 384
"""``auto`` builds flat below this many floats to scan per query (chunks * dimension)."""

AUTO_IVF_MAX_BYTES = 500_000 * 384 * 4
"""``auto`` builds ivf while its own copy of the vectors (chunks * dimension * 4 bytes) stays
below this, ivfpq from there on."""

EXACT_SCAN_FLOATS_PER_MS = 2_400_000
"""Floats an exact search scans per millisecond of a query (p50 16 ms at 100k x 384)."""


@dataclass(frozen=True)
class IndexChoice:
    """The index kind ``choose_index_kind`` picked for a corpus, and why.

    Attributes:
        kind: ``flat``, ``ivf`` or ``ivfpq``.
        reason: why, in one sentence for the user (the app's Health page shows it).
    """

    kind: str
    reason: str


def choose_index_kind(n: int, dim: int) -> IndexChoice:
    """Pick the index kind for ``n`` vectors of ``dim`` dimensions: flat, then ivf, then ivfpq.

    Measured on the project's machine (2 cores, FAISS's 2 threads, load 0.2 to 1.8,
    2026-12-02): p50 of single queries (k=10, 300 queries), over a read-only memmap of vectors
    made around real embeddings (BENCHMARKS.md section 3), and the memory the process gained
    building the index (anonymous RSS; the mapped vectors belong to the page cache and are the
    same for every kind). ivfpq was timed with rerank 10; the default 20 adds about 0.05 ms.

    ==========  =====  =====  =====  ==========  ===========  =============
    chunks      flat   ivf    ivfpq  flat (MiB)  ivf (MiB)    ivfpq (MiB)
    ==========  =====  =====  =====  ==========  ===========  =============
    50,000      5.7    0.76   0.43   0           105          26
    100,000     14.7   1.18   0.65   0           206          33
    200,000     29.8   1.85   0.91   0           411          41
    500,000     76.4   3.06   1.33   0           1,002        67
    1,000,000   152.5  4.89   1.65   0           2,055        113
    ==========  =====  =====  =====  ==========  ===========  =============

    Recall@10 against exact search: ivf 0.998 to 1.000; ivfpq with rerank 20 0.998, 0.999,
    0.998, 0.995 and 0.984 (``PQ_RERANK``). Hence, at 384 dimensions:

    - flat below 100,000 chunks: exact, no memory of its own, nothing to train; a query takes
      about 15 ms there (16 ms at a load of 3), which fits the 50 ms of a hybrid search, and
      twice that at 200,000.
    - ivf from 100,000 to 500,000: 1.2 to 3.1 ms with recall near 1, but its own copy of the
      vectors grows by 2 MiB per 1,000 chunks, to 1 GiB at 500,000.
    - ivfpq from 500,000 on: a fifteenth of ivf's memory or less, faster than ivf, and recall
      0.98 to 0.995 once its candidates are re-ranked with the stored vectors.

    Both limits count floats (``AUTO_FLAT_MAX_FLOATS``, ``AUTO_IVF_MAX_BYTES``), so they
    scale with the dimension: a scan's time and a copy's size grow with chunks * dim.

    Args:
        n: number of vectors (chunks).
        dim: their dimension.

    Returns:
        The kind and the reason, in words for the user, with the figures behind it.

    Raises:
        ValueError: ``n`` is not a non-negative integer or ``dim`` not a positive one.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    dim = _positive_int("dim", dim)
    flat_limit = max(1, AUTO_FLAT_MAX_FLOATS // dim)
    ivf_limit = max(flat_limit, AUTO_IVF_MAX_BYTES // (4 * dim))
    if n < flat_limit:
        return IndexChoice(
            "flat",
            f"flat (exact): {n:,} chunks is below {flat_limit:,}, where exact search still "
            f"answers in about {flat_limit * dim / EXACT_SCAN_FLOATS_PER_MS:.0f} ms",
        )
    exact_ms = n * dim / EXACT_SCAN_FLOATS_PER_MS
    copy_gb = n * dim * 4 / 1e9
    if n < ivf_limit:
        return IndexChoice(
            "ivf",
            f"ivf (approximate): {n:,} chunks is at least {flat_limit:,}, where exact search "
            f"takes about {exact_ms:,.0f} ms a query and ivf 1 to 3 ms; below {ivf_limit:,} "
            f"chunks it may hold its own copy of the vectors ({copy_gb:.2f} GB here)",
        )
    ivfpq = INDEX_KINDS["ivfpq"]
    codes_mb = ivfpq.estimate_bytes(n, dim, ivfpq.defaults(n, dim)) / 1e6
    return IndexChoice(
        "ivfpq",
        f"ivfpq (compressed, re-ranked): {n:,} chunks is at least {ivf_limit:,}, where an ivf "
        f"index would hold its own {copy_gb:,.1f} GB copy of the vectors; ivfpq holds "
        f"{codes_mb:,.0f} MB of codes and re-ranks its candidates with the stored vectors",
    )


def _builder(kind: str) -> Builder:
    try:
        return INDEX_KINDS[kind]
    except KeyError:
        valid = ", ".join((*INDEX_KINDS, AUTO_KIND))
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
        kind: an index kind, a key of ``INDEX_KINDS``, or ``auto`` (the defaults of the kind
            ``choose_index_kind`` picks).
        n: number of vectors in the corpus.
        dim: their dimension.

    Returns:
        Parameter names and values; empty for ``flat``. For a corpus too small for the kind,
        ``build_vector_index`` falls back to a simpler kind and uses that kind's defaults.

    Raises:
        ValueError: if ``kind`` is unknown.
    """
    if kind == AUTO_KIND:
        kind = choose_index_kind(n, dim).kind
    return _builder(kind).defaults(n, dim)


@dataclass(frozen=True)
class _Plan:
    """What ``build_vector_index`` builds: the kind, its parameters and why it is that kind."""

    builder: Builder
    params: dict[str, int]
    fallback_reason: str | None
    chosen_because: str | None


def _plan(kind: str, n: int, dim: int, overrides: Mapping[str, int]) -> _Plan:
    """Choose the kind actually built, its parameters and the reasons for the choice.

    ``auto`` accepts the parameters of any kind it may pick and drops those of the others,
    as a fallback drops the parameters of the kind it replaces.
    """
    choice = choose_index_kind(n, dim) if kind == AUTO_KIND else None
    builder = _builder(kind if choice is None else choice.kind)
    options = [builder] if choice is None else [INDEX_KINDS[name] for name in AUTO_KINDS]
    valid = {name: None for option in options for name in option.defaults(n, dim)}
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
    return _Plan(
        builder, params, "; ".join(reasons) or None, None if choice is None else choice.reason
    )


def build_vector_index(vectors: Any, kind: str = "flat", **params: int) -> VectorIndex:
    """Build an index of ``kind`` over ``vectors``.

    Nothing here copies the vectors whole, so they may be a read-only ``np.memmap``: ivf and
    ivfpq train on a sample, every kind is filled ``ADD_BATCH`` rows at a time, and flat
    keeps no copy at all. ivf and hnsw hold their own copy inside FAISS, as they search it.

    Args:
        vectors: float32 array of shape (n, dim), each row L2-normalized (not checked). The
            returned index keeps a reference to it (a copy only if it was not float32 and
            C-contiguous); do not modify it afterwards.
        kind: one of ``INDEX_KINDS`` (flat, ivf, hnsw, ivfpq), or ``auto`` to have
            ``choose_index_kind`` pick flat, ivf or ivfpq from the corpus size.
        **params: overrides of ``default_params(kind, n, dim)``: ``nlist``, ``nprobe`` (ivf,
            ivfpq), ``m``, ``nbits``, ``rerank`` (ivfpq), ``M``, ``ef_construction``,
            ``ef_search`` (hnsw). Overrides for the requested kind that do not apply to a
            fallback kind (or, with ``auto``, to the kind picked) are dropped.

    Returns:
        The built index. ``kind`` may differ from the one requested when the corpus is too
        small for it; ``fallback_reason`` then says why, and ``chosen_because`` says why
        ``auto`` picked what it did.

    Raises:
        ValueError: for an unknown kind (the message names the valid ones) or parameter, a
            parameter that is not an integer in its ``INDEX_PARAM_RANGES`` range, or one the
            corpus is too small for (for example ``nlist > n // 39``).
    """
    matrix = _float_matrix(vectors, "vectors")
    n, dim = matrix.shape
    if dim == 0:
        raise ValueError("vectors must have at least one dimension")
    plan = _plan(kind, n, dim, params)
    return VectorIndex(
        plan.builder.create(matrix, plan.params),
        matrix,
        requested_kind=kind,
        kind=plan.builder.name,
        params=plan.params,
        fallback_reason=plan.fallback_reason,
        chosen_because=plan.chosen_because,
    )


def _ranked(ids: IdArray, scores: FloatArray) -> SearchResult:
    """Hits sorted by descending score, ties by ascending id."""
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


def _scan(
    vectors: FloatArray, queries: FloatArray, k: int, selector: faiss.IDSelector | None = None
) -> tuple[FloatArray, IdArray]:
    """Exact top ``k`` of each query over every (selected) vector, read where it lies.

    ``faiss.knn_inner_product`` is what ``IndexFlatIP.search`` runs over its own copy.

    Returns:
        Scores and ids of shape (queries, k), best first; -1 ids where fewer were selected.
    """
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    faiss.knn_inner_product(
        faiss.swig_ptr(queries),
        faiss.swig_ptr(vectors),
        vectors.shape[1],
        len(queries),
        len(vectors),
        k,
        faiss.swig_ptr(scores),
        faiss.swig_ptr(ids),
        selector,
    )
    return scores, ids


def _exact_top_k(
    vectors: FloatArray, query: FloatArray, k: int, candidates: IdArray | None
) -> SearchResult:
    """Exact top ``k`` among ``candidates`` (every vector when None), read where they lie.

    The candidates' rows are scored in place (``fvec_inner_products_by_idx``), on one thread:
    no gathered copy of them (up to 5% of the corpus under a filter), and no thread pool woken
    for one query. Measured on 2,000 rows of 384-d on the busy 2-core machine: 0.21 ms, against
    0.45 ms to gather and multiply on one thread and 20-24 ms with two (numpy's BLAS above
    about 1,500 rows, FAISS's OpenMP always), the price of waking threads on loaded cores.
    """
    if candidates is None:
        scores, ids = _scan(vectors, query[None, :], k)
        return _ranked(ids[0], scores[0])
    scores = np.empty(len(candidates), dtype=np.float32)
    with _one_omp_thread():
        faiss.fvec_inner_products_by_idx(  # type: ignore[attr-defined]
            faiss.swig_ptr(scores),
            faiss.swig_ptr(query),
            faiss.swig_ptr(vectors),
            faiss.swig_ptr(candidates),
            vectors.shape[1],
            1,
            len(candidates),
        )
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return _ranked(candidates[top], scores[top])


@contextmanager
def _one_omp_thread() -> Iterator[None]:
    """Run FAISS's OpenMP regions on the calling thread alone, restoring the setting after.

    OpenMP keeps the thread count per thread, so concurrent searches do not see the change.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _empty_result() -> SearchResult:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


class VectorIndex:
    """A FAISS index over normalized vectors, searched by inner product (cosine).

    Create one with ``build_vector_index`` or ``VectorIndex.from_bytes``. Searching is safe
    from several threads at once: no search changes the index.

    Args:
        index: the FAISS index, of the class ``INDEX_KINDS[kind]`` builds (for flat, one that
            holds no vectors).
        vectors: the indexed vectors, row i being id i; kept by reference (a read-only
            ``np.memmap`` is fine).
        requested_kind: the kind asked for (``auto`` included).
        kind: the kind built.
        params: the parameters it was built with.
        fallback_reason: why ``kind`` differs from the kind requested or chosen, or None.
        chosen_because: why ``auto`` chose the kind (``IndexChoice.reason``), or None.

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
        chosen_because: str | None = None,
    ) -> None:
        self._builder = _builder(kind)
        self._vectors = _float_matrix(vectors, "vectors")
        holds = self._builder.holds_vectors
        if self._vectors.shape[1] != index.d or (holds and len(self._vectors) != index.ntotal):
            held = f"{index.ntotal} vectors" if holds else "vectors"
            raise ValueError(
                f"vectors have shape {self._vectors.shape} but the index holds "
                f"{held} of dimension {index.d}"
            )
        self._index = index
        self._requested_kind = requested_kind
        self._params = dict(params)
        self._fallback_reason = fallback_reason
        self._chosen_because = chosen_because

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
        """Why ``kind`` differs from the kind requested (or chosen by ``auto``), or None."""
        return self._fallback_reason

    @property
    def chosen_because(self) -> str | None:
        """Why ``auto`` chose the kind, in words for the user; None if a kind was named."""
        return self._chosen_because

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return len(self._vectors)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._vectors.shape[1])

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index, for inspection only: changing it is not thread-safe.

        For flat it holds no vectors: flat search scans the vectors the index keeps.
        """
        return self._index

    def search(
        self,
        query: Any,
        k: int,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        allowed: BoolArray | None = None,
        rerank: int | None = None,
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
            rerank: candidates per hit for ivfpq (default: the index's ``params``): it fetches
                ``rerank * k`` by its codes and keeps the k with the highest exact cosine.
                Ignored by the other kinds.

        Returns:
            ``(ids, scores)``: int64 ids and float32 scores, best first (ties by id). There are
            exactly ``min(k, number of allowed vectors)`` hits: an approximate search that
            comes back short is redone exactly over the allowed vectors. Scores are exact
            cosines (ivfpq's candidates are re-scored with the stored vectors).

        Raises:
            ValueError: for a query of the wrong shape, k that is not a positive integer,
                nprobe, ef_search or rerank outside its ``INDEX_PARAM_RANGES`` range, or an
                ``allowed`` mask that is not bool of length ntotal.
        """
        single = np.asarray(query)
        if single.ndim != 1:
            raise ValueError(f"query must have shape ({self.dim},), got {single.shape}")
        return self.search_batch(
            single[None, :], k, nprobe=nprobe, ef_search=ef_search, allowed=allowed, rerank=rerank
        )[0]

    def search_batch(
        self,
        queries: Any,
        k: int,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        allowed: BoolArray | None = None,
        rerank: int | None = None,
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
        if rerank is not None:
            check_index_param("rerank", rerank)

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
        fetch = min(k * self._builder.candidates_per_hit(self._params, rerank), count)
        scores, ids = self._builder.knn(self._index, self._vectors, matrix, fetch, params)
        results = []
        for query, row_ids, row_scores in zip(matrix, ids, scores, strict=True):
            found = row_ids >= 0
            if np.count_nonzero(found) < k:
                results.append(_exact_top_k(self._vectors, query, k, candidates))
            elif not self._builder.exact_scores:
                # Sorted ids read a memory-mapped file in order.
                results.append(_exact_top_k(self._vectors, query, k, np.sort(row_ids[found])))
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
        """The index serialized by ``faiss.serialize_index``.

        The ``vectors`` are not included; ivf and hnsw hold a copy of them inside FAISS,
        which is. For flat this is an empty ``IndexFlatIP`` (45 bytes).
        """
        return faiss.serialize_index(self._index).tobytes()

    def describe(self) -> dict[str, Any]:
        """What a manifest records to reload the index with ``from_bytes`` (JSON-able).

        Returns:
            ``kind``, ``requested_kind``, ``params``, ``fallback_reason``, ``chosen_because``
            (None unless ``auto`` chose the kind), ``ntotal``, ``dim``.
        """
        return {
            "kind": self.kind,
            "requested_kind": self.requested_kind,
            "params": self.params,
            "fallback_reason": self.fallback_reason,
            "chosen_because": self.chosen_because,
            "ntotal": self.ntotal,
            "dim": self.dim,
        }

    @classmethod
    def from_bytes(cls, data: bytes, description: Mapping[str, Any], vectors: Any) -> VectorIndex:
        """Load an index saved with ``to_bytes``, checking it against what was recorded.

        Descriptions and bytes saved by earlier versions open too: a description without
        ``chosen_because``, or without ``rerank`` (``PARAMS_ADDED_LATER`` gives the value such
        an index searched with), and a flat index saved with its own copy of the vectors,
        which is dropped once read.

        Args:
            data: the bytes ``to_bytes`` returned.
            description: the dict ``describe`` returned.
            vectors: the indexed vectors, shape (ntotal, dim), kept by reference (a read-only
                ``np.memmap`` of ``embeddings.npy`` is fine: nothing copies it).

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
            because = description.get("chosen_because")
            ntotal, dim = int(description["ntotal"]), int(description["dim"])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
            raise ValueError(f"index description is incomplete or malformed: {error!r}") from None
        builder = _builder(kind)
        valid = builder.defaults(ntotal, dim)
        later = {name: v for name, v in PARAMS_ADDED_LATER.items() if name in valid}
        try:
            index = builder.read(data)
        except RuntimeError as error:
            raise ValueError(f"the index bytes cannot be read by FAISS: {error}") from None
        if index.d != dim or (builder.holds_vectors and index.ntotal != ntotal):
            raise ValueError(
                f"the index holds {index.ntotal} vectors of dimension {index.d}, but its "
                f"description says {ntotal} of dimension {dim}"
            )
        loaded = cls(
            index,
            vectors,
            requested_kind=requested_kind,
            kind=kind,
            params=later | params,
            fallback_reason=None if reason is None else str(reason),
            chosen_because=None if because is None else str(because),
        )
        if loaded.ntotal != ntotal:
            raise ValueError(
                f"vectors have shape {loaded._vectors.shape} but the description says {ntotal} "
                f"vectors"
            )
        return loaded

    def memory_bytes(self) -> int:
        """Estimated size of the serialized index, without serializing it.

        Within a few percent of ``len(self.to_bytes())``; the vectors the index keeps a
        reference to are not counted (a collection maps them from ``embeddings.npy``). For
        flat this is the 45 bytes of an empty ``IndexFlatIP``: it scans those vectors.
        """
        return self._builder.estimate_bytes(self.ntotal, self.dim, self._params)

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self.kind!r}, ntotal={self.ntotal}, dim={self.dim})"
