from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from search_core import embedding
from search_core.embedding import (
    TOKENIZER_CHECK_FILE,
    TOKENIZER_CHECK_TEXTS,
    Embedder,
    EmbeddingCache,
    FastTokenizer,
    OnnxEncoder,
    bundled_model_path,
    file_sha256,
    model_fingerprint,
    model_tokenizer,
    normalize_rows,
    shared_embedder,
    text_sha256,
)
from search_core.errors import ModelError
from search_core.settings import MODEL_CACHE_ENV
from tests.conftest import SAMPLE_DATA


def model_copy(tmp_path: Path, change: str | None = None, *, keep_safetensors: bool = True) -> Path:
    """A copy of the bundled model folder (weights linked, not copied), optionally changed.

    Args:
        tmp_path: where the ``model`` folder is made.
        change: a file whose content is changed (a newline appended).
        keep_safetensors: False leaves the ``.safetensors`` weights out.
    """
    source = bundled_model_path()
    target = tmp_path / "model"
    for path in source.rglob("*"):
        if path.is_file() and (keep_safetensors or path.suffix != ".safetensors"):
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".safetensors":
                dest.symlink_to(path)
            else:
                shutil.copy2(path, dest)
    if change:
        with (target / change).open("a", encoding="utf-8") as handle:
            handle.write("\n")
    return target


def test_vectors_are_unit_length_and_match_the_model(embedder) -> None:
    texts = ["How do I get a refund?", "The brake pads are worn.", ""]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reference = embedder.model.encode(texts, normalize_embeddings=True)
    assert np.allclose(vectors, reference, atol=1e-5)


def test_query_and_document_vectors_agree(embedder) -> None:
    text = "order 12345 has shipped"
    assert np.allclose(embedder.embed_query(text), embedder.embed([text])[0], atol=1e-5)


def test_normalize_rows() -> None:
    rows = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


def test_fingerprint_is_stable_and_content_based(tmp_path: Path, embedder) -> None:
    copy = model_copy(tmp_path)
    assert model_fingerprint(copy) == embedder.fingerprint
    assert len(embedder.fingerprint) == 64


@pytest.mark.parametrize("changed", ["tokenizer_config.json", "1_Pooling/config.json", "vocab.txt"])
def test_fingerprint_changes_with_any_model_file(tmp_path: Path, embedder, changed: str) -> None:
    assert model_fingerprint(model_copy(tmp_path, change=changed)) != embedder.fingerprint


def test_fingerprint_ignores_readme(tmp_path: Path, embedder) -> None:
    assert model_fingerprint(model_copy(tmp_path, change="README.md")) == embedder.fingerprint


def test_backend_is_part_of_the_fingerprint(embedder) -> None:
    assert model_fingerprint(embedder.path, backend="other") != embedder.fingerprint
    with pytest.raises(ValueError, match="torch"):
        Embedder(backend="tensorflow")


def test_model_without_safetensors_is_refused(tmp_path: Path) -> None:
    copy = model_copy(tmp_path)
    (copy / "model.safetensors").unlink()
    (copy / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelError, match="safetensors"):
        Embedder(copy)


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        Embedder(tmp_path / "nowhere")


def test_cache_never_embeds_the_same_text_twice(tmp_path: Path, embedder, encoded) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    progress: list[tuple[int, int]] = []
    first = embedder.embed(
        ["alpha text", "beta text", "alpha text"],
        cache=cache,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert sorted(encoded) == ["alpha text", "beta text"]
    assert progress[-1] == (3, 3)
    encoded.clear()
    second = embedder.embed(["beta text", "alpha text", "gamma text"], cache=cache)
    assert encoded == ["gamma text"]
    assert np.allclose(second[1], first[0]) and np.allclose(second[0], first[1])
    assert cache.count(embedder.fingerprint) == 3
    cache.close()


def test_cache_ignores_rows_of_the_wrong_size(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    cache.put_many("fp", {"key": np.ones(3, dtype=np.float32)})
    assert cache.get_many("fp", ["key"], dim=384) == {}
    assert set(cache.get_many("fp", ["key"], dim=3)) == {"key"}
    cache.close()


def _damage_cache(path: Path, sql: str) -> None:
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(sql)
    connection.close()


def test_cache_rows_damaged_on_disk_are_misses(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = EmbeddingCache(path)
    vectors = {"a": np.arange(4, dtype=np.float32), "b": np.ones(4, dtype=np.float32)}
    cache.put_many("fp", vectors)
    assert set(cache.get_many("fp", ["a", "b"], dim=4)) == {"a", "b"}
    # one byte of a's vector flipped: the row no longer matches its checksum
    blob = bytearray(vectors["a"].tobytes())
    blob[5] ^= 0x01
    _damage_cache(
        path, f"UPDATE {EmbeddingCache.TABLE} SET vec = X'{blob.hex()}' WHERE text_sha = 'a'"
    )
    assert set(cache.get_many("fp", ["a", "b"], dim=4)) == {"b"}
    # a row moved to another key, or another model's fingerprint, with its own checksum
    _damage_cache(path, f"UPDATE {EmbeddingCache.TABLE} SET text_sha = 'c' WHERE text_sha = 'b'")
    assert cache.get_many("fp", ["b", "c"], dim=4) == {}
    cache.put_many("fp", {"d": vectors["b"]})
    _damage_cache(
        path, f"UPDATE {EmbeddingCache.TABLE} SET fingerprint = 'other' WHERE text_sha = 'd'"
    )
    assert cache.get_many("other", ["d"], dim=4) == {}
    cache.close()


def test_a_damaged_cached_vector_is_embedded_again(tmp_path: Path, embedder) -> None:
    path = tmp_path / "cache.sqlite"
    cache = EmbeddingCache(path)
    fresh = embedder.embed(["the brake pads were replaced"], cache=cache)
    _damage_cache(path, f"UPDATE {EmbeddingCache.TABLE} SET vec = zeroblob(length(vec))")
    again = embedder.embed(["the brake pads were replaced"], cache=cache)
    assert np.array_equal(again, fresh)
    assert set(
        cache.get_many(embedder.fingerprint, [text_sha256("the brake pads were replaced")], dim=384)
    )
    cache.close()


def test_cache_of_an_earlier_version_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    _damage_cache(path, "CREATE TABLE vectors (fingerprint TEXT, text_sha TEXT, dim INT, vec BLOB)")
    cache = EmbeddingCache(path)
    assert cache.count() == 0
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert ("vectors",) not in tables
    cache.close()


# --- the tokenizer without transformers ----------------------------------------------------

SAMPLE_TEXTS = [
    json.loads(line)["text"]
    for line in (SAMPLE_DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:150]
]


@pytest.fixture(scope="module")
def reference_tokenizer():
    """transformers' tokenizer of the bundled model: what FastTokenizer must equal."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bundled_model_path()), trust_remote_code=False)


@pytest.mark.parametrize("max_length", [8, 128, 256, 512])
def test_fast_tokenizer_ids_equal_transformers(reference_tokenizer, max_length: int) -> None:
    fast = FastTokenizer.from_folder(bundled_model_path())
    texts = [*TOKENIZER_CHECK_TEXTS, *SAMPLE_TEXTS]
    options = {"truncation": True, "max_length": max_length}
    assert fast(texts, **options)["input_ids"] == reference_tokenizer(texts, **options)["input_ids"]
    assert (
        fast(texts[3], **options)["input_ids"]
        == reference_tokenizer(texts[3], **options)["input_ids"]
    )


def test_fast_tokenizer_offsets_equal_transformers(reference_tokenizer) -> None:
    fast = FastTokenizer.from_folder(bundled_model_path())
    options = {"add_special_tokens": False, "return_offsets_mapping": True, "verbose": False}
    for text in [*TOKENIZER_CHECK_TEXTS, *SAMPLE_TEXTS]:
        expected = [tuple(span) for span in reference_tokenizer(text, **options)["offset_mapping"]]
        assert fast(text, **options)["offset_mapping"] == expected
    assert fast.num_special_tokens_to_add() == reference_tokenizer.num_special_tokens_to_add()
    assert fast.pad_token_id == reference_tokenizer.pad_token_id
    assert fast.model_max_length == reference_tokenizer.model_max_length


def test_model_tokenizer_checks_once_then_skips_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path))
    folder = bundled_model_path()
    assert isinstance(model_tokenizer(folder), FastTokenizer)  # checked against transformers
    record = next(tmp_path.rglob(TOKENIZER_CHECK_FILE))
    assert json.loads(record.read_text())["agrees"] is True

    def no_transformers(folder: Path) -> None:
        raise AssertionError("transformers' tokenizer was loaded again")

    monkeypatch.setattr(embedding, "_transformers_tokenizer", no_transformers)
    assert isinstance(model_tokenizer(folder), FastTokenizer)


def test_a_tokenizer_that_disagrees_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path / "models"))
    copy = model_copy(tmp_path)
    # transformers applies tokenizer_config.json's do_lower_case over tokenizer.json's own
    # normalizer; the tokenizers library alone does not.
    config = json.loads((copy / "tokenizer_config.json").read_text())
    (copy / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    tokenizer = model_tokenizer(copy)
    assert not isinstance(tokenizer, FastTokenizer)
    assert tokenizer("Hello")["input_ids"] != FastTokenizer.from_folder(copy)("Hello")["input_ids"]
    assert json.loads(next(tmp_path.rglob(TOKENIZER_CHECK_FILE)).read_text())["agrees"] is False


def test_onnx_vectors_are_those_of_the_transformers_tokenizer(reference_tokenizer) -> None:
    encoder = shared_embedder(backend="onnx-fp32").model
    assert isinstance(encoder.tokenizer, FastTokenizer)
    before = OnnxEncoder(encoder.session, reference_tokenizer, encoder.max_seq_length, encoder.dim)
    texts = [*TOKENIZER_CHECK_TEXTS, *SAMPLE_TEXTS[:20]]
    assert np.array_equal(encoder.encode(texts), before.encode(texts))


def test_a_remembered_digest_is_not_trusted_once_the_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path / "models"))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    before = weights.stat()
    monkeypatch.setattr(embedding, "_RACY_NS", -(10**12))  # remember even a file this new
    assert file_sha256(weights) == hashlib.sha256(b"a" * 1000).hexdigest()
    assert (tmp_path / "models" / embedding.FILE_DIGESTS).is_file()
    time.sleep(0.05)  # past the file system's clock tick
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime
    assert file_sha256(weights) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_a_torch_batch_runs_one_openmp_level(embedder) -> None:
    # Numba's OpenMP layer (ranx's metrics) turns nesting on for the whole process; PyTorch's
    # matrix products then made threads on every call, and a batch embedded 8 times slower
    # (the test suite's cranfield build ran past its 15-minute timeout).
    embedder.load()
    libgomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD)
    libgomp.omp_set_nested(1)  # what numba's omppool does when it starts
    assert libgomp.omp_get_max_active_levels() > 1
    embedder._encode(["a first text", "a second text"])
    assert libgomp.omp_get_max_active_levels() == 1
