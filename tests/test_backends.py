"""Embedding backends: ONNX Runtime fp32 and int8 against the PyTorch reference.

The ONNX export runs once per machine, into the model cache folder that every test session
shares (``SEARCH_EXPLORER_MODEL_CACHE``, set by conftest).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from search_core import embedding
from search_core.cli import main
from search_core.collection import BuildOptions, build_collection, open_collection
from search_core.embedding import (
    EMBEDDING_BACKENDS,
    Embedder,
    OnnxEncoder,
    TorchEncoder,
    model_fingerprint,
    onnx_model_file,
    shared_embedder,
)
from search_core.errors import FingerprintMismatchError, ModelError
from search_core.search import search
from search_core.settings import DEFAULT_BACKEND, MODEL_CACHE_ENV, model_cache_folder
from tests.conftest import shared_dataset

MIN_MEAN_COSINE = {"onnx-fp32": 0.9999, "onnx-int8": 0.99}
"""The agreement each backend promises with PyTorch fp32 (mean cosine over the texts)."""

HAND_MADE = [
    "",
    "hi",
    "ORD-58213",
    "How do I reset my password?",
    "Customer charged twice for one purchase; refund the second charge.",
    "A critical vulnerability (CVE-2024-31877) allows remote code execution.",
    "Photosynthesis converts light energy into chemical energy. " * 30,  # over 256 tokens
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """A few dozen texts: hand-made edge cases, plus cranfield abstracts when present."""
    try:
        folder = shared_dataset("cranfield")
    except pytest.skip.Exception:
        return HAND_MADE * 4
    with (folder / "corpus.jsonl").open(encoding="utf-8") as handle:
        abstracts = [json.loads(line)["text"] for _, line in zip(range(30), handle, strict=False)]
    return HAND_MADE + abstracts


@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_backend_vectors_agree_with_pytorch(embedder, texts, backend: str) -> None:
    reference = embedder.embed(texts)
    vectors = shared_embedder(backend=backend).embed(texts)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.mean() >= MIN_MEAN_COSINE[backend]
    if backend == "onnx-fp32":  # the same computation: every single vector agrees
        assert cosines.min() >= 0.9999


@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_a_text_gets_one_vector_whatever_its_batch(backend: str) -> None:
    # int8 quantizes activations with one scale per run, so texts run one at a time: a query
    # and the same text indexed beside texts of very different lengths get the same vector.
    onnx = shared_embedder(backend=backend)
    batch = onnx.embed(HAND_MADE)
    alone = np.stack([onnx.embed_query(text) for text in HAND_MADE])
    assert np.allclose(batch, alone, atol=1e-6)


def test_backend_switch_changes_the_fingerprint(embedder) -> None:
    fingerprints = {name: Embedder(backend=name).fingerprint for name in EMBEDDING_BACKENDS}
    assert set(fingerprints) == {"torch", "onnx-fp32", "onnx-int8"}
    assert len(set(fingerprints.values())) == 3
    assert fingerprints["torch"] == embedder.fingerprint
    assert tuple(EMBEDDING_BACKENDS) == Embedder.BACKENDS


def test_unknown_backend_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="onnx-int8"):
        Embedder(backend="onnx-fp16")


def test_export_is_cached_by_the_torch_fingerprint(embedder) -> None:
    onnx = shared_embedder(backend="onnx-int8")
    assert isinstance(onnx.load(), OnnxEncoder)
    assert onnx.tokenizer is onnx.model.tokenizer
    folder = model_cache_folder() / "onnx" / model_fingerprint(embedder.path, "torch")
    fp32, int8 = onnx_model_file(embedder.path, "fp32"), onnx_model_file(embedder.path, "int8")
    assert fp32.parent == folder == int8.parent
    # int8 weights are a quarter of fp32's (plus scales and the non-quantized parts)
    assert int8.stat().st_size < fp32.stat().st_size / 3


def test_damaged_export_is_made_again(embedder, tmp_path, monkeypatch) -> None:
    shared = onnx_model_file(embedder.path, "fp32").parent
    # A private copy: other test sessions read the shared export meanwhile.
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path))
    shutil.copytree(shared, tmp_path / "onnx" / shared.name)
    fp32 = onnx_model_file(embedder.path, "fp32")
    data = fp32.read_bytes()
    fp32.write_bytes(data[:1000])
    assert onnx_model_file(embedder.path, "fp32").read_bytes() == data


def test_a_cached_export_is_loaded_without_hashing_or_exporting_it_again(
    embedder, monkeypatch
) -> None:
    onnx_model_file(embedder.path, "fp32")  # made by now (or by an earlier session)
    monkeypatch.setattr(embedding, "_RACY_NS", -(10**12))  # even if it was made just now
    onnx_model_file(embedder.path, "fp32")  # its digest is remembered from here on
    hashed: list[str] = []
    original = embedding._hash_file

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return original(path)

    def no_export(folder):
        raise AssertionError("the cached export was made again")

    monkeypatch.setattr(embedding, "_hash_file", counting)
    monkeypatch.setattr(embedding, "_export_onnx", no_export)
    assert isinstance(Embedder(backend="onnx-fp32").load(), OnnxEncoder)
    assert hashed == []  # neither the 90 MB export nor the 90 MB weights


@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_an_onnx_query_runs_on_every_core_and_a_batch_one_text_a_core(
    backend: str, texts, monkeypatch
) -> None:
    # Under load one thread a query took 22 ms against 11 ms on every core (BENCHMARKS.md);
    # threads that wait sleep, for spinning ones take the busy cores from the working one.
    made: list[int] = []
    real = embedding.onnx_session

    def counted(file: Path, threads: int):
        made.append(threads)
        return real(file, threads)

    monkeypatch.setattr(embedding, "_threads", lambda: 2)
    monkeypatch.setattr(embedding, "onnx_session", counted)
    encoder = EMBEDDING_BACKENDS[backend].load(shared_embedder(backend=backend).path)
    assert made == [2]  # the query session only: the app never pays for the batch one
    options = encoder.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    queries = encoder.encode(texts[:12])  # a batch: the single-threaded session, made now
    assert made == [2, 1]
    assert encoder.batch_session().get_session_options().intra_op_num_threads == 1
    for text, vector in zip(texts[:12], queries, strict=True):
        assert np.array_equal(encoder.encode([text])[0], vector)  # the same, to the bit
    encoder.encode(texts[:3])
    assert made == [2, 1]  # made once


def test_the_model_cache_is_its_own_setting(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(MODEL_CACHE_ENV)
    monkeypatch.setenv("SEARCH_EXPLORER_CACHE", str(tmp_path / "cache"))
    assert model_cache_folder() == tmp_path / "cache"
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path / "models"))
    assert model_cache_folder() == tmp_path / "models"


def test_a_torch_query_runs_on_one_thread_and_a_batch_on_all(embedder, monkeypatch) -> None:
    # On busy cores, PyTorch's threads wait for each other at every operation: a short query
    # on two threads took 30 times longer than on one (BENCHMARKS.md).
    import torch

    encoder = embedder.model
    assert isinstance(encoder, TorchEncoder)
    threads: list[int] = []
    original = encoder.model.encode

    def recording(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(encoder.model, "encode", recording)
    monkeypatch.setattr(encoder, "threads", 3)
    embedder.embed_query("grinding brakes")
    embedder.embed(["grinding brakes", "a refund", "a password reset"])
    embedder.embed_query("grinding brakes")
    assert threads == [1, 3, 1]


def test_new_collections_use_the_default_backend_and_old_ones_keep_theirs(
    home, tmp_path, embedder
) -> None:
    assert BuildOptions().backend == DEFAULT_BACKEND == "onnx-fp32"
    source = tmp_path / "docs.csv"
    source.write_text(CSV, encoding="utf-8")
    build_collection("new", source)
    build_collection("old", source, BuildOptions(backend="torch"))
    assert open_collection("new").embedder.backend == "onnx-fp32"
    assert open_collection("old").embedder.backend == "torch"
    assert open_collection("old").embedder is embedder  # the one shared torch model


def test_unsupported_pooling_is_refused(tmp_path, embedder) -> None:
    from tests.test_embedding import model_copy

    copy = model_copy(tmp_path)
    config = copy / "1_Pooling" / "config.json"
    settings = json.loads(config.read_text())
    settings.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    config.write_text(json.dumps(settings))
    with pytest.raises(ModelError, match="mean pooling"):
        Embedder(copy, backend="onnx-fp32").load()


CSV = """id,text
a,Refund for order ORD-58213 was issued to the customer's card.
b,The brake pads were replaced at 60000 km during the service.
c,A remote code execution flaw in the VPN gateway was patched.
"""


def test_a_collection_is_searched_with_the_backend_it_was_built_with(home, tmp_path) -> None:
    source = tmp_path / "docs.csv"
    source.write_text(CSV, encoding="utf-8")
    build_collection("quick", source, BuildOptions(backend="onnx-int8"))
    collection = open_collection("quick")
    assert collection.manifest["model"]["backend"] == "onnx-int8"
    assert collection.embedder.backend == "onnx-int8"
    assert collection.fingerprint == Embedder(backend="onnx-int8").fingerprint
    assert search(collection, "brakes replaced", mode="vector", k=1).hits[0].doc_id == "b"
    with pytest.raises(FingerprintMismatchError):
        open_collection("quick", embedder=Embedder(backend="torch"))


def test_build_options_refuse_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="valid backends"):
        BuildOptions(backend="tensorrt")


def test_index_command_takes_a_backend(home, tmp_path, capsys) -> None:
    source = tmp_path / "docs.csv"
    source.write_text(CSV, encoding="utf-8")
    assert main(["index", str(source), "--name", "cli", "--backend", "onnx-fp32"]) == 0
    capsys.readouterr()
    assert main(["info", "cli", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["backend"] == "onnx-fp32"
    assert main(["info", "cli"]) == 0
    assert "onnx-fp32 backend" in capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["backend"] == "onnx-fp32"
    with pytest.raises(SystemExit):
        main(["index", str(source), "--name", "cli2", "--backend", "fp16"])
