"""The demo must keep telling the truth: the relations the sample collection is built to show.

These check relations between modes (not exact figures), with the engine's default settings.
"""

from __future__ import annotations

import json

import pytest

from search_core.evaluation import EvalReport, evaluate_collection, load_qrels, load_queries
from search_core.search import SearchParams
from tests.conftest import SAMPLE_DATA

MODES = ("vector", "bm25", "hybrid")


@pytest.fixture(scope="module")
def reports(sample_collection) -> dict[str, EvalReport]:
    query_set = load_queries(SAMPLE_DATA / "queries.jsonl")
    qrels = load_qrels(SAMPLE_DATA / "qrels" / "test.tsv")
    return {
        mode: evaluate_collection(sample_collection, query_set, qrels, SearchParams(mode=mode))
        for mode in MODES
    }


def ndcg(report: EvalReport, tag: str) -> float:
    return report.by_tag[tag]["ndcg@10"]


def test_corpus_shape() -> None:
    docs = [json.loads(line) for line in (SAMPLE_DATA / "corpus.jsonl").open(encoding="utf-8")]
    assert 300 <= len(docs) <= 600
    assert {d["metadata"]["domain"] for d in docs} == {
        "legal",
        "commerce",
        "security",
        "automotive",
    }
    assert all(d["_id"] and d["title"] and d["text"] and d["metadata"].get("date") for d in docs)
    query_set = load_queries(SAMPLE_DATA / "queries.jsonl")
    assert len(query_set.queries) >= 60
    # every query carries its information need, shown to judges on the Judging page
    assert set(query_set.descriptions) == set(query_set.queries)
    assert all(20 < len(d) < 400 and "\n" not in d for d in query_set.descriptions.values())
    assert set(query_set.tags.values()) == {"exact-id", "paraphrase", "mixed", "out-of-domain"}
    qrels = load_qrels(SAMPLE_DATA / "qrels" / "test.tsv")
    ids = {d["_id"] for d in docs}
    assert all(doc in ids for judged in qrels.values() for doc in judged)
    for qid, tag in query_set.tags.items():
        if tag == "out-of-domain":
            assert not any(g > 0 for g in qrels.get(qid, {}).values())
        else:
            assert max(qrels[qid].values()) >= 2, qid


def test_exact_ids_need_bm25(reports) -> None:
    assert ndcg(reports["bm25"], "exact-id") >= 0.9
    assert ndcg(reports["hybrid"], "exact-id") >= 0.9
    assert ndcg(reports["vector"], "exact-id") <= ndcg(reports["bm25"], "exact-id") - 0.3


def test_paraphrases_need_vectors(reports) -> None:
    assert ndcg(reports["vector"], "paraphrase") >= ndcg(reports["bm25"], "paraphrase") + 0.3


def test_hybrid_beats_each_single_mode_overall(reports) -> None:
    hybrid = reports["hybrid"].metrics["ndcg@10"]
    assert hybrid > reports["vector"].metrics["ndcg@10"]
    assert hybrid > reports["bm25"].metrics["ndcg@10"]


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_default_threshold_empties_out_of_domain_queries_only(reports, mode: str) -> None:
    by_tag = reports[mode].by_tag
    assert by_tag["out-of-domain"]["empty_share"] > 0.5
    for tag in ("exact-id", "paraphrase", "mixed"):
        assert by_tag[tag]["empty_share"] == 0.0, tag
