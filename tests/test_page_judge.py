"""The blind judging page with ``AppTest``: the name asked first, the sample's session from an
empty set, what the judging panel is sent (and that it tells nothing of how a document was
found). Grading, skipping and undoing by key are driven in a real browser
(``tests/test_browser_judging.py``): ``AppTest`` cannot press a component's keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_core.collection import open_collection
from search_core.judgments import DEFAULT_SET, open_judgments
from search_core.pooling import next_pair, submit
from tests.test_app import fresh_caches, start, texts, visit
from tests.test_page_lab import new_sample
from ui import state

__all__ = ["fresh_caches", "new_sample"]  # fixtures, imported to be used here

JUDGE = "pages/judge.py"
BLIND = re.compile(r"\b(rank|score|bm25|vector|hybrid|default-\w+|retriever|similarity)\b", re.I)


def panel(at: AppTest) -> dict:
    """What the page sent the judging panel."""
    [element] = at.get("bidi_component")
    return json.loads(element.proto.json)


def words(parts: list[list]) -> str:
    return "".join(text for text, _ in parts)


@pytest.fixture
def judging(new_sample: Path) -> AppTest:
    """The judging page on the sample, as "ana", after starting the sample's session."""
    at = visit(start(), JUDGE)
    assert [t.label for t in at.text_input] == ["Your name"]  # asked first
    at.text_input[0].input("ana")
    next(b for b in at.button if "Start judging" in b.label).click().run()
    assert "Judging as **ana**" in [m.value for m in at.markdown]
    assert "has no judging pool yet" in texts(at)
    next(b for b in at.button if b.key == "judging_sample_pool").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_sample_session_starts_with_no_upload(judging: AppTest, new_sample: Path) -> None:
    store = open_judgments("sample", DEFAULT_SET, new_sample)
    pool = store.pools()[state.SAMPLE_POOL]
    assert pool.replicates == 2 and pool.depth == 5
    assert sorted(pool.sources) == sorted(state.DEFAULT_CONFIGS)
    # documents the sample graded: the judge's grades meet the sample's from the first one
    assert all(store.grade(q, d, "sample") is not None for q, d in pool.pairs)
    sent = panel(judging)
    now, ahead = sent["items"]  # the document to grade and the next one, fetched ahead
    query = store.queries[now["query_id"]]
    assert now["query"] == query.text and now["need"] == query.description
    document = open_collection("sample", new_sample).document(now["doc_id"])
    assert (words(now["title"]), words(now["body"])) == (document.title, document.text)
    assert any(marked for _, marked in now["body"] + now["title"])  # query words marked
    held = next_pair(store, state.SAMPLE_POOL, "ana", ahead=1).held
    assert [(a.query_id, a.doc_id) for a in held] == [
        (item["query_id"], item["doc_id"]) for item in (now, ahead)
    ]
    # blind: nothing on the page or in the panel says how the document was found
    shown = texts(judging) + json.dumps(sent)
    assert not BLIND.search(shown), BLIND.search(shown)
    assert {tuple(label) for label in sent["labels"]} == {
        (0, "not relevant"),
        (1, "related"),
        (2, "relevant"),
        (3, "perfect"),
    }


def test_the_panel_follows_the_queue(judging: AppTest, new_sample: Path) -> None:
    store = open_judgments("sample", DEFAULT_SET, new_sample)
    first, second = panel(judging)["items"]
    submit(store, state.SAMPLE_POOL, "ana", first["query_id"], first["doc_id"], 2, ahead=1)
    judging.run()
    now, _ = panel(judging)["items"]
    assert now["token"] == second["token"]  # the one fetched ahead is now to grade


def test_the_start_page_opens_a_judging_session_on_the_sample(new_sample: Path) -> None:
    at = start(judge_name="ana")
    at.button(key="home_judge_sample").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = open_judgments("sample", DEFAULT_SET, new_sample)
    assert state.SAMPLE_POOL in store.pools()
    assert panel(at)["items"]  # the Judging page, a document in its panel
    made = store.pools()[state.SAMPLE_POOL]
    state.prepare_sample_session()  # asking again keeps the pool as it is
    assert open_judgments("sample", DEFAULT_SET, new_sample).pools()[state.SAMPLE_POOL] == made
