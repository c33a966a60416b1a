"""End-to-end quality on the shared judged collections, indexed with the defaults.

The floors are the plain recipes measured on these files (whole documents, no chunking), from
../shared/data/README.md and the engine issue, given there to three decimals; the engine must
reach them with its defaults, compared at that precision. (On msmarco-5k every passage is one
chunk and the vector mode reproduces the plain recipe exactly: 0.79766, which the issue gives
as 0.798.)
"""

from __future__ import annotations

import pytest

from search_core.evaluation import evaluate_collection, load_qrels, load_queries
from search_core.search import SearchParams, run_search
from search_core.settings import DEFAULT_LEXICAL_MARGIN
from tests.conftest import SAMPLE_DATA

FLOORS = {
    "cranfield": {"vector": 0.435, "bm25": 0.417, "hybrid": 0.469},
    "msmarco-5k": {"vector": 0.798, "bm25": 0.687, "hybrid": 0.782},
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(FLOORS))
def test_default_ndcg_reaches_the_plain_recipes(dataset: str, shared_collection) -> None:
    collection, folder = shared_collection(dataset)
    query_set = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    scores = {}
    for mode in FLOORS[dataset]:
        report = evaluate_collection(collection, query_set, qrels, SearchParams(mode=mode))
        scores[mode] = report.metrics["ndcg@10"]
        assert report.queries == len(query_set.queries)
    print(f"{dataset} nDCG@10: {scores}")
    for mode, floor in FLOORS[dataset].items():
        assert round(scores[mode], 3) >= floor, (
            f"{dataset} {mode}: nDCG@10 {scores[mode]:.4f} < {floor}"
        )


TAGS = ("exact-id", "paraphrase", "mixed")


def test_hybrid_never_dilutes_the_sample_by_tag(sample_collection) -> None:
    # Before the BM25 floor, hybrid's paraphrase nDCG@10 was 0.375 against 0.650 for vector
    # mode: BM25's common-word matches diluted it. Defaults only.
    query_set = load_queries(SAMPLE_DATA / "queries.jsonl")
    qrels = load_qrels(SAMPLE_DATA / "qrels" / "test.tsv")
    reports = {
        mode: evaluate_collection(sample_collection, query_set, qrels, SearchParams(mode=mode))
        for mode in ("vector", "bm25", "hybrid")
    }
    for tag in TAGS:
        scores = {mode: report.by_tag[tag]["ndcg@10"] for mode, report in reports.items()}
        assert scores["hybrid"] >= max(scores["vector"], scores["bm25"]) - 0.03, (tag, scores)
    # out-of-domain queries still get no answer in hybrid and vector mode
    for mode in ("vector", "hybrid"):
        assert reports[mode].by_tag["out-of-domain"]["empty_share"] == 1.0


def test_bm25_ranks_only_chunks_on_topic_in_hybrid(sample_collection) -> None:
    query_set = load_queries(SAMPLE_DATA / "queries.jsonl")
    paraphrases = [q for q, tag in query_set.tags.items() if tag == "paraphrase"]
    assert sample_collection.model_reads_language
    floor = SearchParams().threshold + DEFAULT_LEXICAL_MARGIN
    let_through = 0
    for qid in paraphrases:
        text = query_set.queries[qid]
        for hit in run_search(sample_collection, text, SearchParams()).hits:
            if hit.identifier_match:
                continue
            # here for its vector rank, or BM25 ranked it because it is on topic
            assert hit.vector.rank is not None or hit.similarity >= floor
            if hit.bm25_floor is not None:
                assert hit.similarity < hit.bm25_floor == pytest.approx(floor)
        ungated = run_search(sample_collection, text, SearchParams(lexical_margin=-2.0))
        let_through += sum(h.vector.rank is None and h.similarity < floor for h in ungated.hits)
    assert let_through > 0  # without the floor, off-topic BM25 matches get in
