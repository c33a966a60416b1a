"""``streamlit run app.py`` in a subprocess on a private collections home, for the browser and
load tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class AppServer:
    """A running app: ``host:port``, the server's pid and its log file."""

    address: str
    pid: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_app(
    home: Path, *, env: Mapping[str, str] | None = None, start_timeout: float = 120
) -> Iterator[AppServer]:
    """Start the app on ``home``, wait until it answers its health check, stop it after.

    Args:
        home: the collections home (``SEARCH_EXPLORER_HOME``); the log is written beside it.
        env: extra environment variables for the server.
        start_timeout: seconds to wait for it to answer.
    """
    port = free_port()
    log = home.parent / "streamlit.log"
    environment = {
        **os.environ,
        "SEARCH_EXPLORER_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=output)
    server = AppServer(f"127.0.0.1:{port}", process.pid, log)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + log.read_text(errors="replace"))
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
