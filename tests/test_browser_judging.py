"""A judging session in a real browser: three judges in three browser contexts at once.

Each judge opens the Judging page in their own context (their own Streamlit session), gives
their name and grades with the keyboard until the pool needs nothing more from them. The test
checks what the journal holds afterwards (every grade kept, each pair graded exactly R times,
never twice by one judge), that the Relevance lab shows their agreement, and how long the next
document takes to appear after a key press (the median over the whole test).

Playwright drives Debian's ``/usr/bin/chromium`` (never a downloaded browser); the module is
skipped without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from search_core.collection import open_collection
from search_core.evaluation import load_queries, run_queries
from search_core.judgments import open_judgments
from search_core.pooling import create_pool
from search_core.search import SearchParams
from tests.app_server import running_app
from tests.conftest import SAMPLE_DATA
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.browser

SET, POOL, REPLICATES, DEPTH, QUERIES = "session", "round-1", 2, 3, 8
JUDGES = {"ana": "2", "ben": "3", "cy": "0"}  # the key each judge presses
NEXT_DOCUMENT_MS = 300
SLOW = 300_000
PANEL = ".judging"


def make_session(home: Path, set_name: str, queries: int, depth: int, replicates: int) -> None:
    """A judgment set of the sample's first ``queries`` described queries (out-of-domain ones
    left out) and a pool "round-1" of their top ``depth`` BM25 documents, each needing
    ``replicates`` grades."""
    sample = load_queries(SAMPLE_DATA / "queries.jsonl")
    chosen = [q for q, tag in sample.tags.items() if tag != "out-of-domain"][:queries]
    store = open_judgments("sample", set_name, home)
    for qid in chosen:
        store.add_query(qid, sample.queries[qid], description=sample.descriptions[qid])
    run = run_queries(
        open_collection("sample", home),
        {q: sample.queries[q] for q in chosen},
        SearchParams(mode="bm25"),
        depth=depth,
    )
    create_pool(store, POOL, {"bm25": run}, depth=depth, replicates=replicates)


@pytest.fixture(scope="module")
def session_home(tmp_path_factory: pytest.TempPathFactory, sample_collection) -> Path:
    """A copy of the sample with a set of 8 described queries and a pool of their top 3 BM25
    documents, each needing 2 grades."""
    home = tmp_path_factory.mktemp("judging") / "collections"
    shutil.copytree(sample_collection.folder.parent, home / "sample")
    shutil.rmtree(home / "sample" / "lab", ignore_errors=True)
    make_session(home, SET, QUERIES, DEPTH, REPLICATES)
    return home


async def _idle(page: object) -> None:
    await page.wait_for_timeout(300)  # type: ignore[attr-defined]
    await page.wait_for_selector(  # type: ignore[attr-defined]
        "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=SLOW
    )


SHOWN = """() => {
    const pair = document.querySelector('.judging [data-part=pair]');
    if (!pair || pair.hidden) return '';
    return pair.querySelector('[data-part=query]').textContent + '\\n' +
        pair.querySelector('[data-part=document]').innerText;
}"""
"""The query and the document the panel shows ("" when it shows none)."""


async def _shown(page: object) -> str:
    """The query and the document on the page right now ("" when none is shown)."""
    await page.wait_for_selector(  # type: ignore[attr-defined]
        ".judging[data-ready='1']", timeout=SLOW
    )
    return str(await page.evaluate(SHOWN))  # type: ignore[attr-defined]


async def _judge(
    browser: object, url: str, name: str, key: str, shots: bool, keep: bool = False
) -> dict:
    """One judge's session: name, then a grade a key press until the pool is done for them."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: errors.append(f"failed {r.url}"))
    await page.goto(url)  # a deep link makes Streamlit probe /judge/_stcore/... first (404s)
    await page.wait_for_selector("[data-testid='stTopNav']", timeout=SLOW)
    await page.locator("[data-testid='stTopNavLink']", has_text="Judging").first.click()
    await page.get_by_label("Your name").wait_for(timeout=SLOW)
    await _idle(page)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Start judging").click()
    await page.get_by_text(f"Judging as {name}").wait_for(timeout=SLOW)
    seen: list[str] = []
    waits: list[float] = []
    while True:
        await _idle(page)
        shown = await _shown(page)
        if not shown:
            text = await page.locator("[data-testid=stMain]").inner_text()
            if "Nothing for you right now" in text:
                await page.wait_for_timeout(500)  # other judges hold the rest: look again
                # the panel may change meanwhile (the pool done): then read it again
                with contextlib.suppress(async_api.TimeoutError):
                    await page.get_by_role("button", name="Look again").click(timeout=5_000)
                continue
            assert "You have judged everything" in text, text[-500:]
            break
        if name == "ana" and not seen:  # skip the first document, then take the skip back
            await page.keyboard.press("s")
            assert await page.evaluate(SHOWN) != shown
            await page.keyboard.press("u")  # ignored until the server answered the skip
            await _idle(page)
            assert await _shown(page) != shown
            await page.keyboard.press("u")
            await _idle(page)
            assert await _shown(page) == shown  # the skipped document is back
        if shots and len(seen) == 1:
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "judging-page.png"))
        seen.append(shown)
        start = time.perf_counter()
        await page.keyboard.press(key)
        await page.wait_for_function(
            f"previous => ({SHOWN})() !== previous", arg=shown, timeout=SLOW, polling=10
        )
        waits.append((time.perf_counter() - start) * 1000)
    if shots:
        await page.screenshot(path=str(SHOTS / "judging-done.png"))
    if keep:  # the caller looks further, then closes it
        return {"seen": seen, "waits": waits, "errors": errors, "page": page}
    await context.close()
    return {"seen": seen, "waits": waits, "errors": errors}


async def _session(url: str) -> dict[str, dict]:
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        results = await asyncio.gather(
            *(_judge(browser, url, name, key, shots=name == "ana") for name, key in JUDGES.items())
        )
        await browser.close()
    return dict(zip(JUDGES, results, strict=True))


def _journal_grades(path: Path) -> list[dict]:
    """Every grade record the journal ever received (a batch's records one by one)."""
    records = []
    for line in path.read_bytes().splitlines():
        record = json.loads(line.split(b" ", 1)[1])
        inner = record["records"] if record["op"] == "batch" else [record]
        records += [r for r in inner if r["op"] == "judge"]
    return records


def test_three_judges_work_one_pool_at_once(session_home: Path, tmp_path: Path) -> None:
    store = open_judgments("sample", SET, session_home)
    pool = store.pools()[POOL]
    with running_app(session_home, start_timeout=90) as app:
        results = asyncio.run(_session(app.url))
        # the lab shows how far they agree
        asyncio.run(_agreement(app.url))

    store = open_judgments("sample", SET, session_home)
    grades = store.judgments()
    history = _journal_grades(store.path)
    presses = {name: len(result["seen"]) for name, result in results.items()}
    # no grade lost: every key press is a grade in the set, and in the journal once
    assert Counter(j.judge for j in grades) == Counter(presses)
    assert len(history) == sum(presses.values())
    # no pair graded twice by one judge; each pair graded exactly R times
    per_judge = Counter((r["qid"], r["doc"], r["judge"]) for r in history)
    assert max(per_judge.values()) == 1
    per_pair = Counter((j.query_id, j.doc_id) for j in grades)
    assert set(per_pair) == set(pool.pairs)
    assert set(per_pair.values()) == {REPLICATES}
    for name, result in results.items():
        assert len(set(result["seen"])) == len(result["seen"]), name  # never shown twice
        assert result["errors"] == [], (name, result["errors"])
    # the grades are the keys pressed
    assert {j.judge: j.grade for j in grades} == {
        n: int(k) for n, k in JUDGES.items() if presses[n]
    }

    waits = [w for result in results.values() for w in result["waits"]]
    median = statistics.median(waits)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "judging-next-document-ms.json").write_text(
        json.dumps(
            {"median": median, "p90": statistics.quantiles(waits, n=10)[-1], "waits": waits},
            indent=1,
        )
    )
    assert median < NEXT_DOCUMENT_MS, f"median {median:.0f} ms over {len(waits)} grades"


async def _agreement(url: str) -> None:
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1600})
        await page.goto(url)
        await page.wait_for_selector("[data-testid='stTopNav']", timeout=SLOW)
        await page.locator("[data-testid='stTopNavLink']", has_text="Relevance lab").first.click()
        await _idle(page)
        await page.get_by_role("combobox", name="Judgment set").click()
        await page.locator("[role='option']", has_text=SET).first.click()
        await _idle(page)
        await page.get_by_role("tab", name="Agreement").click()
        await page.get_by_text("Krippendorff's alpha (ordinal)").wait_for(timeout=SLOW)
        await page.get_by_text("Where the judges disagree most").wait_for(timeout=SLOW)
        text = await page.locator("[data-testid=stMain]").inner_text()
        assert "weighted Cohen's kappa" in text
        await page.screenshot(path=str(SHOTS / "judging-agreement.png"), full_page=True)
        await browser.close()
