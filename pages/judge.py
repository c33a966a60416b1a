"""Judging: a blind page for domain experts, one document at a time.

The judge sees the query, its information need, one document with the query's words marked,
the grading scale and the set's guidelines, and their progress: never a rank, a score, a
retriever or a configuration, which bias grades. Grades go in by click or key (0-3; S skips,
U undoes the last one). The pair comes from the pool's queue (search_core.pooling), which
several judges share: the grade and the next pair are one journal write, and only the
judging panel reruns (a fragment), so the next document shows at once.
"""

from __future__ import annotations

import streamlit as st

from search_core.judgments import DEFAULT_GUIDELINES, GRADE_LABELS, JudgmentStore
from search_core.pooling import Turn, next_pair, progress, skip, submit, undo
from ui import display, state

SHOWN_CHARACTERS = 20_000
"""A longer document is shown up to here (a judge reads the start; the rest is said cut)."""
TURN = "judging_turn"
HISTORY = "judging_history"
NOTICE = "judging_notice"

st.title("Judging")
collection = state.current_collection()
judge = state.judge_name(default="")

if not judge:
    st.markdown(
        "Grade how well each document answers a searcher's need. Your name is recorded with "
        "every grade, so that the grades of several judges can be compared."
    )
    with st.form("judging_name_form", border=False):
        name = st.text_input("Your name", key="judging_name_input", max_chars=64)
        if st.form_submit_button("Start judging", type="primary", key="judging_start"):
            try:
                state.set_judge_name(name)
                st.rerun()
            except ValueError as exc:
                display.error(exc)
    st.stop()

try:
    store = state.judgments(collection)
    pools = store.pools()
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()

left, right = st.columns([3, 1], vertical_alignment="bottom")
right.markdown(f"Judging as **{display.md(judge)}**")
if right.button("Not you?", key="judging_change_name", type="tertiary"):
    state.set_judge_name("")
    st.rerun()
if not pools:
    left.info(
        f"The judgment set {display.md(store.set_name)!s} has no judging pool yet. A lead makes "
        "one in the Relevance lab, on the Pools tab, from the configurations to compare."
    )
    if state.is_sample(collection):
        st.button(
            "Start the sample's judging session",
            key="judging_sample_pool",
            type="primary",
            on_click=state.prepare_sample_session,
            args=(collection,),
            help="Pools the top 5 documents of the three default modes for the sample's queries.",
        )
    st.page_link("pages/lab.py", label="Relevance lab", icon=":material/science:")
    st.stop()

pool_name = left.selectbox(
    "Judging pool", list(pools), key=state.key(collection, "judging_pool"), index=len(pools) - 1
)


def _act(action: str, grade: int | None = None) -> None:
    """Grade, skip or undo (a button's on_click: done before the panel is drawn again)."""
    turn: Turn | None = st.session_state.get(TURN)
    history: list[tuple[str, str, str, int | None]] = st.session_state.setdefault(HISTORY, [])
    try:
        if action == "undo":
            if not history:
                return
            pool, query_id, doc_id, given = history.pop()
            st.session_state[TURN] = undo(store, pool, judge, query_id, doc_id)
            st.session_state[NOTICE] = (
                "Taken back: grade it again."
                if given is None
                else f"Taken back: you had given {given} ({GRADE_LABELS.get(given, given)})."
            )
            return
        if turn is None or turn.assignment is None:
            return
        pair = turn.assignment
        if action == "skip":
            st.session_state[TURN] = skip(store, pair.pool, judge, pair.query_id, pair.doc_id)
        else:
            assert grade is not None
            st.session_state[TURN] = submit(
                store, pair.pool, judge, pair.query_id, pair.doc_id, grade
            )
        history.append((pair.pool, pair.query_id, pair.doc_id, grade))
        del history[:-50]
    except state.USER_ERRORS as exc:
        st.session_state[NOTICE] = f"Not saved: {exc}"


@st.fragment
def panel(pool_name: str) -> None:
    """The judging panel: progress, the need, the document and the grade buttons."""
    turn: Turn | None = st.session_state.get(TURN)
    if turn is None or turn.assignment is None or turn.assignment.pool != pool_name:
        try:
            turn = next_pair(store, pool_name, judge)
        except state.USER_ERRORS as exc:
            display.error(exc)
            return
        st.session_state[TURN] = turn
    done = progress(store, pool_name, judge)
    mine, pool_bar = st.columns(2)
    mine.progress(
        done.judge_graded / max(done.judge_graded + done.judge_left, 1),
        text=f"You: {done.judge_graded:,} graded, {done.judge_left:,} left",
    )
    pool_bar.progress(
        done.share,
        text=f"Pool: {done.given:,} of {done.needed:,} grades ({done.complete:,} of "
        f"{done.pairs:,} documents complete)",
    )
    if notice := st.session_state.pop(NOTICE, None):
        st.caption(display.md(notice))
    assignment = turn.assignment
    if assignment is None:
        if turn.waiting:
            st.info(
                f"Nothing for you right now: {turn.waiting} documents are with other judges. "
                "Any they leave unjudged come back to the queue."
            )
            st.button("Look again", key="judging_refresh", icon=":material/refresh:")
        else:
            st.success("You have judged everything this pool needs from you. Thank you!")
        _undo_button()
        return
    _show_pair(store, assignment.query_id, assignment.doc_id)
    buttons = st.columns(6)
    for grade, label in GRADE_LABELS.items():
        buttons[grade].button(
            f"{grade} {label}",
            key=f"judging_grade_{grade}",
            on_click=_act,
            args=("grade", grade),
            shortcut=str(grade),
            type="primary" if grade == 3 else "secondary",
            use_container_width=True,
        )
    buttons[4].button(
        "Skip",
        key="judging_skip",
        on_click=_act,
        args=("skip",),
        shortcut="S",
        icon=":material/skip_next:",
        use_container_width=True,
    )
    with buttons[5]:
        _undo_button()


def _undo_button() -> None:
    st.button(
        "Undo",
        key="judging_undo",
        on_click=_act,
        args=("undo",),
        shortcut="U",
        icon=":material/undo:",
        disabled=not st.session_state.get(HISTORY),
        use_container_width=True,
    )


def _show_pair(store: JudgmentStore, query_id: str, doc_id: str) -> None:
    """The query, its information need and the document, as text (query words marked)."""
    query = store.queries.get(query_id)
    text = query.text if query else query_id
    st.markdown(f"**Query:** {display.md(text)}")
    if query and query.description:
        st.markdown(f"**Information need:** {display.md(query.description)}")
    else:
        st.caption("No description was written for this query: judge it by its words.")
    try:
        document = collection.document(doc_id)
    except KeyError:
        st.warning(f"Document {display.md(doc_id)} is not in this collection's version: skip it.")
        return
    with st.container(border=True, height=420, key="judging_document"):
        if document.title:
            st.markdown(f"#### {display.highlight(document.title, text, collection.analyzer)}")
        body = document.text[:SHOWN_CHARACTERS]
        st.markdown(display.highlight(body, text, collection.analyzer))
        if len(document.text) > SHOWN_CHARACTERS:
            st.caption(f"The document goes on for {len(document.text):,} characters in all.")


panel(str(pool_name))
with st.expander("Guidelines", key="judging_guidelines"):
    st.markdown(display.md(store.guidelines or DEFAULT_GUIDELINES))
st.caption(
    "Keys: 0, 1, 2, 3 grade the document; S skips it; U takes back your last grade. "
    "Nothing here tells you how the document was found: judge the text alone."
)
