"""Tests for search_core.lexical's streaming build (Bm25sBuilder) and mapped serving.

The builder must write what ``Bm25sIndex.build(texts).to_files()`` gives over the same texts,
byte for byte, however the texts are split into batches; an index opened from read-only
memory maps must score as one read from bytes.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_core import lexical
from search_core.analysis import ENGLISH, analyzer_for
from search_core.lexical import (
    ARRAY_FILES,
    JSON_FILES,
    Bm25sBuilder,
    Bm25sIndex,
    identifier_matches,
)
from search_core.storage import map_member, sha256_bytes

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "sample_data" / "corpus.jsonl"
FILE_NAMES = [*ARRAY_FILES, *JSON_FILES]

# Words with stopwords, stems that merge (run, running), identifiers and unicode, so batches
# bring new terms, repeat old ones and hold texts that analyze to nothing.
WORDS = [
    "the", "and", "of", "cat", "cats", "run", "running", "order", "ORD-58213", "v2.3.1",
    "café", "résumé", "12345", "shipped", "pending", "mat", "sat", "apple", "banana", "été",
]  # fmt: skip


@contextmanager
def small_buckets(bucket: int, read: int) -> Iterator[None]:
    """Sort and read a few postings at a time, so every path of finish runs on tiny corpora."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lexical, "_BUCKET_POSTINGS", bucket)
        patch.setattr(lexical, "_READ_POSTINGS", read)
        yield


def stream_build(
    texts: list[str], cuts: list[int], folder: Path, **params: float
) -> dict[str, bytes]:
    """Build with Bm25sBuilder, the texts split at the given positions; the files written."""
    with tempfile.TemporaryDirectory() as work:
        builder = Bm25sBuilder(ENGLISH, work_dir=Path(work), **params)
        bounds = [0, *sorted(cuts), len(texts)]
        for start, end in pairwise(bounds):
            builder.add(texts[start:end])
        names = builder.finish(folder)
        assert not list(Path(work).iterdir())  # the spill and the buckets are gone
    assert sorted(names) == sorted(FILE_NAMES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILE_NAMES)  # no temporary left
    return {name: (folder / name).read_bytes() for name in names}


def mapped_index(folder: Path) -> tuple[Bm25sIndex, dict[str, np.ndarray]]:
    """Open the files in folder as a collection does: arrays mapped read-only, JSON read."""
    arrays = {}
    for name in ARRAY_FILES:
        content = (folder / name).read_bytes()
        arrays[name] = map_member(folder, name, sha256_bytes(content), len(content))
    json_files = {name: (folder / name).read_bytes() for name in JSON_FILES}
    return Bm25sIndex.from_arrays(arrays, json_files, ENGLISH), arrays


# --- the builder gives bm25s's files -----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join), max_size=25),
    data=st.data(),
    k1=st.sampled_from([0.0, 0.9, 1.5, 2.0]),
    b=st.sampled_from([0.0, 0.4, 0.75, 1.0]),
    bucket=st.integers(1, 6),
    read=st.integers(1, 6),
)
def test_any_split_into_batches_gives_the_files_build_gives(
    texts: list[str], data: st.DataObject, k1: float, b: float, bucket: int, read: int
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(texts)), max_size=6), label="cuts")
    expected = Bm25sIndex.build(texts, k1=k1, b=b).to_files()
    with small_buckets(bucket, read), tempfile.TemporaryDirectory() as out:
        assert stream_build(texts, cuts, Path(out), k1=k1, b=b) == expected


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param([], id="no texts"),
        pytest.param(["Order ORD-58213 shipped"], id="one text"),
        pytest.param(["", "the and of", ""], id="no terms at all"),
        pytest.param(["", "cat sat", "the", "mat"], id="texts without terms between others"),
        pytest.param(["cat sat", "cat mat", "cat cat"], id="a term in every text"),
        pytest.param(["cat " * 300, "cat"], id="a long text"),
    ],
)
@pytest.mark.parametrize("batch", [1, 2, 100])
def test_edge_cases_give_the_files_build_gives(
    texts: list[str], batch: int, tmp_path: Path
) -> None:
    cuts = list(range(batch, len(texts), batch))
    expected = Bm25sIndex.build(texts).to_files()
    with small_buckets(2, 3):
        assert stream_build(texts, cuts, tmp_path) == expected


def test_empty_batches_change_nothing(tmp_path: Path) -> None:
    texts = ["cat sat", "the mat", "ORD-58213"]
    expected = Bm25sIndex.build(texts).to_files()
    assert stream_build(texts, [0, 0, 2, 3, 3], tmp_path) == expected


def test_the_sample_corpus_gives_the_files_build_gives(tmp_path: Path) -> None:
    with SAMPLE_CORPUS.open(encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines]
    german = analyzer_for("de")  # another analysis: a stemmer and stopwords of its own
    for analyzer in (ENGLISH, german):
        expected = Bm25sIndex.build(texts, k1=1.2, b=0.6, analyzer=analyzer).to_files()
        folder = tmp_path / analyzer.name
        folder.mkdir()
        with small_buckets(5000, 3000), tempfile.TemporaryDirectory() as work:
            builder = Bm25sBuilder(analyzer, k1=1.2, b=0.6, work_dir=Path(work))
            for start in range(0, len(texts), 37):
                builder.add(texts[start : start + 37])
            builder.finish(folder)
        assert {name: (folder / name).read_bytes() for name in FILE_NAMES} == expected


@given(
    keys=st.lists(st.integers(0, 3) | st.integers(0, 2**31 - 1), max_size=300),
    dtype=st.sampled_from([np.int32, np.int64]),
)
def test_the_radix_order_is_a_stable_sort(keys: list[int], dtype: type[np.generic]) -> None:
    array = np.array(keys, dtype=dtype)
    order = lexical._stable_order(array)
    np.testing.assert_array_equal(order, np.argsort(array, kind="stable"))


def test_finish_ends_the_builder(tmp_path: Path) -> None:
    builder = Bm25sBuilder(ENGLISH, k1=1.5, b=0.75, work_dir=tmp_path)
    builder.add(["cat sat"])
    out = tmp_path / "out"
    out.mkdir()
    builder.finish(out)
    with pytest.raises(ValueError, match="finished"):
        builder.add(["mat"])
    with pytest.raises(ValueError, match="finished"):
        builder.finish(out)


# --- serving from read-only memory maps ---------------------------------------------------------


def test_a_mapped_index_searches_as_the_built_one(tmp_path: Path) -> None:
    with SAMPLE_CORPUS.open(encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines]
    built = Bm25sIndex.build(texts)
    for name, content in built.to_files().items():
        (tmp_path / name).write_bytes(content)
    index, arrays = mapped_index(tmp_path)
    for array in arrays.values():
        assert not array.flags.writeable
    # served from the maps, not copies of them
    assert np.shares_memory(index._data, arrays["bm25_data.npy"])
    assert np.shares_memory(index._indices, arrays["bm25_indices.npy"])
    assert np.shares_memory(index._indptr, arrays["bm25_indptr.npy"])
    assert index.size == built.size and index.vocabulary == built.vocabulary
    allowed = np.arange(built.size) % 3 == 0
    for query in ["recruitment screening", "HR-POL-001", "invoice payment terms", "zebra"]:
        np.testing.assert_array_equal(index.scores(query), built.scores(query))
        for mask in (None, allowed):
            got, want = index.top_k(query, 10, mask), built.top_k(query, 10, mask)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(
            identifier_matches(index, query), identifier_matches(built, query)
        )
    assert index.documents_with("polici").size > 0


def test_an_empty_index_opens_from_arrays(tmp_path: Path) -> None:
    for name, content in Bm25sIndex.build(["", "the"]).to_files().items():
        (tmp_path / name).write_bytes(content)
    index, _ = mapped_index(tmp_path)
    assert index.size == 2 and len(index.top_k("anything", 3)[0]) == 0


def _arrays_and_json() -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    index = Bm25sIndex.build(["Order ORD-58213 shipped", "cat sat on the mat", "order pending"])
    files = index.to_files()
    arrays = {name: np.load(io.BytesIO(files[name])) for name in ARRAY_FILES}
    return arrays, {name: files[name] for name in JSON_FILES}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("bm25_data.npy", None, "missing: bm25_data.npy"),
        ("bm25_params.json", None, "missing: bm25_params.json"),
        ("bm25_data.npy", [1.0, 2.0], "expected a numpy array, got list"),
        ("bm25_data.npy", np.zeros(8, dtype=np.float64), "bm25_data.npy: expected dtype float32"),
        ("bm25_indices.npy", np.zeros(8, dtype=np.int32), "bm25_indices.npy: expected dtype int64"),
        ("bm25_indptr.npy", np.zeros(3, dtype=np.int64), "indptr has length"),
        ("bm25_vocab.json", b"[1, 2]", "list of strings"),
        ("bm25_params.json", b'{"engine": "bm25s"}', "lucene"),
    ],
)
def test_from_arrays_refuses_bad_input(name: str, value: object, message: str) -> None:
    arrays, json_files = _arrays_and_json()
    target: dict = arrays if name in ARRAY_FILES else json_files
    if value is None:
        del target[name]
    else:
        target[name] = value
    with pytest.raises(ValueError, match=message):
        Bm25sIndex.from_arrays(arrays, json_files)


@pytest.mark.parametrize(
    ("name", "message"),
    [("bm25_indices.npy", r"document ids in \[0, 3\)"), ("bm25_data.npy", "non-finite")],
)
def test_opening_checks_every_block_of_the_arrays(
    name: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrays are checked block by block: damage in the last block must still be found.
    monkeypatch.setattr(lexical, "_CHECK_BLOCK", 2)
    arrays, json_files = _arrays_and_json()
    damaged = arrays[name].copy()
    damaged[-1] = 99 if name == "bm25_indices.npy" else np.nan
    arrays[name] = damaged
    with pytest.raises(ValueError, match=message):
        Bm25sIndex.from_arrays(arrays, json_files)
