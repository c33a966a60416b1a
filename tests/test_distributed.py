"""Builds on a Ray cluster (search_core/distributed.py), on a real two-node cluster.

The cluster is started once for the module, on this machine, bound to 127.0.0.1 with token
authentication on; its processes are stopped by the fixture, even when a test fails. The
tests that need Ray skip without the ``[ray]`` extra; the message for a missing Ray is tested
everywhere, by hiding the module.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from search_core.chunking import ChunkingConfig
from search_core.cli import main
from search_core.collection import BuildOptions, build_collection
from search_core.distributed import RAY_EXTRA, DistributedBuildError, import_ray, ray_engine
from search_core.embedding import shared_embedder
from search_core.ingest import read_source
from search_core.pipeline import EmbeddedBatch, document_batches, embed_batch
from search_core.settings import DEFAULT_BACKEND

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CHUNKING = ChunkingConfig()
NODES = 2
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # nothing sent anywhere
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(16),
}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A two-node Ray cluster on loopback, one CPU a node; yields the head's address."""
    ray = pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")  # Ray ships it
    from ray._raylet import Config
    from ray.cluster_utils import Cluster

    saved = {key: os.environ.get(key) for key in RAY_ENV}
    os.environ.update(RAY_ENV)
    Config.initialize("")  # this process reads RAY_AUTH_MODE again (Ray may be imported)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    node = {"node_ip_address": "127.0.0.1", "num_cpus": 1}
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        for _ in range(NODES - 1):
            cluster.add_node(**node)
        yield cluster.address
    finally:
        started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        _, alive = psutil.wait_procs(started, timeout=20)
        for process in alive:  # only what this fixture started, by pid
            process.kill()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        Config.initialize("")
        assert not alive, f"Ray processes outlived the cluster: {[p.pid for p in alive]}"


def _sample_lines(n: int) -> list[str]:
    with (SAMPLE / "corpus.jsonl").open(encoding="utf-8") as lines:
        return [next(lines) for _ in range(n)]


@pytest.fixture(scope="module")
def batches() -> list[list]:
    """The first 12 documents of the sample collection, in four batches."""
    documents = list(read_source(SAMPLE).documents)[:12]
    return list(document_batches(documents, size=3))


@pytest.fixture(scope="module")
def local(batches) -> list[EmbeddedBatch]:
    """The same batches through the local engine, the default backend."""
    embedder = shared_embedder(backend=DEFAULT_BACKEND)
    return [embed_batch(b, embedder, CHUNKING) for b in batches]


def _engine(address: str, **options):
    return ray_engine(address, model=None, backend=DEFAULT_BACKEND, chunking=CHUNKING, **options)


def _same_as_local(results: list[EmbeddedBatch], local: list[EmbeddedBatch]) -> None:
    assert len(results) == len(local)
    for got, want in zip(results, local, strict=True):
        assert got.documents == want.documents
        assert got.chunks == want.chunks  # ids from 0 in each batch, texts, spans
        assert got.titles == want.titles
        assert got.texts == want.texts
        assert got.vectors.dtype == np.float32
        assert got.vectors.shape == want.vectors.shape
        cosines = np.sum(got.vectors * want.vectors, axis=1)
        assert cosines.min() >= 0.9999


def _children() -> list:
    import psutil

    return psutil.Process().children(recursive=True)


def _workers(exclude: set[int] = frozenset()) -> list:
    """The live processes of the batch actors (Ray titles them by class), but ``exclude``."""
    import psutil

    found = []
    for process in _children():
        if process.pid in exclude:
            continue
        try:
            if process.cmdline()[:1] and process.cmdline()[0].startswith("ray::_BatchWorker"):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _loopback_ip(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _sockets_off_loopback() -> list[str]:
    """Every socket of this process and its children bound or connected off loopback."""
    import psutil

    found = []
    for process in [psutil.Process(), *_children()]:
        try:
            sockets = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        for s in sockets:
            ends = [s.laddr, *([s.raddr] if s.raddr else [])]
            if any(end and not _loopback_ip(end.ip) for end in ends):
                found.append(f"{process.pid} {process.name()}: {s.status} {s.laddr} {s.raddr}")
    return found


def test_ray_build_is_the_local_build_and_stays_on_loopback(
    ray_cluster, batches, local, tmp_path: Path
) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(_sample_lines(12)), encoding="utf-8")
    options = BuildOptions(backend=DEFAULT_BACKEND, chunking=CHUNKING)
    earlier = {w.pid for w in _workers()}  # actors of other tests, maybe still exiting
    with _engine(ray_cluster) as engine:
        results = list(engine(iter(batches)))
        built = build_collection("ray", source, options, home=tmp_path, engine=engine)
        workers = _workers(earlier)
        off_loopback = _sockets_off_loopback()
        raylets = {w.parent().pid for w in workers}
        gcs = [p for p in _children() if p.name() == "gcs_server"]
    _same_as_local(results, local)
    reference = build_collection("local", source, options, home=tmp_path)
    assert built.fingerprint == reference.fingerprint
    assert list(built.chunks) == list(reference.chunks)  # ids, documents, texts, spans
    assert list(built.indexed_texts()) == list(reference.indexed_texts())
    cosines = np.sum(np.asarray(built.embeddings) * np.asarray(reference.embeddings), axis=1)
    assert len(cosines) == len(reference.chunks) and cosines.min() >= 0.9999
    assert len(workers) == NODES and len(raylets) == NODES  # one actor on each node
    assert off_loopback == []
    assert gcs and all(p.environ().get("RAY_AUTH_MODE") == "token" for p in gcs)


def test_killed_actor_is_restarted_and_the_run_completes(ray_cluster, batches, local) -> None:
    killed: list[int] = []
    earlier = {w.pid for w in _workers()}  # actors of other tests, maybe still exiting

    def feed() -> Iterator[list]:
        for index, batch in enumerate(batches):
            if index == 2:  # batches 0 and 1 are on the actors, none taken back yet
                victim = _workers(earlier)[0]
                os.kill(victim.pid, signal.SIGKILL)
                killed.append(victim.pid)
            yield batch

    with _engine(ray_cluster) as engine:
        results = list(engine(feed()))
        after = {w.pid for w in _workers(earlier)}
    _same_as_local(results, local)
    assert len(killed) == 1 and killed[0] not in after and len(after) == NODES


def test_actor_lost_beyond_its_restarts_fails_cleanly(ray_cluster, batches) -> None:
    earlier = {w.pid for w in _workers()}

    def feed() -> Iterator[list]:
        yield batches[0]
        os.kill(_workers(earlier)[0].pid, signal.SIGKILL)
        yield from batches[1:]

    with (
        _engine(ray_cluster, actors=1, max_restarts=0) as engine,
        pytest.raises(DistributedBuildError, match="cannot finish") as caught,
    ):
        list(engine(feed()))
    assert "\n" not in str(caught.value)


def test_more_actors_than_cpus_is_refused(ray_cluster) -> None:
    with (
        pytest.raises(ValueError, match="has 2 CPUs: room for 2 actors"),
        _engine(ray_cluster, actors=3),
    ):
        pass


def test_an_address_where_nothing_answers_fails_at_once() -> None:
    pytest.importorskip("ray")
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with (
        pytest.raises(DistributedBuildError, match="nothing answers"),
        _engine(f"127.0.0.1:{port}"),
    ):
        pass


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(DistributedBuildError) as caught:
        import_ray()
    assert RAY_EXTRA in str(caught.value)


def test_index_with_ray_but_without_it_prints_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    home = tmp_path / "home"
    status = main(
        ["--home", str(home), "index", str(SAMPLE), "--name", "s", "--ray", "local", "--json"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and RAY_EXTRA in err
    assert not (home / "s").exists()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("local", True),
        ("127.0.0.1:6379", True),
        ("localhost:6379", True),
        ("[::1]:6379", True),
        ("10.0.0.5:6379", False),
        ("head.example.org:6379", False),
        ("auto", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    from search_core.distributed import _is_loopback as is_loopback

    assert is_loopback(address) is loopback
