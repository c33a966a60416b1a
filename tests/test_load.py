"""Load: 20 app sessions searching at once, each seeing only its own state.

Starts ``streamlit run app.py`` on a free port with a private collections home holding a small
collection built with the real model, warms it up with one session, then runs rounds of 20
sessions on the Search page at once. Each session asks for its own ticket with its own number
of results; every search must answer with that ticket first and that many results, also when
rerun after all the others, and the server's memory must come back near where it started.

The CI test drives the sessions as Streamlit's own browser client does, over the websocket
(``/_stcore/stream``, protobuf messages), so that the server is what is measured. The long
variant, ``RELIABILITY_LONG=1``, runs 5 websocket rounds and then 20 real browser contexts
(Debian's headless Chromium through Playwright; never a downloaded browser, skipped when
``/usr/bin/chromium`` is absent); ``-s`` prints the figures.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from search_core.collection import build_collection
from search_core.ingest import IngestReport
from search_core.types import Document
from tests.app_server import running_app

LONG = os.environ.get("RELIABILITY_LONG") == "1"
SESSIONS = 20
ROUNDS = 5 if LONG else 2
TIMEOUT = 300  # seconds for one answer while all the other sessions run
MB = 1024 * 1024
TITLE = re.compile(r"\bTicket \d{2}\b")
COUNT = re.compile(r"(\d+) results?\b")
TOPICS = [
    "the printer on the third floor jams on every second page",
    "the VPN drops the connection after ten minutes idle",
    "a refund was paid to a closed card and bounced back",
    "the laptop battery swells and the touchpad clicks by itself",
    "two invoices were issued for the same order",
]


def ticket(i: int) -> str:
    return f"TCK-{4100 + i}"


def documents() -> list[Document]:
    """One ticket per session, with a unique id to search for, and some filler."""
    tickets = [
        Document(f"t{i:02d}", f"Ticket {ticket(i)}: {TOPICS[i % 5]}.", f"Ticket {i:02d}")
        for i in range(SESSIONS)
    ]
    filler = [
        Document(f"f{j:02d}", f"Note {j}: {TOPICS[j % 5]}, reported again by another team.")
        for j in range(20)
    ]
    return tickets + filler


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


def settled_rss(pid: int, seconds: float = 4.0) -> int:
    """The server's memory once it has been idle for a moment (the lowest of a few reads)."""
    readings = []
    for _ in range(int(seconds / 0.5)):
        time.sleep(0.5)
        readings.append(rss(pid))
    return min(readings)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[tuple[str, int, Path]]:
    """``streamlit run app.py`` on a private home; yields (address, server pid, log file)."""
    home = tmp_path_factory.mktemp("load") / "collections"
    report = IngestReport(tuple(documents()), 0, (), 1, ())
    build_collection("tickets", report, home=home, embedder=embedder)
    # The map's background warm-up (umap and numba, ~150 MB) is not what this test measures:
    # it would land in the middle of the memory figures.
    with running_app(home, env={"SEARCH_EXPLORER_WARM_UP": "0"}) as app:
        yield app.address, app.pid, app.log
    text = app.log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


class Client:
    """One app session over the websocket, as Streamlit's browser client talks to the server.

    Widgets are found by the key the page gives them: a keyed widget's id ends in ``-<key>``.
    """

    def __init__(self, address: str) -> None:
        self._connection = connect(
            f"ws://{address}/_stcore/stream",
            subprotocols=["streamlit"],  # type: ignore[list-item]
            max_size=None,
        )
        self._socket = self._connection.__enter__()
        self.widgets: dict[str, str] = {}
        self.page_hash = ""
        self.markdown: list[str] = []

    def run(self, state: ClientState) -> None:
        """Rerun the page with ``state``; collect its widgets and Markdown until it finishes."""
        message = BackMsg()
        message.rerun_script.CopyFrom(state)
        self._socket.send(message.SerializeToString())
        self.markdown = []
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(self._socket.recv(timeout=TIMEOUT))
            kind = reply.WhichOneof("type")
            if kind == "navigation":
                self.page_hash = reply.navigation.page_script_hash
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                element = reply.delta.new_element
                inner = getattr(element, element.WhichOneof("type") or "", None)
                widget_id = getattr(inner, "id", "")
                if widget_id.startswith("$$ID-"):
                    self.widgets[widget_id.rsplit("-", 1)[-1]] = widget_id
                if element.WhichOneof("type") == "markdown":
                    self.markdown.append(element.markdown.body)
            elif kind == "script_finished":
                return

    def open_search(self) -> None:
        self.run(ClientState(page_name="search"))
        assert {"search_query", "search_k"} <= set(self.widgets), sorted(self.widgets)

    def search(self, query: str, k: int) -> tuple[list[str], int]:
        """Type ``query``, move the Results slider to ``k``; return the titles and the count."""
        state = ClientState(page_name="search", page_script_hash=self.page_hash)
        text = state.widget_states.widgets.add()
        text.id, text.string_value = self.widgets["search_query"], query
        slider = state.widget_states.widgets.add()
        slider.id = self.widgets["search_k"]
        slider.double_array_value.data.append(float(k))
        self.run(state)
        # A hit's header holds its title ("Ticket 07"); its text holds the id ("TCK-4107").
        titles = [m.group(0) for body in self.markdown if (m := TITLE.search(body))]
        counts = [int(m.group(1)) for body in self.markdown if (m := COUNT.match(body))]
        assert len(counts) == 1, self.markdown
        return titles, counts[0]

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def session_round(address: str, latencies: list[float]) -> None:
    """20 sessions: all open the page, then all search at the same moment, then all rerun."""
    clients = [Client(address) for _ in range(SESSIONS)]
    start = threading.Barrier(SESSIONS)
    failures: list[BaseException] = []

    def session(number: int, client: Client) -> None:
        try:
            query, k = f"{ticket(number)} status", 1 + number % 10
            client.open_search()
            start.wait(timeout=TIMEOUT)
            asked = time.monotonic()
            titles, count = client.search(query, k)
            latencies.append(time.monotonic() - asked)
            assert (titles[:1], count, len(titles)) == ([f"Ticket {number:02d}"], k, k)
            start.wait(timeout=TIMEOUT)  # everyone has searched: nobody's state moved
            assert client.search(query, k) == (titles, count)
        except BaseException as error:
            failures.append(error)
            start.abort()

    threads = [threading.Thread(target=session, args=pair) for pair in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert not failures, failures[0]


def test_twenty_sessions_search_at_once_and_memory_comes_back(server) -> None:
    address, pid, _ = server
    warm = Client(address)  # loads the model and the collection once
    warm.open_search()
    assert warm.search(f"{ticket(0)} status", 3)[0][0] == "Ticket 00"
    warm.close()
    start = settled_rss(pid)
    after: list[int] = []
    latencies: list[float] = []
    for _ in range(ROUNDS):
        session_round(address, latencies)
        after.append(settled_rss(pid))
    assert len(latencies) == ROUNDS * SESSIONS
    print(
        f"\nload: {ROUNDS} rounds of {SESSIONS} websocket sessions, {len(latencies)} searches "
        f"answered at once; seconds to answer median {statistics.median(latencies):.1f}, "
        f"max {max(latencies):.1f}; server RSS {start / MB:.0f} MB after warm-up, "
        f"{', '.join(f'{m / MB:.0f}' for m in after)} MB after each round"
    )
    # The first round may keep some memory (thread stacks, allocator arenas, sessions kept
    # two minutes for reconnection); later rounds must not add to it.
    assert after[0] - start < 0.25 * start
    assert after[-1] - after[0] < 0.05 * start + 32 * MB


# --- the long variant: real browsers ----------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(not LONG, reason="long variant: RELIABILITY_LONG=1")
def test_twenty_browser_sessions_search_at_once(server) -> None:
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    address, pid, _ = server
    url = f"http://{address}/search"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        contexts = [browser.new_context() for _ in range(SESSIONS)]
        pages = [context.new_page() for context in contexts]
        dialogs: list[str] = []

        def record(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        for page in pages:
            page.on("dialog", record)
            page.goto(url, wait_until="commit")
        boxes = [page.locator(".st-key-search_query input") for page in pages]
        started = time.monotonic()
        for number, box in enumerate(boxes):
            box.wait_for(timeout=TIMEOUT * 1000)
            box.fill(f"{ticket(number)} status")
            box.press("Enter")
        for number, page in enumerate(pages):
            page.get_by_text(re.compile(r"\d+ results · ")).first.wait_for(timeout=TIMEOUT * 1000)
            page.wait_for_selector(
                "[data-testid='stApp'][data-test-script-state='notRunning']",
                timeout=TIMEOUT * 1000,
            )
            shown = page.locator("[data-testid='stMain']").inner_text()
            assert re.search(r"1\.\s*(Ticket \d+)", shown).group(1) == f"Ticket {number:02d}"  # type: ignore[union-attr]
        seconds = time.monotonic() - started
        for number, box in enumerate(boxes):
            assert box.input_value() == f"{ticket(number)} status"
        assert dialogs == []
        for context in contexts:
            context.close()
        browser.close()
    memory = rss(pid) / MB
    print(f"\nload: {SESSIONS} browser sessions answered in {seconds:.0f} s, RSS {memory:.0f} MB")
