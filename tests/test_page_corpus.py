"""The Corpus page with a newcomer's own CSV: the columns are chosen from the data (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from search_core.collection import read_manifest
from search_core.settings import DEFAULT_BACKEND
from tests.reviews import BATTERY_FAILURES, ROWS, reviews_csv

# fresh_caches: test_app's autouse fixture, so that tests here also start without caches
from tests.test_app import SHOP_CSV, fresh_caches, plain, start, texts, visit  # noqa: F401


def upload_reviews(content: str | None = None) -> AppTest:
    """The Corpus page with the reviews CSV (or other CSV text) uploaded as reviews.csv."""
    at = visit(start(), "pages/corpus.py")
    data = (content if content is not None else reviews_csv()).encode()
    at.file_uploader[0].set_value([("reviews.csv", data, "text/csv")])
    at.run()
    assert not at.exception and not at.error
    return at


def test_the_columns_are_chosen_from_the_data(home: Path) -> None:
    at = upload_reviews()
    assert at.selectbox(key="corpus_text_field").value == "review_text"
    assert at.selectbox(key="corpus_id_field").value == "review_id"
    assert at.selectbox(key="corpus_title_field").value == "(no title)"
    assert at.multiselect(key="corpus_metadata_fields").value == ["category", "product", "rating"]
    # the reasons are shown, and nothing is wrong with these choices
    assert "longest texts" in plain(texts(at)) and not at.warning
    preview = next(d for d in at.dataframe if "metadata" in d.value.columns)
    assert list(preview.value["id"]) == [row["review_id"] for row in ROWS[:20]]
    assert preview.value["text"][0] == ROWS[0]["review_text"]


def test_new_collections_are_built_with_the_default_backend(home: Path) -> None:
    at = upload_reviews()
    assert at.selectbox(key="corpus_backend").value == DEFAULT_BACKEND == "onnx-fp32"


def test_another_upload_gets_its_own_columns(home: Path) -> None:
    at = visit(start(), "pages/corpus.py")
    at.file_uploader[0].set_value([("shop.csv", SHOP_CSV.encode(), "text/csv")]).run()
    assert at.multiselect(key="corpus_metadata_fields").value == ["category", "price"]
    at.file_uploader[0].set_value([("reviews.csv", reviews_csv().encode(), "text/csv")]).run()
    assert not at.exception
    assert at.selectbox(key="corpus_text_field").value == "review_text"
    assert at.multiselect(key="corpus_metadata_fields").value == ["category", "product", "rating"]


def test_the_text_column_gets_the_most_room_in_the_preview(home: Path) -> None:
    at = upload_reviews()
    preview = next(d for d in at.dataframe if "metadata" in d.value.columns)
    widths = {
        name: config.get("width")
        for name, config in json.loads(preview.proto.columns).items()
        if name in preview.value.columns
    }
    assert widths["text"] == "large"
    assert all(width != "large" for name, width in widths.items() if name != "text")


def test_a_text_column_that_looks_like_an_id_is_warned_about(home: Path) -> None:
    at = upload_reviews()
    assert not at.warning
    at.selectbox(key="corpus_text_field").select("review_id").run()
    assert not at.exception
    [warning] = at.warning
    assert "looks like an id" in plain(warning.value)
    assert "review_text" in plain(warning.value)  # and where the texts are
    at.selectbox(key="corpus_text_field").select("product").run()
    assert "very short" in plain(at.warning[0].value)


def test_an_own_csv_is_built_and_searched_with_a_sensible_answer(home: Path) -> None:
    at = upload_reviews()
    at.text_input(key="corpus_name").input("reviews")
    at.button(key="corpus_build").click().run()
    assert not at.exception and not at.error
    assert read_manifest("reviews", home)[1]["counts"]["documents"] == len(ROWS)
    at = visit(at, "pages/search.py")
    at.text_input(key="search_query").input("battery died after a week").run()
    assert not at.exception and not at.error
    first = next(m.value for m in at.markdown if m.value.startswith("**1\\.**"))
    assert any(review in plain(first) for review in BATTERY_FAILURES), first


def test_a_configured_ray_cluster_is_offered_and_its_failure_is_a_message(
    home: Path, monkeypatch
) -> None:
    """Issue 16: with SEARCH_EXPLORER_RAY set, the build can run on the cluster; a cluster
    that cannot be reached (or Ray not installed) is a plain message, and nothing is built."""
    at = upload_reviews()
    assert not [t for t in at.toggle if t.key == "corpus_on_ray"]  # not configured: not offered
    monkeypatch.setenv("SEARCH_EXPLORER_RAY", "127.0.0.1:1")  # nothing listens on port 1
    at.run()
    toggle = at.toggle(key="corpus_on_ray")
    assert "127.0.0.1:1" in toggle.label and toggle.value is False
    toggle.set_value(True)
    at.text_input(key="corpus_name").input("reviews")
    at.button(key="corpus_build").click().run()
    assert not at.exception
    assert any("Ray" in e.value for e in at.error), [e.value for e in at.error]
    assert not (home / "reviews" / "CURRENT").exists()
