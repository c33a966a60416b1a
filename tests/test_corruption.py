"""Corruption: every persisted file, truncated or with bytes flipped, gives a clear error.

A damaged file must never crash the engine or give a wrong answer: opening raises
`IntegrityError` naming the file, before any parser sees the bytes (every file of the manifest,
the drift-check probes included, is verified on open; the drift check verifies the probes again).
The FAISS file in particular is handed to FAISS only after its checksum matched: the FAISS
readers are replaced by recorders for the whole module.

The parsers behind the checksums are checked too: a truncated file whose new checksum is
written into the manifest and pointer (a consistent forgery, which checksums cannot catch) is
still refused with `IntegrityError`, never a crash.

The judgment journal is append-only: a damaged line raises `IntegrityError` naming it, and a
torn tail (a crash mid-append, or a truncation) is dropped, keeping every whole line before it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import faiss
import pytest

from search_core.collection import (
    CURRENT_FILE,
    MANIFEST_FILE,
    build_collection,
    list_collections,
    open_collection,
    pointer_bytes,
)
from search_core.drift import drift_check
from search_core.errors import CollectionError, IntegrityError
from search_core.judgments import open_judgments
from search_core.search import search
from search_core.storage import json_bytes, npy_bytes, sha256_bytes
from tests.fake_embedder import FakeEmbedder
from tests.test_crash_safety import generation_report

NAME = "damaged"
QUERIES = ("marker4x1", "generation 4 document 2", "filler12 filler13")
DATA_FILES = (
    "probes.json",
    "probes.npy",
    "documents.parquet",
    "chunks.parquet",
    "embeddings.npy",
    "vector.faiss",
    "bm25_data.npy",
    "bm25_indices.npy",
    "bm25_indptr.npy",
    "bm25_vocab.json",
    "bm25_params.json",
)


def flip(position: Callable[[int], int], mask: int = 0xFF) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        changed = bytearray(data)
        changed[position(len(data))] ^= mask
        return bytes(changed)

    return damage


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "flip-first-byte": flip(lambda n: 0),
    "flip-middle-byte": flip(lambda n: n // 2),
    "flip-last-byte": flip(lambda n: n - 1),
    "flip-one-bit": flip(lambda n: n // 3, 0x01),
    "truncate-to-empty": lambda data: b"",
    "truncate-to-half": lambda data: data[: len(data) // 2],
    "drop-last-byte": lambda data: data[:-1],
    "append-a-byte": lambda data: data + b"\n",
}


@pytest.fixture(scope="module")
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, embedder: FakeEmbedder) -> Path:
    """A home with one collection (and one judgment set), never changed: tests damage copies."""
    home = tmp_path_factory.mktemp("pristine")
    build_collection(NAME, generation_report(4), home=home, embedder=embedder)
    store = open_judgments(NAME, "default", home)
    store.add_query("q1", "brake pads")
    store.add_query("q2", "refunds")
    for doc, grade in (("d0", 3), ("d1", 1), ("d2", 0)):
        store.judge("q1", doc, grade)
    store.judge("q2", "d3", 2)
    return home


@pytest.fixture(scope="module")
def answers(pristine: Path, embedder: FakeEmbedder) -> dict[tuple[str, str], list]:
    return search_answers(open_collection(NAME, pristine, embedder=embedder))


@pytest.fixture
def home(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(pristine, copy)
    return copy


@pytest.fixture(autouse=True)
def faiss_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sha256 of every buffer handed to FAISS's readers, in order."""
    calls: list[str] = []
    deserialize, read_index = faiss.deserialize_index, faiss.read_index

    def recording_deserialize(data, *args, **kwargs):
        calls.append(hashlib.sha256(bytes(data)).hexdigest())
        return deserialize(data, *args, **kwargs)

    def recording_read_index(source, *args, **kwargs):
        # deserialize_index reads from an in-memory reader; a path would skip the checksum.
        if isinstance(source, str | Path):
            calls.append(f"read_index({source})")
            raise AssertionError("FAISS must never read an index file from disk directly")
        return read_index(source, *args, **kwargs)

    monkeypatch.setattr(faiss, "deserialize_index", recording_deserialize)
    monkeypatch.setattr(faiss, "read_index", recording_read_index)
    return calls


def search_answers(collection) -> dict[tuple[str, str], list]:
    return {
        (mode, query): [
            (h.doc_id, h.chunk_id, round(h.score, 6))
            for h in search(collection, query, mode=mode, threshold=0.0).hits
        ]
        for mode in ("vector", "bm25", "hybrid")
        for query in QUERIES
    }


def version_folder(home: Path, name: str = NAME) -> Path:
    return home / name / json.loads((home / name / CURRENT_FILE).read_bytes())["version"]


def test_the_undamaged_copy_opens_and_faiss_gets_only_verified_bytes(
    home: Path, embedder: FakeEmbedder, answers, faiss_calls: list[str]
) -> None:
    collection = open_collection(NAME, home, embedder=embedder)
    assert search_answers(collection) == answers
    assert faiss_calls == [collection.manifest["files"]["vector.faiss"]["sha256"]]


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("victim", [MANIFEST_FILE, *DATA_FILES])
def test_a_damaged_file_is_refused_on_open_before_any_parser_sees_it(
    home: Path, embedder: FakeEmbedder, faiss_calls: list[str], victim: str, damage: str
) -> None:
    path = version_folder(home) / victim
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    with pytest.raises(IntegrityError, match=rf"{victim.replace('.', '[.]')}: checksum mismatch"):
        open_collection(NAME, home, embedder=embedder)
    assert faiss_calls == []
    # Listing reads only the pointer and manifest: a damaged manifest hides the collection.
    listed = [info.name for info in list_collections(home)]
    assert listed == ([] if victim == MANIFEST_FILE else [NAME])


@pytest.mark.parametrize("victim", [MANIFEST_FILE, *DATA_FILES])
def test_a_missing_file_is_refused(
    home: Path, embedder: FakeEmbedder, faiss_calls: list[str], victim: str
) -> None:
    (version_folder(home) / victim).unlink()
    with pytest.raises(IntegrityError, match=rf"{victim.replace('.', '[.]')}: cannot be read"):
        open_collection(NAME, home, embedder=embedder)
    assert faiss_calls == []


@pytest.mark.parametrize("victim", ["probes.json", "probes.npy"])
def test_probes_damaged_after_opening_are_refused_by_the_drift_check(
    home: Path, embedder: FakeEmbedder, victim: str
) -> None:
    collection = open_collection(NAME, home, embedder=embedder)
    path = version_folder(home) / victim
    path.write_bytes(DAMAGES["flip-middle-byte"](path.read_bytes()))
    with pytest.raises(IntegrityError, match=rf"{victim.replace('.', '[.]')}: checksum mismatch"):
        drift_check(collection, embedder)


def test_every_damaged_pointer_is_refused_or_names_the_same_version(
    home: Path, embedder: FakeEmbedder, answers, faiss_calls: list[str]
) -> None:
    """Each byte of CURRENT flipped (two ways), and CURRENT cut at every length.

    CURRENT has no checksum of its own: it holds the manifest's. A damaged pointer must either
    be refused or, when the damage leaves the same JSON (a space turned into a tab), open the
    very same version.
    """
    pointer = home / NAME / CURRENT_FILE
    original = pointer.read_bytes()
    verified = sha256_bytes((version_folder(home) / "vector.faiss").read_bytes())
    variants = [original[:cut] for cut in range(len(original))]
    for position in range(len(original)):
        for mask in (0xFF, 0x01):
            changed = bytearray(original)
            changed[position] ^= mask
            variants.append(bytes(changed))
    refused = same = 0
    for variant in variants:
        pointer.write_bytes(variant)
        faiss_calls.clear()
        try:
            collection = open_collection(NAME, home, embedder=embedder)
        except CollectionError:
            refused += 1
            assert faiss_calls == []
            assert [info.name for info in list_collections(home)] == []
            continue
        same += 1
        assert json.loads(variant) == json.loads(original)
        assert search_answers(collection) == answers
        assert faiss_calls == [verified]
    assert refused > len(variants) * 0.9
    pointer.unlink()
    with pytest.raises(CollectionError, match=f"no collection named '{NAME}'"):
        open_collection(NAME, home, embedder=embedder)


def resign(home: Path, victim: str, data: bytes, name: str = NAME) -> None:
    """Write ``data`` as ``victim`` with matching checksums in the manifest and the pointer."""
    folder = version_folder(home, name)
    (folder / victim).write_bytes(data)
    manifest = json.loads((folder / MANIFEST_FILE).read_bytes())
    manifest["files"][victim] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    manifest_data = json_bytes(manifest)
    (folder / MANIFEST_FILE).write_bytes(manifest_data)
    (home / name / CURRENT_FILE).write_bytes(pointer_bytes(folder.name, manifest_data))


@pytest.mark.parametrize("cut", ["empty", "one-byte", "half", "all-but-one"])
@pytest.mark.parametrize("victim", DATA_FILES[2:])
def test_a_truncated_file_with_forged_checksums_is_still_refused(
    home: Path, embedder: FakeEmbedder, victim: str, cut: str
) -> None:
    data = (version_folder(home) / victim).read_bytes()
    length = {"empty": 0, "one-byte": 1, "half": len(data) // 2, "all-but-one": len(data) - 1}
    resign(home, victim, data[: length[cut]])
    with pytest.raises(IntegrityError, match=victim.replace(".", "[.]")):
        open_collection(NAME, home, embedder=embedder)


@pytest.mark.parametrize("kind", ["objects", "longer", "version-9"])
def test_mapped_vectors_with_forged_checksums_are_refused_before_mapping(
    home: Path, embedder: FakeEmbedder, kind: str
) -> None:
    """The vectors are memory-mapped, not parsed by numpy's loader: a re-signed file that
    holds Python objects, more bytes than its header says, or an unknown format is refused."""
    import io

    import numpy as np

    path = version_folder(home) / "embeddings.npy"
    data = path.read_bytes()
    if kind == "objects":
        buffer = io.BytesIO()
        np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        data = buffer.getvalue()
    elif kind == "longer":
        data += b"\0" * 4
    else:
        data = data[:6] + bytes([9, 0]) + data[8:]
    resign(home, "embeddings.npy", data)
    said = {
        "objects": "Python objects",
        "longer": "does not match its size",
        "version-9": "not a valid",
    }
    with pytest.raises(IntegrityError, match=said[kind]):
        open_collection(NAME, home, embedder=embedder)


# --- the judgment journal ---------------------------------------------------------------------


def journal(home: Path) -> Path:
    return home / NAME / "lab" / "judgments" / "default.jsonl"


EXPECTED_QRELS = {"q1": {"d0": 3, "d1": 1, "d2": 0}, "q2": {"d3": 2}}


def test_the_undamaged_journal_reads_back(home: Path) -> None:
    assert open_judgments(NAME, "default", home).qrels() == EXPECTED_QRELS


@pytest.mark.parametrize("damage", ["flip-first-byte", "flip-middle-byte", "flip-one-bit"])
def test_a_damaged_journal_line_is_refused_naming_it(home: Path, damage: str) -> None:
    lines = journal(home).read_bytes().splitlines(keepends=True)
    for number in range(1, len(lines)):  # every line but the last (see the test below)
        damaged = list(lines)
        damaged[number - 1] = DAMAGES[damage](damaged[number - 1][:-1]) + b"\n"
        journal(home).write_bytes(b"".join(damaged))
        with pytest.raises(IntegrityError, match=f"line {number} (does not follow|is not a)"):
            open_judgments(NAME, "default", home)


def test_a_damaged_complete_last_line_is_refused(home: Path) -> None:
    lines = journal(home).read_bytes().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b'"grade":2', b'"grade":3')
    journal(home).write_bytes(b"".join(lines))
    with pytest.raises(IntegrityError, match=f"line {len(lines)} does not follow"):
        open_judgments(NAME, "default", home)


def test_a_journal_cut_anywhere_is_refused(home: Path) -> None:
    # Its head records how many lines it had: lines cut off the end are missing lines.
    data = journal(home).read_bytes()
    for cut in range(len(data)):
        journal(home).write_bytes(data[:cut])
        with pytest.raises(IntegrityError, match="missing"):
            open_judgments(NAME, "default", home)


def test_a_line_torn_by_a_crash_is_dropped_and_cut_before_the_next_write(home: Path) -> None:
    # The head moves after the line is on disk: a kill mid-write leaves a torn line beyond it.
    data = journal(home).read_bytes()
    journal(home).write_bytes(data + b'0123 {"op":"judge","qid":"q2","d')
    store = open_judgments(NAME, "default", home)
    assert store.qrels() == EXPECTED_QRELS
    store.judge("q2", "d4", 1)
    assert open_judgments(NAME, "default", home).qrels() == {
        **EXPECTED_QRELS,
        "q2": {"d3": 2, "d4": 1},
    }


def test_arrays_mapped_from_many_threads_at_once_all_open(tmp_path: Path) -> None:
    """Opening checks and maps files side by side. numpy reads a .npy header with
    ast.literal_eval, which CPython 3.11 can fail in threads ("AST constructor recursion depth
    mismatch", seen twice in full runs, not reproduced here on demand), so headers are read
    one at a time; every thread must get every array whole."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from search_core.storage import map_member

    names = []
    for i in range(8):
        data = np.arange(12 * (i + 1), dtype=np.float32).reshape(-1, 3)
        (tmp_path / f"a{i}.npy").write_bytes(npy_bytes(data))
        names.append(f"a{i}.npy")
    records = {
        n: (sha256_bytes((tmp_path / n).read_bytes()), (tmp_path / n).stat().st_size) for n in names
    }

    def open_all(_: int) -> int:
        return sum(map_member(tmp_path, n, *records[n]).shape[0] for n in names)

    with ThreadPoolExecutor(max_workers=8) as pool:
        totals = list(pool.map(open_all, range(400)))
    assert set(totals) == {sum(4 * (i + 1) for i in range(8))}
