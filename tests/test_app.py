"""The Streamlit app, page by page and through its main flows, with ``AppTest``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from search_core.collection import BuildOptions, build_collection, list_collections, read_manifest
from search_core.judgments import open_judgments
from search_core.lab import list_configs, list_snapshots
from search_core.telemetry import QUERY_LOG
from ui import display, state

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 300
PAGES = {
    "pages/home.py": "Search Explorer",
    "pages/corpus.py": "Corpus",
    "pages/search.py": "Search",
    "pages/map.py": "Embedding map",
    "pages/judge.py": "Judging",
    "pages/lab.py": "Relevance lab",
    "pages/health.py": "Health",
}
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"
LINK = "[x](javascript:alert(1))"
SHOP_CSV = (
    "id,title,text,category,price\n"
    'r1,Refund policy,"Refunds are paid back to the original card within five business days.",'
    "policy,0\n"
    'r2,Duplicate payments,"A customer charged twice for one order gets the second payment back.",'
    "policy,0\n"
    'b1,Brake pads,"The brake pads squeal when they are worn down to the wear indicator.",'
    "garage,120\n"
    'b2,Brake fluid,"Replace the brake fluid every two years to keep the pedal firm.",garage,45\n'
    f'x1,{SCRIPT},"Refund notes: {IMAGE} and {LINK} must show as text.",security,5\n'
    'c1,Notice period,"Either party may end the contract with thirty days written notice.",'
    "legal,0\n"
)


@pytest.fixture(autouse=True)
def fresh_caches():
    """Streamlit's caches are per process: every test starts without them."""
    st.cache_data.clear()
    st.cache_resource.clear()
    QUERY_LOG.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def shop_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A home with a tiny collection "shop" built from SHOP_CSV (corpus text with markup)."""
    home = tmp_path_factory.mktemp("app-shop")
    source = home.parent / "shop.csv"
    source.write_text(SHOP_CSV, encoding="utf-8")
    build_collection("shop", source, BuildOptions(), home=home / "collections", embedder=embedder)
    return home / "collections"


@pytest.fixture
def shop(shop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEARCH_EXPLORER_HOME", str(shop_home))
    return shop_home


@pytest.fixture(scope="module")
def sample_copy(tmp_path_factory: pytest.TempPathFactory, sample_collection) -> Path:
    """A private copy of the session's sample collection (the app writes maps and judgments)."""
    home = tmp_path_factory.mktemp("app-sample") / "collections"
    shutil.copytree(sample_collection.folder.parent, home / "sample")
    return home


@pytest.fixture
def sample(sample_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEARCH_EXPLORER_HOME", str(sample_copy))
    return sample_copy


def start(**session: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception
    return at


def visit(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(markdown: str) -> str:
    """Markdown without its backslash escapes: the text a reader sees."""
    return re.sub(r"\\(.)", r"\1", markdown)


def frame(at: AppTest, column: str):
    """The first table shown with this column (AppTest does not keep a table's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def texts(at: AppTest) -> str:
    """Everything shown as text, Markdown, caption, info or error, in one string."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "text", "info", "error", "success", "warning")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


# --------------------------------------------------------------------------- smoke


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_opens_on_the_sample(sample: Path, page: str) -> None:
    at = visit(start(), page)
    assert at.title[0].value == PAGES[page]
    assert at.session_state[state.OPEN_KEY] == "sample"
    assert not at.error


@pytest.mark.parametrize(
    "page", [p for p in PAGES if p not in ("pages/home.py", "pages/corpus.py")]
)
def test_pages_without_a_collection_say_where_to_start(home: Path, page: str) -> None:
    at = visit(start(), page)
    assert "No collection is open" in at.info[0].value


def test_a_first_visit_builds_and_opens_the_sample_in_one_click(
    home: Path, sample_collection
) -> None:
    at = start()  # sample_collection warmed the embedding cache: this build takes seconds
    assert at.title[0].value == "Search Explorer"
    assert len(at.markdown[0].value.split(".  \n")) == 3  # three sentences
    at.button(key="home_open_sample").click().run()
    assert not at.exception
    assert [c.name for c in list_collections(home)] == ["sample"]
    assert at.session_state[state.OPEN_KEY] == "sample"
    assert at.title[0].value == "Search"


# --------------------------------------------------------------------------- corpus


def test_upload_a_csv_and_build_a_collection(home: Path) -> None:
    at = visit(start(), "pages/corpus.py")
    at.file_uploader[0].set_value([("shop.csv", SHOP_CSV.encode(), "text/csv")])
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="corpus_text_field").value == "text"
    assert at.selectbox(key="corpus_title_field").value == "title"
    assert at.selectbox(key="corpus_id_field").value == "id"
    assert at.multiselect(key="corpus_metadata_fields").value == ["category", "price"]
    preview = frame(at, "metadata")
    assert list(preview["id"]) == ["r1", "r2", "b1", "b2", "x1", "c1"]
    assert SCRIPT in list(preview["title"])
    assert any(t.value.startswith("Refunds are paid") for t in at.text)  # the chunk preview
    at.text_input(key="corpus_name").input("my-shop")
    at.button(key="corpus_build").click().run()
    assert not at.exception and not at.error
    assert "Built my-shop" in plain(at.success[0].value)
    assert [c.name for c in list_collections(home)] == ["my-shop"]
    assert at.session_state[state.OPEN_KEY] == "my-shop"
    assert read_manifest("my-shop", home)[1]["counts"]["documents"] == 6


def test_build_with_another_embedding_backend(home: Path) -> None:
    at = visit(start(), "pages/corpus.py")
    at.file_uploader[0].set_value([("shop.csv", SHOP_CSV.encode(), "text/csv")])
    at.run()
    at.selectbox(key="corpus_backend").select("onnx-int8").run()
    at.text_input(key="corpus_name").input("fast-shop")
    at.button(key="corpus_build").click().run()
    assert not at.exception and not at.error
    assert read_manifest("fast-shop", home)[1]["model"]["backend"] == "onnx-int8"
    at = visit(at, "pages/search.py")
    at.slider(key="search_threshold").set_value(0.0)
    at.text_input(key="search_query").input("refund paid back").run()
    assert not at.exception and not at.error
    assert "results ·" in texts(at) and "vector rank" in texts(at)


def test_an_unreadable_upload_is_a_message(home: Path) -> None:
    at = visit(start(), "pages/corpus.py")
    bad = b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": \n'
    at.file_uploader[0].set_value([("notes.jsonl", bad, "application/json")])
    at.run()
    assert not at.exception
    assert "notes.jsonl, line 2" in plain(at.error[0].value)


def test_a_failed_build_leaves_the_existing_collection(shop: Path) -> None:
    before = read_manifest("shop", shop)[1]["version"]
    rows = "".join(f"d{i},Title {i},Text number {i} about brakes.\n" for i in range(30))
    clash = "id,title,text\n" + rows + "d3,Again,A second document with the id d3.\n"
    at = visit(start(), "pages/corpus.py")
    at.file_uploader[0].set_value([("shop.csv", clash.encode(), "text/csv")])
    at.run()
    assert not at.error  # the preview reads only the first rows
    at.text_input(key="corpus_name").input("shop")
    at.button(key="corpus_build").click().run()
    assert not at.exception
    assert "d3" in plain(at.error[0].value)
    assert read_manifest("shop", shop)[1]["version"] == before


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25", "all"])
def test_search_in_every_mode(shop: Path, mode: str) -> None:
    at = visit(start(), "pages/search.py")
    at.segmented_control(key="search_mode").set_value(mode).run()
    at.slider(key="search_threshold").set_value(0.0)
    at.text_input(key="search_query").input("refund paid back").run()
    assert not at.exception and not at.error
    shown = texts(at)
    assert "results ·" in shown
    assert ":orange-background[**Refunds**]" in shown  # the query's words are highlighted
    assert "BM25 rank" in shown or "vector rank" in shown
    assert len(at.get("plotly_chart")) == (2 if mode != "bm25" else 1)
    assert QUERY_LOG.recent("shop")


def test_corpus_markup_is_shown_as_text(shop: Path) -> None:
    at = visit(start(), "pages/search.py")
    at.segmented_control(key="search_mode").set_value("bm25")
    at.text_input(key="search_query").input("refund notes text").run()
    shown = texts(at)
    for markup in (SCRIPT, IMAGE, LINK):
        assert markup not in shown  # never handed to Markdown as it is
        assert display.md(markup) in shown  # but escaped, so it reads as itself
        assert markup in plain(shown)


def test_filters_narrow_the_results(shop: Path) -> None:
    at = visit(start(), "pages/search.py")
    at.segmented_control(key="search_mode").set_value("bm25")
    at.multiselect(key="search_filter_fields@shop").set_value(["category"]).run()
    at.multiselect(key="search_filter_values_category@shop").set_value(["garage"])
    at.text_input(key="search_query").input("brake refund").run()
    assert not at.exception
    headers = [m.value for m in at.markdown if m.value.startswith("**")]
    assert headers and all("Brake" in h for h in headers)


def test_judge_a_result(shop: Path) -> None:
    at = visit(start(), "pages/search.py")
    at.text_input(key="search_query").input("brake pedal feels soft").run()
    judge = next(b for b in at.button_group if str(b.key).startswith("judge_"))
    judge.set_value(3).run()
    assert not at.exception and not at.error
    store = open_judgments("shop", home=shop)
    [query] = [q for q in store.queries.values() if q.text == "brake pedal feels soft"]
    [judgment] = store.judgments(query.query_id)
    assert judgment.grade == 3 and judgment.judge == "app"
    at.run()  # the grade stays selected
    again = next(b for b in at.button_group if b.key == judge.key)
    assert again.value == 3


# --------------------------------------------------------------------------- map and health


def test_map_places_the_query_and_its_results(shop: Path) -> None:
    at = start(last_query="brake pads squeal")
    visit(at, "pages/map.py")
    assert len(at.get("plotly_chart")) == 1
    assert "The black star is the query" in plain(texts(at))
    at.selectbox(key="map_color@shop").set_value("category").run()
    assert not at.exception
    at.segmented_control(key="map_dims").set_value(3).run()
    assert not at.exception and len(at.get("plotly_chart")) == 1


def test_widget_changes_neither_refit_the_map_nor_embed_again(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search_core.embedding import Embedder

    fits: list[object] = []
    encoded: list[str] = []
    project, encode = state.project, Embedder._encode
    monkeypatch.setattr(state, "project", lambda *a, **k: fits.append(a) or project(*a, **k))
    monkeypatch.setattr(
        Embedder, "_encode", lambda self, texts: encoded.extend(texts) or encode(self, texts)
    )
    at = start(last_query="brake pads squeal")
    visit(at, "pages/map.py")
    assert len(fits) <= 1  # fitted now, or read from the map cache of an earlier test
    fits_before, encoded_before = len(fits), len(encoded)
    at.selectbox(key="map_color@shop").set_value("category").run()
    at.toggle(key="map_zoom").set_value(True).run()
    at.selectbox(key="map_color@shop").set_value("cluster").run()
    assert not at.exception
    assert len(fits) == fits_before
    assert len(encoded) == encoded_before, encoded[encoded_before:]
    # searching again with other display settings embeds nothing new either
    visit(at, "pages/search.py")
    at.text_input(key="search_query").input("brake pads squeal").run()
    encoded_before = len(encoded)
    at.slider(key="search_k").set_value(3).run()
    at.segmented_control(key="search_mode").set_value("vector").run()
    assert not at.exception
    assert len(encoded) == encoded_before, encoded[encoded_before:]


def test_health_shows_latency_after_searches(shop: Path) -> None:
    at = visit(start(), "pages/search.py")
    at.text_input(key="search_query").input("refund").run()
    visit(at, "pages/health.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Embed p50"].endswith("ms") and metrics["Search p99"].endswith("ms")
    assert metrics["Recall@10"] == "1.000"  # a flat index is exact
    at.button(key="health_drift").click().run()
    assert not at.exception
    assert "No drift" in plain(at.success[0].value)


# --------------------------------------------------------------------------- relevance lab


def judged_shop(home: Path) -> None:
    store = open_judgments("shop", home=home)
    for qid, text, grades in (
        ("q1", "money back for a refund", {"r1": 3, "r2": 1, "b1": 0}),
        ("q2", "brake noise", {"b1": 3, "b2": 1}),
        ("q3", "how long is the notice period", {"c1": 2}),
    ):
        store.add_query(qid, text)
        for doc, grade in grades.items():
            store.judge(qid, doc, grade, judge="test")


def test_run_a_comparison(shop: Path) -> None:
    judged_shop(shop)
    at = visit(start(), "pages/lab.py")
    at.button(key="lab_save_defaults").click().run()
    assert {"default-hybrid", "default-vector", "default-bm25"} <= set(list_configs("shop"))
    at.multiselect(key="lab_compare_names").set_value(["default-bm25", "default-hybrid"])
    at.button(key="lab_compare").click().run()
    assert not at.exception and not at.error
    table = frame(at, "nDCG@10")
    assert list(table["configuration"]) == ["default-bm25", "default-hybrid"]
    assert {"no result (share)", "unjudged in top 10"} <= set(table.columns)
    side = frame(at, "default-bm25: grade")
    assert set(side["default-hybrid: grade"]) <= {"", "0", "1", "2", "3"}
    assert side["default-bm25"].iloc[0].split(" · ")[0] in {"r1", "r2", "b1", "b2", "x1", "c1"}
    assert {s.name for s in list_snapshots("shop")} >= {"default-bm25", "default-hybrid"}
    at.button(key="lab_sweep").click().run()
    assert not at.exception and not at.error
    at.button(key="lab_tune").click().run()
    assert not at.exception and not at.error
    assert any(m.label == "Tuned, on queries it did not see" for m in at.metric)


def test_import_edit_and_export_judgments(shop: Path) -> None:
    at = visit(start(), "pages/lab.py")
    at.text_input(key="lab_new_set_name").input("imported")
    at.button(key="lab_new_set").click().run()
    assert at.session_state["judgment_set"] == "imported"
    csv = "query,doc_id,grade\n=brake noise,b1,3\n=brake noise,b2,1\nrefund,r1,2\n"
    at.file_uploader(key="lab_import_csv").set_value(("grades.csv", csv.encode(), "text/csv"))
    at.button(key="lab_import").click().run()
    assert not at.exception and not at.error
    assert "3 judgments" in plain(at.success[0].value)
    store = open_judgments("shop", "imported", home=shop)
    assert len(store.judgments()) == 3
    exported = at.get("download_button")
    assert [b.key for b in exported] == [
        "lab_export_trec",
        "lab_export_csv",
        "lab_export_judges-csv",
    ]
    bad = "query,doc_id,grade\nrefund,r1,high\n"
    at.file_uploader(key="lab_import_csv").set_value(("bad.csv", bad.encode(), "text/csv"))
    at.button(key="lab_import").click().run()
    assert not at.exception
    assert "bad.csv, line 2" in plain(at.error[0].value)


# --------------------------------------------------------------------------- display helpers


@pytest.mark.parametrize("text", [SCRIPT, IMAGE, LINK, "**bold** :red[x] $x$ `code` # h"])
def test_markdown_escapes_every_markup_character(text: str) -> None:
    escaped = display.md(text)
    assert escaped.replace("\\", "") == text.replace("\\", "")
    for char in "<>[]()*:`$#":
        assert char not in escaped.replace("\\" + char, "")


def test_markdown_keeps_lines_and_drops_indentation() -> None:
    assert display.md("one\n    two") == "one  \ntwo"


def test_plot_text_is_html_escaped() -> None:
    assert display.plot_text(IMAGE) == "&lt;img src=x onerror=alert(1)&gt;"


def test_build_progress_estimates_the_time_left_from_the_embedding_rate() -> None:
    shown: list[tuple[float, str]] = []
    now = [0.0]
    progress = state.BuildProgress(lambda f, t: shown.append((f, t)), clock=lambda: now[0])
    progress("model", 1, 2)
    progress("embed", 100_000, 1_000_000)  # the source's bytes read: the rate starts here
    now[0] = 10.0
    progress("embed", 300_000, 1_000_000)  # 200 kB in 10 s: 700 kB left take 35 s
    progress("index", 1, 2)
    assert shown[0][0] == pytest.approx(0.025)
    assert "estimating" in shown[1][1] and "0.1 MB of 1.0 MB read" in shown[1][1]
    assert shown[2][1].endswith("about 35 s left")
    assert shown[2][0] == pytest.approx(0.05 + 0.88 * 0.3)
    assert "almost done" in shown[3][1]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(2, "a few seconds"), (42, "40 s"), (130, "2 min 10 s"), (180, "3 min")],
)
def test_durations_in_words(seconds: float, words: str) -> None:
    assert state.format_duration(seconds) == words


@pytest.mark.parametrize(
    ("name", "safe"),
    [("../../etc/passwd", "passwd"), (".hidden.csv", "hidden.csv"), ("a<b>.csv", "a_b_.csv")],
)
def test_uploaded_file_names_stay_in_their_folder(name: str, safe: str) -> None:
    assert state.safe_file_name(name) == safe


def test_map_warm_up_starts_once_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(state, "_warm_up_quietly", lambda: started.append("warm-up"))
    state.warm_up_maps.clear()
    monkeypatch.setenv(state.WARM_UP_ENV, "0")
    assert state.warm_up_maps() is None and started == []
    state.warm_up_maps.clear()
    monkeypatch.delenv(state.WARM_UP_ENV)
    thread = state.warm_up_maps()
    assert thread is not None
    thread.join(timeout=10)
    assert state.warm_up_maps() is thread  # once per process
    assert started == ["warm-up"]
    state.warm_up_maps.clear()
