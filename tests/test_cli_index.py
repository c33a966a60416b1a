"""``search-explorer index`` on a file whose text column is not called ``text`` (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_core import collection
from search_core.cli import main
from search_core.collection import read_manifest
from tests.fake_embedder import FakeEmbedder
from tests.reviews import BATTERY_FAILURES, ROWS, reviews_csv
from tests.test_cli import run
from tests.test_ingest import pdf_bytes, write


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    return write(tmp_path / "reviews.csv", reviews_csv())


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds embed with hashed bag-of-words vectors: these tests are about the columns."""
    monkeypatch.setattr(collection, "shared_embedder", lambda *_, **__: FakeEmbedder())


def chosen(name: str, home: Path) -> dict:
    """The field map a collection was built with, as its manifest records it."""
    return read_manifest(name, home)[1]["source"]["fields"]


@pytest.mark.usefixtures("fake_model")
def test_the_columns_are_chosen_from_the_data_and_printed(
    capsys, home: Path, reviews: Path
) -> None:
    code, out, err = run(capsys, "index", str(reviews), "--name", "r")
    assert code == 0, err
    first, last = out.splitlines()[0], out.splitlines()[-1]
    assert first.startswith("columns: text: review_text (longest texts")
    assert "id: review_id (named like an id" in first
    assert "metadata: category, product, rating" in first
    assert "warning" not in out
    assert last.startswith(f"indexed {len(ROWS)} documents")
    fields = chosen("r", home)
    assert (fields["text"], fields["id"], fields["title"]) == ("review_text", "review_id", None)


@pytest.mark.usefixtures("fake_model")
def test_json_output_names_the_chosen_columns(capsys, home: Path, reviews: Path) -> None:
    code, out, _ = run(capsys, "index", str(reviews), "--name", "r", "--json")
    fields = json.loads(out)["fields"]  # stdout holds the JSON only
    assert code == 0
    assert (fields["text"], fields["id"], fields["title"]) == ("review_text", "review_id", None)
    assert fields["metadata"] == ["category", "product", "rating"]
    assert set(fields["reasons"]) == {"text", "id", "title"}
    assert fields["warnings"] == []


@pytest.mark.usefixtures("fake_model")
@pytest.mark.parametrize(
    ("flags", "expected", "warning"),
    [
        (["--text-field", "product"], {"text": "product", "id": "review_id"}, "very short"),
        (["--text-field", "review_id"], {"text": "review_id", "id": None}, "looks like an id"),
        (["--title-field", "product"], {"text": "review_text", "title": "product"}, None),
        (["--id-field", "review_id", "--text-field", "category"], {"text": "category"}, "short"),
        (["--metadata-fields", "rating"], {"text": "review_text", "metadata": ["rating"]}, None),
    ],
)
def test_flags_override_the_inference(
    capsys, home: Path, reviews: Path, flags: list[str], expected: dict, warning: str | None
) -> None:
    code, out, err = run(capsys, "index", str(reviews), "--name", "r", *flags)
    assert code == 0, err
    fields = chosen("r", home)
    assert {key: fields[key] for key in expected} == expected
    if "--text-field" in flags:
        assert f"text: {expected['text']} (given)" in out
    if warning is None:
        assert "warning" not in out
    else:
        assert "warning: " in out and warning in out


@pytest.mark.usefixtures("fake_model")
def test_a_pdf_keeps_its_fixed_layout(capsys, home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "note.pdf", pdf_bytes(["A short note about brakes."]))
    code, out, _ = run(capsys, "index", str(path), "--name", "n")
    assert code == 0 and out.startswith("indexed 1 documents")


def test_an_own_csv_is_indexed_and_searched_with_a_sensible_answer(
    capsys, home: Path, reviews: Path, embedder
) -> None:
    """The real model: the newcomer's own CSV answers a question about its reviews."""
    assert main(["index", str(reviews), "--name", "r"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "search", "r", "battery died after a week", "--json")
    assert code == 0
    assert json.loads(out)["hits"][0]["doc_id"] in BATTERY_FAILURES
