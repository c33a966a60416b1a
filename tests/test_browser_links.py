"""Sharing in a real browser: links copied in one browser open the same view in another, a
bad link opens with a message, and the downloaded experiment report works offline.

Debian's Chromium, driven by Playwright (never a downloaded browser). The report is opened
from the disk in a context with the network cut: every chart must be drawn, no request may
leave the file, no console error may show, and corpus text with markup must read as text.
Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from search_core.collection import build_collection
from search_core.judgments import DEFAULT_SET, import_judgments, open_judgments
from search_core.lab import save_config
from search_core.search import SearchParams
from tests.app_server import running_app
from tests.test_browser import SCRIPT, SHOTS, SLOW, browser

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the fixture, imported to be used here

NOTES_CSV = (
    "id,title,text\n"
    f'n1,{SCRIPT},"Refunds for a duplicate charge: {SCRIPT} the second payment is returned."\n'
    'n2,Refund policy,"Refunds are paid back to the original card within five days."\n'
    'n3,Duplicate payments,"A customer charged twice gets the second payment back."\n'
    'n4,Brake pads,"The brake pads squeal when they are worn down."\n'
    'n5,Oil change,"Change the engine oil every fifteen thousand kilometres."\n'
    'n6,Order ORD-4471,"Order ORD-4471 shipped on Monday with tracking PR3381."\n'
    'n7,Tyres,"Check the tyre pressure once a month when the tyres are cold."\n'
    'n8,Late delivery,"A parcel that arrives late gets its shipping fee refunded."\n'
)
NOTES_JUDGMENTS = (
    "query,doc_id,grade\n"
    "customer paid twice,n3,3\ncustomer paid twice,n1,2\ncustomer paid twice,n2,1\n"
    "ORD-4471,n6,3\n"
    "noisy brakes,n4,3\n"
    "money back for a late parcel,n8,3\nmoney back for a late parcel,n2,1\n"
    "engine oil,n5,3\n"
    "tyre pressure,n7,3\n"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, sample_collection, embedder) -> Path:
    """The sample, and "notes": a small judged collection with markup in its text."""
    home = tmp_path_factory.mktemp("sharing") / "collections"
    shutil.copytree(sample_collection.folder.parent, home / "sample")
    source = home.parent / "notes.csv"
    source.write_text(NOTES_CSV, encoding="utf-8")
    build_collection("notes", source, home=home, embedder=embedder)
    judged = home.parent / "judgments.csv"
    judged.write_text(NOTES_JUDGMENTS, encoding="utf-8")
    import_judgments(open_judgments("notes", DEFAULT_SET, home), "csv", judged)
    save_config("notes", "vector", SearchParams(mode="vector", threshold=0.0), home)
    save_config("notes", "bm25", SearchParams(mode="bm25"), home)
    return home


@pytest.fixture(scope="module")
def app(home: Path) -> Iterator[str]:
    with running_app(home, start_timeout=90) as running:
        yield running.url


class Tab:
    """A page in its own browser context, recording console errors, failed requests and
    dialogs (a script that ran would open one)."""

    def __init__(self, browser: Any, *, clipboard_for: str = "", offline: bool = False) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        if clipboard_for:
            self.context.grant_permissions(
                ["clipboard-read", "clipboard-write"], origin=clipboard_for
            )
        self.context.set_offline(offline)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", self._failed)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)

    def _failed(self, request: Any) -> None:
        # A request the browser cancelled itself (the element that asked for a script chunk
        # was redrawn) is no failure a person sees; any other failure is.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.errors.append(f"failed: {request.url} ({request.failure})")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.idle()

    def idle(self) -> None:
        self.page.wait_for_timeout(500)
        self.page.wait_for_selector(
            "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=SLOW
        )

    def copy_link(self, label: str) -> str:
        self.page.get_by_role("button", name=label).click()
        self.page.get_by_text("Link copied").wait_for(timeout=10_000)
        return str(self.page.evaluate("navigator.clipboard.readText()"))

    CARDS = (
        "[...document.querySelectorAll('[data-testid=stMarkdownContainer]')]"
        ".map(m => m.innerText.trim()).filter(t => /^\\d+\\. /.test(t))"
    )

    def result_cards(self, count: int) -> list[str]:
        """The headers of the result cards, in order on the page, once ``count`` are drawn."""
        self.page.wait_for_function(f"{self.CARDS}.length >= {count}", timeout=SLOW)
        self.idle()
        return list(self.page.evaluate(self.CARDS))

    def chart_data(self) -> list[Any]:
        """The data of every Plotly chart on the page (what each bar or point says)."""
        return list(
            self.page.evaluate(
                "[...document.querySelectorAll('.js-plotly-plot')].map(p => p.data.map("
                "t => ({x: t.x, y: t.y, name: t.name})))"
            )
        )

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / name), full_page=True)

    def close(self) -> None:
        self.context.close()


def test_a_copied_search_link_opens_the_same_search_in_another_browser(
    app: str, browser: Any
) -> None:
    first = Tab(browser, clipboard_for=app)
    first.open(f"{app}/?page=search&collection=sample&q=ORD-58213&mode=all&k=5")
    first.page.get_by_text("results ·").first.wait_for(timeout=SLOW)
    cards = first.result_cards(15)  # 5 results in each of the three modes
    assert len(cards) == 15 and any("ORD-58213" in c for c in cards)
    link = first.copy_link("Copy link")
    assert link.startswith(f"{app}/?page=search&collection=sample&q=ORD-58213&mode=all&k=5")
    first.shot("link-search.png")

    second = Tab(browser)
    second.open(link)
    second.page.get_by_text("results ·").first.wait_for(timeout=SLOW)
    assert second.result_cards(15) == cards
    second.shot("link-search-opened.png")
    sync_api.expect(second.page.locator(".st-key-search_query input")).to_have_value(
        "ORD-58213", timeout=30_000
    )
    assert not first.errors and not second.errors, first.errors + second.errors
    first.close()
    second.close()


def test_a_copied_comparison_link_opens_the_same_comparison(app: str, browser: Any) -> None:
    first = Tab(browser, clipboard_for=app)
    first.open(f"{app}/?page=lab&collection=notes&config=vector&config=bm25&k=5")
    first.page.get_by_text("Download the experiment report").first.wait_for(timeout=SLOW)
    first.idle()
    charts = first.chart_data()
    assert charts, "the comparison draws its charts"
    assert first.page.get_by_role("button", name="Download the experiment report").count() == 1
    link = first.copy_link("Copy link to this comparison")
    assert "page=lab" in link and "config=vector&config=bm25" in link
    first.shot("link-comparison.png")

    second = Tab(browser)
    second.open(link)
    second.page.get_by_text("Download the experiment report").first.wait_for(timeout=SLOW)
    second.idle()
    assert second.chart_data() == charts
    assert not first.errors and not second.errors, first.errors + second.errors
    first.close()
    second.close()


def test_a_link_to_what_does_not_exist_opens_with_a_message(app: str, browser: Any) -> None:
    tab = Tab(browser)
    tab.open(f"{app}/?page=search&collection=gone&q=refund&k=abc")
    tab.page.get_by_text("which does not exist here").wait_for(timeout=SLOW)
    tab.page.get_by_text("k='abc' is not a whole number").wait_for(timeout=SLOW)
    assert tab.page.get_by_text("results ·").first.is_visible()  # the rest of the page works
    tab.shot("link-bad-search.png")
    tab.open(f"{app}/?page=lab&collection=notes&config=gone&config=bm25")
    tab.page.get_by_text("compares 'gone', which is not saved with notes").wait_for(timeout=SLOW)
    assert not tab.page.locator("[data-testid='stException']").count()
    assert not tab.errors, tab.errors
    tab.close()


def test_the_downloaded_report_works_offline(app: str, browser: Any, tmp_path: Path) -> None:
    tab = Tab(browser)
    tab.open(f"{app}/?page=lab&collection=notes&config=vector&config=bm25&k=5")
    button = tab.page.get_by_role("button", name="Download the experiment report")
    button.first.wait_for(timeout=SLOW)
    tab.idle()
    with tab.page.expect_download(timeout=SLOW) as download:
        button.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "report-notes.html"
    tab.close()

    offline = Tab(browser, offline=True)
    offline.page.goto(saved.as_uri())
    figures = offline.page.locator(".js-plotly-plot")
    figures.first.wait_for(timeout=30_000)
    offline.page.wait_for_timeout(1000)
    drawn = offline.page.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot')].filter(p => "
        "p.querySelector('.main-svg') && p.data && p.data.length).length"
    )
    assert figures.count() >= 2 and drawn == figures.count()
    assert offline.page.get_by_text(SCRIPT).first.is_visible()  # corpus markup, as text
    assert not offline.dialogs
    assert not offline.errors, offline.errors
    assert all(url.startswith(("file:", "data:", "blob:")) for url in offline.requests), [
        url for url in offline.requests if not url.startswith(("file:", "data:", "blob:"))
    ]
    offline.shot("report-offline.png")
    offline.close()
