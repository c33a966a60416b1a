"""Builds on a Ray cluster: batches of documents chunked and embedded by a pool of Ray actors.

A streaming build reads its source on the driver (the process that writes the collection, so
that ids are checked across the whole source) and hands its batches of documents to an
*engine*, which must give back one :class:`~search_core.pipeline.EmbeddedBatch` per batch, in
the same order. :func:`ray_engine` is that engine on a Ray cluster:

1. **Connect.** ``ray.init`` to the cluster at ``address``, or a new Ray instance on this
   machine for ``"local"``. A loopback address (and ``"local"``) binds the driver to
   127.0.0.1, so a cluster on this machine never listens on another interface.
2. **Start the pool.** One actor per ``cpus_per_actor`` CPUs of the cluster, each loading the
   model once (:func:`~search_core.embedding.shared_embedder`, the same model and backend as
   the driver) and reporting its fingerprint, which must be the driver's: the same model
   files and backend give the same vectors on every node.
3. **Stream.** Batch ``i`` goes to actor ``i mod n``; at most ``batches_per_actor`` batches
   per actor are in flight, and results come back in submission order. The driver pulls the
   next batch from the source only when a slot frees, so memory stays bounded whatever the
   size of the source.
4. **Recover or fail.** An actor whose process or node dies is restarted by Ray (up to
   ``max_restarts`` times; it loads the model again) and its unfinished batches are run again
   (``max_task_retries``): :func:`~search_core.pipeline.embed_batch` is deterministic, so a
   retried batch gives the same result. A build that still cannot finish raises
   :class:`DistributedBuildError`; the caller (``build_collection``) then removes its staging.
5. **Leave.** The actors are killed, and the connection closed (the local instance stopped)
   when this module opened it.

Why actors fed by the driver, and not Ray Data. The issue asked for "Ray Data over an actor
pool" (``Dataset.map_batches`` with an actor pool). Ray Data plans a dataset from inputs it
knows up front: ``from_items`` and ``from_*_refs`` take a finished list, and
``read_datasource`` runs read tasks on the workers from a split made at planning time; since
``DatasetPipeline.from_iterable`` was removed there is no way to feed it an unbounded
generator produced lazily on the driver. Reading on the workers would lose the check of ids
across the whole source, and one dataset per window of batches would start a new actor pool
(and load the model again) for every window. Plain actors do what is needed with Ray Core
alone: the model loaded once per actor, order kept, a bounded number of batches in flight,
and Ray's own actor restarts and task retries. ``ray.util.ActorPool`` is no better fit: its
``map`` submits every value before returning the first result (its pending list would hold
the whole source), and it keeps an actor out of the pool until its result is taken in order,
so an actor that finished early waits idle behind a slower one; the actors' own task queues
(used here) keep every actor busy.

Documents travel to the actors, and chunks and vectors back, through Ray's object transport
(its own serialization, in flight only); nothing this module persists uses pickle. Every node
needs this package and its ``[ray]`` extra installed, and the model: the bundled one comes
with the package, a model folder must exist at the same path on every node. The build runs
on a node of the cluster (the head, typically: a Ray driver works through its own node's
raylet), and the collection is written there, in that machine's collections home; Ray Client
addresses (``ray://HEAD:10001``, from outside the cluster) are passed to Ray as they are,
untested. The actors embed every chunk: the driver's embedding cache and vector packs are not
consulted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .chunking import ChunkingConfig
from .embedding import shared_embedder
from .errors import CollectionError
from .pipeline import BatchEngine, EmbeddedBatch, embed_batch
from .types import Document

if TYPE_CHECKING:
    from .collection import BuildOptions

PROBE_SECONDS = 10.0
"""How long a cluster's address may take to accept a connection before the build gives up."""

RAY_EXTRA = "pip install -e '.[ray]'"
"""What installs Ray for builds on a cluster."""

LOCAL = "local"
"""The address that starts a Ray instance on this machine for the build's length."""

LOOPBACK = "127.0.0.1"

ACTOR_RESTARTS = 3
"""How many times Ray restarts a lost actor (and runs its unfinished batches again)."""

START_SECONDS = 600.0
"""How long the actors may take to start and load the model (a first ONNX export takes up
to a minute; a cluster may need to pull the package onto a node)."""


class DistributedBuildError(CollectionError):
    """A build on a Ray cluster cannot run or cannot finish (one sentence says why)."""


def import_ray() -> ModuleType:
    """Ray, imported on first use: it is an optional extra.

    Raises:
        DistributedBuildError: Ray is not installed (the message names the extra).
    """
    try:
        import ray
    except ImportError:
        raise DistributedBuildError(
            f"building on a Ray cluster needs Ray: install the extra with {RAY_EXTRA}"
        ) from None
    return ray


class _BatchWorker:
    """A Ray actor (see :func:`ray_engine`): the model loaded once, then one batch a call."""

    def __init__(self, model: str, backend: str, chunking: ChunkingConfig) -> None:
        self._embedder = shared_embedder(model, backend)
        self._embedder.load()
        self._chunking = chunking

    def fingerprint(self) -> str:
        """The fingerprint of the model this actor loaded."""
        return self._embedder.fingerprint

    def embed(self, documents: list[Document]) -> EmbeddedBatch:
        """The batch chunked and embedded, without its documents (the driver holds them)."""
        batch = embed_batch(documents, self._embedder, self._chunking)
        return dataclasses.replace(batch, documents=())


@contextmanager
def ray_engine(
    address: str,
    *,
    model: str | None,
    backend: str,
    chunking: ChunkingConfig,
    actors: int | None = None,
    cpus_per_actor: float = 1,
    batches_per_actor: int = 2,
    max_restarts: int = ACTOR_RESTARTS,
    start_timeout: float = START_SECONDS,
) -> Iterator[BatchEngine]:
    """An engine that chunks and embeds document batches in a pool of Ray actors.

    Use it around a build::

        with ray_engine("10.0.0.5:6379", model=None, backend="onnx-fp32",
                        chunking=options.chunking) as engine:
            build_collection(name, source, options, engine=engine)

    The engine keeps the order of the batches and at most ``actors * batches_per_actor`` of
    them in flight; it can run several times while the context is open.

    Args:
        address: a Ray cluster's address (``host:port`` of its head node, or ``auto``), or
            ``"local"`` to start a Ray instance on this machine, bound to 127.0.0.1, for the
            length of the context. An existing connection (``ray.init`` already called) is
            used as it is and left open.
        model: the model, as for :func:`~search_core.embedding.shared_embedder` (a folder
            must exist at the same path on every node).
        backend: the embedding backend; the same as the driver's, for the same fingerprint.
        chunking: how documents are cut, as for a local build.
        actors: how many actors; by default as many as the cluster's CPUs allow.
        cpus_per_actor: the CPUs Ray reserves for each actor.
        batches_per_actor: batches queued on each actor, so none waits for the driver.
        max_restarts: how many times a lost actor is restarted, its batches run again.
        start_timeout: seconds the actors may take to start and load the model.

    Yields:
        The engine: ``engine(batches) -> iterator of EmbeddedBatch``.

    Raises:
        DistributedBuildError: Ray is not installed, the cluster cannot be reached, the
            actors cannot start or load a model with the driver's fingerprint, or (while
            iterating the engine) a batch is lost beyond the actors' restarts.
        ValueError: a setting out of range, or more actors than the cluster has CPUs for.
    """
    if batches_per_actor < 1 or max_restarts < 0 or cpus_per_actor <= 0:
        raise ValueError(
            "batches_per_actor must be at least 1, max_restarts at least 0 and cpus_per_actor "
            f"above 0, got {batches_per_actor}, {max_restarts} and {cpus_per_actor}"
        )
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be at least 1, got {actors}")
    ray = import_ray()
    driver = shared_embedder(model, backend)  # its fingerprint, without loading the model
    with _connected(ray, address):
        pool = _start_pool(
            ray,
            address,
            driver.name,
            backend,
            chunking,
            actors=actors,
            cpus_per_actor=cpus_per_actor,
            max_restarts=max_restarts,
        )
        try:
            _check_actors(ray, pool, driver.fingerprint, start_timeout)

            def engine(batches: Iterator[list[Document]]) -> Iterator[EmbeddedBatch]:
                return _ordered(ray, pool, batches, len(pool) * batches_per_actor, max_restarts)

            yield engine
        finally:
            for actor in pool:
                with suppress(ray.exceptions.RayError):  # a cluster already gone
                    ray.kill(actor, no_restart=True)


def build_engine(
    address: str | None, options: BuildOptions
) -> AbstractContextManager[BatchEngine | None]:
    """The engine of a build: a Ray cluster's (:func:`ray_engine`) for an address, or None
    (the build's own process) without one.

    Raises:
        DistributedBuildError: as for :func:`ray_engine`, when the context is entered.
    """
    if address is None:
        return nullcontext(None)
    return ray_engine(
        address, model=options.model, backend=options.backend, chunking=options.chunking
    )


def _is_loopback(address: str) -> bool:
    """Whether ``address`` (``"local"`` or ``host:port``) is on this machine's loopback."""
    if address == LOCAL:
        return True
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def _connected(ray: ModuleType, address: str) -> Iterator[None]:
    """Connected to ``address`` for the length of the context (see :func:`ray_engine`)."""
    if ray.is_initialized():
        yield
        return
    # Ray's INFO lines ("Connected to Ray cluster") would interleave with the build's output
    options: dict[str, Any] = {
        "address": address,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    loopback = _is_loopback(address)
    if loopback:
        options["_node_ip_address"] = LOOPBACK
    if address == LOCAL:
        options["include_dashboard"] = False
        # a Ray instance of our own sends no usage statistics anywhere
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _check_reachable(address)
    try:
        with _keep_loopback(loopback):
            ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        raise DistributedBuildError(
            f"cannot connect to the Ray cluster at {address}: {_line(exc, 0)}"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail at once when nothing answers at a ``host:port`` address.

    ``ray.init`` retries an address where nothing listens for minutes before it gives up.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in host:  # "local", "auto", "ray://..."
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise DistributedBuildError(
            f"cannot connect to the Ray cluster at {address}: nothing answers there ({exc})"
        ) from None


@contextmanager
def _keep_loopback(loopback: bool) -> Iterator[None]:
    """Stop Ray from swapping a loopback address for the machine's routable one.

    On Linux, ``ray.init`` replaces 127.0.0.1 (the cluster's address and the driver's node
    address alike) by the address the machine routes from (ray-project/ray#59110), and then
    cannot reach a cluster bound to loopback. Ray keeps loopback in its single-machine mode
    (its default on macOS and Windows); that mode is asked for while connecting, and only then.
    """
    from ray._private import ray_constants

    if not loopback or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _start_pool(
    ray: ModuleType,
    address: str,
    model: str,
    backend: str,
    chunking: ChunkingConfig,
    *,
    actors: int | None,
    cpus_per_actor: float,
    max_restarts: int,
) -> list[Any]:
    """The actors (not yet known to be running: see :func:`_check_actors`)."""
    cpus = float(ray.cluster_resources().get("CPU", 0))
    fits = int(cpus // cpus_per_actor)
    if fits < 1 or (actors is not None and actors > fits):
        raise ValueError(
            f"the Ray cluster at {address} has {cpus:g} CPUs: room for {fits} actors of "
            f"{cpus_per_actor:g} CPUs, not {actors or 1}"
        )
    worker = ray.remote(
        num_cpus=cpus_per_actor,
        max_restarts=max_restarts,
        max_task_retries=max_restarts,
    )(_BatchWorker)
    return [worker.remote(model, backend, chunking) for _ in range(actors or fits)]


def _check_actors(ray: ModuleType, pool: list[Any], fingerprint: str, timeout: float) -> None:
    """Wait for every actor to load the model, and check its fingerprint is the driver's."""
    try:
        found = ray.get([actor.fingerprint.remote() for actor in pool], timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise DistributedBuildError(
            f"the Ray actors did not load the model within {timeout:g} s"
        ) from None
    except ray.exceptions.RayError as exc:
        raise DistributedBuildError(
            f"the Ray actors could not load the model: {_line(exc, -1)}"
        ) from exc
    for other in found:
        if other != fingerprint:
            raise DistributedBuildError(
                f"a Ray actor loaded a model with fingerprint {other[:16]}, not the driver's "
                f"{fingerprint[:16]}: install the same model and versions on every node"
            )


def _ordered(
    ray: ModuleType,
    pool: list[Any],
    batches: Iterator[list[Document]],
    window: int,
    restarts: int,
) -> Iterator[EmbeddedBatch]:
    """The embedded batches, in order, at most ``window`` in flight."""
    pending: deque[tuple[list[Document], Any]] = deque()
    for index, documents in enumerate(batches):
        pending.append((documents, pool[index % len(pool)].embed.remote(documents)))
        if len(pending) >= window:
            yield _result(ray, *pending.popleft(), restarts)
    while pending:
        yield _result(ray, *pending.popleft(), restarts)


def _result(ray: ModuleType, documents: list[Document], ref: Any, restarts: int) -> EmbeddedBatch:
    """One batch's result, its documents put back; a batch's own error raised as it is."""
    try:
        batch = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        # the batch itself failed (as it would in a local build): the same error
        raise exc.cause from None
    except ray.exceptions.RayError as exc:
        raise DistributedBuildError(
            f"the build on the Ray cluster cannot finish: a batch was lost "
            f"({type(exc).__name__}) after its actor was restarted {restarts} times; "
            "see the Ray logs"
        ) from exc
    return dataclasses.replace(batch, documents=tuple(documents))


def _line(exc: BaseException, which: int) -> str:
    """One line of an error's message (Ray's run over many: a cause, then a traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[which] if lines else type(exc).__name__
