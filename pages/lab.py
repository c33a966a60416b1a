"""Relevance lab: judged queries, saved configurations, comparisons, sweeps and auto-tuning."""

from __future__ import annotations

import streamlit as st

from search_core.agreement import agreement
from search_core.combining import COMBINING_RULES, DEFAULT_RULE, describe_rule
from search_core.judgments import (
    DEFAULT_GUIDELINES,
    DEFAULT_SET,
    GRADE_LABELS,
    JudgmentStore,
    export_bytes,
    list_judgment_sets,
)
from search_core.lab import (
    COVERAGE_WARNING,
    STAT_TESTS,
    compare,
    delete_config,
    evaluate,
    list_snapshots,
    metric_intervals,
    save_config,
    save_snapshot,
    side_by_side,
)
from search_core.links import COMPARE_SETTINGS, LinkReading, write_link
from search_core.pooling import DEFAULT_DEPTH, MAX_DEPTH, MAX_REPLICATES, delete_pool, progress
from search_core.report import build_report
from search_core.search import SearchParams
from search_core.sweeps import ANN_PARAMETERS
from search_core.tuning import describe_params, tune
from ui import display, links, state

SWEEPS = {
    "threshold": "Similarity threshold: quality and empty answers from 0 to 1",
    "fusion": "Fusion: nDCG over RRF k and the vector / BM25 weights",
    "ann": "Approximate index: recall and latency for each nprobe / efSearch",
}
IMPORT_FORMATS = {
    "csv": "CSV (query, doc_id, grade)",
    "trec": "TREC qrels (+ topics file)",
    "beir": "BEIR (queries.jsonl + qrels .tsv)",
}
IMPORTED = "lab_import_message"
POOLED = "lab_pool_message"


def import_now(store: JudgmentStore, fmt: str | None) -> None:
    """Import the sample's judgments (``fmt`` None) or the uploaded files.

    Runs as the button's ``on_click``, before the page is drawn, so the counters at the top
    already include what was imported; the message waits in the session for the page.
    """
    try:
        if fmt is None:
            report = state.import_sample(store)
        else:
            uploads = {
                "judgments": st.session_state.get(f"lab_import_{fmt}"),
                "queries": st.session_state.get(f"lab_import_{fmt}_queries"),
            }
            report = state.import_uploads(store, fmt, uploads)
        st.session_state[IMPORTED] = (True, report.message())
    except state.USER_ERRORS as exc:
        st.session_state[IMPORTED] = (False, str(exc))


def apply_link(reading: LinkReading) -> list[str]:
    """Set the comparison's controls to a link's, and have it run; what cannot be, in words."""
    values, problems = reading.values, []
    if "set" in reading.given:
        known = list(dict.fromkeys([DEFAULT_SET, *list_judgment_sets(collection.name)]))
        if values["set"] in known:
            state.use_judgment_set(values["set"])
        else:
            problems.append(
                f"This link is for the judgment set {values['set']!r}, which {collection.name} "
                f"does not have (sets: {', '.join(known)}). It shows {state.judgment_set()!r}."
            )
    saved = state.configurations(collection)
    missing = [name for name in values["config"] if name not in saved]
    if missing:
        problems.append(
            f"This link compares {', '.join(map(repr, missing))}, which "
            f"{'is' if len(missing) == 1 else 'are'} not saved with {collection.name} "
            f"(saved: {', '.join(saved) or 'none'}); "
            f"{'it was' if len(missing) == 1 else 'they were'} left out."
        )
    chosen = [name for name in values["config"] if name in saved]
    if chosen:
        st.session_state["lab_compare_names"] = chosen
        st.session_state[COMPARE_NOW] = True
        st.session_state[OPEN_TAB] = "Compare"
    st.session_state["lab_compare_k"] = values["k"]
    st.session_state["lab_stat_test"] = values["test"]
    st.session_state["lab_rule"] = values["rule"]
    return problems


COMPARE_NOW = "lab_compare_now"
OPEN_TAB = "lab_open_tab"
RESULT_LINK = "lab_result_link"

st.title("Relevance lab")
collection, reading, problems = links.start("lab", COMPARE_SETTINGS)
state.prepare_sample(collection.name)
if reading:
    problems += apply_link(reading)
links.show_problems(problems)

sets = list_judgment_sets(collection.name)
current = state.judgment_set()
sets = list(dict.fromkeys([DEFAULT_SET, *sets, current]))
left, middle, right = st.columns([2, 1, 2], vertical_alignment="bottom")
state.sync_widget("lab_set", current)
left.selectbox(
    "Judgment set",
    sets,
    key="lab_set",
    on_change=lambda: state.use_judgment_set(st.session_state["lab_set"]),
)
with middle.popover("New set", icon=":material/add:", key="lab_new_set_menu"):
    new_set = st.text_input("Name of the new set", key="lab_new_set_name")
    if st.button("Create", key="lab_new_set"):
        try:
            state.validate_set_name(new_set)
            state.use_judgment_set(new_set)
            st.rerun()
        except state.USER_ERRORS as exc:
            display.error(exc)
right.text_input(
    "Your name, recorded with your judgments",
    key=state.JUDGE_KEY,
    placeholder="app",
    persist_state="session",
)

try:
    store = state.judgments(collection)
    query_set = store.query_set()
    judges = store.judges()
except state.USER_ERRORS as exc:
    display.error(exc)
    st.stop()
rule, adjudicated_first = DEFAULT_RULE, True
if len(judges) > 1:
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    rule = left.selectbox(
        "Several judges' grades of a document combine into one by",
        list(COMBINING_RULES),
        format_func=lambda r: display.sentence(describe_rule(str(r), adjudicated_first=False)),
        key="lab_rule",
        help="Metrics, comparisons and the combined exports use one grade per query and document.",
    )
    adjudicated_first = right.toggle(
        "A lead's final grade comes first", True, key="lab_adjudicated_first"
    )
rule_text = describe_rule(str(rule), adjudicated_first=adjudicated_first)
qrels = store.qrels(str(rule), adjudicated_first=adjudicated_first)
queries = query_set.queries
judged = [q for q in queries if any(g >= 1 for g in qrels.get(q, {}).values())]
columns = st.columns(4)
columns[0].metric("Queries", len(queries))
columns[1].metric(
    "Judgments",
    store.read(lambda held: held.judgment_count()),
    help="Grades given, every judge's counted.",
)
columns[2].metric(
    "Queries with a relevant document",
    len(judged),
    help="Metrics average over these; the others count only in the share of empty answers.",
)
columns[3].metric("Judges", len(judges), help=", ".join(judges) or None)
NEED_JUDGMENTS = (
    "This needs queries with at least one relevant judgment: import some on the Judgments "
    "tab, or judge results on the Search page."
)

judgments_tab, pools_tab, agreement_tab, configs_tab, compare_tab, sweeps_tab, tune_tab = st.tabs(
    ["Judgments", "Pools", "Agreement", "Configurations", "Compare", "Sweeps", "Auto-tune"],
    key="lab_tabs",
    # the same default on every run: a changed one would draw the tabs anew, on it
    default=st.session_state.get(OPEN_TAB),
)

# --- judgments ------------------------------------------------------------------------------
with judgments_tab:
    st.subheader("Import")
    if state.is_sample(collection):
        st.button(
            "Import the sample's 84 judged queries",
            key="lab_import_sample",
            type="primary" if not queries else "secondary",
            on_click=import_now,
            args=(store, None),
            help="Adds only what the set does not hold yet.",
        )
    fmt = st.radio(
        "Format",
        list(IMPORT_FORMATS),
        format_func=lambda f: IMPORT_FORMATS[f],
        horizontal=True,
        key="lab_import_format",
    )
    # read by import_now from the session, by these keys
    st.file_uploader("Judgments file", type=["csv", "tsv", "txt", "qrels"], key=f"lab_import_{fmt}")
    if fmt != "csv":
        st.file_uploader(
            "Queries file (TSV id<TAB>text, or JSONL)",
            type=["tsv", "jsonl", "txt"],
            key=f"lab_import_{fmt}_queries",
        )
    st.button(
        "Import",
        key="lab_import",
        icon=":material/upload:",
        on_click=import_now,
        args=(store, str(fmt)),
    )
    if imported := st.session_state.pop(IMPORTED, None):
        done, message = imported
        if done:
            st.success(display.md(message))
        else:
            display.error(message)

    st.subheader("Queries")
    edited_queries = st.data_editor(
        state.queries_table(store),
        key="lab_queries_editor",
        num_rows="dynamic",
        disabled=["query_id", "judgments"],
        hide_index=True,
        column_config={
            "query": st.column_config.TextColumn("query", width="medium"),
            "description": st.column_config.TextColumn(
                "description",
                width="large",
                help="The information need behind the query, shown to judges as they grade.",
            ),
        },
    )
    st.caption(
        "Edit a query's text, description (what the searcher wants, shown to judges) or tag, "
        "add rows at the bottom, or delete rows; then save."
    )
    if st.button("Save query changes", key="lab_save_queries"):
        try:
            st.success(state.save_query_edits(store, edited_queries))
        except state.USER_ERRORS as exc:
            display.error(exc)

    st.subheader("Judgments")
    edited_judgments = st.data_editor(
        state.judgments_table(store, collection),
        key="lab_judgments_editor",
        num_rows="delete",
        disabled=["query_id", "query", "doc_id", "title", "judge", "judged_at"],
        hide_index=True,
        column_config={
            "grade": st.column_config.SelectboxColumn(
                "grade",
                options=list(GRADE_LABELS),
                required=True,
                help=", ".join(f"{g} = {label}" for g, label in GRADE_LABELS.items()),
            )
        },
    )
    st.caption("Change a grade (0 not relevant … 3 perfect) or delete rows; then save.")
    if st.button("Save judgment changes", key="lab_save_judgments"):
        try:
            st.success(state.save_judgment_edits(store, edited_judgments))
        except state.USER_ERRORS as exc:
            display.error(exc)

    st.subheader("Guidelines for judges")
    guidelines = st.text_area(
        "Shown on the Judging page",
        store.guidelines or DEFAULT_GUIDELINES,
        height=180,
        key="lab_guidelines",
    )
    if st.button("Save the guidelines", key="lab_save_guidelines"):
        try:
            store.set_guidelines(guidelines)
            st.success("Saved: judges see them on the Judging page.")
        except state.USER_ERRORS as exc:
            display.error(exc)

    st.subheader("Export")
    st.caption(f"Combined grades: {display.md(rule_text)}.")
    downloads = {
        "trec": ("Combined grades as TREC qrels", "qrels.txt", "text/plain"),
        "csv": ("Combined grades as CSV", "combined.csv", "text/csv"),
        "judges-csv": ("Every judge's grades as CSV", "judges.csv", "text/csv"),
    }
    for column, (fmt, (label, suffix, mime)) in zip(
        st.columns(len(downloads)), downloads.items(), strict=True
    ):
        data, _ = export_bytes(store, fmt, rule=str(rule), adjudicated_first=adjudicated_first)
        column.download_button(
            label,
            data,
            f"{collection.name}-{store.set_name}-{suffix}",
            mime,
            key=f"lab_export_{fmt}",
            icon=":material/download:",
        )
    st.caption(
        "The per-judge CSV has a judge column and reads back with Import (CSV); cells a "
        "spreadsheet would run as formulas are escaped."
    )

# --- pools ----------------------------------------------------------------------------------
with pools_tab:
    if pooled := st.session_state.pop(POOLED, None):
        st.success(display.md(pooled))
    pools = store.pools()
    if pools:
        st.dataframe(
            display.pools_table({name: progress(store, name) for name in pools}, pools),
            hide_index=True,
            key="lab_pools_table",
        )
        st.caption(
            "Each pool: the documents to judge, the grades each needs, and how many are given. "
            "Judges work on the Judging page; it never shows which configuration found a "
            "document."
        )
        st.page_link("pages/judge.py", label="Open the Judging page", icon=":material/rate_review:")
    else:
        st.caption(
            "No pool yet. A pool is the top documents of the configurations you want to "
            "compare, for every query of the set: judging it makes the comparison fair."
        )
    configs = state.configurations(collection)
    if not queries:
        st.info("This needs queries: add or import some on the Judgments tab.")
    elif not configs:
        st.info("No configuration is saved yet: save some on the Configurations tab.")
    else:
        with st.form("lab_pool_form", border=True):
            chosen_configs = st.multiselect(
                "Pool the top documents of",
                list(configs),
                default=[n for n in state.DEFAULT_CONFIGS if n in configs] or list(configs)[:2],
                key="lab_pool_configs",
            )
            cols = st.columns(3)
            pool_name = cols[0].text_input("Pool name", "round-1", key="lab_pool_name")
            depth = cols[1].number_input(
                "Documents per query from each", 1, MAX_DEPTH, DEFAULT_DEPTH, key="lab_pool_depth"
            )
            replicates = cols[2].number_input(
                "Grades each document needs",
                1,
                MAX_REPLICATES,
                1,
                key="lab_pool_replicates",
                help="1 for a judging round; 3 or more to measure how far judges agree.",
            )
            make = st.form_submit_button("Make the pool", type="primary", key="lab_pool_make")
        if make:
            bar = st.progress(0.0, text="Running the queries...")
            try:
                made = state.pool_configurations(
                    collection,
                    store,
                    str(pool_name),
                    {name: configs[name] for name in chosen_configs},
                    depth=int(depth),
                    replicates=int(replicates),
                    progress=state.progress_callback(bar, "Queries run"),
                )
                st.session_state[POOLED] = (
                    f"Pool {made.name}: {len(made.pairs):,} documents to judge, "
                    f"{made.replicates} grade{'s' if made.replicates > 1 else ''} each. Judges "
                    "work on it on the Judging page."
                )
                bar.empty()
                st.rerun()
            except state.USER_ERRORS as exc:
                bar.empty()
                display.error(exc)
        if pools:
            left, right = st.columns([3, 1], vertical_alignment="bottom")
            doomed_pool = left.selectbox("Pool to delete", list(pools), key="lab_pool_delete_name")
            if right.button("Delete pool", key="lab_pool_delete", icon=":material/delete:"):
                delete_pool(store, str(doomed_pool))
                st.rerun()
            st.caption("Deleting a pool keeps every grade given in it.")

# --- agreement ------------------------------------------------------------------------------
with agreement_tab:
    if len(judges) < 2:
        st.info(
            "Agreement needs two judges or more grading the same documents: make a pool that "
            "needs 2 or 3 grades per document on the Pools tab, and have judges work on it."
        )
    else:
        compared = st.multiselect("Judges", judges, default=judges, key="lab_agreement_judges")
        report = agreement(store.judgments(), judges=compared or None)
        cols = st.columns(3)
        cols[0].metric(
            "Krippendorff's alpha (ordinal)",
            "n/a" if report.alpha is None else f"{report.alpha:.2f}",
            help="1 is perfect agreement, 0 is what chance gives, below 0 systematic "
            "disagreement. Over all the judges, on the documents two or more graded.",
        )
        cols[1].metric("Documents graded by two judges or more", report.units)
        cols[2].metric("Documents they disagree on", len(report.disagreements))
        st.dataframe(display.agreement_table(report), hide_index=True, key="lab_agreement_pairs")
        st.caption(
            "For each pair of judges, on the documents both graded: the weighted Cohen's kappa "
            "(quadratic weights: a 0 against a 3 counts nine times a 0 against a 1; 1 is "
            "perfect, 0 chance) and the share of identical grades."
        )
        by_query = report.by_query()
        if by_query:
            st.markdown("**Where the judges disagree most, for a lead to settle**")
            disputed = st.selectbox(
                "Query (the widest spread first)",
                list(by_query),
                format_func=lambda q: display.snippet(f"{q}: {queries.get(q, '')}", 90),
                key="lab_disputed_query",
            )
            items = by_query[str(disputed)]
            final = {j.doc_id: j.grade for j in store.adjudications() if j.query_id == disputed}
            st.dataframe(
                display.disagreement_table(items, final, collection.titles),
                hide_index=True,
                key="lab_disagreements",
            )
            st.caption(
                "Each document of this query the judges graded differently, with every judge's "
                "grade (None: that judge did not grade it) and the final grade a lead set."
            )
            with st.form("lab_adjudicate_form", border=False):
                cols = st.columns([3, 2, 1], vertical_alignment="bottom")
                settle = cols[0].selectbox(
                    "Document",
                    [item.doc_id for item in items],
                    format_func=lambda d: display.snippet(
                        f"{d}: {collection.titles.get(d, '')}", 80
                    ),
                    key="lab_adjudicate_doc",
                )
                final_grade = cols[1].selectbox(
                    "Final grade",
                    list(GRADE_LABELS),
                    format_func=lambda g: f"{g} {GRADE_LABELS[g]}",
                    key="lab_adjudicate_grade",
                )
                if cols[2].form_submit_button("Set", key="lab_adjudicate"):
                    try:
                        store.adjudicate(
                            str(disputed), str(settle), int(final_grade), state.judge_name()
                        )
                        st.rerun()
                    except state.USER_ERRORS as exc:
                        display.error(exc)
            st.caption(
                f"Recorded as adjudicated by {display.md(state.judge_name())}: with "
                '"A lead\'s final grade comes first" on, metrics use it whatever the judges gave.'
            )

# --- configurations -------------------------------------------------------------------------
with configs_tab:
    configs = state.configurations(collection)
    if configs:
        st.dataframe(display.configurations_table(configs), hide_index=True, key="lab_configs")
        st.caption(
            "Saved search settings of this collection; compare them on the Compare tab. "
            f"A dash ({display.NOT_USED}) marks a setting the mode does not use."
        )
    else:
        st.caption("No configuration saved yet.")
    left, right = st.columns(2)
    left.button(
        "Save the three default modes",
        key="lab_save_defaults",
        on_click=state.save_default_configs,
        args=(collection.name,),
    )
    search_params = st.session_state.get("search_params")
    if right.button(
        "Save the Search page's settings", key="lab_save_search", disabled=not search_params
    ):
        save_config(collection.name, "search-page", SearchParams.from_dict(search_params or {}))
        st.rerun()
    with (
        st.expander("A new configuration", key="lab_new_config_box"),
        st.form("lab_new_config", border=False),
    ):
        name = st.text_input("Name", "my-config", key="lab_config_name")
        cols = st.columns(3)
        mode = cols[0].selectbox("Mode", ["hybrid", "vector", "bm25"], key="lab_config_mode")
        threshold = cols[1].number_input(
            "Minimum similarity",
            0.0,
            1.0,
            float(SearchParams().threshold),
            0.01,
            key="lab_config_threshold",
        )
        rrf_k = cols[2].number_input(
            "RRF k", 1.0, 1000.0, float(SearchParams().rrf_k), 1.0, key="lab_config_rrf_k"
        )
        cols = st.columns(3)
        vector_weight = cols[0].number_input(
            "Vector weight", 0.0, 5.0, 1.0, 0.05, key="lab_config_vector_weight"
        )
        bm25_weight = cols[1].number_input(
            "BM25 weight", 0.0, 5.0, 1.0, 0.05, key="lab_config_bm25_weight"
        )
        collapse = cols[2].checkbox("One result per document", key="lab_config_collapse")
        if st.form_submit_button("Save configuration", key="lab_config_save"):
            try:
                params = SearchParams(
                    mode=str(mode),
                    threshold=threshold,
                    rrf_k=rrf_k,
                    vector_weight=vector_weight,
                    bm25_weight=bm25_weight,
                    collapse=collapse,
                )
                save_config(collection.name, name, params)
                st.rerun()
            except state.USER_ERRORS as exc:
                display.error(exc)
    if configs:
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        doomed = left.selectbox("Configuration to delete", list(configs), key="lab_delete_name")
        if right.button("Delete", key="lab_delete_config", icon=":material/delete:"):
            delete_config(collection.name, str(doomed))
            st.rerun()

# --- compare --------------------------------------------------------------------------------
with compare_tab:
    configs = state.configurations(collection)
    if not judged:
        st.info(NEED_JUDGMENTS)
    elif not configs:
        st.info("No configuration is saved yet: save the three default modes to compare them.")
        st.button(
            "Save the three default modes",
            key="lab_compare_save_defaults",
            type="primary",
            on_click=state.save_default_configs,
            args=(collection.name,),
        )
    else:
        left, middle, right = st.columns([3, 1, 1])
        chosen = left.multiselect(
            "Configurations (the first is the baseline)",
            list(configs),
            default=[n for n in state.DEFAULT_CONFIGS if n in configs] or list(configs)[:2],
            key="lab_compare_names",
        )
        k = middle.number_input("Cutoff k", 1, 100, 10, key="lab_compare_k")
        test = right.selectbox(
            "Significance test",
            list(STAT_TESTS),
            format_func=lambda t: STAT_TESTS[t],
            key="lab_stat_test",
        )
        clicked = st.button(
            "Run and compare", key="lab_compare", type="primary", disabled=not chosen
        )
        if (clicked or st.session_state.pop(COMPARE_NOW, False)) and chosen:
            embedded = any(configs[name].mode != "bm25" for name in chosen)
            bar = st.progress(
                0.0,
                text=("Embedding the queries, then running " if embedded else "Running ")
                + f"{len(queries)} queries with {len(chosen)} configurations...",
            )
            try:
                runs = state.runs(
                    collection,
                    {name: configs[name] for name in chosen},
                    queries,
                    progress=state.progress_callback(bar, "Queries run"),
                )
                for name, run in runs.items():
                    scored = evaluate(qrels, run, int(k), queries=queries)
                    save_snapshot(collection, name, run, scored, configs[name])
                result = (
                    compare(
                        qrels,
                        runs,
                        k=int(k),
                        queries=queries,
                        stat_test=str(test),
                        rule=rule_text if len(judges) > 1 else "",
                    )
                    if len(runs) > 1
                    else evaluate(qrels, runs[chosen[0]], int(k), queries=queries)
                )
                st.session_state["lab_result"] = (collection.name, runs, result)
                st.session_state[RESULT_LINK] = write_link(
                    {
                        "collection": collection.name,
                        "set": store.set_name,
                        "config": chosen,
                        "k": int(k),
                        "test": str(test),
                        "rule": str(rule) if len(judges) > 1 else None,
                    },
                    COMPARE_SETTINGS,
                )
            except state.USER_ERRORS as exc:
                display.error(exc)
            finally:
                bar.empty()
        kept = st.session_state.get("lab_result")
        if kept and kept[0] == collection.name:
            _, runs, result = kept
            names = list(runs)
            reports = {names[0]: result} if len(names) == 1 else result.reports
            share, download = st.columns([1, 1], vertical_alignment="center")
            with share:
                links.copy_link(
                    "lab",
                    st.session_state.get(RESULT_LINK, {}),
                    key="lab_copy_link",
                    label="Copy link to this comparison",
                )
            if len(names) > 1:
                download.download_button(
                    "Download the experiment report (HTML)",
                    data=lambda: build_report(
                        collection,
                        result,
                        runs,
                        qrels,
                        queries,
                        {name: configs.get(name) for name in names},
                        judgment_set=store.set_name,
                        judges=judges,
                    ).to_html(),
                    file_name=f"report-{state.safe_file_name(collection.name)}.html",
                    mime="text/html",
                    on_click="ignore",
                    icon=":material/download:",
                    key="lab_report",
                    help="One HTML file that opens offline: the settings, the metrics with their "
                    "confidence intervals, the wins and losses, and the queries that changed most "
                    "with both result lists.",
                )
            if len(names) == 1:
                st.dataframe(
                    display.metrics_table(
                        [{"name": names[0], **result.summary()}],
                        result.k,
                        {names[0]: metric_intervals(result)},
                    ),
                    hide_index=True,
                    key="lab_single_table",
                )
                st.caption(
                    f"Mean of each metric over the {result.judged} judged queries, with its "
                    "bootstrap 95% confidence interval over queries. Add a second configuration "
                    "to compare them query by query."
                )
            else:
                st.dataframe(
                    display.metrics_table(result.table, result.k, result.intervals),
                    hide_index=True,
                    key="lab_metric_table",
                )
                st.caption(
                    f"Mean of each metric over the {result.reports[names[0]].judged} judged "
                    "queries, with its bootstrap 95% confidence interval over queries. "
                    f"judged@{result.k}: share of each configuration's top {result.k} results "
                    "that someone judged. No result: share of all queries left without any "
                    "result."
                )
            if len(judges) > 1:
                st.caption(f"Grades of several judges: {display.md(rule_text)}.")
            unjudged = sorted({pair for r in reports.values() for pair in r.unjudged_pairs})
            if any(r.coverage < COVERAGE_WARNING for r in reports.values()):
                st.warning(
                    display.md(
                        display.coverage_warning(result)
                        if len(names) > 1
                        else f"Under {COVERAGE_WARNING:.0%} of the top {result.k} results are "
                        "judged, so the metrics undercount this configuration: a result "
                        "nobody judged counts as not relevant."
                    ),
                    icon=":material/warning:",
                )
                if st.button(
                    f"Pool the {len(unjudged):,} unjudged documents for judging",
                    key="lab_pool_unjudged",
                    icon=":material/rate_review:",
                ):
                    try:
                        made = state.pool_unjudged(store, runs, int(result.k))
                        st.success(
                            f"Pool {display.md(made.name)} is ready: judges find it on the "
                            "Judging page."
                        )
                    except state.USER_ERRORS as exc:
                        display.error(exc)
            if len(names) > 1:
                st.plotly_chart(
                    display.wins_chart(result.wins_ties_losses, names[0]), key="lab_wins_chart"
                )
                st.caption(
                    f"For each configuration, the queries where its {result.metric} beats "
                    f"(wins), equals (ties) or trails (losses) the baseline {names[0]}."
                )
                st.dataframe(
                    display.significance_table(result), hide_index=True, key="lab_significance"
                )
                st.caption(
                    "Each configuration minus the baseline: the difference of the means, its "
                    "bootstrap 95% confidence interval over queries (an interval that holds 0 "
                    f"is no clear difference) and the {STAT_TESTS[result.stat_test]}: a p-value "
                    f"below {result.max_p} means the difference is unlikely to be chance."
                )
                other = st.selectbox("Per-query differences of", names[1:], key="lab_delta_name")
                st.plotly_chart(
                    display.delta_chart(result.per_query, str(other), result.metric),
                    key="lab_delta_chart",
                )
                st.caption(
                    f"{result.metric} of {other} minus {names[0]} for each judged query, sorted; "
                    "green bars are queries it improves, red bars queries it hurts. Hover for "
                    "the query."
                )
                with st.expander("Per-query scores", key="lab_per_query_box"):
                    st.dataframe(
                        display.per_query_table(result.per_query),
                        hide_index=True,
                        key="lab_per_query",
                    )
                    st.caption(
                        f"{result.metric} of each configuration for each judged query, and its "
                        f"difference from {names[0]}."
                    )
            st.markdown("**One query, the ranked lists side by side**")
            query_id = st.selectbox(
                "Query" if len(names) == 1 else "Query (the largest differences first)",
                state.by_difference(queries, result),
                format_func=lambda q: display.snippet(f"{q}: {queries[q]}", 90),
                key="lab_side_query",
            )
            view = side_by_side(
                qrels,
                runs,
                str(query_id),
                k=result.k,
                queries=queries,
                titles=collection.titles,
            )
            st.dataframe(
                display.side_by_side_table(view),
                hide_index=True,
                column_config=display.side_by_side_columns(view),
                key="lab_side_table",
            )
            st.caption("Each list's documents in rank order with their grade (blank: unjudged).")
            if len(names) > 1:
                st.dataframe(
                    display.ranks_table(view),
                    hide_index=True,
                    column_config=display.ranks_columns(view),
                    key="lab_ranks_table",
                )
                st.caption(
                    "Every document of these lists with its grade and its rank in each list "
                    "(blank: not in that list's top 100), best ranked first."
                )
        snapshots = list_snapshots(collection.name)
        if snapshots:
            with st.expander(f"Saved runs ({len(snapshots)})", key="lab_snapshots_box"):
                st.dataframe(
                    display.snapshots_table(snapshots), hide_index=True, key="lab_snapshots"
                )
                st.caption("Every comparison keeps each configuration's run with its metrics.")

# --- sweeps ---------------------------------------------------------------------------------
with sweeps_tab:
    if not judged:
        st.info(NEED_JUDGMENTS)
    else:
        approximate = collection.vector_index.kind in ANN_PARAMETERS
        kinds = [k for k in SWEEPS if k != "ann" or approximate]
        kind = st.radio("Sweep", kinds, format_func=lambda k: SWEEPS[k], key="lab_sweep_kind")
        if not approximate:
            st.caption("The ANN sweep needs an ivf, hnsw or ivfpq index; this one is exact (flat).")
        configs = state.configurations(collection)
        base_name = st.selectbox(
            "Starting from",
            ["default hybrid", *configs],
            key="lab_sweep_base",
            help="The sweep changes one setting of this configuration and keeps the others.",
        )
        base = configs.get(str(base_name), SearchParams())
        if kind == "threshold" and base.mode == "bm25":
            base = SearchParams()
        if st.button("Run the sweep", key="lab_sweep", type="primary"):
            with st.spinner("Sweeping..."):
                try:
                    st.session_state["lab_sweep_result"] = (
                        collection.name,
                        state.sweep(collection, str(kind), queries, qrels, base),
                    )
                except state.USER_ERRORS as exc:
                    display.error(exc)
        kept = st.session_state.get("lab_sweep_result")
        if kept and kept[0] == collection.name:
            result = kept[1]
            if result.kind == "threshold":
                st.plotly_chart(
                    display.threshold_chart(result.rows, 10, base.threshold),
                    key="lab_threshold_chart",
                )
                best = max(result.rows, key=lambda r: r["ndcg@10"])
                st.caption(
                    "As the minimum similarity rises, weak results are dropped and more queries "
                    "get no answer at all: right for queries the collection does not cover, "
                    f"wrong for the others. Best nDCG@10 here: {best['ndcg@10']:.3f} at "
                    f"{best['threshold']:.2f}, with {best['empty_share']:.0%} of queries "
                    "left without a result."
                )
            elif result.kind == "fusion":
                st.plotly_chart(display.fusion_chart(result.rows, 10), key="lab_fusion_chart")
                best = max(result.rows, key=lambda r: r["ndcg@10"])
                st.caption(
                    "nDCG@10 of hybrid search for each RRF k (rows) and share of weight given to "
                    "the vector ranking (columns); the left column is BM25 alone, the right one "
                    f"vector alone. Best: {best['ndcg@10']:.3f} with RRF k {best['rrf_k']:g} "
                    f"and vector share {best['vector_weight']:.1f}."
                )
            else:
                st.plotly_chart(
                    display.ann_chart(result.rows, result.parameter, 10), key="lab_ann_chart"
                )
                st.caption(
                    f"Recall@10 of the approximate index against exact search as "
                    f"{result.parameter} grows, and the time per query (bars)."
                )
            st.caption(
                f"{result.queries} queries ({result.judged} judged), {result.seconds:.1f} s."
            )

# --- auto-tune ------------------------------------------------------------------------------
with tune_tab:
    if len(judged) < 2:
        st.info(NEED_JUDGMENTS)
    else:
        st.caption(
            "Auto-tune tries fusion methods and weights, RRF k, BM25 settings, thresholds and "
            "the BM25 floor, and reports the score on queries it did not tune on "
            "(cross-validation), so tuning to the test set does not flatter it. It keeps the "
            "best default unless tuning beats it on held-out queries in a paired test."
        )
        folds = st.number_input(
            "Folds", 2, min(10, len(judged)), min(5, len(judged)), key="lab_tune_folds"
        )
        if st.button("Auto-tune", key="lab_tune", type="primary", icon=":material/tune:"):
            bar = st.progress(0.0, text="Scoring the settings...")
            try:
                tuned = tune(
                    collection,
                    query_set,
                    qrels,
                    int(folds),
                    progress=state.progress_callback(bar, "Scoring settings"),
                )
                st.session_state["lab_tune_result"] = (collection.name, tuned)
            except state.USER_ERRORS as exc:
                display.error(exc)
            finally:
                bar.empty()
        kept = st.session_state.get("lab_tune_result")
        if kept and kept[0] == collection.name:
            report = kept[1]
            best = report.defaults[report.best_default]
            cols = st.columns(3)
            cols[0].metric(
                "Tuned, on queries it did not see",
                f"{report.held_out:.3f}",
                f"{report.gain:+.3f} vs the best default",
            )
            cols[1].metric(f"Best default ({report.best_default})", f"{best:.3f}")
            cols[2].metric("Settings tried", report.grid_size)
            low, high = report.gain_ci
            st.caption(
                f"Gain on held-out queries: {report.gain:+.3f} (95% bootstrap interval over "
                f"queries: {low:+.3f} to {high:+.3f})."
            )
            st.plotly_chart(
                display.tune_chart(report.defaults, report.held_out, report.chosen_score),
                key="lab_tune_chart",
            )
            st.caption(
                "nDCG@10 of each default mode, of the tuned setting on held-out queries (the "
                "honest estimate) and on all queries (optimistic: it was tuned on them)."
            )
            st.markdown(f"**Chosen:** {display.md(describe_params(report.chosen))}")
            st.markdown(display.md(report.reason))
            if st.button("Save as configuration 'tuned'", key="lab_tune_save"):
                save_config(collection.name, "tuned", report.chosen)
                st.success("Saved as tuned: compare it with the defaults on the Compare tab.")

# --- the address: a link to the comparison shown, or to the set ------------------------------
shown = st.session_state.get("lab_result")
links.publish(
    "lab",
    st.session_state.get(RESULT_LINK)
    if shown and shown[0] == collection.name and st.session_state.get(RESULT_LINK)
    else write_link({"collection": collection.name, "set": store.set_name}, COMPARE_SETTINGS),
)
