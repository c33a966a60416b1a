"""How long a judge waits for the next document after a grade, in a real browser.

Several judges (browser contexts of Debian's headless Chromium, at once) grade a pool by key
until it is done; the time from each key press to the next document on the screen is measured
in the browser (``wait_for_function`` polling every 10 ms).

* **baseline**: a Streamlit page that asks the server for the next document on each key press
  (a fragment with a button and its keyboard shortcut, redrawing one Markdown document): the
  floor of any judging page that waits for the server. The first version of the Judging page
  did that and measured more than the floor (it also writes the grade and draws the page);
* **judging page**: the app's Judging page, whose panel holds the next document already and
  shows it when the key is pressed, while the server records the grade.

Run by hand (see BENCHMARKS.md)::

    python bench/judging_latency.py --out bench/results/judging.json
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import ROOT, machine, write_result

sys.path.insert(0, str(ROOT))

from tests.app_server import free_port, running_app
from tests.test_browser_judging import CHROMIUM, CHROMIUM_ARGS, _judge, make_session

BASELINE_APP = """
import streamlit as st

DOCS = [f"Document {n}: " + "the brake pads squeal when they are worn down. " * 40
        for n in range(200)]
if "n" not in st.session_state:
    st.session_state.n = 0


def grade() -> None:
    st.session_state.n += 1


@st.fragment
def panel() -> None:
    with st.container(border=True, key="document"):
        st.markdown(DOCS[st.session_state.n % len(DOCS)])
    st.button("2 relevant", key="grade", on_click=grade, shortcut="2")


panel()
"""
SHOWN_BASELINE = "() => document.querySelector('.st-key-document')?.innerText || ''"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


async def _baseline_judge(browser: Any, url: str, grades: int) -> list[float]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_selector(".st-key-document", timeout=120_000)
    waits = []
    for _ in range(grades):
        await page.wait_for_selector(IDLE, timeout=120_000)  # a press during a run is lost
        shown = await page.evaluate(SHOWN_BASELINE)
        start = time.perf_counter()
        await page.keyboard.press("2")
        await page.wait_for_function(
            f"previous => ({SHOWN_BASELINE})() !== previous", arg=shown, polling=10
        )
        waits.append((time.perf_counter() - start) * 1000)
        await page.wait_for_timeout(300)  # the script finishes its run
    await context.close()
    return waits


async def _browsers(judges: int, run: Any) -> list[list[float]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        results = await asyncio.gather(*(run(browser, n) for n in range(judges)))
        await browser.close()
    return list(results)


def baseline(judges: int, grades: int, folder: Path) -> list[float]:
    """Key press to the next document, the server asked each time."""
    app = folder / "baseline_app.py"
    app.write_text(BASELINE_APP, encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        results = asyncio.run(
            _browsers(judges, lambda browser, _: _baseline_judge(browser, url, grades))
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
    return [w for waits in results for w in waits]


def judging_page(judges: int, home: Path, pool_size: int) -> list[float]:
    """Key press to the next document on the app's Judging page, ``judges`` at once."""
    make_session(home, f"bench-{judges}", pool_size // 3, 3, judges)
    with running_app(home, start_timeout=120) as app:
        results = asyncio.run(
            _browsers(judges, lambda browser, n: _judge(browser, app.url, f"judge{n}", "2", False))
        )
    return [w for result in results for w in result["waits"]]


def summary(waits: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(waits), 1),
        "p90_ms": round(statistics.quantiles(waits, n=10)[-1], 1),
        "max_ms": round(max(waits), 1),
        "grades": len(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judges", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--grades", type=int, default=24, help="baseline grades per judge")
    parser.add_argument("--pool", type=int, default=24, help="about this many pooled documents")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="judging-bench-"))
    home = folder / "collections"
    subprocess.run(
        [sys.executable, "-c", "import sys; from search_core.cli import main; sys.exit(main())",
         "--home", str(home), "index",
         str(ROOT / "sample_data"), "--name", "sample"],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    result: dict[str, Any] = {"machine": machine(), "runs": []}
    try:
        for judges in args.judges:
            shutil.rmtree(home / "sample" / "lab", ignore_errors=True)  # one pool at a time
            base = summary(baseline(judges, args.grades, folder))
            page = summary(judging_page(judges, home, args.pool))
            result["runs"].append({"judges": judges, "baseline": base, "judging_page": page})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
