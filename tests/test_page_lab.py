"""The relevance lab page with ``AppTest``: the sample's judgments, imports, comparisons, tables.

Expected counts come from the files and the engine (``search_core``), never written down here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_core.evaluation import load_qrels, load_queries
from search_core.judgments import DEFAULT_SET, list_judgment_sets, open_judgments
from search_core.lab import delete_config, list_configs, save_config
from search_core.search import SearchParams
from tests.conftest import SAMPLE_DATA
from tests.test_app import (
    frame,
    fresh_caches,
    judged_shop,
    plain,
    shop,
    shop_home,
    start,
    texts,
    visit,
)
from ui import display, state

__all__ = ["fresh_caches", "shop", "shop_home"]  # fixtures, imported to be used here

LAB = "pages/lab.py"
SAMPLE_QUERIES = load_queries(SAMPLE_DATA / "queries.jsonl").queries
SAMPLE_QRELS = load_qrels(SAMPLE_DATA / "qrels" / "test.tsv")
SAMPLE_JUDGMENTS = sum(len(docs) for docs in SAMPLE_QRELS.values())


@pytest.fixture
def new_sample(tmp_path: Path, sample_collection, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home holding a copy of the sample collection as built, without any lab folder yet."""
    home = tmp_path / "collections"
    shutil.copytree(sample_collection.folder.parent, home / "sample")
    shutil.rmtree(home / "sample" / "lab", ignore_errors=True)
    monkeypatch.setenv("SEARCH_EXPLORER_HOME", str(home))
    return home


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: str(m.value) for m in at.metric}


def journal_lines(home: Path, collection: str, set_name: str) -> int:
    return len(open_judgments(collection, set_name, home).path.read_bytes().splitlines())


# --------------------------------------------------------------------------- defect 8


def test_the_sample_goes_from_start_to_a_comparison_without_an_upload(new_sample: Path) -> None:
    at = start()
    at.button(key="home_open_sample").click().run()
    assert not at.exception
    store = open_judgments("sample", DEFAULT_SET, new_sample)
    assert store.qrels() == SAMPLE_QRELS
    assert {j.judge for j in store.judgments()} == {"sample"}

    visit(at, LAB)
    shown = metrics(at)
    assert (shown["Queries"], shown["Judgments"]) == (
        str(len(SAMPLE_QUERIES)),
        str(SAMPLE_JUDGMENTS),
    )
    assert set(list_configs("sample", new_sample)) == set(state.DEFAULT_CONFIGS)
    assert at.multiselect(key="lab_compare_names").value == list(state.DEFAULT_CONFIGS)
    at.button(key="lab_compare").click().run()
    assert not at.exception and not at.error
    table = frame(at, "nDCG@10")
    assert list(table["configuration"]) == list(state.DEFAULT_CONFIGS)
    assert set(table["judged queries"]) == {
        sum(any(g >= 1 for g in docs.values()) for docs in SAMPLE_QRELS.values())
    }


def test_a_sample_built_before_gets_its_judgments_when_the_lab_opens(new_sample: Path) -> None:
    at = visit(start(), LAB)
    assert metrics(at)["Queries"] == str(len(SAMPLE_QUERIES))
    assert open_judgments("sample", DEFAULT_SET, new_sample).qrels() == SAMPLE_QRELS


def test_the_sample_is_prepared_once_and_what_people_change_stays(new_sample: Path) -> None:
    state.prepare_sample()
    store = open_judgments("sample", DEFAULT_SET, new_sample)
    assert store.qrels() == SAMPLE_QRELS
    for query_id in list(store.queries):
        store.remove_query(query_id)
    for name in list_configs("sample", new_sample):
        delete_config("sample", name, new_sample)
    save_config("sample", "mine", SearchParams(mode="bm25"), new_sample)
    lines = journal_lines(new_sample, "sample", DEFAULT_SET)
    at = visit(start(), LAB)
    assert metrics(at)["Queries"] == "0"  # an emptied set stays empty
    assert journal_lines(new_sample, "sample", DEFAULT_SET) == lines
    assert list_configs("sample", new_sample) == ["mine"]


def test_only_the_sample_gets_the_sample_judgments(shop: Path) -> None:
    visit(start(), LAB)
    assert DEFAULT_SET not in list_judgment_sets("shop", shop)
    assert metrics(visit(start(), LAB))["Queries"] == "0"


# --------------------------------------------------------------------------- defect 3


CSV = "query,doc_id,grade\nbrake noise,b1,3\nbrake noise,b2,1\nrefund,r1,2\n"


def test_an_import_shows_in_the_counters_at_once_and_twice_adds_nothing(shop: Path) -> None:
    at = start(judgment_set="twice")
    visit(at, LAB)
    assert (metrics(at)["Queries"], metrics(at)["Judgments"]) == ("0", "0")
    at.file_uploader(key="lab_import_csv").set_value(("grades.csv", CSV.encode(), "text/csv"))
    at.button(key="lab_import").click().run()
    assert not at.exception and not at.error
    store = open_judgments("shop", "twice", shop)
    counts = (str(len(store.queries)), str(len(store.judgments())))
    assert counts == ("2", "3")
    assert (metrics(at)["Queries"], metrics(at)["Judgments"]) == counts  # this very run
    assert plain(at.success[0].value) == "Imported 2 queries and 3 judgments."

    lines = journal_lines(shop, "shop", "twice")
    at.button(key="lab_import").click().run()
    assert journal_lines(shop, "shop", "twice") == lines
    assert plain(at.success[0].value) == "2 queries and 3 judgments already there: nothing added."
    assert (metrics(at)["Queries"], metrics(at)["Judgments"]) == counts


def test_a_failed_import_is_a_message_and_changes_nothing(shop: Path) -> None:
    at = visit(start(judgment_set="broken"), LAB)
    bad = "query,doc_id,grade\nrefund,r1,high\n"
    at.file_uploader(key="lab_import_csv").set_value(("bad.csv", bad.encode(), "text/csv"))
    at.button(key="lab_import").click().run()
    assert not at.exception
    assert "bad.csv, line 2" in plain(at.error[0].value)
    assert metrics(at)["Judgments"] == "0"


def test_importing_the_sample_again_says_it_is_all_there(new_sample: Path) -> None:
    at = visit(start(), LAB)  # the sample's judgments are in already
    lines = journal_lines(new_sample, "sample", DEFAULT_SET)
    at.button(key="lab_import_sample").click().run()
    assert not at.exception and not at.error
    assert plain(at.success[0].value) == (
        f"{len(SAMPLE_QUERIES)} queries and {SAMPLE_JUDGMENTS} judgments already there: "
        "nothing added."
    )
    assert journal_lines(new_sample, "sample", DEFAULT_SET) == lines


# --------------------------------------------------------------------------- first comparison


def test_a_comparison_embeds_each_query_once_and_moves_a_progress_bar(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search_core import evaluation

    judged_shop(shop)
    encoded: list[str] = []
    steps: list[tuple[int, int]] = []
    embed, run_configurations = evaluation.embed_queries, getattr(state, "run_configurations", None)

    def embed_watched(collection, queries):
        encoded.extend(queries.values())
        return embed(collection, queries)

    # every embedding of a run's queries goes through evaluation.embed_queries
    monkeypatch.setattr(evaluation, "embed_queries", embed_watched)

    def watched(*args, progress=None, **kwargs):
        assert progress is not None, "the page passes a progress callback"
        return run_configurations(
            *args, progress=lambda d, t: steps.append((d, t)) or progress(d, t), **kwargs
        )

    monkeypatch.setattr(state, "run_configurations", watched, raising=False)
    at = visit(start(), LAB)
    at.button(key="lab_save_defaults").click().run()
    at.button(key="lab_compare").click().run()
    assert not at.exception and not at.error
    queries = open_judgments("shop", home=shop).query_set().queries
    names = at.multiselect(key="lab_compare_names").value
    assert len(names) == 3
    total = len(queries) * len(names)
    assert steps == [(done, total) for done in range(1, total + 1)]
    assert sorted(encoded) == sorted(queries.values())  # once each, for the three configurations
    assert list(frame(at, "nDCG@10")["configuration"]) == names

    encoded.clear()
    steps.clear()
    at.button(key="lab_compare").click().run()  # the same runs again: nothing is run twice
    assert not at.exception and (encoded, steps) == ([], [])


def test_without_configurations_the_compare_tab_saves_the_defaults_in_one_click(
    shop: Path,
) -> None:
    judged_shop(shop)
    for name in list_configs("shop", shop):
        delete_config("shop", name, shop)
    at = visit(start(), LAB)
    at.button(key="lab_compare_save_defaults").click().run()
    assert not at.exception
    assert set(list_configs("shop", shop)) == set(state.DEFAULT_CONFIGS)
    assert at.multiselect(key="lab_compare_names").value == list(state.DEFAULT_CONFIGS)


# --------------------------------------------------------------------------- polish


def test_the_configurations_table_has_no_empty_cells(shop: Path) -> None:
    at = visit(start(), LAB)
    at.button(key="lab_save_defaults").click().run()
    table = frame(at, "RRF k")
    assert set(table["name"]) >= {"default-hybrid", "default-vector", "default-bm25"}
    assert not table.isna().any().any()
    assert "None" not in table.astype(str).to_numpy()
    bm25 = table[table["name"] == "default-bm25"].iloc[0]
    assert bm25["min similarity"] == bm25["RRF k"] == display.NOT_USED
    assert f"A dash ({display.NOT_USED}) marks a setting the mode does not use" in plain(texts(at))


def test_the_side_by_side_view_gives_each_list_two_columns_and_ranks_apart(shop: Path) -> None:
    judged_shop(shop)
    at = visit(start(), LAB)
    at.button(key="lab_save_defaults").click().run()
    at.button(key="lab_compare").click().run()
    assert not at.exception and not at.error
    names = at.multiselect(key="lab_compare_names").value
    assert len(names) == 3
    side = frame(at, "default-bm25: grade")
    # rank, then each list's document and grade: the ranks elsewhere made it wider than the page
    assert list(side.columns) == ["rank"] + [c for n in names for c in (n, f"{n}: grade")]
    _, runs, _ = at.session_state["lab_result"]
    query_id = at.selectbox(key="lab_side_query").value
    ranks = frame(at, "rank in default-hybrid")
    shown = {row["document"].split(" · ")[0]: row for _, row in ranks.iterrows()}
    tops = {doc.split(" · ")[0] for n in names for doc in side[n] if doc}
    assert set(shown) == tops
    for name in names:
        order = sorted(runs[name][query_id], key=lambda d: -runs[name][query_id][d])
        for doc, row in shown.items():
            rank = order.index(doc) + 1 if doc in order else None
            assert row[f"rank in {name}"] == ("" if rank is None else str(rank)), (name, doc)


# --------------------------------------------------------------------------- judging sessions


def test_pools_agreement_and_adjudication_in_the_lab(shop: Path) -> None:
    from search_core.pooling import next_pair, submit

    store = open_judgments("shop", "panel", shop)
    store.add_query("q1", "refund", description="Money back for a returned order.")
    store.add_query("q2", "brakes")
    save_config("shop", "bm25", SearchParams(mode="bm25"), shop)
    at = visit(start(judgment_set="panel", judge_name="lead"), LAB)
    assert "Agreement needs two judges" in texts(at)
    at.multiselect(key="lab_pool_configs").set_value(["bm25"])
    at.number_input(key="lab_pool_depth").set_value(2)
    at.number_input(key="lab_pool_replicates").set_value(2)
    at.button(key="lab_pool_make").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    pool = store.pools()["round-1"]
    assert pool.replicates == 2 and pool.sources == ("bm25",)
    assert list(frame(at, "grades per document")["pool"]) == ["round-1"]
    for judge, grade in (("ana", 3), ("ben", 0)):
        turn = next_pair(store, "round-1", judge)
        while turn.assignment is not None:
            a = turn.assignment
            turn = submit(store, "round-1", judge, a.query_id, a.doc_id, grade)

    at.run()
    assert metrics(at)["Judges"] == "2"
    assert metrics(at)["Krippendorff's alpha (ordinal)"] != "n/a"
    pairs = frame(at, "weighted kappa")
    assert list(pairs["judge"]) == ["ana"] and list(pairs["same grade (share)"]) == [0.0]
    disputed = frame(at, "spread")
    assert list(disputed.columns) == ["document", "spread", "ana", "ben", "final grade"]
    assert set(disputed["spread"]) == {3}
    query = at.selectbox(key="lab_disputed_query").value
    doc = at.selectbox(key="lab_adjudicate_doc").value
    at.selectbox(key="lab_adjudicate_grade").set_value(1)
    at.button(key="lab_adjudicate").click().run()
    assert not at.exception
    assert [(j.query_id, j.doc_id, j.grade, j.judge) for j in store.adjudications()] == [
        (query, doc, 1, "lead")
    ]
    assert store.qrels()[query][doc] == 1  # the lead's grade wins over the mean (2)
    at.selectbox(key="lab_rule").set_value("minimum").run()
    at.toggle(key="lab_adjudicated_first").set_value(False).run()
    assert not at.exception
    assert "Combined grades: the lowest of the judges' grades." in plain(texts(at))
