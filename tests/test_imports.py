"""A command imports only what its path needs.

``import sentence_transformers`` alone took 7 s, ``torch`` 4 s, ``transformers`` 2 s; a search
on a collection of the default backend (ONNX) needs none of them, nor the libraries that
only building or reading sources need (bm25s with numba and scipy, pypdf, pandas). Each
command runs in a fresh interpreter, as from the shell, and reports what it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search_core.collection import BuildOptions, build_collection
from search_core.embedding import shared_embedder
from search_core.types import SEARCH_MODES
from tests.test_collection import DOCS, _report

REPO = Path(__file__).resolve().parents[1]

HEAVY = ("torch", "transformers", "sentence_transformers", "bm25s", "numba", "pypdf", "pandas")
"""Libraries that take from 0.4 to 8 s to import and that no search path needs."""

CHILD = r"""
import json, sys
from search_core.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A home with one small collection of the default backend."""
    folder = tmp_path_factory.mktemp("imports")
    build_collection(
        "docs",
        _report(DOCS),
        BuildOptions(),
        home=folder,
        embedder=shared_embedder(backend=BuildOptions().backend),
    )
    return folder


def run_command(home: Path, *argv: str) -> tuple[str, dict]:
    """Run ``search-explorer ARGV`` in a fresh interpreter: (its output, its report)."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, "--home", str(home), *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    *output, report = result.stdout.splitlines()
    return "\n".join(output), json.loads(report)


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_a_search_imports_no_heavy_library(home: Path, mode: str) -> None:
    output, report = run_command(home, "search", "docs", "brakes squeal", "--mode", mode)
    assert report["code"] == 0 and "doc b" in output.splitlines()[0]
    assert [name for name in HEAVY if name in report["modules"]] == []
    if mode != "bm25":
        assert "onnxruntime" in report["modules"]  # the query was embedded, with ONNX Runtime


@pytest.mark.parametrize("command", [["list"], ["info", "docs"]])
def test_list_and_info_import_no_heavy_library(home: Path, command: list[str]) -> None:
    output, report = run_command(home, *command)
    assert report["code"] == 0 and "docs" in output
    assert [name for name in HEAVY if name in report["modules"]] == []
