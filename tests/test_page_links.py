"""Links to the app's pages with ``AppTest``: a link opens the page in the state it names, the
address follows what is shown, and a bad link opens with a message, never an exception.

What a page shows is checked against the engine (``search_core``) with the same settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from search_core.collection import open_collection
from search_core.lab import list_configs
from search_core.links import SEARCH_SETTINGS, read_link
from search_core.search import SearchParams, run_search
from tests.test_app import APP, TIMEOUT, frame, fresh_caches, plain, sample, sample_copy
from ui import state

__all__ = ["fresh_caches", "sample", "sample_copy"]  # fixtures, imported to be used here


def opened(**parameters: Any) -> AppTest:
    """The app opened from a link to its root with these parameters (lists repeat)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in parameters.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown_documents(at: AppTest) -> list[str]:
    """The document ids of the result cards, in order (each card's header names its id)."""
    headers = [plain(m.value) for m in at.markdown if m.value.startswith("**")]
    return [h.rsplit(":gray[", 1)[1].split("]", 1)[0].strip() for h in headers if ":gray[" in h]


def link_warnings(at: AppTest) -> list[str]:
    """What the page said about its link (other warnings, such as low coverage, aside)."""
    return [plain(w.value) for w in at.warning if w.icon == ":material/link_off:"]


def warning_text(at: AppTest) -> str:
    return "\n".join(link_warnings(at))


def address(at: AppTest) -> dict[str, list[str]]:
    """The address's parameters, each with its list of values."""
    return {n: v if isinstance(v, list) else [v] for n, v in at.query_params.items()}


def test_a_search_link_opens_the_search_it_names(sample: Path) -> None:
    at = opened(
        page="search",
        collection="sample",
        q="ORD-58213",
        mode="bm25",
        k="3",
        **{"filter.domain": "commerce"},
    )
    assert not link_warnings(at) and not at.error
    assert at.text_input(key="search_query").value == "ORD-58213"
    assert at.segmented_control(key="search_mode").value == "bm25"
    assert at.slider(key="search_k").value == 3
    expected = run_search(
        open_collection("sample", sample),
        "ORD-58213",
        SearchParams(mode="bm25", k=3, filters={"domain": "commerce"}),
    )
    assert shown_documents(at) == [h.doc_id for h in expected.hits]
    # the address now names every setting: opened again, the same page
    found = address(at)
    assert "page" not in found and found["filter.domain"] == ["commerce"]
    reading = read_link(found, SEARCH_SETTINGS)
    assert reading.problems == () and reading.values["k"] == 3
    again = opened(page="search", **found)
    assert shown_documents(again) == shown_documents(at)


def test_the_address_follows_the_page(sample: Path) -> None:
    at = opened(page="search", collection="sample", q="refund")
    at.segmented_control(key="search_mode").set_value("vector").run()
    at.slider(key="search_threshold").set_value(0.4).run()
    found = address(at)
    assert found["mode"] == ["vector"] and found["threshold"] == ["0.4"]
    # moving to another page and back keeps the page as it was: the address is not a link
    at.switch_page("pages/map.py").run()
    at.switch_page("pages/search.py").run()
    assert at.segmented_control(key="search_mode").value == "vector"
    assert at.slider(key="search_threshold").value == 0.4


def test_a_bad_search_link_opens_with_a_message_naming_each_problem(sample: Path) -> None:
    at = opened(
        page="search",
        collection="gone",
        q="refund",
        k="abc",
        mode="semantic",
        colour="red",
        nprobe="4",
        **{"filter.colour": "red", "filter.domain": ["commerce", "cooking"]},
    )
    assert not at.error
    said = warning_text(at)
    for part in (
        "collection 'gone', which does not exist here (collections: sample)",
        "k='abc' is not a whole number",
        "mode='semantic' is not a valid mode: use one of hybrid, vector, bm25, all",
        "parameter 'colour' is not a setting of this page",
        "nprobe=4 does not apply: this collection's index is flat",
        "no field 'colour'",
        "'cooking' is not a value of domain",
    ):
        assert part in said, part
    # what was valid is applied; the rest has its default
    assert at.text_input(key="search_query").value == "refund"
    assert at.segmented_control(key="search_mode").value == "hybrid"
    assert at.slider(key="search_k").value == SEARCH_SETTINGS["k"].default
    assert at.multiselect(key="search_filter_values_domain@sample").value == ["commerce"]
    assert shown_documents(at)


def test_a_link_to_a_page_the_app_does_not_have_says_so_on_start(sample: Path) -> None:
    at = opened(page="admin")
    assert "a page named 'admin', which the app does not have" in warning_text(at)


def test_a_comparison_link_opens_the_comparison(sample: Path) -> None:
    state.prepare_sample()
    names = ["default-vector", "default-bm25"]
    at = opened(page="lab", collection="sample", config=names, k="5")
    assert not link_warnings(at) and not at.error
    table = frame(at, "nDCG@5")
    assert list(table["configuration"]) == names
    assert address(at)["config"] == names
    # the link of the comparison shown opens the same table
    again = opened(page="lab", **address(at))
    assert frame(again, "nDCG@5").equals(table)


def test_a_comparison_link_naming_what_is_gone_says_so(sample: Path) -> None:
    state.prepare_sample()
    at = opened(
        page="lab", collection="sample", set="nope", config=["default-vector", "old"], k="500"
    )
    said = warning_text(at)
    assert "judgment set 'nope', which sample does not have" in said
    assert "compares 'old', which is not saved with sample" in said
    assert f"(saved: {', '.join(list_configs('sample'))})" in said
    assert "k='500' is out of range: cutoff k must be a whole number from 1 to 100" in said
    table = frame(at, "nDCG@10")  # the valid part still runs
    assert list(table["configuration"]) == ["default-vector"]


def test_the_demo_path_links_open_without_a_message(sample: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    links = [p.proto for p in at.get("page_link")]
    demo = [link for link in links if link.query_string]
    assert len(demo) == 4
    for link in demo:
        page = link.page.strip("/").rsplit("/", 1)[-1]
        target = opened(page=page, **_parse(link.query_string))
        assert not link_warnings(target) and not target.error, page
        asked, found = _parse(link.query_string), address(target)
        assert {n: found.get(n) for n in asked} == asked, page  # what the link names, shown


def _parse(query: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(query, keep_blank_values=True)
