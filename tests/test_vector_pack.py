"""Vector packs: a corpus folder carrying its vectors is built without embedding them again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from search_core.cli import main
from search_core.collection import BuildOptions, build_collection
from search_core.embedding import shared_embedder, text_sha256
from search_core.errors import InputError
from search_core.settings import DEFAULT_BACKEND
from search_core.vector_pack import (
    PACK_FOLDER,
    pack_collection,
    read_vector_pack,
    write_vector_pack,
)
from tests.conftest import SAMPLE_DATA


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch) -> Path:
    """A small corpus folder whose texts no cache holds yet, and a private embedding cache."""
    monkeypatch.setenv("SEARCH_EXPLORER_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "corpus"
    folder.mkdir()
    tag = uuid.uuid4().hex
    rows = [
        {"id": f"d{i}", "text": f"{topic} ({tag}, part {i})"}
        for i, topic in enumerate(
            [
                "Resetting a forgotten password from the sign-in page",
                "Refunds are paid to the original card within five days",
                "Order ORD-58213 was shipped by express courier",
                "The warranty covers manufacturing defects for two years",
            ]
        )
    ]
    (folder / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _fresh_cache(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEARCH_EXPLORER_CACHE", str(tmp_path / f"cache-{uuid.uuid4().hex}"))


def test_a_packed_folder_is_built_again_without_embedding_its_chunks(
    corpus, embedder, home, encoded, monkeypatch, tmp_path
) -> None:
    first = build_collection("a", corpus, BuildOptions(), embedder=embedder)
    assert set(first.indexed_texts()) <= set(encoded)  # embedded the first time
    assert "vector_pack" not in first.manifest
    pack_collection(first, corpus)

    _fresh_cache(monkeypatch, tmp_path)  # nothing cached: only the pack can spare the work
    encoded.clear()
    again = build_collection("b", corpus, BuildOptions(), embedder=embedder)
    assert not set(again.indexed_texts()) & set(encoded)
    # the pack holds normalized vectors, normalized once more on the way in: at most a last bit
    assert np.allclose(again.embeddings, first.embeddings, rtol=0, atol=1e-6)
    assert again.manifest["vector_pack"]["used"] == len(again.chunks)
    assert len(again.documents) == len(first.documents)  # the hidden pack is no document


def test_a_damaged_pack_is_reported_and_the_chunks_embedded(
    corpus, embedder, home, encoded, monkeypatch, tmp_path
) -> None:
    first = build_collection("a", corpus, BuildOptions(), embedder=embedder)
    pack_collection(first, corpus)
    data = corpus / PACK_FOLDER / f"{embedder.backend}.npy"
    damaged = bytearray(data.read_bytes())
    damaged[-1] ^= 0x40
    data.write_bytes(bytes(damaged))

    _fresh_cache(monkeypatch, tmp_path)
    encoded.clear()
    again = build_collection("b", corpus, BuildOptions(), embedder=embedder)
    pack = again.manifest["vector_pack"]
    assert pack["used"] == 0
    assert "checksum mismatch" in pack["problem"] and str(data) in pack["problem"]
    assert set(again.indexed_texts()) <= set(encoded)
    assert np.allclose(again.embeddings, first.embeddings, atol=1e-6)


def test_edited_keys_are_refused(corpus, embedder, home) -> None:
    pack_collection(build_collection("a", corpus, BuildOptions(), embedder=embedder), corpus)
    record_file = corpus / PACK_FOLDER / f"{embedder.backend}.json"
    record = json.loads(record_file.read_text())
    record["keys"][0], record["keys"][1] = record["keys"][1], record["keys"][0]
    record_file.write_text(json.dumps(record))
    with pytest.raises(InputError, match="checksum mismatch"):
        read_vector_pack(corpus, embedder.backend)


def test_a_pack_of_another_model_is_not_used(
    corpus, embedder, home, encoded, monkeypatch, tmp_path
) -> None:
    first = build_collection("a", corpus, BuildOptions(), embedder=embedder)
    texts = first.indexed_texts()
    write_vector_pack(corpus, texts, first.embeddings, "another-model", embedder.backend)
    _fresh_cache(monkeypatch, tmp_path)
    encoded.clear()
    again = build_collection("b", corpus, BuildOptions(), embedder=embedder)
    assert "another model" in again.manifest["vector_pack"]["problem"]
    assert set(texts) <= set(encoded)


def test_a_linked_pack_file_is_refused(corpus, embedder, home, tmp_path) -> None:
    pack_collection(build_collection("a", corpus, BuildOptions(), embedder=embedder), corpus)
    data = corpus / PACK_FOLDER / f"{embedder.backend}.npy"
    elsewhere = tmp_path / "elsewhere.npy"
    data.rename(elsewhere)
    data.symlink_to(elsewhere)
    with pytest.raises(InputError, match="not a regular file"):
        read_vector_pack(corpus, embedder.backend)


def test_write_refuses_texts_and_vectors_that_disagree(tmp_path) -> None:
    with pytest.raises(ValueError, match="2 texts"):
        write_vector_pack(tmp_path, ["a", "b"], np.zeros((3, 4)), "f", DEFAULT_BACKEND)


def test_the_sample_ships_the_vectors_of_the_bundled_model(home, monkeypatch, tmp_path) -> None:
    # The 20 s of embedding in a sample build: the pack must be this model's, for every chunk.
    _fresh_cache(monkeypatch, tmp_path)
    model = shared_embedder(backend=DEFAULT_BACKEND)
    pack = read_vector_pack(SAMPLE_DATA, DEFAULT_BACKEND)
    assert pack is not None, "make it with: search-explorer pack-vectors sample sample_data"
    assert pack.fingerprint == model.fingerprint
    sample = build_collection("sample", SAMPLE_DATA, BuildOptions(), embedder=model)
    texts = sample.indexed_texts()
    assert sample.manifest["vector_pack"]["used"] == len(set(texts))
    by_key = pack.by_key()
    assert len(by_key) == len(set(texts))
    rng = np.random.default_rng(0)
    for i in rng.choice(len(texts), size=8, replace=False):  # made by this model, from the text
        assert float(model.embed_query(texts[i]) @ by_key[text_sha256(texts[i])]) > 0.99999


def test_the_commands_pack_and_say_what_the_build_took(
    corpus, home, capsys, monkeypatch, tmp_path
) -> None:
    assert main(["index", str(corpus), "--name", "a"]) == 0
    assert main(["pack-vectors", "a"]) == 0  # the collection's source by default
    assert "wrote the vectors of 4 chunks" in capsys.readouterr().out
    _fresh_cache(monkeypatch, tmp_path)
    assert main(["index", str(corpus), "--name", "b"]) == 0
    assert "4 of 4 chunk vectors came from" in capsys.readouterr().out
    assert main(["pack-vectors", "a", str(corpus / "docs.jsonl")]) == 2
    assert "not a folder" in capsys.readouterr().err
