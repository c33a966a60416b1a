"""Judging: a blind page for domain experts, one document at a time.

The judge sees the query, its information need, one document with the query's words marked,
the grading scale and the set's guidelines, and their progress: never a rank, a score, a
retriever or a configuration, which bias grades. Grades go in by click or key (0-3; S skips,
U undoes the last one). The pair comes from the pool's queue (search_core.pooling), which
several judges share: the grade and the next pair are one journal write. The panel
(ui/judging_panel.py) holds the next document too and shows it the moment a key is pressed,
while the server records the grade.
"""

from __future__ import annotations

import streamlit as st

from search_core.judgments import DEFAULT_GUIDELINES, GRADE_LABELS
from search_core.pooling import next_pair, progress, skip, submit, undo
from ui import display, judging_panel, state

AHEAD = 1
"""Documents fetched ahead, so the next one shows the moment a grade is given."""
PANEL = "judging_panel"
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
    pools = state.all_pools(collection)  # (set, pool) -> pool, the newest last
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()

left, right = st.columns([3, 1], vertical_alignment="bottom")
right.markdown(f"Judging as **{display.md(judge)}**")
if right.button("Not you?", key="judging_change_name", type="tertiary"):
    state.set_judge_name("")
    st.rerun()
if not pools:
    if problem := st.session_state.pop(NOTICE, None):
        display.error(problem)
    left.info(
        "This collection has no judging pool yet. A lead makes one in the Relevance lab, on "
        "the Pools tab, from the configurations to compare."
    )
    if state.is_sample(collection):
        st.button(
            "Start the sample's judging session",
            key="judging_sample_pool",
            type="primary",
            on_click=state.prepare_sample_session,
            args=(collection.name,),
            help="The sample's graded documents among the top 5 of the three default modes, "
            "each to be graded a second time.",
        )
    st.page_link("pages/lab.py", label="Relevance lab", icon=":material/science:")
    st.stop()

several_sets = len({set_name for set_name, _ in pools}) > 1
set_name, pool_name = left.selectbox(
    "Judging pool",
    list(pools),
    format_func=lambda key: f"{key[1]} (judgment set {key[0]})" if several_sets else key[1],
    key=state.key(collection, "judging_pool"),
    index=len(pools) - 1,
)
store = state.judgment_store(collection, set_name)


def _act() -> None:
    """The panel's grade, skip or undo (its callback: done before the panel is drawn again)."""
    sent = judging_panel.action(PANEL)
    if not sent:
        return
    history: list[tuple[str, str, int | None]] = st.session_state.setdefault(HISTORY, [])
    op, query_id, doc_id = sent.get("op"), sent.get("query_id"), sent.get("doc_id")
    try:
        if op == "undo":
            if not history:
                return
            query_id, doc_id, given = history.pop()
            undo(store, pool_name, judge, query_id, doc_id, ahead=AHEAD)
            st.session_state[NOTICE] = (
                "Taken back: grade it again."
                if given is None
                else f"Taken back: you had given {given} ({GRADE_LABELS.get(given, given)})."
            )
            return
        if not isinstance(query_id, str) or not isinstance(doc_id, str):
            return
        if op == "skip":
            skip(store, pool_name, judge, query_id, doc_id, ahead=AHEAD)
            grade = None
        else:
            grade = int(sent.get("grade"))
            submit(store, pool_name, judge, query_id, doc_id, grade, ahead=AHEAD)
        history.append((query_id, doc_id, grade))
        del history[:-50]
    except (*state.USER_ERRORS, TypeError) as exc:
        st.session_state[NOTICE] = f"Not saved: {exc}"


@st.fragment
def panel() -> None:
    """The judging panel: progress, then the need and the document with the grade buttons."""
    try:  # what the judge holds now (the callback just moved it; others may have too)
        turn = next_pair(store, pool_name, judge, ahead=AHEAD)
    except state.USER_ERRORS as exc:
        display.error(exc)
        return
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
    if turn.held:
        message = ""
    elif turn.waiting:
        message = (
            f"Nothing for you right now: {turn.waiting} documents are with other judges. Any "
            "they leave unjudged come back to the queue: look again in a moment."
        )
    else:
        message = "You have judged everything this pool needs from you. Thank you!"
    judging_panel.judging_panel(
        turn.held,
        store.queries,
        collection,
        message=message,
        can_undo=bool(st.session_state.get(HISTORY)),
        on_action=_act,
        key=PANEL,
    )
    if not turn.held and turn.waiting:
        st.button("Look again", key="judging_refresh", icon=":material/refresh:")


panel()
with st.expander("Guidelines", key="judging_guidelines"):
    st.markdown(display.md(store.guidelines or DEFAULT_GUIDELINES))
st.caption(
    "Keys: 0, 1, 2, 3 grade the document; S skips it; U takes back your last grade. "
    "Nothing here tells you how the document was found: judge the text alone."
)
