"""Links (``search_core.links``): a state written as URL parameters reads back the same, and a
bad value becomes a sentence that names it, never an exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_core.links import (
    COMPARE_SETTINGS,
    MAP_SETTINGS,
    SEARCH_SETTINGS,
    LinkSetting,
    range_value,
    read_link,
    write_link,
)

REGISTRIES = {"search": SEARCH_SETTINGS, "compare": COMPARE_SETTINGS, "map": MAP_SETTINGS}
TEXT = st.text(min_size=1, max_size=40)


def parameters(written: dict[str, Any]) -> dict[str, list[str]]:
    """Parameters as the address holds them: each name with its list of values."""
    return {n: v if isinstance(v, list) else [v] for n, v in written.items()}


def value_of(setting: LinkSetting) -> st.SearchStrategy[Any]:
    """Any valid value of a setting."""
    if setting.kind == "text":
        return TEXT
    if setting.kind == "choice":
        return st.sampled_from(setting.choices)
    if setting.kind == "bool":
        return st.booleans()
    if setting.kind == "list":
        return st.lists(TEXT, max_size=4, unique=True).map(tuple)
    assert setting.low is not None and setting.high is not None
    if setting.kind == "int":
        numbers = st.integers(int(setting.low), int(setting.high))
    else:
        numbers = st.floats(setting.low, setting.high, allow_nan=False)
    return st.one_of(numbers, *map(st.just, setting.words)) if setting.words else numbers


def states(registry: dict[str, LinkSetting]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({n: value_of(s) for n, s in registry.items()})


@pytest.mark.parametrize("page", list(REGISTRIES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_state_written_as_a_link_reads_back_the_same(page: str, data: st.DataObject) -> None:
    registry = REGISTRIES[page]
    state = data.draw(states(registry))
    reading = read_link(parameters(write_link(state, registry)), registry)
    assert reading.problems == ()
    assert reading.values == state
    assert reading.given == {n for n, v in state.items() if v != ()}


def test_a_link_that_gives_nothing_reads_as_the_defaults() -> None:
    reading = read_link({}, SEARCH_SETTINGS)
    assert reading.values == {n: s.default for n, s in SEARCH_SETTINGS.items()}
    assert reading.problems == () and reading.given == frozenset()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("k", "abc", "not a whole number: results must be a whole number from 1 to 50"),
        ("k", "0", "out of range: results must be a whole number from 1 to 50"),
        ("k", "2.5", "not a whole number"),
        ("threshold", "nan", "out of range: minimum similarity must be a number from 0 to 1"),
        ("threshold", "1.5", "out of range"),
        ("mode", "semantic", "not a valid mode: use one of hybrid, vector, bm25, all"),
        ("fusion", "max", "not a valid fusion"),
        ("floor", "manual", "BM25 floor must be a number from -2 to 1, or auto"),
        ("q", "x" * 2001, "longer than 2,000 characters"),
    ],
)
def test_a_bad_value_is_left_out_with_a_sentence_that_names_it(
    name: str, value: str, says: str
) -> None:
    reading = read_link({name: [value], "q": ["refund"]} if name != "q" else {name: [value]},
                        SEARCH_SETTINGS)  # fmt: skip
    assert len(reading.problems) == 1
    problem = reading.problems[0]
    assert problem.startswith(f"{name}=") or name == "q"
    assert says in problem and "left out" in problem
    assert reading.values[name] == SEARCH_SETTINGS[name].default
    assert name not in reading.given


def test_an_unknown_parameter_is_named_with_the_page_s_settings() -> None:
    reading = read_link({"kk": ["5"], "k": ["5"]}, SEARCH_SETTINGS)
    assert reading.values["k"] == 5
    (problem,) = reading.problems
    assert "'kk'" in problem and "k, threshold" in problem


def test_the_last_value_of_a_repeated_parameter_counts_except_for_lists() -> None:
    assert read_link({"k": ["5", "7"]}, SEARCH_SETTINGS).values["k"] == 7
    reading = read_link({"config": ["a", "b", "a", ""]}, COMPARE_SETTINGS)
    assert reading.values["config"] == ("a", "b")


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12) | st.sampled_from([*SEARCH_SETTINGS, "filter.domain", "page"]),
        st.lists(st.text(max_size=30), max_size=3),
        max_size=6,
    )
)
def test_any_address_reads_without_an_exception(found: dict[str, list[str]]) -> None:
    reading = read_link(found, SEARCH_SETTINGS)
    assert set(reading.values) == set(SEARCH_SETTINGS)
    for name in reading.given:
        assert name in found


def test_filters_travel_as_one_parameter_per_field() -> None:
    filters = {"domain": ["legal", "security"], "year": {"gte": 2019, "lte": 2023}, "lang": "en"}
    written = write_link({"q": "x"}, SEARCH_SETTINGS, filters=filters)
    assert written["filter.domain"] == ["legal", "security"]
    assert written["filter.year"] == "2019..2023"
    reading = read_link(parameters(written), SEARCH_SETTINGS)
    assert reading.filters == {
        "domain": ("legal", "security"),
        "year": ("2019..2023",),
        "lang": ("en",),
    }
    assert range_value("year", reading.filters["year"], 2000, 2030) == (2019.0, 2023.0)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (["2019"], "not a range"),
        (["2019..x"], "not a range of numbers"),
        (["1990..2023"], "out of range: year spans 2,000..2,030"),
        (["2025..2020"], "out of range"),
        (["2019..2020", "2021..2022"], "not a range"),
    ],
)
def test_a_bad_range_names_the_filter_and_its_span(raw: list[str], says: str) -> None:
    with pytest.raises(ValueError, match=r"filter\.year") as caught:
        range_value("year", raw, 2000, 2030)
    assert says in str(caught.value)


def test_writing_a_setting_the_page_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="valid ones are collection"):
        write_link({"bogus": 1}, SEARCH_SETTINGS)


def test_a_link_to_the_root_names_its_page_first() -> None:
    written = write_link({"collection": "sample"}, MAP_SETTINGS, page="map")
    assert list(written) == ["page", "collection"]
    assert read_link(parameters(written), MAP_SETTINGS).problems == ()


def test_a_setting_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="text, choice, int"):
        LinkSetting("x", "date")
