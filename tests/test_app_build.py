"""The app's builds: the sample with the default backend, a progress bar that names each step."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from search_core.collection import BUILD_STAGES, BuildOptions
from search_core.settings import DEFAULT_BACKEND
from ui import state


def test_each_stage_has_its_words_and_its_share_of_the_bar_in_build_order() -> None:
    assert list(state.STAGE_SPANS) == list(BUILD_STAGES)
    spans = list(state.STAGE_SPANS.values())
    assert spans[0][0] == 0.0 and spans[-1][1] == 1.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_loading_the_model_is_named_as_it_starts() -> None:
    shown: list[tuple[float, str]] = []
    progress = state.BuildProgress(lambda fraction, text: shown.append((fraction, text)))
    progress("read", 1, 1)
    progress("model", 0, 1)
    assert shown[-1][1].startswith("Loading the embedding model")
    assert shown[-1][0] == pytest.approx(state.STAGE_SPANS["model"][0])


def test_the_sample_is_built_with_the_default_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[BuildOptions] = []

    def build(name: str, source: Any, options: BuildOptions) -> object:
        built.append(options)
        return object()

    monkeypatch.setattr(state, "build", build)
    monkeypatch.setattr(state, "open_later", lambda name: None)
    assert state.build_sample()
    assert built[0].backend == DEFAULT_BACKEND == "onnx-fp32"
