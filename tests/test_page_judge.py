"""The blind judging page with ``AppTest``: the sample's session from an empty set, grading,
skipping, undoing, and nothing shown that tells how a document was found."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_core.judgments import DEFAULT_SET, open_judgments
from search_core.pooling import progress
from tests.test_app import fresh_caches, plain, start, texts, visit
from tests.test_page_lab import new_sample
from ui import state

__all__ = ["fresh_caches", "new_sample"]  # fixtures, imported to be used here

JUDGE = "pages/judge.py"
BLIND = re.compile(r"\b(rank|score|bm25|vector|hybrid|default-\w+|retriever|similarity)\b", re.I)


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def shown_pair(at: AppTest) -> tuple[str, str]:
    """The query and the document title on the page."""
    shown = [plain(m.value) for m in at.markdown]
    query = next(m.removeprefix("**Query:** ") for m in shown if m.startswith("**Query:**"))
    title = next(m.removeprefix("#### ") for m in shown if m.startswith("#### "))
    return query, title


@pytest.fixture
def judging(new_sample: Path) -> AppTest:
    """The judging page on the sample, as "ana", after starting the sample's session."""
    at = visit(start(), JUDGE)
    assert [t.label for t in at.text_input] == ["Your name"]  # asked first
    at.text_input[0].input("ana")
    next(b for b in at.button if "Start judging" in b.label).click().run()
    assert "Judging as **ana**" in [m.value for m in at.markdown]
    assert "has no judging pool yet" in texts(at)
    button(at, "judging_sample_pool").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_sample_session_starts_with_no_upload(judging: AppTest, new_sample: Path) -> None:
    store = open_judgments("sample", DEFAULT_SET, new_sample)
    pool = store.pools()[state.SAMPLE_POOL]
    assert pool.replicates == 2 and pool.depth == 5
    assert sorted(pool.sources) == sorted(state.DEFAULT_CONFIGS)
    query, title = shown_pair(judging)
    need = [m.value for m in judging.markdown if m.value.startswith("**Information need:**")]
    assert query in {q.text for q in store.queries.values()}
    described = {q.text: q.description for q in store.queries.values()}
    assert need and described[query] and plain(need[0]).endswith(described[query])
    assert title
    # blind: nothing on the page says how the document was found
    assert not BLIND.search(texts(judging)), BLIND.search(texts(judging))


def test_grade_skip_and_undo(judging: AppTest, new_sample: Path) -> None:
    first = shown_pair(judging)
    button(judging, "judging_grade_2").click().run()
    store = open_judgments("sample", DEFAULT_SET, new_sample)
    mine = store.judgments(judge="ana")
    assert [j.grade for j in mine] == [2]
    second = shown_pair(judging)
    assert second != first
    button(judging, "judging_skip").click().run()
    third = shown_pair(judging)
    assert third not in (first, second)
    assert progress(store, state.SAMPLE_POOL, "ana").judge_skipped == 1

    button(judging, "judging_undo").click().run()  # takes the skip back: the second again
    assert shown_pair(judging) == second
    button(judging, "judging_undo").click().run()  # takes the grade back: the first again
    assert shown_pair(judging) == first
    assert "you had given 2" in texts(judging)
    assert store.judgments(judge="ana") == []
    button(judging, "judging_grade_3").click().run()
    assert [j.grade for j in store.judgments(judge="ana")] == [3]
    assert not judging.exception
