"""Collections on a hostile or unlucky file system (issue 12: D4, D5, D6).

* D4: a home that cannot be written is refused before any work, naming the folder; a cache
  folder that cannot be written costs only the cache.
* D5: opening reads only plain files directly inside the version folder, of the size its
  manifest records, and the pointer ``CURRENT`` carries a checksum of its own.
* D6: a build or a delete never changes anything outside the home.

A manifest is forged here with matching checksums (and a pointer of the first release's form,
which has no checksum of its own), so what is tested is the file-safety rule itself, not a
checksum that happens to catch the change.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from search_core import collection as collection_module
from search_core.cli import main
from search_core.collection import (
    CURRENT_FILE,
    MANIFEST_FILE,
    POINTER_CHECKSUM,
    BuildOptions,
    build_collection,
    delete_collection,
    list_collections,
    open_collection,
    read_manifest,
)
from search_core.embedding import EmbeddingCache
from search_core.errors import CollectionError, IntegrityError
from search_core.ingest import IngestReport
from search_core.search import search
from search_core.storage import json_bytes, sha256_bytes
from search_core.types import Document
from tests.fake_embedder import FakeEmbedder

NAME = "docs"
DOCS = (
    Document("a", "Either party may terminate this agreement with thirty days notice.", "Terms"),
    Document("b", "Brake pads that squeal need replacing soon.", "Brakes"),
    Document("c", "Refunds are issued within five business days.", "Refunds"),
)


def build(home: Path, name: str = NAME, **kwargs: Any):
    return build_collection(
        name, IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=FakeEmbedder(), **kwargs
    )


def opened(home: Path, name: str = NAME):
    return open_collection(name, home, embedder=FakeEmbedder())


def pointer(home: Path, name: str = NAME) -> dict[str, Any]:
    return json.loads((home / name / CURRENT_FILE).read_bytes())


def version_folder(home: Path, name: str = NAME) -> Path:
    return home / name / pointer(home, name)["version"]


def forge(home: Path, edit: Callable[[dict[str, Any]], None], version: str | None = None) -> None:
    """Change the manifest and write it back with matching checksums.

    The pointer is written in the first release's form (the version and the manifest's sha256),
    which every release reads: the forgery passes every checksum.
    """
    folder = version_folder(home)
    manifest = json.loads((folder / MANIFEST_FILE).read_bytes())
    edit(manifest)
    data = json_bytes(manifest)
    (folder / MANIFEST_FILE).write_bytes(data)
    legacy = {"version": version or folder.name, "manifest_sha256": sha256_bytes(data)}
    (home / NAME / CURRENT_FILE).write_bytes(json_bytes(legacy))


def file_record(data: bytes) -> dict[str, Any]:
    return {"sha256": sha256_bytes(data), "bytes": len(data)}


def finishes(call: Callable[[], object], unblock: Path, seconds: float = 20) -> BaseException:
    """Run ``call`` in a thread; return what it raised. A call still blocked on the FIFO
    ``unblock`` after ``seconds`` (a reader that opened it) is released and the test fails."""
    outcome: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # the outcome is the point
            outcome.append(exc)
        else:
            outcome.append(AssertionError("no error was raised"))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        fd = os.open(unblock, os.O_WRONLY | os.O_NONBLOCK)  # EOF for the blocked reader
        os.close(fd)
        thread.join(seconds)
        pytest.fail(f"reading the collection blocked on the FIFO {unblock}")
    return outcome[0]


@pytest.fixture
def built(home: Path):
    return build(home)


# --- D5: the files a manifest names ---------------------------------------------------------


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_manifest_entry_leading_out_of_the_version_folder_is_refused(
    home: Path, built, tmp_path: Path, how: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret host name\n")
    folder = version_folder(home)
    entry = os.path.relpath(outside, folder) if how == "relative" else str(outside)
    assert (folder / entry).read_bytes() == outside.read_bytes()  # reachable as named

    def add(manifest: dict[str, Any]) -> None:
        manifest["files"][entry] = file_record(outside.read_bytes())

    forge(home, add)
    with pytest.raises(IntegrityError, match="not a plain file name inside the folder"):
        opened(home)


@pytest.mark.parametrize("entry", ["/dev/zero", "bm25_/../../../../etc/hostname", ".hidden", ""])
def test_names_that_could_never_be_a_file_of_the_version_are_refused_unopened(
    home: Path, built, entry: str
) -> None:
    forge(home, lambda manifest: manifest["files"].update({entry: file_record(b"")}))
    with pytest.raises(IntegrityError, match="not a plain file name"):
        opened(home)


def test_a_symbolic_link_in_the_version_folder_is_not_followed(
    home: Path, built, tmp_path: Path
) -> None:
    victim = version_folder(home) / "probes.json"
    copy = tmp_path / "copy.json"
    copy.write_bytes(victim.read_bytes())  # same bytes: every checksum still matches
    victim.unlink()
    victim.symlink_to(copy)
    with pytest.raises(IntegrityError, match=r"probes\.json: is a symbolic link"):
        opened(home)


def test_a_fifo_in_the_version_folder_is_refused_without_blocking(home: Path, built) -> None:
    victim = version_folder(home) / "probes.json"
    victim.unlink()
    os.mkfifo(victim)
    error = finishes(lambda: opened(home), victim)
    assert isinstance(error, IntegrityError) and "probes.json: is a FIFO" in str(error)


def test_a_device_in_the_version_folder_is_refused_unopened(home: Path, built) -> None:
    victim = version_folder(home) / "probes.json"
    victim.unlink()
    try:
        os.mknod(victim, stat.S_IFCHR | 0o644, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs privileges this test does not have")
    with pytest.raises(IntegrityError, match=r"probes\.json: is a character device"):
        opened(home)


def test_a_file_of_another_size_than_recorded_is_refused_before_reading(home: Path, built) -> None:
    victim = version_folder(home) / "probes.json"
    grown = victim.read_bytes() + b"\n\n"  # still valid JSON
    victim.write_bytes(grown)
    # the forger fixes the checksum but not the size the build recorded
    forge(
        home, lambda manifest: manifest["files"]["probes.json"].update(sha256=sha256_bytes(grown))
    )
    with pytest.raises(
        IntegrityError,
        match=r"probes\.json: checksum mismatch \(the file has .* bytes, .* were written",
    ):
        opened(home)


def test_a_manifest_without_sizes_is_still_read_by_streaming_its_checksums(
    home: Path, built
) -> None:
    def drop_sizes(manifest: dict[str, Any]) -> None:
        for meta in manifest["files"].values():
            meta.pop("bytes")

    forge(home, drop_sizes)
    assert [d.doc_id for d in opened(home).documents] == ["a", "b", "c"]


# --- D5: the pointer --------------------------------------------------------------------------


def test_the_pointer_carries_a_checksum_of_its_own(home: Path, built) -> None:
    written = pointer(home)
    fields = {key: value for key, value in written.items() if key != POINTER_CHECKSUM}
    assert written[POINTER_CHECKSUM] == sha256_bytes(json_bytes(fields))
    # a change that keeps the JSON valid and names an existing version is still caught
    damaged = {**written, "manifest_sha256": "0" * 64}
    (home / NAME / CURRENT_FILE).write_bytes(json_bytes(damaged))
    with pytest.raises(IntegrityError, match=f"{CURRENT_FILE}: checksum mismatch"):
        read_manifest(NAME, home)
    assert list_collections(home) == []


def test_a_pointer_written_by_the_first_release_is_read_as_it_is(home: Path, built) -> None:
    legacy = {key: value for key, value in pointer(home).items() if key != POINTER_CHECKSUM}
    (home / NAME / CURRENT_FILE).write_bytes(json_bytes(legacy))
    before = (home / NAME / CURRENT_FILE).read_bytes()
    assert [d.doc_id for d in opened(home).documents] == ["a", "b", "c"]
    assert (home / NAME / CURRENT_FILE).read_bytes() == before  # a reader never writes
    build(home)  # the next build writes the new form
    assert POINTER_CHECKSUM in pointer(home)


def test_a_pointer_that_is_a_fifo_is_refused_without_blocking(home: Path, built) -> None:
    current = home / NAME / CURRENT_FILE
    current.unlink()
    os.mkfifo(current)
    error = finishes(lambda: opened(home), current)
    assert isinstance(error, IntegrityError) and f"{CURRENT_FILE}: is a FIFO" in str(error)


def test_a_pointer_that_is_a_link_is_not_followed(home: Path, built, tmp_path: Path) -> None:
    current = home / NAME / CURRENT_FILE
    copy = tmp_path / "CURRENT"
    copy.write_bytes(current.read_bytes())
    current.unlink()
    current.symlink_to(copy)
    with pytest.raises(IntegrityError, match=f"{CURRENT_FILE}: is a symbolic link"):
        opened(home)


def test_a_pointer_to_a_linked_version_folder_is_not_followed(home: Path, built) -> None:
    real = version_folder(home)
    (home / NAME / "v-link").symlink_to(real, target_is_directory=True)
    forge(home, lambda manifest: None, version="v-link")
    with pytest.raises(IntegrityError, match="v-link: not a plain folder"):
        opened(home)


# --- D6: nothing outside the home changes ---------------------------------------------------


@pytest.fixture
def linked(home: Path, tmp_path: Path) -> Path:
    """``home/docs`` is a link to a collection in another folder; returns that collection."""
    elsewhere = tmp_path / "elsewhere"
    build(elsewhere)
    home.mkdir(parents=True, exist_ok=True)
    (home / NAME).symlink_to(elsewhere / NAME, target_is_directory=True)
    return elsewhere / NAME


def test_delete_refuses_a_collection_folder_that_links_out_of_the_home(
    home: Path, linked: Path, capsys
) -> None:
    with pytest.raises(CollectionError, match="is a symbolic link"):
        delete_collection(NAME, home)
    assert main(["--home", str(home), "delete", NAME]) == 2
    out, err = capsys.readouterr()
    assert "deleted" not in out
    assert err.startswith("error: ") and "symbolic link" in err and len(err.splitlines()) == 1
    assert (linked / CURRENT_FILE).is_file() and (home / NAME).is_symlink()
    assert opened(linked.parent).documents  # the outside collection is whole


def test_a_build_through_a_linked_collection_folder_is_refused(home: Path, linked: Path) -> None:
    before = sorted(p.name for p in linked.iterdir())
    with pytest.raises(CollectionError, match="is a symbolic link"):
        build(home)
    assert sorted(p.name for p in linked.iterdir()) == before


def test_links_inside_a_collection_are_removed_never_followed(
    home: Path, built, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (home / NAME / "notes").symlink_to(outside, target_is_directory=True)
    (home / NAME / "v-20000101T000000-old").symlink_to(outside, target_is_directory=True)
    build(home)  # removes old versions: not through a link
    assert (outside / "keep.txt").read_text() == "keep"
    delete_collection(NAME, home)
    assert not os.path.lexists(home / NAME)
    assert (outside / "keep.txt").read_text() == "keep"


# --- D4: a home or cache that cannot be written ---------------------------------------------


def test_a_build_into_a_home_that_cannot_be_made_is_refused_before_any_work(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    stages: list[str] = []
    with pytest.raises(CollectionError, match=re.escape(f"build collection '{NAME}': {blocker}")):
        build(blocker / "home", progress=lambda stage, done, total: stages.append(stage))
    assert stages == []


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make folders read-only as ``os.access`` reports them (chmod does not stop root)."""

    def make(folder: Path) -> None:
        real_access = os.access

        def access(path: Any, mode: int, **kwargs: Any) -> bool:
            if mode & os.W_OK and Path(path) == folder:
                return False
            return real_access(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", access)

    return make


def test_index_into_a_read_only_home_names_the_folder_before_reading_the_source(
    home: Path, tmp_path: Path, read_only, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    home.mkdir()
    read_only(home)
    source = tmp_path / "notes.txt"
    source.write_text("a note")

    def never(*_: object, **__: object) -> object:
        raise AssertionError("the source was read")

    monkeypatch.setattr("search_core.ingest.infer_source_fields", never)
    monkeypatch.setattr("search_core.ingest.read_source", never)
    code = main(["index", str(source), "--name", NAME])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == (
        f"error: cannot build collection '{NAME}': {home} cannot be written (read-only, or no "
        "permission); choose a collections home that can be written (--home or "
        "$SEARCH_EXPLORER_HOME)\n"
    )


@pytest.mark.parametrize("how", ["not-a-folder", "read-only"])
def test_a_cache_folder_that_cannot_be_written_costs_only_the_cache(
    home: Path, tmp_path: Path, read_only, monkeypatch: pytest.MonkeyPatch, capsys, how: str
) -> None:
    if how == "not-a-folder":
        (tmp_path / "a-file").write_text("not a folder")
        cache = tmp_path / "a-file" / "cache"
    else:
        cache = tmp_path / "cache"
        cache.mkdir()
        EmbeddingCache(cache / "embeddings.sqlite").close()
        read_only(cache)
    monkeypatch.setenv("SEARCH_EXPLORER_CACHE", str(cache))
    monkeypatch.setattr(collection_module, "shared_embedder", lambda *_, **__: FakeEmbedder())
    source = tmp_path / "notes.txt"
    source.write_text("Brake pads that squeal need replacing soon.")
    code = main(["index", str(source), "--name", NAME])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "note: built without the on-disk embedding cache: " in out
    collection = opened(home)
    assert collection.manifest["embedding_cache"]["folder"] == str(cache)
    assert search(collection, "squeal", mode="bm25").hits[0].doc_id == "notes.txt"


def _without_dac_override() -> None:
    """In the child, before exec: drop root's power to write where permissions say no."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for cap in (cap_dac_override, cap_dac_read_search):
        libc.prctl(pr_capbset_drop, cap, 0, 0, 0)


def test_index_into_a_really_read_only_home_is_one_clear_line(tmp_path: Path) -> None:
    """The defect as seen: chmod-ed folders, the cache inside the home, the installed command.

    As root, the child runs without CAP_DAC_OVERRIDE, so the permissions apply to it.
    """
    home = tmp_path / "collections"
    (home / ".cache").mkdir(parents=True)
    EmbeddingCache(home / ".cache" / "embeddings.sqlite").close()
    source = tmp_path / "notes.txt"
    source.write_text("Brake pads that squeal need replacing soon.")
    for path, mode in ((home / ".cache" / "embeddings.sqlite", 0o444), (home / ".cache", 0o555)):
        path.chmod(mode)
    home.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if k not in {"SEARCH_EXPLORER_CACHE"}}
    drop = _without_dac_override if os.geteuid() == 0 else None

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            capture_output=True,
            text=True,
            env=env,
            preexec_fn=drop,
            timeout=600,
            check=False,
        )

    try:
        probe = run("-c", "import sys; open(sys.argv[1] + '/probe', 'w')", str(home))
        if probe.returncode == 0:
            pytest.skip("this process cannot make a folder read-only for its children")
        result = run(
            "-m", "search_core.cli", "--home", str(home), "index", str(source), "--name", NAME
        )
        listing = run("-m", "search_core.cli", "--home", str(home), "list")
    finally:
        for path in (home, home / ".cache"):
            path.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"error: cannot build collection '{NAME}': {home} cannot be written (read-only, or no "
        "permission); choose a collections home that can be written (--home or "
        "$SEARCH_EXPLORER_HOME)\n"
    )
    assert listing.returncode == 0 and "no collections yet" in listing.stdout
    assert not (home / NAME).exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [({"ef_search": 2**31}, "ef_search must be an integer"), ({"nlits": 4}, "unknown index")],
)
def test_index_parameters_are_checked_before_any_work(params: dict, message: str) -> None:
    # Refused at once, not after reading and embedding the whole source.
    with pytest.raises(ValueError, match=message):
        BuildOptions(index_kind="hnsw", index_params=params)
