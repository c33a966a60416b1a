from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from search_core.fusion import fuse, reciprocal_rank_fusion


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
