"""Shared fixtures: the real bundled model (loaded once) and a private collections home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One embedding cache for the whole session: tests that build the same texts embed them once.
os.environ.setdefault("SEARCH_EXPLORER_CACHE", tempfile.mkdtemp(prefix="search-explorer-cache-"))
# ONNX exports (the default backend's model) are shared by every test session on the machine:
# exporting takes up to a minute, and the files are checked against their recorded sha256
# and library versions before use, so a stale or damaged one is made again.
os.environ.setdefault(
    "SEARCH_EXPLORER_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "search-explorer-test-models")
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def embedder():
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from search_core.embedding import shared_embedder

    return shared_embedder()


@pytest.fixture
def encoded(embedder, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the session's model encodes during the test (after the cache is consulted)."""
    seen: list[str] = []
    real = embedder._encode

    def spy(texts: list[str]):
        seen.extend(texts)
        return real(texts)

    monkeypatch.setattr(embedder, "_encode", spy)
    return seen


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


@pytest.fixture(scope="session")
def shared_collection(tmp_path_factory):
    """Build a shared judged collection once per session with the default settings.

    The model runs on the default backend (ONNX Runtime, vectors equal to PyTorch's to a
    cosine of 1.000000): these builds embed thousands of chunks, 2.8 times faster so.

    Returns a function ``name -> (collection, folder)``; skips when the data is absent.
    """
    from search_core.collection import BuildOptions, build_collection
    from search_core.embedding import shared_embedder
    from search_core.settings import DEFAULT_BACKEND

    embedder = shared_embedder(backend=DEFAULT_BACKEND)

    home = tmp_path_factory.mktemp("shared-collections")
    built: dict = {}

    def get(name: str):
        folder = shared_dataset(name)
        if name not in built:
            built[name] = build_collection(
                name, folder, BuildOptions(), home=home, embedder=embedder
            )
        return built[name], folder

    return get


SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="session")
def sample_collection(tmp_path_factory, embedder):
    """The bundled sample collection, built once per session with the default settings."""
    from search_core.collection import BuildOptions, build_collection

    home = tmp_path_factory.mktemp("sample-collection")
    return build_collection("sample", SAMPLE_DATA, BuildOptions(), home=home, embedder=embedder)
