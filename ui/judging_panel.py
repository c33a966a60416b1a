"""The judging panel: a Streamlit (components v2) element that shows one document at a time
and takes a grade by click or key, showing the next document the moment a grade is given.

The page sends the pairs the queue holds for the judge (the one to grade now and the one
fetched ahead, :func:`search_core.pooling.next_pair` with ``ahead=1``); the browser switches to
the next one without waiting for the server, which records the grade and fetches the one after.
Everything shown is set as text (text nodes), never parsed as HTML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from search_core.analysis import Analyzer
from search_core.collection import Collection
from search_core.judgments import GRADE_LABELS, Assignment, LabQuery
from ui.display import text_parts

HERE = Path(__file__).resolve().parent
SHOWN_CHARACTERS = 20_000
"""A longer document is shown up to here (a judge reads the start; the rest is said cut)."""

HTML = """
<div class="judging" data-ready="0">
  <div data-part="pair" hidden>
    <div><span class="label">Query:</span> <span data-part="query"></span></div>
    <div class="need" data-part="need-row"><span class="label">Information need:</span>
      <span data-part="need"></span></div>
    <div class="need muted" data-part="no-need">No description was written for this query:
      judge it by its words.</div>
    <div class="document" data-part="document">
      <div class="title" data-part="title"></div>
      <div data-part="body"></div>
      <div class="muted" data-part="cut"></div>
    </div>
  </div>
  <div class="empty" data-part="empty" hidden></div>
  <div class="actions">
    <span data-part="grades" class="actions"></span>
    <button data-op="skip" data-part="skip" title="Key S">Skip</button>
    <button data-op="undo" data-part="undo" title="Key U">Undo</button>
  </div>
</div>
"""

_panel = st.components.v2.component(
    "search_explorer.judging_panel",
    html=HTML,
    css=(HERE / "judging_panel.css").read_text(encoding="utf-8"),
    js=(HERE / "judging_panel.js").read_text(encoding="utf-8"),
    isolate_styles=False,  # its CSS is scoped under .judging; tests read its DOM directly
)


def item(assignment: Assignment, query: LabQuery | None, collection: Collection) -> dict[str, Any]:
    """What the panel shows of one held pair: the query, its need, the document's parts."""
    text = query.text if query else assignment.query_id
    analyzer: Analyzer = collection.analyzer
    try:
        document = collection.document(assignment.doc_id)
        title, body, length = document.title, document.text, len(document.text)
    except KeyError:
        missing = f"Document {assignment.doc_id} is not in this collection's version: skip it."
        title, body, length = "", missing, 0
    cut = (
        f"The document goes on for {length:,} characters in all."
        if length > SHOWN_CHARACTERS
        else ""
    )
    return {
        "token": f"{assignment.query_id}\u0000{assignment.doc_id}",
        "query_id": assignment.query_id,
        "doc_id": assignment.doc_id,
        "query": text,
        "need": (query.description if query else None) or "",
        "title": text_parts(title, text, analyzer),
        "body": text_parts(body[:SHOWN_CHARACTERS], text, analyzer),
        "cut": cut,
    }


def judging_panel(
    held: Sequence[Assignment],
    queries: Mapping[str, LabQuery],
    collection: Collection,
    *,
    message: str,
    can_undo: bool,
    on_action: Callable[[], None],
    key: str,
) -> None:
    """Draw the panel with the pairs held for the judge (``message`` when there are none)."""
    _panel(
        data={
            "items": [item(a, queries.get(a.query_id), collection) for a in held],
            "labels": [[grade, label] for grade, label in GRADE_LABELS.items()],
            "message": message,
            "canUndo": can_undo,
        },
        key=key,
        on_action_change=on_action,
        height="content",
    )


DONE = "_judging_panel_done"


def action(key: str) -> dict[str, Any] | None:
    """The action the panel sent (a grade, a skip or an undo), read in its callback, once:
    an action already handled (the same nonce) gives None."""
    value = st.session_state.get(key)
    found = getattr(value, "action", None) if value is not None else None
    if found is None and isinstance(value, Mapping):
        found = value.get("action")
    if not isinstance(found, dict) or found.get("nonce") == st.session_state.get(DONE):
        return None
    st.session_state[DONE] = found.get("nonce")
    return found
