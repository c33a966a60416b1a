"""Links that reproduce a page's state: settings as URL query parameters, read back with checks.

A page's link names each of its settings once (``?collection=sample&q=refund&mode=bm25``). This
module knows each setting's kind and valid values (:data:`SEARCH_SETTINGS` for the Search page,
:data:`COMPARE_SETTINGS` for a comparison in the relevance lab), writes the parameters of a
state (:func:`write_link`) and reads a link back (:func:`read_link`): every value is checked
like any other input, and each bad one becomes a sentence that names the parameter, the value
and what it may be, never an exception. A page uses the valid values and shows the sentences.

Metadata filters travel as ``filter.FIELD`` parameters, one per value (``filter.domain=legal``)
or one ``LOW..HIGH`` range for a number field (``filter.year=2019..2023``); only the page knows
the collection's fields, so it checks them (:func:`range_value`).

No Streamlit here: ``ui/links.py`` joins this to ``st.query_params``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .combining import COMBINING_RULES, DEFAULT_RULE
from .fusion import FUSION_METHODS
from .lab import STAT_TESTS
from .settings import DEFAULT_RRF_K, DEFAULT_THRESHOLD

__all__ = [
    "COMPARE_SETTINGS",
    "FILTER_PREFIX",
    "KINDS",
    "MAP_SETTINGS",
    "MAX_TEXT",
    "PAGE_PARAMETER",
    "SEARCH_SETTINGS",
    "SEARCH_VIEWS",
    "LinkReading",
    "LinkSetting",
    "range_value",
    "read_link",
    "write_link",
]

MAX_TEXT = 2000
"""Longest text a link may carry in one parameter (a query, a name)."""

FILTER_PREFIX = "filter."
"""Parameters of metadata filters: ``filter.FIELD``."""

PAGE_PARAMETER = "page"
"""The parameter that names the page a link opens (``?page=search&...``), read by ``app.py``."""

KINDS = ("text", "choice", "int", "float", "bool", "list")
"""Kinds of settings: ``list`` is a repeated parameter (``config=a&config=b``)."""

SEARCH_VIEWS = ("hybrid", "vector", "bm25", "all")
"""The Search page's modes: the three of a search, and all three side by side."""


@dataclass(frozen=True)
class LinkSetting:
    """One setting a link can carry.

    Attributes:
        label: its name in messages, as the page labels it.
        kind: one of :data:`KINDS`.
        default: its value when the link does not give it (None: no value).
        low: smallest valid number (``int``, ``float``).
        high: largest valid number (``int``, ``float``).
        choices: valid values (``choice``).
        words: a value's meaning for ``float`` settings that also take a word (``floor=auto``).
    """

    label: str
    kind: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")


SEARCH_SETTINGS: dict[str, LinkSetting] = {
    "collection": LinkSetting("collection", "text"),
    "q": LinkSetting("query", "text", ""),
    "mode": LinkSetting("mode", "choice", "hybrid", choices=SEARCH_VIEWS),
    "k": LinkSetting("results", "int", 10, 1, 50),
    "threshold": LinkSetting("minimum similarity", "float", DEFAULT_THRESHOLD, 0.0, 1.0),
    "nprobe": LinkSetting("nprobe", "int", None, 1, 1_048_576),
    "ef_search": LinkSetting("efSearch", "int", None, 1, 4096),
    "rrf_k": LinkSetting("RRF k", "float", float(DEFAULT_RRF_K), 1.0, 1000.0),
    "vector_weight": LinkSetting("vector weight", "float", 1.0, 0.0, 2.0),
    "bm25_weight": LinkSetting("BM25 weight", "float", 1.0, 0.0, 2.0),
    "fusion": LinkSetting("fusion", "choice", "rrf", choices=tuple(FUSION_METHODS)),
    "floor": LinkSetting("BM25 floor", "float", "auto", -2.0, 1.0, words=("auto",)),
    "collapse": LinkSetting(
        "one result per document", "choice", "off", choices=("off", "best", "best-two")
    ),
}
"""The Search page's settings, by URL parameter. Ranges are the page's own controls', so a
link holds nothing a person could not set by hand; ``nprobe`` is capped by the index's lists
on the page."""

MAP_SETTINGS: dict[str, LinkSetting] = {
    "collection": LinkSetting("collection", "text"),
    "q": LinkSetting("query", "text", ""),
}
"""The embedding map: the collection and the query placed on it."""

COMPARE_SETTINGS: dict[str, LinkSetting] = {
    "collection": LinkSetting("collection", "text"),
    "set": LinkSetting("judgment set", "text"),
    "config": LinkSetting("configurations", "list", ()),
    "k": LinkSetting("cutoff k", "int", 10, 1, 100),
    "test": LinkSetting("significance test", "choice", "student", choices=tuple(STAT_TESTS)),
    "rule": LinkSetting("combining rule", "choice", DEFAULT_RULE, choices=tuple(COMBINING_RULES)),
}
"""A comparison in the relevance lab, by URL parameter: the first configuration is the
baseline."""


@dataclass(frozen=True)
class LinkReading:
    """What a link says, checked.

    Attributes:
        values: each setting of the page, from the link when it gave a valid value, else its
            default (so a link reproduces a state whatever the session held before).
        given: the settings the link gave with a valid value.
        filters: ``filter.FIELD`` parameters: the field and its raw values (checked by the
            page, which knows the collection's fields).
        problems: one sentence per value left out: the parameter, the value, what it may be.
    """

    values: dict[str, Any]
    given: frozenset[str] = frozenset()
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def _shown(value: str, limit: int = 60) -> str:
    """A value from a link, quoted and cut, for a message."""
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")


def _number_text(value: float) -> str:
    return f"{value:,g}"


def _parse(name: str, setting: LinkSetting, raw: Sequence[str]) -> Any:
    """A setting's value from its raw values; raises ValueError with the sentence to show."""
    if setting.kind == "list":
        values = [v for v in raw if v != ""]
        if any(len(v) > MAX_TEXT for v in values):
            raise ValueError(f"A value of {name} is longer than {MAX_TEXT:,} characters.")
        return tuple(dict.fromkeys(values))
    value = raw[-1]
    if len(value) > MAX_TEXT:
        raise ValueError(f"{name} ({setting.label}) is longer than {MAX_TEXT:,} characters.")
    if setting.kind == "text":
        return value
    if setting.kind == "choice":
        if value not in setting.choices:
            raise ValueError(
                f"{name}={_shown(value)} is not a valid {setting.label}: "
                f"use one of {', '.join(setting.choices)}."
            )
        return value
    if setting.kind == "bool":
        if value not in ("0", "1"):
            raise ValueError(f"{name}={_shown(value)} must be 1 (on) or 0 (off).")
        return value == "1"
    if value in setting.words:
        return value
    what = "a whole number" if setting.kind == "int" else "a number"
    words = "".join(f", or {w}" for w in setting.words)
    assert setting.low is not None and setting.high is not None
    span = f"{what} from {_number_text(setting.low)} to {_number_text(setting.high)}{words}"
    try:
        number = int(value) if setting.kind == "int" else float(value)
    except ValueError:
        raise ValueError(
            f"{name}={_shown(value)} is not {what}: {setting.label} must be {span}."
        ) from None
    if not (math.isfinite(number) and setting.low <= number <= setting.high):
        raise ValueError(f"{name}={_shown(value)} is out of range: {setting.label} must be {span}.")
    return number


def read_link(
    parameters: Mapping[str, Sequence[str]], settings: Mapping[str, LinkSetting]
) -> LinkReading:
    """Read a link's parameters (each with all its values, in order) against a page's settings.

    A valid value is taken; a bad one is left out with a sentence in ``problems``, and the
    setting keeps its default. A parameter the page does not know is a problem too (a mistyped
    name would otherwise be ignored without a word). ``page`` is the app's, and not checked.

    Args:
        parameters: the link's parameters: name to its values (``?k=5&k=6`` gives
            ``{"k": ["5", "6"]}``; the last counts, except for ``list`` settings).
        settings: the page's settings (:data:`SEARCH_SETTINGS`, :data:`COMPARE_SETTINGS`).

    Returns:
        The checked values, the filters and the problems.
    """
    values = {name: setting.default for name, setting in settings.items()}
    given: set[str] = set()
    filters: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for name, raw in parameters.items():
        raw = [str(v) for v in raw]
        if name == PAGE_PARAMETER or not raw:
            continue
        if name.startswith(FILTER_PREFIX) and name != FILTER_PREFIX:
            filters[name[len(FILTER_PREFIX) :]] = tuple(dict.fromkeys(v for v in raw if v))
            continue
        setting = settings.get(name)
        if setting is None:
            known = ", ".join(settings)
            problems.append(
                f"The link's parameter {_shown(name)} is not a setting of this page "
                f"(its settings: {known}); it was left out."
            )
            continue
        try:
            values[name] = _parse(name, setting, raw)
            given.add(name)
        except ValueError as exc:
            problems.append(f"{exc} The link's value was left out.")
    return LinkReading(values, frozenset(given), filters, tuple(problems))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else repr(value)
    return str(value)


def write_link(
    values: Mapping[str, Any],
    settings: Mapping[str, LinkSetting],
    *,
    filters: Mapping[str, Any] | None = None,
    page: str | None = None,
) -> dict[str, str | list[str]]:
    """The parameters of a state, in the settings' order: what :func:`read_link` reads back.

    A setting that is None or missing is left out; every other is written, its default too,
    so that a link reproduces the state even if a later version changes a default.

    Args:
        values: settings by URL parameter.
        settings: the page's settings.
        filters: metadata filters as :class:`~search_core.search.SearchParams` holds them: a
            value, a list of values, or ``{"gte": low, "lte": high}``.
        page: the page to open (``page=...`` first), for a link to the app's root.

    Raises:
        ValueError: a value names a setting the page does not have.
    """
    unknown = sorted(set(values) - set(settings))
    if unknown:
        raise ValueError(f"unknown settings {unknown}: valid ones are {', '.join(settings)}")
    out: dict[str, str | list[str]] = {}
    if page:
        out[PAGE_PARAMETER] = page
    for name, setting in settings.items():
        value = values.get(name)
        if value is None:
            continue
        if setting.kind == "list":
            if value:
                out[name] = [_text(v) for v in value]
        else:
            out[name] = _text(value)
    for name, value in (filters or {}).items():
        key = FILTER_PREFIX + name
        if isinstance(value, Mapping):
            out[key] = f"{_text(value['gte'])}..{_text(value['lte'])}"
        elif isinstance(value, (list, tuple)):
            out[key] = [_text(v) for v in value]
        else:
            out[key] = _text(value)
    return out


def range_value(name: str, raw: Sequence[str], low: float, high: float) -> tuple[float, float]:
    """A number field's ``LOW..HIGH`` filter from a link, checked against the field's range.

    Raises:
        ValueError: not one ``LOW..HIGH`` of numbers, or outside ``low`` to ``high``; the
            message names the filter and the valid range.
    """
    span = f"{_number_text(low)}..{_number_text(high)}"
    if len(raw) != 1 or raw[0].count("..") != 1:
        shown = _shown("&".join(raw))
        raise ValueError(
            f"filter.{name}={shown} is not a range: write it as LOW..HIGH within {span}."
        )
    first, _, last = raw[0].partition("..")
    try:
        picked = (float(first), float(last))
    except ValueError:
        raise ValueError(
            f"filter.{name}={_shown(raw[0])} is not a range of numbers: write LOW..HIGH within "
            f"{span}."
        ) from None
    if not (low <= picked[0] <= picked[1] <= high):
        raise ValueError(f"filter.{name}={_shown(raw[0])} is out of range: {name} spans {span}.")
    return picked
