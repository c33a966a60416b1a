"""A page's state in its URL (``st.query_params``), and the "Copy link" button.

A page reads a link once, when the address holds parameters the page did not write itself (a
link opened in a new browser, or on the Start page), applies the valid values to its controls
and shows what it left out (:func:`incoming`); after drawing its controls it writes its state
back (:func:`publish`), so the address bar always holds the link to what is shown. The checks
are :mod:`search_core.links`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from search_core.collection import Collection
from search_core.links import PAGE_PARAMETER, LinkReading, LinkSetting, read_link
from ui import display, state

HERE = Path(__file__).resolve().parent
PAGES = ("search", "lab", "map")
"""Pages a link may open from the app's root (``?page=search&...``): their URL paths."""

_WRITTEN = "_links_written"
"""Session key: the parameters each page last wrote in the address."""

_copy = st.components.v2.component(
    "search_explorer.copy_link",
    html=(
        '<div class="copy-link"><button type="button">Copy link</button>'
        '<span data-part="note" aria-live="polite"></span>'
        '<input type="text" readonly hidden aria-label="Link to this view"></div>'
    ),
    css=(HERE / "copy_link.css").read_text(encoding="utf-8"),
    js=(HERE / "copy_link.js").read_text(encoding="utf-8"),
    isolate_styles=False,
)


Parameters = dict[str, list[str]]


def _normal(parameters: Mapping[str, Any]) -> Parameters:
    return {
        name: [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        for name, value in parameters.items()
    }


def current() -> Parameters:
    """The address's parameters, each with all its values."""
    return {name: st.query_params.get_all(name) for name in st.query_params}


def incoming(page: str, settings: Mapping[str, LinkSetting]) -> LinkReading | None:
    """The link this page was opened with, checked; None when there is none to apply.

    There is one when the address holds parameters no page wrote at its last run in this
    session: opened from a shared link, from the Start page, or typed by hand.
    """
    found = current()
    written = st.session_state.get(_WRITTEN, {})
    if not found or found in written.values():  # this page's own, or one another page left
        return None
    return read_link(found, settings)


def _open_collection(reading: LinkReading) -> str | None:
    """Open the collection a link names; a sentence saying why not when it cannot."""
    name = reading.values.get("collection")
    if not name:
        return None
    names = state.collections()
    if name in names:
        state.choose(name)
        return None
    known = ", ".join(names) or "none yet"
    return (
        f"This link is for the collection {name!r}, which does not exist here "
        f"(collections: {known}). It shows the open collection instead."
    )


def start(
    page: str, settings: Mapping[str, LinkSetting]
) -> tuple[Collection, LinkReading | None, list[str]]:
    """Open a page: read its link, open the collection the link names, draw the sidebar.

    Returns:
        The open collection, the link to apply (None: none), and what the link asked for that
        cannot be done, in sentences (the page adds its own, then :func:`show_problems`).
    """
    reading = incoming(page, settings)
    problems = list(reading.problems) if reading else []
    if reading and (missing := _open_collection(reading)):
        problems.append(missing)
    return state.current_collection(), reading, problems


def show_problems(problems: list[str] | tuple[str, ...]) -> None:
    """What a link asked for that the page could not do, as one warning."""
    if problems:
        st.warning(
            display.md("\n".join(problems)),
            icon=":material/link_off:",
        )


def publish(page: str, parameters: Mapping[str, Any]) -> None:
    """Put the page's state in the address (only when it changed)."""
    wanted = _normal(parameters)
    if current() != wanted:
        st.query_params.from_dict(wanted)
    st.session_state.setdefault(_WRITTEN, {})[page] = wanted


def copy_link(page: str, parameters: Mapping[str, Any], *, key: str, label: str = "") -> None:
    """A "Copy link" button: the link opens ``page`` from the app's root with ``parameters``."""
    query = urlencode({PAGE_PARAMETER: page, **_normal(parameters)}, doseq=True)
    _copy(data={"query": query, "slug": page, "label": label or "Copy link"}, key=key)


def redirect(pages: Mapping[str, Any]) -> None:
    """In ``app.py``: a link to the app's root naming a page (``?page=search&...``) opens
    that page with the rest of its parameters. An unknown page is left to the Start page."""
    target = st.query_params.get(PAGE_PARAMETER)
    if target in pages:
        rest = {n: v for n, v in current().items() if n != PAGE_PARAMETER}
        st.switch_page(pages[target], query_params=rest)
