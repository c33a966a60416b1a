"""Every setting of a search is checked at the door: numeric ranges (issue 12, D7), finite
numbers (D9), query text with undecodable bytes (D8) and filters on fields the collection has
(D10), through ``SearchParams``, ``run_search`` and the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search_core.cli import main
from search_core.collection import build_collection
from search_core.embedding import clean_text
from search_core.ingest import IngestReport
from search_core.search import INTEGER_SETTINGS, NUMBER_SETTINGS, SearchParams, search
from search_core.types import Document

NAN, INF = float("nan"), float("inf")

DOCS = [
    ("legal", "Either party may terminate the agreement with thirty days written notice.", 30),
    ("legal", "Notice of a price change is sent sixty days before it takes effect.", 60),
    ("security", "CVE-2024-1234: remote code execution in the VPN gateway, fixed in 4.2.1.", 9.8),
    ("commerce", "Customer was charged twice for order 55120; duplicate payment refunded.", 12),
]


@pytest.fixture(scope="module")
def notices(tmp_path_factory, embedder):
    """A four-document collection with ``domain`` and ``score`` metadata, and its home."""
    home = tmp_path_factory.mktemp("notices")
    documents = tuple(
        Document(f"{domain}-{i}", text, metadata={"domain": domain, "score": score})
        for i, (domain, text, score) in enumerate(DOCS)
    )
    report = IngestReport(documents, 0, (), 1, ())
    return build_collection("notices", report, home=home, embedder=embedder), home


# --- D7, D9: every numeric setting has a stated range, and is a finite number --------------


def test_every_numeric_setting_has_a_stated_range() -> None:
    numeric = {
        f.name
        for f in dataclasses.fields(SearchParams)
        if {"int", "float"} & set(str(f.type).replace("|", " ").split())
    }
    assert numeric == set(INTEGER_SETTINGS) | set(NUMBER_SETTINGS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *((name, high) for name, (_, high) in INTEGER_SETTINGS.items()),
        *((name, low) for name, (low, _) in INTEGER_SETTINGS.items()),
        *((name, high) for name, (_, high) in NUMBER_SETTINGS.items()),
        *((name, low) for name, (low, _) in NUMBER_SETTINGS.items()),
    ],
)
def test_the_bounds_themselves_are_valid(name: str, value: float) -> None:
    assert getattr(SearchParams(**{name: value}), name) == value


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ef_search", 2_147_483_648, "ef_search must be an integer from 1 to 100,000"),
        ("ef_search", 100_001, "from 1 to 100,000"),
        ("nprobe", 2**64, "nprobe must be an integer from 1 to 1,048,576"),
        ("k", 1001, "k must be an integer from 1 to 1,000"),
        ("k", 10.0, "k must be an integer"),
        ("k", True, "k must be an integer"),
        ("candidates", 10**6, "candidates must be an integer from 1 to 100,000"),
        ("candidates", "100", "candidates must be an integer"),
        ("rrf_k", -1.0, "rrf_k must be a finite number from 0 to 10,000"),
        ("rrf_k", 10**400, "rrf_k must be a finite number"),
        ("vector_weight", 1001.0, "vector_weight must be a finite number from 0 to 1,000"),
        ("bm25_weight", -0.5, "bm25_weight must be a finite number from 0 to 1,000"),
        ("bm25_k1", 11.0, "bm25_k1 must be a finite number from 0 to 10"),
        ("bm25_b", 1.5, "bm25_b must be a finite number from 0 to 1"),
        ("threshold", 1.01, "threshold must be a finite number from -1 to 1"),
    ],
)
def test_out_of_range_settings_state_the_range(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchParams(**{name: value})


@pytest.mark.parametrize(
    "name", ["threshold", "rrf_k", "vector_weight", "bm25_weight", "bm25_k1", "bm25_b"]
)
@pytest.mark.parametrize("value", [NAN, INF, -INF, True])
def test_non_finite_and_bool_numbers_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        SearchParams(**{name: value})


def test_a_saved_configuration_with_nan_is_refused() -> None:
    # Python's json reads NaN and Infinity, so a saved configuration can hold them.
    for text in ('{"rrf_k": NaN}', '{"vector_weight": Infinity}', '{"ef_search": 1e999}'):
        with pytest.raises(ValueError, match="must be"):
            SearchParams.from_dict(json.loads(text))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"collapse": "yes"}, "collapse must be true or false"),
        ({"identifier_match": 1}, "identifier_match must be true or false"),
        ({"mode": ["vector"]}, "unknown mode"),
        ({"filters": ["domain=legal"]}, "filters must map a metadata field"),
    ],
)
def test_other_settings_have_their_types_checked(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchParams(**options)


def test_cli_refuses_out_of_range_and_nan_settings_in_one_line(capsys, notices) -> None:
    _, home = notices
    for option, value in (
        ("--ef-search", "2147483648"),
        ("--rrf-k", "nan"),
        ("--vector-weight", "inf"),
    ):
        argv = ["--home", str(home), "search", "notices", "notice", "--mode", "bm25"]
        code = main([*argv, option, value])
        err = capsys.readouterr().err
        assert code == 2, option
        assert err.startswith("error: ") and len(err.splitlines()) == 1
        assert "must be" in err and " from " in err


# --- D8: text with bytes that are not UTF-8 --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("\udcff notice", "\ufffd notice"),  # the byte 0xff of a command-line argument
        ("a\ud800b", "a\ufffdb"),  # a lone \ud800 escape in JSON
        ("\ud83d\ude00", "\U0001f600"),  # a surrogate pair is the character it encodes
        ("naïve notice", "naïve notice"),
    ],
)
def test_clean_text_replaces_lone_surrogates(text: str, cleaned: str) -> None:
    assert clean_text(text) == cleaned


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid"])
def test_a_query_with_an_undecodable_byte_is_searched(notices, mode: str) -> None:
    collection, _ = notices
    response = search(collection, "\udcff notice", mode=mode, threshold=-1.0)
    assert response.query == "\ufffd notice"
    expected = search(collection, "\ufffd notice", mode=mode, threshold=-1.0)
    assert [h.chunk_id for h in response.hits] == [h.chunk_id for h in expected.hits]
    assert response.hits


def test_the_command_line_searches_a_query_with_an_undecodable_byte(notices) -> None:
    _, home = notices
    argv: list[str | bytes] = [sys.executable, "-m", "search_core.cli", "--home", str(home)]
    argv += ["search", "notices", b"\xff notice", "--mode", "hybrid", "--threshold", "-1"]
    result = subprocess.run(
        [*argv, "--json"],
        capture_output=True,
        check=False,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    payload = json.loads(result.stdout)
    assert payload["query"] == "\ufffd notice"
    assert payload["hits"]


# --- D10: a filter on a field the collection does not have is an error ----------------------


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid"])
def test_a_misspelt_filter_field_names_the_valid_fields(notices, mode: str) -> None:
    collection, _ = notices
    with pytest.raises(ValueError, match=r"'domian' \(did you mean 'domain'\?\); valid fields: "):
        search(collection, "notice", mode=mode, filters={"domian": "legal"})
    with pytest.raises(ValueError, match="valid fields: domain, score"):
        search(collection, "", mode=mode, filters={"colour": "red"})


def test_a_known_field_with_no_match_is_an_empty_answer_not_an_error(notices) -> None:
    collection, _ = notices
    assert search(collection, "notice", filters={"domain": "poetry"}).hits == ()


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("domian=legal", "valid fields: domain, score"),
        ("===", "no field name"),
        ("domain", "no operator"),
        ("=legal", "no field name"),
        ("score>=NaN", "needs a finite number"),
    ],
)
def test_the_command_line_refuses_bad_filters(
    capsys, notices, expression: str, message: str
) -> None:
    _, home = notices
    argv = ["--home", str(home), "search", "notices", "notice", "--mode", "bm25"]
    code = main([*argv, "--filter", expression])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_a_collection_without_metadata_says_so(tmp_path: Path, embedder) -> None:
    report = IngestReport((Document("d1", "A notice about nothing."),), 0, (), 1, ())
    collection = build_collection("bare", report, home=tmp_path, embedder=embedder)
    with pytest.raises(ValueError, match="no metadata fields to filter on"):
        search(collection, "notice", mode="bm25", filters={"domain": "legal"})
