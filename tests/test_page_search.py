"""The Search page on the sample collection, with ``AppTest``: grades, filters, captions, timings.

Each test drives the page as a person would and checks what is shown against what the engine
(``search_core``) says, so no figure is written down here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from search_core.judgments import open_judgments
from search_core.search import SearchParams, run_search
from search_core.settings import DEFAULT_THRESHOLD
from tests.test_app import fresh_caches, plain, sample, sample_copy, start, texts, visit
from ui import state

__all__ = ["fresh_caches", "sample", "sample_copy"]  # fixtures, imported to be used here

SEARCH = "pages/search.py"
TWO_CHUNKS = "remote code execution exploit"  # two chunks of one document lead the answer


def searched(mode: str, query: str, **widgets: Any) -> AppTest:
    """The Search page after a query in a mode, with the sliders named in ``widgets`` set."""
    at = visit(start(), SEARCH)
    at.segmented_control(key="search_mode").set_value(mode)
    for key, value in widgets.items():
        at.slider(key=key).set_value(value)
    at.text_input(key="search_query").input(query).run()
    assert not at.exception and not at.error
    return at


def judge_buttons(at: AppTest, collection) -> dict[str, list]:
    """The judging buttons on the page, by the document of their card."""
    by_doc: dict[str, list] = defaultdict(list)
    for group in at.button_group:
        if str(group.key).startswith("judge_"):
            chunk_id = int(str(group.key).rsplit("_", 1)[1])
            by_doc[collection.chunks[chunk_id].doc_id].append(group)
    return by_doc


def figure(at: AppTest, key: str) -> dict[str, Any]:
    """The Plotly figure of a chart (AppTest keeps its spec, not its key: found by content)."""
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    return json.loads(next(s for s in specs if key in s))


# --------------------------------------------------------------------------- defect 2


@pytest.mark.parametrize("mode", ["hybrid", "all"])
def test_every_card_of_a_document_shows_its_one_grade(
    sample: Path, sample_collection, mode: str
) -> None:
    at = searched(mode, TWO_CHUNKS)
    cards = max(judge_buttons(at, sample_collection).items(), key=lambda item: len(item[1]))
    doc_id, buttons = cards
    assert len(buttons) >= 2, "the query should show two cards of one document"
    for grade in (3, 2):
        buttons[0].set_value(grade).run()
        assert not at.exception and not at.error
        store = open_judgments("sample", home=sample)
        [query] = [q for q in store.queries.values() if q.text == TWO_CHUNKS]
        stored = {j.doc_id: j.grade for j in store.judgments(query.query_id)}
        assert stored[doc_id] == grade
        shown = [b.value for b in judge_buttons(at, sample_collection)[doc_id]]
        assert shown == [grade] * len(buttons), (grade, shown)
    # clearing on another card clears them all
    judge_buttons(at, sample_collection)[doc_id][-1].set_value(None).run()
    assert [b.value for b in judge_buttons(at, sample_collection)[doc_id]] == [None] * len(buttons)
    store = open_judgments("sample", home=sample)
    assert doc_id not in {j.doc_id for j in store.judgments()}


# --------------------------------------------------------------------------- defect 4


@pytest.mark.parametrize(
    ("field", "kind", "key", "value"),
    [
        ("severity", "slider", "search_filter_range_severity@sample", (9.0, 10.0)),
        ("domain", "multiselect", "search_filter_values_domain@sample", ["security"]),
    ],
)
def test_filters_survive_a_visit_to_another_page(
    sample: Path, field: str, kind: str, key: str, value: Any
) -> None:
    at = visit(start(), SEARCH)
    at.multiselect(key="search_filter_fields@sample").set_value([field]).run()
    getattr(at, kind)(key=key).set_value(value).run()
    at.text_input(key="search_query").input("password reset").run()
    assert not at.exception and not at.error
    before = [m.value for m in at.markdown if m.value.startswith("**")]
    visit(at, "pages/map.py")
    visit(at, SEARCH)
    assert at.multiselect(key="search_filter_fields@sample").value == [field]
    assert getattr(at, kind)(key=key).value == value
    assert [m.value for m in at.markdown if m.value.startswith("**")] == before
    assert "Filtered:" in texts(at)  # said even with the filter box closed


# --------------------------------------------------------------------------- defect 6


def hybrid_hits_under(sample_collection, threshold: float) -> tuple[str, list]:
    """A sample query whose hybrid answer keeps BM25 results under the threshold."""
    for line in (state.SAMPLE_SOURCE / "queries.jsonl").open(encoding="utf-8"):
        query = json.loads(line)["text"]
        params = SearchParams(mode="hybrid", threshold=threshold)
        hits = run_search(sample_collection, query, params).hits
        if any(h.similarity is not None and h.similarity < threshold for h in hits):
            return query, list(hits)
    raise AssertionError("no sample query keeps a BM25 result under the threshold")


@pytest.mark.parametrize("mode", ["hybrid", "all"])
def test_results_under_the_threshold_are_explained_not_denied(
    sample: Path, sample_collection, mode: str
) -> None:
    threshold = DEFAULT_THRESHOLD
    query, hits = hybrid_hits_under(sample_collection, threshold)
    at = searched(mode, query, search_threshold=threshold)
    under = [h for h in hits if h.similarity is not None and h.similarity < threshold]
    why = [c.value for c in at.caption if c.value.startswith("Why it is here")]
    for hit in under:
        line = next(w for w in why if f"cosine {hit.similarity:.3f}" in w)
        assert "under the minimum similarity" in line and "BM25" in line
    chart = figure(at, "cosine similarity")
    kept = [t for t in chart["data"] if "below the threshold, kept by BM25" in t.get("name", "")]
    assert kept and sorted(kept[0]["x"]) == pytest.approx(sorted(h.similarity for h in under))
    caption = next(c.value for c in at.caption if c.value.startswith("Cosine similarity"))
    assert "never shown" not in caption and "only above the BM25 floor" in caption


# --------------------------------------------------------------------------- defect 9


def timing_rows(at: AppTest) -> dict[str, dict[str, float]]:
    """The timings chart: stage -> row -> milliseconds."""
    chart = figure(at, "milliseconds")
    return {t["name"]: dict(zip(t["y"], t["x"], strict=True)) for t in chart["data"]}


def test_side_by_side_embeds_once_and_marks_cached_answers(sample: Path) -> None:
    at = searched("all", "laptop stolen from a car")
    rows = timing_rows(at)
    assert list(rows["embed the query"]) == ["query embedding"]  # its own row, once
    assert rows["vector search"].keys() == {"Vector", "BM25", "Hybrid"}
    assert "(cached)" not in "".join(rows["vector search"])
    at.run()  # a rerun (a click elsewhere) answers from the session's cache
    rows = timing_rows(at)
    assert set(rows["vector search"]) == {"Vector (cached)", "BM25 (cached)", "Hybrid (cached)"}
    assert list(rows["embed the query"]) == ["query embedding (cached)"]
    assert all("(cached" in c.value for c in at.caption if "results ·" in c.value)


# --------------------------------------------------------------------------- polish


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_an_empty_answer_blames_the_threshold_and_says_what_to_do(sample: Path, mode: str) -> None:
    at = searched(mode, "password reset", search_threshold=1.0)
    [message] = [plain(i.value) for i in at.info]
    assert "minimum similarity 1.00 removed all" in message
    assert "Lower the minimum similarity" in message and "BM25" in message
    assert "collection" not in message
