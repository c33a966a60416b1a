"""The app in a real browser: Debian's headless Chromium, driven by Playwright.

Starts ``streamlit run app.py`` on a free port with its own collections home (a copy of the
sample collection and a tiny "garage" collection), then clicks through the main flow as a
person would: upload a file, build, search, open the map, use the relevance lab and the
health page, saving a screenshot of each page in ``artifacts/screenshots/``. Corpus text with
markup must show as the characters it is, and no script may run (every dialog is recorded).
Two browser contexts work on different collections at once without seeing each other's.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``, and the module
is skipped when that is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_core.collection import build_collection
from tests.app_server import running_app
from tests.reviews import BATTERY_FAILURES, reviews_csv

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"
LINK = "[x](javascript:alert(1))"
NOTES_CSV = (
    "id,title,text,source\n"
    f'n1,{SCRIPT},"Refund notes: {IMAGE} and {LINK} must show as text.",{IMAGE}\n'
    'n2,Refund policy,"Refunds are paid back to the original card within five days.",policy\n'
    'n3,Duplicate payments,"A customer charged twice gets the second payment back.",policy\n'
    'n4,Brake pads,"The brake pads squeal when they are worn down.",garage\n'
)
RECORD_SIDEBAR_NAV = """
window.__sidebarNavSeen = [];
new MutationObserver(() => {
  for (const link of document.querySelectorAll('[data-testid=stSidebarNav] a')) {
    const text = link.innerText.trim();
    if (text && !window.__sidebarNavSeen.includes(text)) window.__sidebarNavSeen.push(text);
  }
}).observe(document, {subtree: true, childList: true});
"""
"""Records, from the first moment, every link a sidebar navigation shows (helper modules of
``pages/`` once flashed there as pages for a second before the app's own navigation came)."""
SLOW = 300_000  # ms: the first page to load the model or fit a map takes a while


@pytest.fixture(scope="module")
def app_home(tmp_path_factory: pytest.TempPathFactory, sample_collection, embedder) -> Path:
    home = tmp_path_factory.mktemp("browser") / "collections"
    shutil.copytree(sample_collection.folder.parent, home / "sample")
    garage = home.parent / "garage.csv"
    garage.write_text(
        "id,title,text\n"
        "g1,Brake pads,The brake pads squeal when they are worn down to the indicator.\n"
        "g2,Oil change,Change the engine oil every fifteen thousand kilometres.\n"
        "g3,Tyres,Check the tyre pressure once a month when the tyres are cold.\n",
        encoding="utf-8",
    )
    build_collection("garage", garage, home=home, embedder=embedder)
    return home


@pytest.fixture(scope="module")
def server(app_home: Path) -> Iterator[str]:
    with running_app(app_home, start_timeout=90) as app:
        yield app.url


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[str]:
    """The app on an empty home, as a newcomer finds it (the embedding cache is the tests')."""
    home = tmp_path_factory.mktemp("newcomer") / "collections"
    with running_app(home, start_timeout=90) as app:
        yield app.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visitor:
    """One browser session on the app, recording every dialog a script would open."""

    def __init__(self, browser: object, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.add_init_script(RECORD_SIDEBAR_NAV)
        self.page.goto(url)
        self.page.wait_for_selector("[data-testid='stTopNav']", timeout=SLOW)
        self.idle()

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    def idle(self) -> None:
        """Wait until the app's script has finished its run."""
        self.page.wait_for_timeout(500)
        self.page.wait_for_selector(
            "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=SLOW
        )

    def text(self, expected: str) -> None:
        """Wait until a text is on the page."""
        self.page.get_by_text(expected, exact=False).first.wait_for(timeout=SLOW)

    def go(self, title: str) -> None:
        self.page.locator("[data-testid='stTopNavLink']", has_text=title).first.click()
        self.idle()

    def sidebar_navigation_seen(self) -> list[str]:
        """Every link Streamlit's sidebar navigation showed since the page was opened."""
        return list(self.page.evaluate("window.__sidebarNavSeen"))

    def open_collection(self, name: str) -> None:
        self.page.get_by_role("combobox", name="Open collection").click()
        self.page.locator("[role='option']", has_text=name).first.click()
        self.idle()

    def open_name(self) -> str:
        return str(self.page.get_by_role("combobox", name="Open collection").input_value())

    def type(self, label: str, value: str) -> None:
        box = self.page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        self.idle()

    def click(self, name: str) -> None:
        self.page.get_by_role("button", name=name).first.click()
        self.idle()

    def shot(self, name: str) -> None:
        """Screenshot the whole page (Streamlit scrolls inside its main area, not the window)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = self.page.evaluate(
            "() => document.querySelector('[data-testid=stMain]').scrollHeight"
        )
        self.page.set_viewport_size({"width": 1400, "height": min(max(int(height), 1000), 2600)})
        self.page.wait_for_timeout(800)  # let charts take the new size
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))
        self.page.set_viewport_size({"width": 1400, "height": 1000})

    def no_markup_ran(self) -> None:
        """Corpus markup stayed text: no image, link or script was made from it."""
        page = self.page
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("a[href^='javascript']").count() == 0
        scripts = "() => Array.from(document.scripts).some(s => s.text.includes('alert(1)'))"
        assert not page.evaluate(scripts)
        assert self.dialogs == []

    def close(self) -> None:
        self.context.close()


def test_main_flow_and_screenshots(server: str, browser: object, tmp_path: Path) -> None:
    visitor = Visitor(browser, server)
    page = visitor.page
    visitor.text("Search Explorer indexes a collection")
    assert visitor.open_name() == "sample"
    visitor.shot("1-start")

    # upload a file with markup in it and build a collection
    visitor.go("Corpus")
    notes = tmp_path / "notes.csv"
    notes.write_text(NOTES_CSV, encoding="utf-8")
    page.locator("input[type='file']").first.set_input_files(str(notes))
    visitor.idle()
    visitor.text("The first documents, as they will be indexed")
    visitor.type("Collection name", "notes")
    visitor.shot("2a-corpus-preview")
    visitor.click("Build")
    visitor.text("Built notes")
    assert visitor.open_name() == "notes"
    visitor.shot("2b-corpus-built")

    # search it: the markup reads as text
    visitor.go("Search")
    visitor.type("Query", "refund notes text")
    visitor.text("results ·")
    shown = page.locator("[data-testid='stMain']").inner_text()
    for markup in (SCRIPT, IMAGE, LINK):
        assert markup in shown
    visitor.no_markup_ran()
    visitor.shot("3-search-markup")

    # the map of it, coloured by the field that holds markup
    visitor.go("Embedding map")
    page.locator(".js-plotly-plot").first.wait_for(timeout=SLOW)
    page.get_by_role("combobox", name="Colour by").click()
    page.locator("[role='option']", has_text="metadata: source").first.click()
    visitor.idle()
    legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
    assert IMAGE in legend
    visitor.no_markup_ran()
    visitor.shot("4-map-markup")

    # the sample collection, as a stakeholder sees it
    visitor.open_collection("sample")
    visitor.go("Search")
    visitor.type("Query", "refund still not received for ORD-60552")
    visitor.text("results ·")
    visitor.shot("5-search")
    page.get_by_role("radio", name="All three side by side").click()
    visitor.idle()
    visitor.text("Why it is here")
    visitor.shot("6-search-three-modes")

    visitor.go("Embedding map")
    page.locator(".js-plotly-plot").first.wait_for(timeout=SLOW)
    visitor.text("The black star is the query")
    visitor.shot("7-map")

    visitor.go("Relevance lab")
    visitor.click("Import the sample's 84 judged queries")
    visitor.text("Queries with a relevant document")
    page.get_by_role("tab", name="Configurations").click()
    visitor.click("Save the three default modes")
    page.get_by_role("tab", name="Compare").click()
    visitor.click("Run and compare")
    visitor.text("One query, the ranked lists side by side")
    visitor.shot("8-lab-compare")
    page.get_by_role("tab", name="Sweeps").click()
    visitor.click("Run the sweep")
    page.locator(".js-plotly-plot:visible").first.wait_for(timeout=SLOW)
    visitor.shot("9-lab-sweep")

    # with judgments, the map shows which results are relevant and what the search missed
    visitor.go("Embedding map")
    page.get_by_role("combobox", name="Colour by").click()
    page.locator("[role='option']", has_text="judged relevance to the query").first.click()
    visitor.idle()
    page.get_by_text("Zoom in on the query").click()
    visitor.idle()
    page.locator(".js-plotly-plot").first.wait_for(timeout=SLOW)
    assert "3 perfect" in page.locator(".js-plotly-plot .legendtext").all_text_contents()
    visitor.shot("10-map-judged")

    visitor.go("Health")
    visitor.text("Latency of recent queries")
    visitor.click("Run the drift check")
    visitor.text("No drift")
    visitor.shot("11-health")
    visitor.no_markup_ran()
    visitor.close()


def test_two_sessions_keep_their_own_collection_and_query(server: str, browser: object) -> None:
    first, second = Visitor(browser, server), Visitor(browser, server)
    first.open_collection("garage")
    assert second.open_name() == "sample"
    first.go("Search")
    second.go("Search")
    first.type("Query", "brake pads squeal")
    second.type("Query", "customer charged twice")
    first.text("results ·")
    second.text("results ·")
    first.go("Health")  # and back: each session keeps its own query and collection
    second.go("Corpus")
    first.go("Search")
    second.go("Search")
    first.text("results ·")
    second.text("results ·")
    assert first.open_name() == "garage" and second.open_name() == "sample"
    assert first.page.get_by_label("Query", exact=True).input_value() == "brake pads squeal"
    assert second.page.get_by_label("Query", exact=True).input_value() == "customer charged twice"
    first_results = first.page.locator("[data-testid='stMain']").inner_text()
    second_results = second.page.locator("[data-testid='stMain']").inner_text()
    assert "Brake pads" in first_results and "commerce-" not in first_results
    assert "commerce-" in second_results and "Brake pads" not in second_results
    sidebar = "[data-testid='stSidebar']"
    assert "3 documents" in first.page.locator(sidebar).inner_text()
    assert "456 documents" in second.page.locator(sidebar).inner_text()
    first.no_markup_ran()
    second.no_markup_ran()
    first.close()
    second.close()


def test_first_visit_shows_only_the_app_navigation(server: str, browser: object) -> None:
    visitor = Visitor(browser, server)
    visitor.text("Search Explorer indexes a collection")
    assert visitor.sidebar_navigation_seen() == []
    links = visitor.page.locator("[data-testid='stTopNavLink']").all_inner_texts()
    titles = [link.split("\n")[-1].strip() for link in links]
    assert titles == [
        "Start", "Corpus", "Search", "Embedding map", "Judging", "Relevance lab", "Health"
    ]  # fmt: skip
    visitor.close()


MARK_CARDS = """(docId) => {
  const judging = "button[data-variant='segmented_control']";
  let count = 0;
  for (const block of document.querySelectorAll("[data-testid='stVerticalBlock']")) {
    block.removeAttribute('data-card');
    const header = block.querySelector("[data-testid='stMarkdownContainer']");
    if (block.querySelectorAll(judging).length === 4 && header
        && header.innerText.includes(docId)) {
      block.setAttribute('data-card', docId);
      count += 1;
    }
  }
  return count;
}"""
"""Marks the result cards of a document (a card holds one judging control: four buttons)."""


def _cards(visitor: Visitor, doc_id: str) -> object:
    visitor.page.evaluate(MARK_CARDS, doc_id)
    return visitor.page.locator(f"[data-card='{doc_id}']")


def _grades_shown(visitor: Visitor, doc_id: str) -> list[str]:
    """The grade selected on every result card of a document (blank: none)."""
    cards = _cards(visitor, doc_id)
    grades = []
    for index in range(cards.count()):  # type: ignore[attr-defined]
        active = cards.nth(index).locator(  # type: ignore[attr-defined]
            "button[data-variant='segmented_control'][aria-checked='true']"
        )
        grades.append(active.first.inner_text() if active.count() else "")
    return grades


def _slider_values(visitor: Visitor, label: str) -> list[str]:
    box = visitor.page.locator("[data-testid='stSlider']", has_text=label)
    return [str(thumb.input_value()) for thumb in box.locator("input[type='range']").all()]


def test_newcomer_first_hour(fresh_server: str, browser: object, tmp_path: Path) -> None:
    """The newcomer's path of issue 11: the sample from Start to a comparison with no upload,
    one document judged twice, a filter kept across pages, an import done twice, and an own
    CSV whose text column is not called ``text``."""
    visitor = Visitor(browser, fresh_server)
    page = visitor.page
    visitor.click("Build and open the sample collection")
    visitor.text("Type a query to search the collection")
    assert visitor.open_name() == "sample"

    # the same document judged twice: every card of it shows the grade stored last
    visitor.type("Query", "remote code execution exploit")
    visitor.text("results ·")
    assert len(_grades_shown(visitor, "security-0079")) >= 2
    _cards(visitor, "security-0079").first.locator("button", has_text="3 perfect").click()  # type: ignore[attr-defined]
    visitor.idle()
    _cards(visitor, "security-0079").first.locator("button", has_text="2 relevant").click()  # type: ignore[attr-defined]
    visitor.idle()
    assert set(_grades_shown(visitor, "security-0079")) == {"2 relevant"}
    visitor.shot("n1-search-judged-twice")

    # a filter survives a visit to the map, and the map says it uses it
    page.locator("[data-testid='stExpander'] summary", has_text="Filters").first.click()
    visitor.idle()
    page.get_by_role("combobox", name="Filter on").click()
    page.get_by_role("combobox", name="Filter on").press_sequentially("severity")
    page.locator("[role='option']", has_text="severity").first.click()
    visitor.idle()
    page.keyboard.press("Escape")
    slider = page.locator("[data-testid='stSlider']", has_text="severity")
    slider.locator("input[type='range']").first.press("End")  # the lower end up to the top
    visitor.idle()
    kept = _slider_values(visitor, "severity")
    assert kept[0] != "0" and kept[1] == "10"
    visitor.go("Embedding map")
    page.locator(".js-plotly-plot").first.wait_for(timeout=SLOW)
    visitor.text("Results as on the Search page")
    visitor.text("severity")
    visitor.shot("n2-map-with-the-search-filters")
    visitor.go("Search")
    visitor.text("results ·")
    assert _slider_values(visitor, "severity") == kept
    visitor.text("Filtered: severity")

    # the lab opens with the sample's judgments; importing them again adds nothing
    visitor.go("Relevance lab")
    metrics = page.locator("[data-testid='stMetricValue']")
    assert metrics.nth(0).inner_text() == "85"  # the sample's 84 and the query judged above
    judgments = metrics.nth(1).inner_text()
    visitor.click("Import the sample's 84 judged queries")
    visitor.text("already there: nothing added")
    assert metrics.nth(0).inner_text() == "85"
    assert metrics.nth(1).inner_text() == judgments
    visitor.shot("n3-lab-import-twice")
    page.get_by_role("tab", name="Compare").click()
    visitor.click("Run and compare")
    visitor.text("One query, the ranked lists side by side")
    visitor.shot("n4-lab-compare")

    # an own CSV whose text column is review_text: chosen from the data, searched sensibly
    visitor.go("Corpus")
    reviews = tmp_path / "reviews.csv"
    reviews.write_text(reviews_csv(), encoding="utf-8")
    page.locator("input[type='file']").first.set_input_files(str(reviews))
    visitor.idle()
    visitor.text("The first documents, as they will be indexed")
    assert page.get_by_role("combobox", name="Text").input_value() == "review_text"
    visitor.type("Collection name", "reviews")
    visitor.shot("n5-corpus-reviews")
    visitor.click("Build")
    visitor.text("Built reviews")
    visitor.go("Search")
    visitor.type("Query", "battery died after a week")
    visitor.text("results ·")
    shown = page.locator("[data-testid='stMain']").inner_text()
    top = shown[shown.index("\n1. ") :][:120]  # the first result's header
    assert any(doc_id in top for doc_id in BATTERY_FAILURES), top
    visitor.shot("n6-search-reviews")
    assert visitor.sidebar_navigation_seen() == []
    visitor.no_markup_ran()
    visitor.close()
