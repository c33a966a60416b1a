"""The candidate stage: how a setting ranks one query's candidates (synthetic candidates)."""

from __future__ import annotations

import numpy as np
import pytest

from search_core.candidates import (
    Candidates,
    RetrieverList,
    lexical_floor,
    rank,
    rank_deepening,
)
from search_core.search import SearchParams
from search_core.settings import DEFAULT_LEXICAL_MARGIN


def listed(ids, scores, cosine=None, complete=True) -> RetrieverList:
    cos = None if cosine is None else np.array(cosine, dtype=np.float32)
    return RetrieverList(
        np.array(ids, dtype=np.int64), np.array(scores, dtype=np.float32), cos, complete
    )


# vector finds 1 (0.8), 2 (0.5), 3 (0.2: under the 0.25 threshold); BM25 finds 4 on common words
# (cosine 0.05), then 2 and 1
VECTOR = listed([1, 2, 3], [0.8, 0.5, 0.2], [0.8, 0.5, 0.2])
BM25 = listed([4, 2, 1], [9.0, 5.0, 1.0], [0.05, 0.5, 0.8])


def test_the_threshold_cuts_vector_candidates_and_empties_an_out_of_domain_answer() -> None:
    ranking = rank(Candidates(VECTOR), SearchParams(mode="vector"))
    assert ranking.ids.tolist() == [1, 2] and ranking.below_threshold == 1
    far = listed([1, 2], [0.2, 0.1], [0.2, 0.1])
    for mode in ("vector", "hybrid"):
        assert rank(Candidates(far, BM25), SearchParams(mode=mode)).ids.tolist() == []


def test_bm25_mode_ignores_the_threshold() -> None:
    assert rank(Candidates(bm25=BM25), SearchParams(mode="bm25")).ids.tolist() == [4, 2, 1]


def test_the_floor_keeps_common_word_matches_out_of_hybrid() -> None:
    ranking = rank(Candidates(VECTOR, BM25), SearchParams())
    assert ranking.ids.tolist() == [1, 2]
    assert ranking.gated == frozenset({4})
    assert ranking.floor == pytest.approx(SearchParams().threshold + DEFAULT_LEXICAL_MARGIN)
    off = rank(Candidates(VECTOR, BM25), SearchParams(lexical_margin=-2.0))
    assert 4 in off.ids.tolist() and not off.gated


def test_identifier_matches_lift_the_floor() -> None:
    identifiers = listed([4], [9.0], [0.05])
    ranking = rank(Candidates(VECTOR, BM25, identifiers), SearchParams())
    assert ranking.ids[0] == 4 and ranking.identifiers == frozenset({4})
    assert ranking.floor is None


def test_no_automatic_floor_where_the_model_does_not_read_the_language() -> None:
    foreign = Candidates(VECTOR, BM25, model_reads_language=False)
    assert lexical_floor(SearchParams(), model_reads_language=False) is None
    assert 4 in rank(foreign, SearchParams()).ids.tolist()
    # a margin that is set applies everywhere
    assert 4 not in rank(foreign, SearchParams(lexical_margin=0.0)).ids.tolist()


@pytest.mark.parametrize("fusion", ["rrf", "minmax", "zscore"])
def test_every_fusion_ranks_each_candidate_once_best_first(fusion: str) -> None:
    ranking = rank(Candidates(VECTOR, BM25), SearchParams(fusion=fusion, lexical_margin=-2.0))
    assert sorted(ranking.ids.tolist()) == [1, 2, 4]
    assert ranking.scores.tolist() == sorted(ranking.scores.tolist(), reverse=True)


def test_deepening_grows_the_depth_until_enough_documents() -> None:
    chunk_doc = np.array([0, 0, 0, 0, 1, 2])  # chunks 0-3 are one document
    asked = []

    def gather_at(depth: int) -> Candidates:
        asked.append(depth)
        ids = np.arange(min(depth, 6))
        return Candidates(listed(ids, 1 - ids / 10, 1 - ids / 10, depth >= 6))

    params = SearchParams(mode="vector", k=3, candidates=1, collapse=True)
    ranking, _ = rank_deepening(gather_at, params, want=3, total=6, chunk_doc=chunk_doc)
    assert asked == [3, 6]
    assert chunk_doc[ranking.ids].tolist() == [0, 1, 2]


def test_best_two_ranks_a_document_by_the_sum_of_its_two_best_chunks() -> None:
    # chunks 0 and 2 are document 5, chunks 1, 4 and 5 document 7, chunk 3 document 9
    chunk_doc = np.array([5, 7, 5, 9, 7, 7])
    ranking = rank(
        Candidates(
            listed(range(6), [0.9, 0.8, 0.3, 0.7, 0.6, 0.1], [0.9, 0.8, 0.3, 0.7, 0.6, 0.1])
        ),
        SearchParams(mode="vector", threshold=0.0),
    )
    best = ranking.collapsed(chunk_doc)
    assert chunk_doc[best.ids].tolist() == [5, 7, 9]
    two = ranking.collapsed(chunk_doc, "best-two")
    assert chunk_doc[two.ids].tolist() == [7, 5, 9]  # 0.8 + 0.6 beats 0.9 + 0.3
    assert two.ids.tolist() == [1, 0, 3]  # each shown by its best chunk
    assert two.scores.tolist() == pytest.approx([1.4, 1.2, 0.7])


@pytest.mark.parametrize(
    ("ids", "wanted"),
    [([5, 1, 9, 3], [9, 4, 5, 3, 1]), ([], [2]), ([7], []), ([2, 8, 2], [8])],
)
def test_positions_find_each_id_or_give_minus_one(ids: list[int], wanted: list[int]) -> None:
    found = listed(ids, [1.0] * len(ids)).positions(np.array(wanted, dtype=np.int64))
    assert found.tolist() == [ids.index(w) if w in ids else -1 for w in wanted]


def test_cosines_of_reads_any_list_holding_the_chunk() -> None:
    identifiers = listed([7], [3.0], [0.4])
    candidates = Candidates(VECTOR, BM25, identifiers)
    got = candidates.cosines_of(np.array([4, 1, 7, 3, 99], dtype=np.int64))
    assert got is not None
    assert got[:4].tolist() == pytest.approx([0.05, 0.8, 0.4, 0.2])
    assert np.isnan(got[4])  # no candidate
    assert Candidates(listed([1], [2.0]), listed([2], [1.0])).cosines_of(np.array([1])) is None
    assert candidates.counted().tolist() == [1, 2, 3, 4]
