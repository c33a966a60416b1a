"""Shared fixtures: the real bundled model (loaded once) and a private collections home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def embedder():
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from search_core.embedding import shared_embedder

    return shared_embedder()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private collections home for one test."""
    folder = tmp_path / "collections"
    monkeypatch.setenv("SEARCH_EXPLORER_HOME", str(folder))
    return folder


def shared_dataset(name: str) -> Path:
    """A judged collection from ../shared/data, or skip the test when it is absent."""
    folder = SHARED_DATA / name
    if not (folder / "corpus.jsonl").is_file():
        pytest.skip(f"{folder} is not available")
    return folder
