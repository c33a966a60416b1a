from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from search_core.fusion import FUSION_METHODS, ScoredList, fuse, fuse_lists, reciprocal_rank_fusion


def test_rrf_matches_hand_computation() -> None:
    fused = dict(reciprocal_rank_fusion({"vector": [1, 2, 3], "bm25": [3, 1]}, k=60))
    assert fused[1] == pytest.approx(1 / (60 + 1) + 1 / (60 + 2))
    assert fused[2] == pytest.approx(1 / (60 + 2))
    assert fused[3] == pytest.approx(1 / (60 + 3) + 1 / (60 + 1))


def test_rrf_weights_and_order() -> None:
    fused = reciprocal_rank_fusion(
        {"vector": [1, 2], "bm25": [2, 1]}, {"vector": 2.0, "bm25": 1.0}, k=10
    )
    assert [item for item, _ in fused] == [1, 2]
    assert fused[0][1] == pytest.approx(2 / 11 + 1 / 12)
    assert fused[1][1] == pytest.approx(2 / 12 + 1 / 11)


def test_zero_weight_removes_a_retriever() -> None:
    fused = reciprocal_rank_fusion({"vector": [1, 2], "bm25": [3]}, {"bm25": 0.0})
    assert [item for item, _ in fused] == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"k": -1}, "rrf k"), ({"weights": {"vector": -1.0}}, "weight")],
)
def test_invalid_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reciprocal_rank_fusion({"vector": [1]}, **kwargs)


def test_unknown_method_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="rrf"):
        fuse({"vector": [1]}, method="borda")


rankings = st.lists(st.integers(0, 50), max_size=30, unique=True)


@given(a=rankings, b=rankings, k=st.integers(0, 100))
def test_fusion_ignores_input_order(a: list[int], b: list[int], k: int) -> None:
    forward = reciprocal_rank_fusion({"vector": a, "bm25": b}, k=k)
    backward = reciprocal_rank_fusion({"bm25": b, "vector": a}, k=k)
    assert forward == backward
    assert {item for item, _ in forward} == set(a) | set(b)
    scores = [score for _, score in forward]
    assert scores == sorted(scores, reverse=True)


def _reference(lists, weights, method: str, k: float) -> dict[int, float]:
    """Each method's formula, item by item (the docstrings' formulas, written plainly)."""
    used = [
        (ids, scores, w) for (ids, scores), w in zip(lists, weights, strict=True) if w > 0 and ids
    ]
    total = 1.0 if method == "rrf" else sum(w for _, _, w in used)
    fused: dict[int, float] = {}
    for ids, scores, w in used:
        low, high = min(scores), max(scores)
        mean = sum(scores) / len(scores)
        std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        for rank, (item, score) in enumerate(zip(ids, scores, strict=True), start=1):
            if method == "rrf":
                share = 1 / (k + rank)
            elif method == "minmax":
                share = 1.0 if high == low else (score - low) / (high - low)
            else:
                share = 1.0 if std == 0 else (score - low) / std
            fused[item] = fused.get(item, 0.0) + w / total * share
    return fused


scored = st.lists(
    st.tuples(st.integers(0, 40), st.floats(-5, 50, allow_nan=False)),
    max_size=20,
    unique_by=lambda pair: pair[0],
).map(lambda pairs: sorted(pairs, key=lambda p: -p[1]))
weight = st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])


@given(
    a=scored,
    b=scored,
    c=scored,
    wa=weight,
    wb=weight,
    wc=weight,
    method=st.sampled_from(sorted(FUSION_METHODS)),
    k=st.integers(0, 100),
)
def test_every_method_follows_its_formula(a, b, c, wa, wb, wc, method, k) -> None:
    lists = [([i for i, _ in x], [s for _, s in x]) for x in (a, b, c)]
    ids, scores = fuse_lists(
        [ScoredList(np.array(i, dtype=np.int64), np.array(s)) for i, s in lists],
        [wa, wb, wc],
        method=method,
        k=float(k),
    )
    expected = _reference(lists, [wa, wb, wc], method, float(k))
    assert set(ids.tolist()) == set(expected)
    for item, score in zip(ids.tolist(), scores.tolist(), strict=True):
        assert score == pytest.approx(expected[item], rel=1e-9, abs=1e-12)
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)


def test_being_returned_never_costs_an_item_under_zscore() -> None:
    # 3 is the vector list's worst (a plain z-score below 0); 3 and 4 tie in BM25. Returned by
    # both, 3 must not fall below 4, which the vector list did not return at all.
    vector = ScoredList(np.array([1, 2, 3]), np.array([0.9, 0.5, 0.1]))
    bm25 = ScoredList(np.array([3, 4]), np.array([2.0, 2.0]))
    ids, scores = fuse_lists([vector, bm25], [1.0, 1.0], method="zscore")
    assert ids.tolist().index(3) < ids.tolist().index(4)
    assert scores[ids.tolist().index(3)] == scores[ids.tolist().index(4)] == 0.5


def test_convex_methods_use_the_weights_ratio_only() -> None:
    lists = [
        ScoredList(np.array([1, 2]), np.array([0.8, 0.4])),
        ScoredList(np.array([2, 3]), np.array([9.0, 3.0])),
    ]
    for method in ("minmax", "zscore"):
        small = fuse_lists(lists, [0.3, 0.7], method=method)
        large = fuse_lists(lists, [3.0, 7.0], method=method)
        assert small[0].tolist() == large[0].tolist()
        assert small[1] == pytest.approx(large[1])
