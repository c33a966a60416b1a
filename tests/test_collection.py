from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from search_core.collection import (
    BUILD_STAGES,
    CURRENT_FILE,
    build_collection,
    delete_collection,
    list_collections,
    open_collection,
    read_manifest,
    validate_name,
)
from search_core.embedding import Embedder
from search_core.errors import CollectionError, FingerprintMismatchError, InputError, IntegrityError
from search_core.ingest import IngestReport
from search_core.search import search
from search_core.types import Document
from tests.fake_embedder import FakeEmbedder
from tests.test_embedding import model_copy

DOCS = [
    Document(
        "a",
        "Either party may terminate this agreement with thirty days notice.",
        "Termination",
        {"domain": "legal", "days": 30},
    ),
    Document("b", "Brake pads that squeal need replacing soon.", "Brakes", {"domain": "auto"}),
    Document("c", "Refunds are issued within five business days.", "Refunds", {"domain": "shop"}),
]


def _report(documents) -> IngestReport:
    return IngestReport(tuple(documents), 0, (), 1, ())


@pytest.fixture
def built(home: Path, embedder):
    return build_collection("docs", _report(DOCS), home=home, embedder=embedder)


def test_round_trip_gives_the_same_collection_and_answers(built, home: Path, embedder) -> None:
    opened = open_collection("docs", home, embedder=embedder)
    assert [d for d in opened.documents] == DOCS
    assert list(opened.chunks) == list(built.chunks)
    assert np.array_equal(opened.embeddings, built.embeddings)
    assert opened.manifest["files"] == read_manifest("docs", home)[1]["files"]
    for mode in ("vector", "bm25", "hybrid"):
        before = search(built, "ending the contract", mode=mode)
        after = search(opened, "ending the contract", mode=mode)
        assert [(h.chunk_id, round(h.score, 6)) for h in before.hits] == [
            (h.chunk_id, round(h.score, 6)) for h in after.hits
        ]


def test_manifest_records_settings_and_checksums(built) -> None:
    manifest = built.manifest
    assert manifest["model"]["fingerprint"] == built.embedder.fingerprint
    assert manifest["chunking"] == {"method": "tokens", "size": 256, "overlap": 32}
    assert manifest["counts"]["documents"] == 3
    assert manifest["index"]["kind"] == "flat"
    assert set(manifest["files"]) >= {
        "documents.parquet",
        "chunks.parquet",
        "embeddings.npy",
        "vector.faiss",
    }
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())


def test_no_file_in_a_collection_is_a_pickle(built, home: Path) -> None:
    files = [p for p in (home / "docs").rglob("*") if p.is_file()]
    assert len(files) >= 10
    for path in files:
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path.name} looks like a pickle"
        assert b"cnumpy" not in data[:200] and b"(dp0" not in data[:50]
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            assert array.dtype != object


@pytest.mark.parametrize(
    "victim",
    [
        "manifest.json",
        "documents.parquet",
        "chunks.parquet",
        "embeddings.npy",
        "vector.faiss",
        "bm25_data.npy",
        "bm25_vocab.json",
        "probes.npy",
    ],
)
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_tampered_file_is_detected_on_load(
    built, home: Path, embedder, victim: str, damage: str
) -> None:
    path = built.folder / victim
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=victim.replace(".", r"\.")):
        opened = open_collection("docs", home, embedder=embedder)
        if victim == "probes.npy":  # probes are read by the drift check, not on open
            from search_core.drift import drift_check

            drift_check(opened, embedder)


def test_missing_file_is_detected(built, home: Path, embedder) -> None:
    (built.folder / "vector.faiss").unlink()
    with pytest.raises(IntegrityError, match=r"vector\.faiss"):
        open_collection("docs", home, embedder=embedder)


def test_model_fingerprint_mismatch_is_refused(built, home: Path, tmp_path: Path) -> None:
    other = Embedder(model_copy(tmp_path, change="tokenizer_config.json"))
    with pytest.raises(FingerprintMismatchError) as caught:
        open_collection("docs", home, embedder=other)
    message = str(caught.value)
    assert built.fingerprint[:16] in message and other.fingerprint[:16] in message


def test_fingerprint_is_checked_again_at_query_time(built, tmp_path: Path) -> None:
    built._embedder = Embedder(model_copy(tmp_path, change="vocab.txt"))
    with pytest.raises(FingerprintMismatchError):
        search(built, "refund", mode="vector")
    assert search(built, "refund", mode="bm25").hits  # BM25 does not depend on the model


def test_rebuild_swaps_in_only_when_complete(built, home: Path, embedder, monkeypatch) -> None:
    old_folder = built.folder
    import search_core.collection as collection_module

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(collection_module, "build_vector_index", explode)
    with pytest.raises(RuntimeError):
        build_collection("docs", _report(DOCS[:1]), home=home, embedder=embedder)
    monkeypatch.undo()
    reopened = open_collection("docs", home, embedder=embedder)
    assert reopened.folder == old_folder
    assert len(reopened.documents) == 3

    new = build_collection("docs", _report(DOCS[:2]), home=home, embedder=embedder)
    assert new.folder != old_folder
    assert not old_folder.exists()
    assert len(open_collection("docs", home, embedder=embedder).documents) == 2
    versions = [p.name for p in (home / "docs").iterdir() if p.is_dir()]
    assert versions == [new.folder.name]


def test_old_version_keeps_answering_during_a_rebuild(built, home: Path, embedder) -> None:
    answers: list[int] = []
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            answers.append(len(search(built, "refund", mode="hybrid").hits))

    thread = threading.Thread(target=keep_searching)
    thread.start()
    try:
        build_collection(
            "docs",
            _report([*DOCS, Document("d", "Another refund note.")]),
            home=home,
            embedder=embedder,
        )
    finally:
        stop.set()
        thread.join()
    assert answers and all(n > 0 for n in answers)
    assert len(open_collection("docs", home, embedder=embedder).documents) == 4


def test_failed_save_leaves_nothing_visible(home: Path, embedder, monkeypatch) -> None:
    import search_core.collection as collection_module

    def fail(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(collection_module, "write_files", fail)
    with pytest.raises(OSError):
        build_collection("fresh", _report(DOCS), home=home, embedder=embedder)
    assert list_collections(home) == []
    assert not any(p.name.startswith(".staging") for p in (home / "fresh").iterdir())


def test_list_and_delete(built, home: Path, embedder) -> None:
    build_collection("second", _report(DOCS[:1]), home=home, embedder=embedder)
    assert [info.name for info in list_collections(home)] == ["docs", "second"]
    delete_collection("second", home)
    assert [info.name for info in list_collections(home)] == ["docs"]
    with pytest.raises(CollectionError, match="no collection named 'second'; available: docs"):
        open_collection("second", home)
    with pytest.raises(CollectionError):
        delete_collection("second", home)


def test_damaged_pointer_is_reported(built, home: Path) -> None:
    (home / "docs" / CURRENT_FILE).write_text(json.dumps({"version": "../../etc"}))
    with pytest.raises(IntegrityError, match="pointer"):
        open_collection("docs", home)


@pytest.mark.parametrize("name", ["", "../x", "a/b", "..", ".hidden", "a" * 65, "x..y", "sp ace"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid collection name"):
        validate_name(name)


def test_empty_source_is_an_input_error(home: Path, embedder) -> None:
    with pytest.raises(InputError, match="no document"):
        build_collection("empty", _report([]), home=home, embedder=embedder)


def test_default_home_is_the_environment_variable(built, home: Path) -> None:
    assert built.folder.parent.parent == home
    shutil.rmtree(home)
    assert list_collections() == []


def test_build_names_each_stage_before_it_starts_and_loads_the_model_in_its_own(
    home: Path,
) -> None:
    events: list[tuple[str, int, int]] = []

    class Recording(FakeEmbedder):
        def load(self) -> None:
            events.append(("load model", 0, 0))

    build_collection(
        "docs", _report(DOCS), home=home, embedder=Recording(), progress=lambda *e: events.append(e)
    )
    stages = [stage for stage, _, _ in events if stage != "load model"]
    assert list(dict.fromkeys(stages)) == list(BUILD_STAGES)
    for stage in BUILD_STAGES:
        reports = [(done, total) for name, done, total in events if name == stage]
        assert reports[0][0] == 0 and reports[-1][0] == reports[-1][1]
    # loading (or exporting) the model comes after "model" is named, before anything else
    where = events.index(("load model", 0, 0))
    assert events[where - 1] == ("model", 0, 1) and events[where + 1] == ("model", 1, 1)


def test_a_collection_maps_its_vectors_read_only(tmp_path, embedder) -> None:
    from search_core.collection import BuildOptions, build_collection, open_collection

    source = tmp_path / "notes.csv"
    source.write_text(
        "id,text\nn1,Refunds go back to the card.\nn2,Brake pads squeal when worn.\n",
        encoding="utf-8",
    )
    built = build_collection("notes", source, BuildOptions(), home=tmp_path, embedder=embedder)
    assert built.vectors_mapped  # a build returns the collection as opened from its files
    opened = open_collection("notes", tmp_path, embedder=embedder)
    # the BM25 index's arrays are mapped from the collection's files too, not copied
    for array in (opened.lexical._data, opened.lexical._indices, opened.lexical._indptr):
        assert isinstance(array.base, np.memmap) and not array.flags.writeable
    assert opened.vectors_mapped and not opened.embeddings.flags.writeable
    assert type(opened.embeddings) is np.ndarray  # a plain array to every caller
    np.testing.assert_array_equal(opened.embeddings, built.embeddings)
    with pytest.raises(ValueError, match="read-only"):
        opened.embeddings[0, 0] = 1.0


@pytest.mark.parametrize(("version", "opens"), [(1, True), (2, True), (3, False)])
def test_collections_of_the_first_format_still_open_and_a_newer_one_is_refused(
    built, home: Path, embedder, version: int, opens: bool
) -> None:
    """Format 2 (flat indexes without their own copy of the vectors) reads format 1 too."""
    from search_core.collection import CURRENT_FILE, MANIFEST_FILE, pointer_bytes
    from search_core.storage import json_bytes

    manifest = dict(built.manifest, format_version=version)
    data = json_bytes(manifest)
    (built.folder / MANIFEST_FILE).write_bytes(data)
    (built.folder.parent / CURRENT_FILE).write_bytes(pointer_bytes(manifest["version"], data))
    if opens:
        opened = open_collection("docs", home, embedder=embedder)
        assert opened.manifest["format_version"] == version
    else:
        with pytest.raises(IntegrityError, match="unsupported format version 3"):
            open_collection("docs", home, embedder=embedder)
