"""Tests for search_core.vector_index: every kind cross-checked against brute-force numpy."""

from __future__ import annotations

import itertools
import json
import math
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import search_core.vector_index as vector_index
from search_core.vector_index import (
    AUTO_FLAT_MAX_FLOATS,
    AUTO_IVF_MAX_BYTES,
    INDEX_KINDS,
    INDEX_PARAM_RANGES,
    PQ_RERANK,
    IndexChoice,
    VectorIndex,
    build_vector_index,
    choose_index_kind,
    default_params,
)

DIM = 384
N_CLUSTERS = 50
N_VECTORS = 20_000
N_QUERIES = 100
K = 10
ALL_KINDS = ("flat", "ivf", "hnsw", "ivfpq")

# Recall@10 against exact search at default parameters, on the clustered corpus below.
RECALL_FLOORS = {"flat": 1.0, "ivf": 0.95, "hnsw": 0.95, "ivfpq": 0.95}


@dataclass(frozen=True)
class Corpus:
    vectors: np.ndarray
    labels: np.ndarray
    queries: np.ndarray
    query_labels: np.ndarray


def clustered(n: int, n_queries: int, seed: int, dim: int = DIM) -> Corpus:
    """Normalized Gaussian clusters, each spread mostly along 16 directions of its own.

    The low-dimensional spread gives each query a distinct neighbourhood inside its cluster,
    as real embeddings have; isotropic noise in 384-d would make every cluster member an
    almost equally good neighbour.
    """
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((N_CLUSTERS, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    directions = rng.standard_normal((N_CLUSTERS, 16, dim)) / math.sqrt(dim)
    labels = rng.integers(0, N_CLUSTERS, n + n_queries)
    spread = rng.standard_normal((n + n_queries, 16)) / 4
    points = centers[labels] + np.einsum("ni,nid->nd", spread, directions[labels])
    points += rng.standard_normal(points.shape) * 0.3 / math.sqrt(dim)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    points = points.astype(np.float32)
    return Corpus(points[:n], labels[:n], points[n:], labels[n:])


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int, allowed=None):
    """Reference top k by inner product, ties broken by id."""
    scores = vectors @ query
    ids = np.arange(len(vectors)) if allowed is None else np.flatnonzero(allowed)
    order = np.lexsort((ids, -scores[ids]))[:k]
    return ids[order], scores[ids][order]


def recall(results, reference) -> float:
    hits = [
        len(set(got.tolist()) & set(want.tolist()))
        for (got, _), want in zip(results, reference, strict=True)
    ]
    return sum(hits) / sum(len(want) for want in reference)


@pytest.fixture(scope="module", autouse=True)
def single_threaded_faiss():
    """One OpenMP thread for this module's FAISS calls.

    Builds become deterministic (HNSW inserts in parallel otherwise, so its recall would vary
    from run to run), and on a 2-core machine FAISS's spinning OpenMP threads do not fight
    each other, other processes or the threaded test's pool.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return clustered(N_VECTORS, N_QUERIES, seed=7)


@pytest.fixture(scope="module")
def exact(corpus: Corpus) -> list[np.ndarray]:
    return [brute_force(corpus.vectors, q, K)[0] for q in corpus.queries]


@pytest.fixture(scope="module")
def indexes(corpus: Corpus) -> dict[str, VectorIndex]:
    return {kind: build_vector_index(corpus.vectors, kind) for kind in ALL_KINDS}


@pytest.fixture(scope="module")
def small() -> Corpus:
    """1,000 vectors: enough for every kind (ivfpq with nbits=4), small enough for k > ntotal."""
    return clustered(1_000, 20, seed=11)


@pytest.fixture(scope="module")
def small_indexes(small: Corpus) -> dict[str, VectorIndex]:
    return {kind: build_vector_index(small.vectors, kind) for kind in ALL_KINDS}


@pytest.fixture(scope="module")
def small_mapped(small: Corpus, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """``small.vectors`` saved as ``embeddings.npy`` and mapped read-only, as a collection does."""
    path = tmp_path_factory.mktemp("mapped") / "embeddings.npy"
    np.save(path, small.vectors)
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    assert not mapped.flags.writeable
    return mapped


def setting(option: str, value: int) -> dict[str, Any]:
    """``{option: value}``, typed to be passed as ``**`` to ``search``."""
    return {option: value}


def assert_well_formed(ids: np.ndarray, scores: np.ndarray) -> None:
    assert ids.dtype == np.int64
    assert scores.dtype == np.float32
    assert len(ids) == len(scores)
    assert (ids >= 0).all()
    assert len(set(ids.tolist())) == len(ids)
    assert (np.diff(scores) <= 0).all()


# --- exactness and recall -------------------------------------------------------------------


def test_flat_equals_brute_force(corpus: Corpus, indexes: dict[str, VectorIndex]) -> None:
    for query in corpus.queries:
        ids, scores = indexes["flat"].search(query, K)
        want_ids, want_scores = brute_force(corpus.vectors, query, K)
        assert scores == pytest.approx(want_scores, abs=1e-5)
        # Ids may only differ where two scores tie to within float error.
        differ = ids != want_ids
        assert np.allclose(corpus.vectors[ids[differ]] @ query, want_scores[differ], atol=1e-5)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_recall_at_default_params(
    kind: str, corpus: Corpus, exact: list[np.ndarray], indexes: dict[str, VectorIndex]
) -> None:
    measured = recall(indexes[kind].search_batch(corpus.queries, K), exact)
    print(f"{kind} {indexes[kind].params}: recall@{K} = {measured:.3f}")
    assert measured >= RECALL_FLOORS[kind]


@pytest.mark.parametrize(
    ("kind", "option", "values"),
    [
        ("ivf", "nprobe", (1, 4, 16, 64, 512)),
        ("ivfpq", "nprobe", (1, 4, 16, 64, 512)),
        ("hnsw", "ef_search", (10, 32, 128, 512)),
    ],
)
def test_wider_search_does_not_lower_recall(
    kind: str,
    option: str,
    values: tuple[int, ...],
    corpus: Corpus,
    exact: list[np.ndarray],
    indexes: dict[str, VectorIndex],
) -> None:
    recalls = [
        recall(indexes[kind].search_batch(corpus.queries, K, **setting(option, value)), exact)
        for value in values
    ]
    assert all(later >= earlier - 0.02 for earlier, later in itertools.pairwise(recalls))
    assert recalls[-1] > recalls[0]


def test_per_query_scores_are_exact_cosines(
    corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    query = corpus.queries[0]
    for kind in ALL_KINDS:
        ids, scores = indexes[kind].search(query, K)
        assert scores == pytest.approx(corpus.vectors[ids] @ query, abs=1e-5)


def test_ivfpq_reranks_its_candidates_with_the_exact_vectors(
    corpus: Corpus, exact: list[np.ndarray], indexes: dict[str, VectorIndex]
) -> None:
    index = indexes["ivfpq"]
    params = faiss.SearchParametersIVF(nprobe=index.params["nprobe"])
    _, codes_only = index.faiss_index.search(corpus.queries, K, params=params)
    by_codes = recall(list(zip(codes_only, codes_only, strict=True)), exact)
    reranked = recall(index.search_batch(corpus.queries, K), exact)
    print(f"ivfpq recall@{K}: {by_codes:.3f} by its codes, {reranked:.3f} re-ranked")
    assert reranked > by_codes


def test_ivfpq_rerank_gives_exact_cosines_and_no_worse_recall(
    corpus: Corpus, exact: list[np.ndarray], indexes: dict[str, VectorIndex]
) -> None:
    index = indexes["ivfpq"]
    assert index.params["rerank"] == PQ_RERANK
    recalls = []
    for rerank in (1, 2, PQ_RERANK):
        results = index.search_batch(corpus.queries, K, rerank=rerank)
        for query, (ids, scores) in zip(corpus.queries, results, strict=True):
            assert scores == pytest.approx(corpus.vectors[ids] @ query, abs=1e-5)
            assert_well_formed(ids, scores)
        recalls.append(recall(results, exact))
    print(f"ivfpq recall@{K} by rerank 1, 2, {PQ_RERANK}: {recalls}")
    # Fetching more candidates keeps the earlier ones, so recall cannot drop.
    assert recalls == sorted(recalls)
    assert recalls[-1] > recalls[0]


def test_ivfpq_rerank_is_a_build_parameter(small: Corpus) -> None:
    index = build_vector_index(small.vectors, "ivfpq", rerank=3)
    assert index.params["rerank"] == 3
    for query in small.queries[:5]:
        default = index.search(query, K)
        assert default[0].tolist() == index.search(query, K, rerank=3)[0].tolist()


# --- building from a memory-mapped file ----------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a_read_only_memmap_builds_the_same_index_as_an_array(
    kind: str, small: Corpus, small_mapped: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 256 rows: each build adds its 1,000 vectors in 4 pieces, as a large corpus would.
    monkeypatch.setattr(vector_index, "ADD_BATCH", 256)
    from_array = build_vector_index(small.vectors, kind)
    from_file = build_vector_index(small_mapped, kind)
    assert from_file.to_bytes() == from_array.to_bytes()
    for options in ({}, {"allowed": scattered_mask(small, 600, seed=4)}):
        for (ids, scores), (file_ids, file_scores) in zip(
            from_array.search_batch(small.queries, K, **options),
            from_file.search_batch(small.queries, K, **options),
            strict=True,
        ):
            assert file_ids.tolist() == ids.tolist()
            assert file_scores.tolist() == scores.tolist()


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfpq"])
def test_adding_in_batches_builds_the_same_index_as_one_add(
    kind: str, small: Corpus, small_indexes: dict[str, VectorIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    # hnsw is left out: it inserts one add's vectors level by level, so batches change its graph.
    monkeypatch.setattr(vector_index, "ADD_BATCH", 300)
    assert build_vector_index(small.vectors, kind).to_bytes() == small_indexes[kind].to_bytes()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_building_from_a_memmap_does_not_copy_the_vectors(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "embeddings.npy"
    np.save(path, clustered(2_000, 1, seed=13).vectors)
    mapped = np.load(path, mmap_mode="r")
    monkeypatch.setattr(vector_index, "ADD_BATCH", 500)
    tracemalloc.start()  # counts numpy's buffers (FAISS's own memory is not Python's)
    try:
        index = build_vector_index(mapped, kind)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < mapped.nbytes / 10
    assert index.ntotal == len(mapped)


def test_flat_holds_and_saves_no_copy_of_the_vectors(
    corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    index = indexes["flat"]
    assert len(index.to_bytes()) == index.memory_bytes() < 100
    assert index.faiss_index.ntotal == 0
    assert index.ntotal == N_VECTORS


# --- choosing the kind by size --------------------------------------------------------------

FLAT_LIMIT = AUTO_FLAT_MAX_FLOATS // DIM
IVF_LIMIT = AUTO_IVF_MAX_BYTES // (4 * DIM)


@pytest.mark.parametrize(
    ("n", "kind"),
    [
        (0, "flat"),
        (FLAT_LIMIT - 1, "flat"),
        (FLAT_LIMIT, "ivf"),
        (IVF_LIMIT - 1, "ivf"),
        (IVF_LIMIT, "ivfpq"),
        (10**9, "ivfpq"),
    ],
)
def test_auto_picks_flat_then_ivf_then_ivfpq(n: int, kind: str) -> None:
    choice = choose_index_kind(n, DIM)
    assert isinstance(choice, IndexChoice)
    assert choice.kind == kind
    assert choice.reason.startswith(f"{kind} (")
    assert f"{n:,} chunks" in choice.reason
    assert f"{FLAT_LIMIT if kind != 'ivfpq' else IVF_LIMIT:,}" in choice.reason


def test_auto_limits_count_floats_so_they_scale_with_the_dimension() -> None:
    assert choose_index_kind(FLAT_LIMIT // 2 - 1, 2 * DIM).kind == "flat"
    assert choose_index_kind(FLAT_LIMIT // 2, 2 * DIM).kind == "ivf"
    assert choose_index_kind(IVF_LIMIT // 2, 2 * DIM).kind == "ivfpq"
    assert choose_index_kind(IVF_LIMIT - 1, DIM // 2).kind == "ivf"


@pytest.mark.parametrize(("n", "dim"), [(-1, DIM), (10, 0), (1.5, DIM), (True, DIM)])
def test_auto_refuses_a_bad_size(n: Any, dim: int) -> None:
    with pytest.raises(ValueError, match="must be a"):
        choose_index_kind(n, dim)


def test_auto_build_records_its_choice(small: Corpus) -> None:
    index = build_vector_index(small.vectors, "auto", nprobe=3)  # flat has no nprobe: dropped
    reason = choose_index_kind(len(small.vectors), DIM).reason
    assert (index.requested_kind, index.kind, index.params) == ("auto", "flat", {})
    assert index.chosen_because == reason
    assert index.fallback_reason is None
    assert index.describe()["chosen_because"] == reason
    assert default_params("auto", len(small.vectors), DIM) == {}


@pytest.mark.parametrize(
    ("flat_limit", "ivf_limit", "kind"), [(500, 2_000, "ivf"), (200, 500, "ivfpq")]
)
def test_auto_builds_the_kind_it_chose(
    small: Corpus,
    monkeypatch: pytest.MonkeyPatch,
    flat_limit: int,
    ivf_limit: int,
    kind: str,
) -> None:
    monkeypatch.setattr(vector_index, "AUTO_FLAT_MAX_FLOATS", flat_limit * DIM)
    monkeypatch.setattr(vector_index, "AUTO_IVF_MAX_BYTES", ivf_limit * DIM * 4)
    index = build_vector_index(small.vectors, "auto", nprobe=3)
    assert (index.requested_kind, index.kind) == ("auto", kind)
    assert index.params == default_params(kind, len(small.vectors), DIM) | {"nprobe": 3}
    assert index.params == default_params("auto", len(small.vectors), DIM) | {"nprobe": 3}
    assert index.chosen_because is not None
    assert f"{len(small.vectors):,} chunks" in index.chosen_because
    description = json.loads(json.dumps(index.describe()))
    loaded = VectorIndex.from_bytes(index.to_bytes(), description, small.vectors)
    assert loaded.describe() == index.describe()


# --- parameters and fallbacks ---------------------------------------------------------------


@pytest.mark.parametrize("n", [156, 1_000, 5_000, 20_000, 100_000, 1_000_000])
def test_default_nlist_is_4_sqrt_n_bounded_by_n_over_39(n: int) -> None:
    params = default_params("ivf", n, DIM)
    assert params["nlist"] == min(round(4 * math.sqrt(n)), n // 39)
    assert params["nlist"] * 39 <= n
    assert 1 <= params["nprobe"] <= params["nlist"]
    assert params["nprobe"] >= min(8, params["nlist"])


def test_default_nprobe_at_1m_scans_under_a_twentieth_of_a_flat_scan() -> None:
    # Work per query: every centroid, plus the vectors of the probed lists, which hold 1.13
    # times the average list (measured on real MiniLM embeddings: queries land in dense lists).
    n = 1_000_000
    params = default_params("ivf", n, DIM)
    work = params["nlist"] + params["nprobe"] * 1.13 * n / params["nlist"]
    assert work <= n / 20


@pytest.mark.parametrize(
    ("n", "nbits"), [(624, 4), (1_248, 5), (4_991, 6), (4_992, 7), (9_984, 8), (50_000, 8)]
)
def test_ivfpq_nbits_shrinks_with_the_corpus(n: int, nbits: int) -> None:
    assert default_params("ivfpq", n, DIM)["nbits"] == nbits
    assert n >= 39 * 2**nbits


@pytest.mark.parametrize(
    ("dim", "m"), [(384, 48), (768, 48), (256, 32), (72, 24), (40, 8), (30, 2)]
)
def test_ivfpq_m_is_the_largest_choice_dividing_dim(dim: int, m: int) -> None:
    assert default_params("ivfpq", 10_000, dim)["m"] == m


@pytest.mark.parametrize(
    ("kind", "n", "built", "mentioned"),
    [
        ("ivf", 155, "flat", ["156"]),
        ("ivfpq", 155, "flat", ["624", "156"]),
        ("ivfpq", 623, "ivf", ["624"]),
        ("ivf", 0, "flat", ["156"]),
        ("ivfpq", 624, "ivfpq", []),
    ],
)
def test_small_corpus_falls_back_with_a_reason(
    kind: str, n: int, built: str, mentioned: list[str]
) -> None:
    vectors = clustered(n, 1, seed=3).vectors
    index = build_vector_index(vectors, kind)
    assert (index.requested_kind, index.kind) == (kind, built)
    if built == kind:
        assert index.fallback_reason is None
    else:
        assert index.fallback_reason is not None
        assert all(text in index.fallback_reason for text in mentioned)
        assert index.describe()["fallback_reason"] == index.fallback_reason


def test_fallback_index_still_searches_exactly() -> None:
    data = clustered(100, 5, seed=5)
    index = build_vector_index(data.vectors, "ivf", nprobe=3)
    assert index.kind == "flat"
    for query in data.queries:
        assert (
            index.search(query, K, nprobe=2)[0].tolist()
            == brute_force(data.vectors, query, K)[0].tolist()
        )


def test_explicit_params_override_defaults(small: Corpus) -> None:
    index = build_vector_index(small.vectors, "ivf", nlist=10, nprobe=3)
    assert index.params == {"nlist": 10, "nprobe": 3}
    assert isinstance(index.faiss_index, faiss.IndexIVF)
    assert index.faiss_index.nlist == 10


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("flat", {"nprobe": 4}, "valid: none"),
        ("ivf", {"efSearch": 4}, "nlist, nprobe"),
        ("ivf", {"nlist": 0}, "nlist must be an integer from 1 to 1,048,576, got 0"),
        ("ivf", {"nlist": 26}, "nlist <= 25"),
        ("ivfpq", {"m": 7}, "divide"),
        ("ivfpq", {"nbits": 8}, "9984"),
        ("hnsw", {"M": 1}, "M must be an integer from 2 to 512, got 1"),
        # issue 12, D7: values FAISS cannot hold, or would allocate a beam of, are refused
        ("hnsw", {"ef_search": 2**31}, "ef_search must be an integer from 1 to 100,000"),
        ("hnsw", {"ef_construction": 2**31}, "ef_construction must be an integer from 1"),
        ("hnsw", {"M": 513}, "from 2 to 512"),
        ("hnsw", {"M": True}, "M must be an integer"),
        ("ivf", {"nprobe": 2**64}, "nprobe must be an integer from 1 to 1,048,576"),
        ("ivf", {"nlist": 2**21}, "nlist must be an integer from 1 to 1,048,576"),
        ("ivfpq", {"nbits": 17}, "nbits must be an integer from 4 to 16"),
        ("ivfpq", {"m": 8192}, "m must be an integer from 1 to 4,096"),
        ("ivfpq", {"rerank": 0}, "rerank must be an integer from 1 to 1,000, got 0"),
        ("ivf", {"rerank": 2}, "unknown parameter.*valid: nlist, nprobe$"),
        ("auto", {"M": 16}, "unknown parameter.*for auto: M; valid: nlist, nprobe, m, nbits"),
    ],
)
def test_bad_params_raise(small: Corpus, kind: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_vector_index(small.vectors, kind, **params)


def test_unknown_kind_lists_all_kinds() -> None:
    for call in (
        lambda: build_vector_index(np.eye(4, dtype=np.float32), "annoy"),
        lambda: default_params("annoy", 10, 4),
    ):
        with pytest.raises(ValueError, match="annoy") as raised:
            call()
        assert all(kind in str(raised.value) for kind in (*ALL_KINDS, "auto"))
    assert set(INDEX_KINDS) == set(ALL_KINDS)


# --- per-query parameters and threads -------------------------------------------------------


def test_search_leaves_the_shared_index_settings_alone(
    corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    ivf, hnsw = indexes["ivf"], indexes["hnsw"]
    ivf_faiss, hnsw_faiss = ivf.faiss_index, hnsw.faiss_index
    assert isinstance(ivf_faiss, faiss.IndexIVF)
    assert isinstance(hnsw_faiss, faiss.IndexHNSW)
    nprobe, ef_search = ivf_faiss.nprobe, hnsw_faiss.hnsw.efSearch
    assert (nprobe, ef_search) == (ivf.params["nprobe"], hnsw.params["ef_search"])
    ivf.search(corpus.queries[0], K, nprobe=nprobe + 7)
    hnsw.search(corpus.queries[0], 300, ef_search=ef_search + 50)
    assert ivf_faiss.nprobe == nprobe
    assert hnsw_faiss.hnsw.efSearch == ef_search


def test_options_for_other_kinds_are_ignored(
    corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    query = corpus.queries[1]
    for kind in ALL_KINDS:
        plain = indexes[kind].search(query, K)
        other = indexes[kind].search(
            query, K, **setting("ef_search" if kind != "hnsw" else "nprobe", 7)
        )
        assert plain[0].tolist() == other[0].tolist()
        if kind != "ivfpq":
            assert indexes[kind].search(query, K, rerank=1)[0].tolist() == plain[0].tolist()


@pytest.mark.parametrize(
    ("kind", "option", "values"),
    [
        ("ivf", "nprobe", (1, 2, 4, 8, 32)),
        ("ivfpq", "nprobe", (1, 3, 9)),
        ("hnsw", "ef_search", (10, 20, 200)),
    ],
)
def test_concurrent_searches_match_serial(
    kind: str, option: str, values: tuple[int, ...], corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    index = indexes[kind]
    jobs = [(q, values[i % len(values)]) for i, q in enumerate(corpus.queries[:60])] * 2

    def run(job: tuple[np.ndarray, int]) -> list[int]:
        query, value = job
        return index.search(query, K, **setting(option, value))[0].tolist()

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(run, jobs))
    assert threaded == serial
    # The settings must change some results, or this test could not see a race.
    assert any(run((q, values[0])) != run((q, values[-1])) for q in corpus.queries[:60])


# --- filters --------------------------------------------------------------------------------


def scattered_mask(corpus: Corpus, count: int, seed: int) -> np.ndarray:
    """``count`` allowed ids spread over the clusters, at least one in each of several."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(corpus.vectors), dtype=bool)
    mask[rng.choice(len(corpus.vectors), count, replace=False)] = True
    return mask


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("k", [10, 50])
def test_small_filter_returns_the_exact_allowed_top_k(
    kind: str, k: int, corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    allowed = scattered_mask(corpus, 30, seed=1)
    assert len(set(corpus.labels[allowed].tolist())) > 10
    for query in corpus.queries[:20]:
        ids, scores = indexes[kind].search(query, k, allowed=allowed)
        want_ids, want_scores = brute_force(corpus.vectors, query, k, allowed)
        assert len(ids) == min(k, 30)
        assert allowed[ids].all()
        assert ids.tolist() == want_ids.tolist()
        assert scores == pytest.approx(want_scores, abs=1e-5)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_broad_filter_uses_the_index_and_keeps_k(
    kind: str, corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    allowed = scattered_mask(corpus, N_VECTORS // 2, seed=2)
    results = indexes[kind].search_batch(corpus.queries, K, allowed=allowed)
    reference = [brute_force(corpus.vectors, q, K, allowed)[0] for q in corpus.queries]
    for ids, scores in results:
        assert len(ids) == K
        assert allowed[ids].all()
        assert_well_formed(ids, scores)
    assert recall(results, reference) >= RECALL_FLOORS[kind] - 0.05


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_short_approximate_result_is_redone_exactly(
    kind: str, corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    # With nprobe=1 the one probed list lies in the query's own cluster, all of which is
    # filtered out: FAISS finds nothing, so every hit must come from the exact fallback.
    query, label = corpus.queries[0], corpus.query_labels[0]
    allowed = corpus.labels != label
    ids, scores = indexes[kind].search(query, K, nprobe=1, allowed=allowed)
    want_ids, want_scores = brute_force(corpus.vectors, query, K, allowed)
    assert ids.tolist() == want_ids.tolist()
    assert scores == pytest.approx(want_scores, abs=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_exact_search_reads_the_allowed_rows_in_place(
    kind: str, corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    # 2,000 allowed rows are 3 MB; scoring them must not gather a copy (it took 24 ms on a busy
    # machine through numpy's threaded BLAS, and at 1M vectors a 5% filter copies 77 MB).
    allowed = scattered_mask(corpus, 2_000, seed=5)
    query = corpus.queries[0]
    tracemalloc.start()
    try:
        ids, scores = indexes[kind].search(query, 50, allowed=allowed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    want_ids, want_scores = brute_force(corpus.vectors, query, 50, allowed)
    assert ids.tolist() == want_ids.tolist()
    assert scores == pytest.approx(want_scores, abs=1e-5)
    assert peak < 2_000 * DIM * 4 / 10


def test_search_leaves_the_threads_faiss_may_use_alone(
    corpus: Corpus, indexes: dict[str, VectorIndex]
) -> None:
    def run() -> int:
        faiss.omp_set_num_threads(2)  # per thread: the module's own setting is not touched
        indexes["ivfpq"].search(corpus.queries[0], K)
        indexes["ivf"].search(corpus.queries[0], K, allowed=scattered_mask(corpus, 100, seed=6))
        return faiss.omp_get_max_threads()

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(run).result() == 2


def test_nothing_allowed_gives_no_hits(indexes: dict[str, VectorIndex], corpus: Corpus) -> None:
    none = np.zeros(N_VECTORS, dtype=bool)
    for index in indexes.values():
        ids, scores = index.search(corpus.queries[0], K, allowed=none)
        assert len(ids) == len(scores) == 0


# --- result shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_k_larger_than_ntotal_returns_everything(
    kind: str, small: Corpus, small_indexes: dict[str, VectorIndex]
) -> None:
    index = small_indexes[kind]
    assert index.kind == kind
    ids, scores = index.search(small.queries[0], 5 * len(small.vectors), nprobe=1)
    assert_well_formed(ids, scores)
    assert sorted(ids.tolist()) == list(range(len(small.vectors)))


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(ALL_KINDS),
    k=st.integers(1, 60),
    query_no=st.integers(0, 19),
    nprobe=st.integers(1, 30),
    allowed_bits=st.lists(st.booleans(), min_size=1_000, max_size=1_000) | st.none(),
)
def test_results_are_always_complete_allowed_and_sorted(
    small: Corpus,
    small_indexes: dict[str, VectorIndex],
    kind: str,
    k: int,
    query_no: int,
    nprobe: int,
    allowed_bits: list[bool] | None,
) -> None:
    allowed = None if allowed_bits is None else np.array(allowed_bits)
    ids, scores = small_indexes[kind].search(
        small.queries[query_no], k, nprobe=nprobe, ef_search=nprobe, allowed=allowed
    )
    assert_well_formed(ids, scores)
    available = len(small.vectors) if allowed is None else int(allowed.sum())
    assert len(ids) == min(k, available)
    if allowed is not None:
        assert allowed[ids].all()


def test_search_batch_matches_search(corpus: Corpus, indexes: dict[str, VectorIndex]) -> None:
    for index in indexes.values():
        batch = index.search_batch(corpus.queries[:5], K)
        for query, (ids, scores) in zip(corpus.queries[:5], batch, strict=True):
            one_ids, one_scores = index.search(query, K)
            assert ids.tolist() == one_ids.tolist()
            assert scores == pytest.approx(one_scores, abs=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ix, q: ix.search(q, 0), "k must be"),
        (lambda ix, q: ix.search(q, K, nprobe=0), "nprobe must be"),
        (lambda ix, q: ix.search(q, K, ef_search=-1), "ef_search must be"),
        (lambda ix, q: ix.search(q, K, rerank=0), "rerank must be"),
        (lambda ix, q: ix.search(q, K, rerank=1_001), "rerank must be"),
        (lambda ix, q: ix.search(q[:10], K), "shape"),
        (lambda ix, q: ix.search(q[None, :], K), "shape"),
        (lambda ix, q: ix.search_batch(q[None, :10], K), "shape"),
        (lambda ix, q: ix.search(q, K, allowed=np.ones(5, dtype=bool)), "allowed"),
        (lambda ix, q: ix.search(q, K, allowed=np.ones(1_000, dtype=int)), "allowed"),
    ],
)
def test_bad_search_arguments_raise(small: Corpus, small_indexes, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(small_indexes["ivf"], small.queries[0])


@pytest.mark.parametrize(
    ("kind", "option", "value", "message"),
    [
        ("hnsw", "ef_search", 2**31, "ef_search must be an integer from 1 to 100,000"),
        ("hnsw", "ef_search", 100_001, "ef_search must be an integer from 1 to 100,000"),
        ("ivf", "nprobe", 2**64, "nprobe must be an integer from 1 to 1,048,576"),
        ("ivf", "nprobe", 2.0, "nprobe must be an integer"),
    ],
)
def test_search_settings_out_of_range_never_reach_faiss(
    small: Corpus, small_indexes, kind: str, option: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        small_indexes[kind].search(small.queries[0], K, **setting(option, value))


def test_the_bounds_of_the_search_settings_are_valid(small: Corpus, small_indexes) -> None:
    for kind, option in (("hnsw", "ef_search"), ("ivf", "nprobe")):
        low, high = INDEX_PARAM_RANGES[option]
        for value in (low, high):
            ids, _ = small_indexes[kind].search(small.queries[0], K, **setting(option, value))
            assert len(ids) == K


# --- persistence ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_round_trip_gives_the_same_results(
    kind: str, small: Corpus, small_indexes: dict[str, VectorIndex], small_mapped: np.ndarray
) -> None:
    index = small_indexes[kind]
    description = json.loads(json.dumps(index.describe()))
    loaded = VectorIndex.from_bytes(index.to_bytes(), description, small_mapped)
    assert loaded.describe() == index.describe()
    assert type(loaded.faiss_index) is type(index.faiss_index)
    allowed = scattered_mask(small, 600, seed=4)
    for options in ({}, {"nprobe": 2, "ef_search": 16}, {"allowed": allowed}):
        before = index.search_batch(small.queries, K, **options)
        after = loaded.search_batch(small.queries, K, **options)
        for (ids, scores), (ids2, scores2) in zip(before, after, strict=True):
            assert ids.tolist() == ids2.tolist()
            assert scores.tolist() == scores2.tolist()


def test_describe_is_the_manifest_entry(indexes: dict[str, VectorIndex]) -> None:
    assert indexes["ivf"].describe() == {
        "kind": "ivf",
        "requested_kind": "ivf",
        "params": default_params("ivf", N_VECTORS, DIM),
        "fallback_reason": None,
        "chosen_because": None,
        "ntotal": N_VECTORS,
        "dim": DIM,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ntotal": 999}, "999"),
        ({"dim": 383}, "383"),
        ({"kind": "flat"}, "not a flat index"),
        ({"kind": "annoy"}, "unknown index kind"),
        ({"params": None}, "malformed"),
        ({"params": {"nlist": 25, "nprobe": 2**31}}, "malformed.*nprobe must be an integer"),
        ({"params": {"nlist": 25, "nprobe": float("inf")}}, "malformed"),
    ],
)
def test_from_bytes_rejects_a_mismatched_description(
    small: Corpus, small_indexes: dict[str, VectorIndex], change: dict, message: str
) -> None:
    index = small_indexes["ivf"]
    with pytest.raises(ValueError, match=message):
        VectorIndex.from_bytes(index.to_bytes(), index.describe() | change, small.vectors)


def test_descriptions_without_the_new_keys_still_open(
    small: Corpus, small_indexes: dict[str, VectorIndex]
) -> None:
    # Written before ``auto`` and ``rerank``: ivfpq then always re-ranked 10 candidates per hit.
    index = small_indexes["ivfpq"]
    old = index.describe()
    del old["chosen_because"]
    del old["params"]["rerank"]
    loaded = VectorIndex.from_bytes(index.to_bytes(), old, small.vectors)
    assert loaded.chosen_because is None
    assert loaded.params == index.params | {"rerank": 10}
    for (ids, scores), (ids2, scores2) in zip(
        index.search_batch(small.queries, K, rerank=10),
        loaded.search_batch(small.queries, K),
        strict=True,
    ):
        assert ids.tolist() == ids2.tolist()
        assert scores.tolist() == scores2.tolist()


def test_a_flat_index_saved_with_its_vectors_still_opens(
    small: Corpus, small_mapped: np.ndarray
) -> None:
    # Flat indexes saved before this change held their own copy of the vectors.
    old = faiss.IndexFlatIP(DIM)
    old.add(small.vectors)
    data = faiss.serialize_index(old).tobytes()
    description = {
        "kind": "flat",
        "requested_kind": "flat",
        "params": {},
        "fallback_reason": None,
        "ntotal": len(small.vectors),
        "dim": DIM,
    }
    loaded = VectorIndex.from_bytes(data, description, small_mapped)
    want_scores, want_ids = old.search(small.queries, K)
    for (ids, scores), row_ids, row_scores in zip(
        loaded.search_batch(small.queries, K), want_ids, want_scores, strict=True
    ):
        assert ids.tolist() == row_ids.tolist()
        assert scores.tolist() == row_scores.tolist()
    assert loaded.faiss_index.ntotal == 0  # the old copy was dropped
    assert len(loaded.to_bytes()) < 100
    with pytest.raises(ValueError, match="shape"):
        VectorIndex.from_bytes(data, description, small.vectors[:-1])


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_from_bytes_rejects_mismatched_vectors_and_bad_bytes(
    kind: str, small: Corpus, small_indexes: dict[str, VectorIndex]
) -> None:
    index = small_indexes[kind]
    data, description = index.to_bytes(), index.describe()
    with pytest.raises(ValueError, match="shape"):
        VectorIndex.from_bytes(data, description, small.vectors[:-1])
    with pytest.raises(ValueError, match="shape"):
        VectorIndex.from_bytes(data, description, small.vectors[:, :-1])
    with pytest.raises(ValueError, match="cannot be read"):
        VectorIndex.from_bytes(b"not an index", description, small.vectors)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_memory_bytes_estimates_the_serialized_size(
    kind: str, indexes: dict[str, VectorIndex]
) -> None:
    index = indexes[kind]
    assert index.memory_bytes() == pytest.approx(len(index.to_bytes()), rel=0.02)
