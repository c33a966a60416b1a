"""Streaming builds (issue 16): batch by batch, the same collection as chunking everything at
once, nothing left behind by a build that fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from search_core.chunking import ChunkingConfig, chunk_documents
from search_core.collection import BuildOptions, build_collection, open_collection
from search_core.ingest import read_source, stream_source
from search_core.pipeline import EmbeddedBatch, document_batches, embed_batch
from search_core.types import Document
from search_core.writer import NpyRowWriter, npy_header
from tests.fake_embedder import FakeEmbedder

OPTIONS = BuildOptions(chunking=ChunkingConfig(size=16, overlap=4))


def corpus(path: Path, documents: int) -> Path:
    rows = [
        {"id": f"d{i}", "title": f"Doc {i}", "text": f"order ORD-{i} " + "words go here " * (i % 9)}
        for i in range(documents)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_build_in_batches_gives_the_chunks_of_chunking_everything_at_once(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    source = corpus(tmp_path / "c.jsonl", 600)  # three batches of documents
    built = build_collection("c", source, OPTIONS, home=tmp_path / "home", embedder=embedder)
    documents = read_source(source).documents
    expected = chunk_documents(
        documents,
        embedder.tokenizer,
        OPTIONS.chunking,
        max_seq_length=embedder.max_seq_length,
        special_tokens=embedder.special_tokens,
    )
    assert list(built.chunks) == expected
    assert [d.doc_id for d in built.documents] == [d.doc_id for d in documents]
    texts = built.indexed_texts()
    np.testing.assert_allclose(built.embeddings, embedder.embed(texts), atol=1e-6)
    assert built.manifest["counts"] == {**built.manifest["counts"], "chunks": len(expected)}
    reopened = open_collection("c", tmp_path / "home", embedder=embedder)
    assert list(reopened.chunks) == expected


def test_reading_and_embedding_take_turns(tmp_path: Path) -> None:
    """The source is not read through before the first batch is embedded."""
    source = corpus(tmp_path / "c.jsonl", 600)
    seen: list[tuple[int, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "embed":
            seen.append((done, total))

    build_collection(
        "c", source, OPTIONS, home=tmp_path / "h", embedder=FakeEmbedder(), progress=progress
    )
    size = source.stat().st_size
    assert all(total == size for _, total in seen)
    read = [done for done, _ in seen]
    assert read[0] == 0 and read[-1] == size and read == sorted(read)
    assert any(0 < done < size for done in read)  # a batch embedded with the file half read


def test_a_failing_engine_leaves_the_old_collection_and_no_staging(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    home = tmp_path / "home"
    first = build_collection(
        "c", corpus(tmp_path / "a.jsonl", 3), OPTIONS, home=home, embedder=embedder
    )

    def failing(batches: Iterator[list[Document]]) -> Iterator[EmbeddedBatch]:
        for number, batch in enumerate(batches):
            if number == 1:
                raise RuntimeError("worker lost")
            yield embed_batch(batch, embedder, OPTIONS.chunking)

    with pytest.raises(RuntimeError, match="worker lost"):
        build_collection(
            "c",
            corpus(tmp_path / "b.jsonl", 600),
            OPTIONS,
            home=home,
            embedder=embedder,
            engine=failing,
        )
    assert sorted(p.name for p in (home / "c").iterdir()) == ["CURRENT", first.folder.name]
    assert open_collection("c", home, embedder=embedder).manifest["counts"]["documents"] == 3


def test_document_batches_close_on_size_or_characters() -> None:
    docs = [Document(doc_id=str(i), title="", text="x" * n) for i, n in enumerate([5, 5, 20, 1])]
    assert [len(b) for b in document_batches(docs, size=3, characters=100)] == [3, 1]
    assert [len(b) for b in document_batches(docs, size=9, characters=10)] == [2, 1, 1]
    with pytest.raises(ValueError, match="at least 1"):
        list(document_batches(docs, size=0))


def test_a_stream_reads_no_further_than_it_is_asked(tmp_path: Path) -> None:
    source = corpus(tmp_path / "c.jsonl", 2000)
    stream = stream_source(source)
    documents = iter(stream)
    next(documents)
    assert 0 < stream.bytes_read < source.stat().st_size
    assert stream.total_bytes() == source.stat().st_size


def test_rows_written_block_by_block_read_back_as_one_npy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blocks = [rng.random((n, 3), dtype=np.float32) for n in (4, 0, 7)]
    writer = NpyRowWriter(tmp_path / "v.npy", 3)
    for block in blocks:
        writer.append(block)
    writer.close()
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.concatenate(blocks))
    with pytest.raises(ValueError, match="expected"):
        NpyRowWriter(tmp_path / "w.npy", 3).append(np.zeros((1, 2)))
    assert len(npy_header((10**12, 4096))) == 128
