from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search_core.candidates import gather, identifier_list
from search_core.chunking import ChunkingConfig
from search_core.collection import BuildOptions, build_collection
from search_core.ingest import IngestReport
from search_core.search import SearchParams, run_search, search
from search_core.settings import DEFAULT_THRESHOLD
from search_core.types import Document

ORDERS = [
    Document("o1", "Order ID: 12345, status: shipped"),
    Document("cat", "The cat sat on the mat."),
    Document("o2", "Order ID: 67890, status: pending"),
]

TOPICS = [
    ("legal", "Either party may terminate the agreement with thirty days written notice.", 30),
    ("legal", "The supplier's liability is capped at the fees paid in the last twelve months.", 0),
    ("legal", "Confidential information must not be disclosed to third parties for five years.", 0),
    ("security", "CVE-2024-1234: remote code execution in the VPN gateway, fixed in 4.2.1.", 9.8),
    ("security", "A cross-site scripting flaw in the admin console allows session theft.", 6.1),
    ("security", "Denial of service in the DNS resolver when parsing long labels.", 7.5),
    ("automotive", "Worn brake pads cause a grinding noise when the car stops.", 0),
    ("automotive", "A misfiring cylinder sets the check engine light with code P0301.", 0),
    ("automotive", "Replace the timing belt every 100,000 km to avoid engine damage.", 0),
    ("commerce", "Refunds go back to the original payment method within five days.", 49.9),
    ("commerce", "Customer was charged twice for order 55120; duplicate payment refunded.", 120.0),
    ("commerce", "Parcel for order 55121 is delayed at the sorting centre.", 35.5),
]


def _report(documents: list[Document]) -> IngestReport:
    return IngestReport(tuple(documents), 0, (), 1, ())


@pytest.fixture(scope="module")
def orders(tmp_path_factory, embedder):
    home = tmp_path_factory.mktemp("orders")
    return build_collection("orders", _report(ORDERS), home=home, embedder=embedder)


@pytest.fixture(scope="module")
def topics(tmp_path_factory, embedder):
    home = tmp_path_factory.mktemp("topics")
    docs = [
        Document(f"{domain}-{i}", text, title="", metadata={"domain": domain, "score": score})
        for i, (domain, text, score) in enumerate(TOPICS)
    ]
    return build_collection("topics", _report(docs), home=home, embedder=embedder)


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_exact_id_query_finds_its_order_first(orders, mode: str) -> None:
    response = search(orders, "order 12345", mode=mode, k=3)
    assert response.hits[0].doc_id == "o1"
    assert response.hits[0].bm25.rank == 1


def test_hits_carry_ranks_scores_and_timings(topics) -> None:
    response = search(topics, "brake noise when stopping", mode="hybrid", k=5, threshold=-1)
    assert response.hits[0].doc_id == "automotive-6"
    assert [h.rank for h in response.hits] == [1, 2, 3, 4, 5]
    for hit in response.hits:
        assert hit.similarity is not None
        assert hit.vector.rank is not None or hit.bm25.rank is not None
        expected = sum(1 / (60 + r.rank) for r in (hit.vector, hit.bm25) if r.rank is not None)
        assert hit.score == pytest.approx(expected)
    timings = response.timings
    assert timings.embed_ms > 0 and timings.vector_ms > 0 and timings.bm25_ms > 0


def test_vector_scores_are_cosines(topics, embedder) -> None:
    response = search(topics, "car makes noise when braking", mode="vector", k=len(TOPICS))
    query = embedder.embed_query("car makes noise when braking")
    for hit in response.hits:
        cosine = float(topics.embeddings[hit.chunk_id] @ query)
        assert hit.score == pytest.approx(cosine, abs=1e-5)
        assert hit.similarity == pytest.approx(cosine, abs=1e-5)
    assert [h.score for h in response.hits] == sorted(
        (h.score for h in response.hits), reverse=True
    )


def test_threshold_drops_weak_results_and_can_empty_the_answer(topics) -> None:
    everything = search(
        topics, "sourdough bread recipe with rye flour", mode="vector", k=12, threshold=-1
    )
    assert len(everything.hits) == 12
    best = everything.hits[0].similarity
    assert best is not None
    cut = search(
        topics, "sourdough bread recipe with rye flour", mode="vector", k=12, threshold=best + 0.01
    )
    assert cut.hits == ()
    assert cut.below_threshold == 12
    default = search(topics, "sourdough bread recipe with rye flour", mode="vector", k=12)
    assert len(default.hits) == sum(h.similarity >= DEFAULT_THRESHOLD for h in everything.hits)
    hybrid = search(
        topics, "sourdough bread recipe with rye flour", mode="hybrid", k=12, threshold=best + 0.01
    )
    assert hybrid.hits == ()
    some = search(topics, "engine warning light", mode="vector", k=12, threshold=0.3)
    assert 0 < len(some.hits) < 12
    assert all(h.similarity is not None and h.similarity >= 0.3 for h in some.hits)
    fused = search(topics, "engine warning light", mode="hybrid", k=12, threshold=0.3)
    assert fused.hits
    # hybrid keeps BM25 candidates: a hit under the threshold is there by its BM25 rank only
    assert all(h.bm25.rank is not None for h in fused.hits if h.similarity < 0.3)
    assert {h.chunk_id for h in some.hits} <= {h.chunk_id for h in fused.hits}


def test_bm25_mode_ignores_the_threshold_and_skips_the_model(topics) -> None:
    response = search(topics, "CVE-2024-1234", mode="bm25", threshold=0.99)
    assert response.hits[0].doc_id == "security-3"
    assert response.hits[0].similarity is None
    assert response.timings.embed_ms == 0


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid"])
def test_filters_apply_inside_the_search(topics, mode: str) -> None:
    response = search(
        topics, "brake pads", mode=mode, k=3, threshold=-1, filters={"domain": "security"}
    )
    assert all(h.metadata["domain"] == "security" for h in response.hits)
    if mode != "bm25":  # BM25 only returns documents sharing a term with the query
        assert len(response.hits) == 3
    ranged = search(topics, "payment", mode=mode, k=10, filters={"score": {"gte": 40}})
    assert {h.doc_id for h in ranged.hits} <= {
        "security-3",
        "security-4",
        "security-5",
        "commerce-9",
        "commerce-10",
    }
    none = search(topics, "payment", mode=mode, filters={"domain": "poetry"})
    assert none.hits == ()


def test_collapse_gives_one_hit_per_document(tmp_path: Path, embedder) -> None:
    long_doc = Document("long", " ".join(f"Brake pads wear out, section {i}." for i in range(200)))
    other = Document("other", "Refund policy for online orders.")
    collection = build_collection(
        "collapse",
        _report([long_doc, other]),
        BuildOptions(chunking=ChunkingConfig(size=32, overlap=0)),
        home=tmp_path,
        embedder=embedder,
    )
    assert len(collection.chunks) > 10
    chunks = search(collection, "brake pads", mode="vector", k=5)
    assert {h.doc_id for h in chunks.hits} == {"long"}
    docs = search(collection, "brake pads", mode="vector", k=5, collapse=True, threshold=-1)
    assert [h.doc_id for h in docs.hits] == ["long", "other"]


def test_precomputed_query_vector_gives_the_same_answer(topics, embedder) -> None:
    params = SearchParams(mode="hybrid", k=5)
    vector = embedder.embed_query("data leak by supplier")
    a = run_search(topics, "data leak by supplier", params)
    b = run_search(topics, "data leak by supplier", params, query_vector=vector)
    assert [h.chunk_id for h in a.hits] == [h.chunk_id for h in b.hits]


def test_okapi_reference_engine(topics) -> None:
    response = search(topics, "order 55120", mode="bm25", bm25_engine="okapi-reference")
    assert response.hits[0].doc_id == "commerce-10"


def test_weights_move_hybrid_towards_one_retriever(topics) -> None:
    pure_vector = search(topics, "charged twice", mode="vector", k=5)
    weighted = search(topics, "charged twice", mode="hybrid", k=5, bm25_weight=0.0)
    assert [h.chunk_id for h in weighted.hits] == [h.chunk_id for h in pure_vector.hits]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "semantic"}, "vector"),
        ({"k": 0}, "k must"),
        ({"threshold": 2.0}, "threshold"),
        ({"bm25_engine": "lucene"}, "okapi-reference"),
        ({"nprobe": 0}, "nprobe"),
    ],
)
def test_invalid_settings_name_the_choices(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchParams(**options)


def test_params_round_trip() -> None:
    params = SearchParams(mode="vector", k=7, threshold=0.3, filters={"domain": "legal"})
    assert SearchParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="valid"):
        SearchParams.from_dict({"colour": "red"})


def test_empty_query(topics) -> None:
    assert search(topics, "   ", mode="hybrid").hits == ()


def test_every_index_kind_answers(tmp_path: Path, embedder) -> None:
    docs = [Document(f"d{i}", f"{text} (note {i})") for i, (_, text, _) in enumerate(TOPICS * 20)]
    for kind in ("flat", "ivf", "hnsw", "ivfpq"):
        collection = build_collection(
            f"kind-{kind}",
            _report(docs),
            BuildOptions(index_kind=kind),
            home=tmp_path,
            embedder=embedder,
        )
        response = search(
            collection, "grinding brakes", mode="vector", k=10, nprobe=4, ef_search=32
        )
        assert len(response.hits) == 10
        assert all(h.chunk_id >= 0 for h in response.hits)
        sims = collection.embeddings @ embedder.embed_query("grinding brakes")
        assert response.hits[0].similarity == pytest.approx(float(np.max(sims)), abs=1e-4)


def test_identifier_match_lifts_the_exact_order_in_hybrid(tmp_path: Path, embedder) -> None:
    notes = [
        "Customer asks where the parcel is; carrier scan shows it left the depot yesterday.",
        "Customer wants to change the delivery address before the parcel ships.",
        "Customer reports the parcel arrived damaged and asks for a replacement.",
    ]
    docs = [Document(f"t{n}", f"Ticket for order ORD-58{n:03d}. {notes[n % 3]}") for n in range(40)]
    collection = build_collection("tickets", _report(docs), home=tmp_path, embedder=embedder)
    for query, expected in (("ORD-58013", "t13"), ("order 58027 damaged", "t27")):
        hybrid = search(collection, query, mode="hybrid", k=5)
        assert hybrid.hits[0].doc_id == expected
        assert hybrid.hits[0].identifier_match
        assert not any(h.identifier_match for h in hybrid.hits[1:])
        without = search(collection, query, mode="hybrid", k=5, identifier_match=False)
        assert not any(h.identifier_match for h in without.hits)


def test_hits_carry_each_retrievers_rank_and_every_candidates_cosine(topics, embedder) -> None:
    query = "engine noise when braking"
    params = SearchParams(mode="hybrid", k=12, threshold=-1, lexical_margin=-2)
    vector = embedder.embed_query(query)
    response = run_search(topics, query, params, query_vector=vector)
    candidates = gather(topics, query, params, vector, params.candidates)
    vector_ids = candidates.vector.ids.tolist()
    bm25_ids = candidates.bm25.ids.tolist()
    assert response.hits
    for hit in response.hits:
        cosine = float(np.sum(topics.embeddings[hit.chunk_id] * vector, dtype=np.float32))
        assert hit.similarity == pytest.approx(cosine, abs=1e-6)
        for part, ids, said in (
            (candidates.vector, vector_ids, hit.vector),
            (candidates.bm25, bm25_ids, hit.bm25),
        ):
            if hit.chunk_id in ids:
                at = ids.index(hit.chunk_id)
                assert (said.rank, said.score) == (at + 1, float(part.scores[at]))
            else:
                assert (said.rank, said.score) == (None, None)
    counted = sorted(set(vector_ids) | set(bm25_ids))
    assert response.candidates == len(counted)
    expected = np.sum(topics.embeddings[counted] * vector, axis=1, dtype=np.float32)
    assert response.candidate_similarities == pytest.approx(expected.tolist(), abs=1e-6)
    bm25_only = search(topics, query, mode="bm25", k=12)
    assert bm25_only.candidate_similarities == ()
    assert all(h.similarity is None and h.vector.rank is None for h in bm25_only.hits)


def test_an_identifier_query_scores_the_collection_once(orders, embedder, monkeypatch) -> None:
    calls: list[str] = []
    real = orders.lexical.scores

    def counted(query: str) -> np.ndarray:
        calls.append(query)
        return real(query)

    params = SearchParams(mode="hybrid", k=3)
    vector = embedder.embed_query("order 12345")
    gathered = gather(orders, "order 12345", params, vector, params.candidates)
    monkeypatch.setattr(orders.lexical, "scores", counted)
    response = run_search(orders, "order 12345", params, query_vector=vector)
    assert response.hits[0].doc_id == "o1" and response.hits[0].identifier_match
    assert len(calls) == 1  # BM25's candidates; the identifier match reads its scores there
    scored_again = identifier_list(orders, "order 12345", vector)
    assert len(calls) == 2
    kept = gathered.identifier
    assert kept.ids.tolist() == scored_again.ids.tolist() == [0]
    assert kept.scores.tolist() == scored_again.scores.tolist()
    assert kept.cosine is not None and scored_again.cosine is not None
    assert kept.cosine.tolist() == scored_again.cosine.tolist()


@pytest.mark.parametrize(
    ("query", "depth"), [("order 12345", 100), ("order status pending pending 12345", 1)]
)
def test_identifier_matches_score_alike_from_bm25s_candidates_or_not(
    orders, embedder, query: str, depth: int
) -> None:
    # at depth 1 BM25's only candidate is o2 (pending twice): the match is scored again
    params = SearchParams(mode="hybrid", k=3)
    vector = embedder.embed_query(query)
    gathered = gather(orders, query, params, vector, depth)
    assert (0 in gathered.bm25.ids.tolist()) == (depth > 1)
    scored_again = identifier_list(orders, query, vector)
    assert gathered.identifier.ids.tolist() == scored_again.ids.tolist() == [0]
    assert gathered.identifier.scores.tolist() == scored_again.scores.tolist()


class _CountedDocuments(list):
    """A collection's documents that count how often a search goes over all of them."""

    passes = 0

    def __iter__(self):
        type(self).passes += 1
        return super().__iter__()


def test_a_query_goes_over_every_document_only_for_a_filter_it_has_not_seen(
    tmp_path, embedder
) -> None:
    docs = [
        Document(f"{domain}-{i}", text, title="", metadata={"domain": domain, "score": score})
        for i, (domain, text, score) in enumerate(TOPICS)
    ]
    collection = build_collection("counted", _report(docs), home=tmp_path, embedder=embedder)
    collection.documents = _CountedDocuments(collection.documents)
    _CountedDocuments.passes = 0
    for query in ("brake noise", "refund", "CVE-2024-1234"):
        for mode in ("vector", "bm25", "hybrid"):
            run_search(collection, query, SearchParams(mode=mode))
    assert _CountedDocuments.passes == 0  # no filter: no document read

    legal = SearchParams(mode="hybrid", threshold=-1, filters={"domain": "legal"})
    first = run_search(collection, "notice", legal)
    for query in ("notice", "liability", "confidential"):
        assert {h.doc_id.split("-")[0] for h in run_search(collection, query, legal).hits} == {
            "legal"
        }
    assert _CountedDocuments.passes == 1  # one pass for the filter, kept for the next queries
    assert [h.doc_id for h in run_search(collection, "notice", legal).hits] == [
        h.doc_id for h in first.hits
    ]
    mask = collection.chunk_mask({"domain": "legal"})
    assert mask is not None and not mask.flags.writeable
    with pytest.raises(ValueError, match="domain"):
        collection.chunk_mask({"domian": "legal"})
