"""The embedding map page with ``AppTest``: the Search page's settings it uses, and its captions.

Expected results come from the engine (``search_core.search.run_search``), never written down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from search_core.collection import open_collection
from search_core.search import SearchParams, run_search
from tests.test_app import fresh_caches, plain, shop, shop_home, start, texts, visit
from ui import display

__all__ = ["fresh_caches", "shop", "shop_home"]  # fixtures, imported to be used here

MAP = "pages/map.py"
QUERY = "brake pads squeal"
NOTHING = {"price": {"gte": 1000, "lte": 2000}}  # the shop's prices run from 0 to 120


def query_marker(at: AppTest) -> str:
    """The symbol of the query's marker on the map."""
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    [query] = [t for t in figure["data"] if t.get("name") == "your query"]
    return str(query["marker"]["symbol"])


def mapped(**search_params: Any) -> AppTest:
    """The map with the query placed, as after a search with these settings on the Search page."""
    at = start(last_query=QUERY, search_params=SearchParams(**search_params).to_dict())
    return visit(at, MAP)


# --------------------------------------------------------------------------- defect 5


def test_filters_that_leave_nothing_are_said_and_can_be_ignored(shop: Path) -> None:
    at = mapped(filters=NOTHING)
    shown = plain(texts(at))
    assert "Results as on the Search page: hybrid mode, top 10" in shown
    assert "price from 1000 to 2000" in shown
    assert "its 0 top results" not in shown
    assert "no result is drawn" in shown
    expected = run_search(open_collection("shop"), QUERY, SearchParams()).hits
    [warning] = at.warning
    assert plain(warning.value) == (
        "No result with the Search page's filters (price from 1000 to 2000): they leave none "
        f'of the {len(expected)} results this query has without them. Switch on "Ignore the '
        "Search page's filters on the map\" above, or change the filters on the Search page."
    )

    at.toggle(key="map_ignore_filters").set_value(True).run()
    assert not at.exception and not at.warning
    shown = plain(texts(at))
    assert f"its {len(expected)} top results" in shown
    assert "(its filters, price from 1000 to 2000, ignored here)" in shown


def test_the_map_uses_the_search_pages_filters_and_says_so(shop: Path) -> None:
    garage = {"category": "garage"}
    at = mapped(filters=garage, k=5)
    expected = run_search(open_collection("shop"), QUERY, SearchParams(filters=garage, k=5))
    shown = plain(texts(at))
    assert "top 5" in shown and "filters: category garage" in shown
    assert f"its {len(expected.hits)} top results" in shown
    assert not at.warning


def test_a_threshold_that_leaves_nothing_is_said(shop: Path) -> None:
    at = mapped(threshold=0.99)
    [warning] = at.warning
    assert "minimum similarity 0.99" in plain(warning.value)
    assert "Search page" in plain(warning.value)


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"severity": {"gte": 9, "lte": 10}}, "severity from 9 to 10"),
        ({"price": {"gt": 5}}, "price above 5"),
        ({"price": {"gte": 1.5, "lt": 9}}, "price at least 1.5 and below 9"),
        ({"domain": ["legal", "security"]}, "domain legal or security"),
        ({"domain": "legal", "open": True}, "domain legal; open True"),
    ],
)
def test_filters_in_words(filters: dict[str, Any], words: str) -> None:
    assert display.filters_in_words(filters) == words


# --------------------------------------------------------------------------- polish


@pytest.mark.parametrize("dims", [2, 3])
def test_the_caption_names_the_query_marker_drawn(shop: Path, dims: int) -> None:
    at = mapped()
    at.segmented_control(key="map_dims").set_value(dims).run()
    assert not at.exception
    assert f"The black {query_marker(at)} is the query" in plain(texts(at))
