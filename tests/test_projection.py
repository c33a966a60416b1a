from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search_core.collection import Collection, build_collection
from search_core.ingest import IngestReport
from search_core.projection import (
    META_FILE,
    Projection,
    ProjectionSettings,
    cluster_labels,
    place_chunks,
    project,
    projection_folder,
    sample_chunks,
    transform,
)
from search_core.types import Document

TOPICS = {
    "brakes": "The brake pads {} squeal and the brake pedal feels soft after {} kilometres.",
    "refunds": "The customer asked for a refund of order {} paid twice by card on day {}.",
    "contracts": "Either party may terminate the agreement {} with {} days written notice.",
    "security": "A buffer overflow {} in the parser allows remote code execution in version {}.",
}
DOCS = tuple(
    Document(f"{topic}-{i}", template.format(word, 10 + i), metadata={"topic": topic})
    for topic, template in TOPICS.items()
    for i, word in enumerate(
        [
            "often",
            "rarely",
            "loudly",
            "again",
            "suddenly",
            "early",
            "late",
            "quietly",
            "twice",
            "once",
        ]
    )
)


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory, embedder) -> Collection:
    home = tmp_path_factory.mktemp("projection")
    return build_collection(
        "topics", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=embedder
    )


@pytest.fixture(scope="module")
def fitted(topics: Collection) -> Projection:
    return project(topics, ProjectionSettings(sample=30, clusters=4))


def test_sample_is_seeded_sorted_and_whole_when_small() -> None:
    assert sample_chunks(5, 10).tolist() == [0, 1, 2, 3, 4]
    picks = sample_chunks(1000, 50, seed=1)
    assert len(picks) == len(set(picks.tolist())) == 50
    assert picks.tolist() == sorted(picks.tolist())
    assert picks.tolist() == sample_chunks(1000, 50, seed=1).tolist()
    assert picks.tolist() != sample_chunks(1000, 50, seed=2).tolist()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dims": 4}, "2 or 3"),
        ({"sample": 2}, "sample"),
        ({"n_neighbors": 1}, "n_neighbors"),
        ({"min_dist": 1.5}, "min_dist"),
        ({"clusters": 0}, "clusters"),
    ],
)
def test_settings_are_checked(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProjectionSettings(**settings)


def test_a_sampled_map_reports_its_sample(topics: Collection, fitted: Projection) -> None:
    assert fitted.total == len(topics.chunks) == 40
    assert fitted.sample_size == 30 and fitted.sampled
    assert fitted.coords.shape == (30, 2) and fitted.coords.dtype == np.float32
    assert np.isfinite(fitted.coords).all()
    assert fitted.chunk_ids.tolist() == sample_chunks(40, 30, 0).tolist()
    assert set(fitted.clusters.tolist()) <= set(range(4))


def test_the_map_keeps_topics_apart(topics: Collection) -> None:
    whole = project(topics, ProjectionSettings(sample=40, clusters=4), use_cache=False)
    topic = np.array(
        [
            topics.documents[int(topics.chunk_doc_index[c])].metadata["topic"]
            for c in whole.chunk_ids
        ]
    )
    centroids = {t: whole.coords[topic == t].mean(axis=0) for t in TOPICS}
    spread = np.mean(
        [np.linalg.norm(whole.coords[topic == t] - centroids[t], axis=1).mean() for t in TOPICS]
    )
    gaps = [np.linalg.norm(centroids[a] - centroids[b]) for a in TOPICS for b in TOPICS if a < b]
    assert min(gaps) > spread  # every topic is a cluster of its own
    # k-means on the vectors finds the four topics
    for t in TOPICS:
        assert len(set(whole.clusters[topic == t].tolist())) == 1


def test_second_call_reads_the_cache_with_the_same_coordinates(
    topics: Collection, fitted: Projection
) -> None:
    again = project(topics, ProjectionSettings(sample=30, clusters=4))
    assert again.cached and not fitted.cached
    assert again.reducer is None  # not stored: no pickle
    assert np.array_equal(again.coords, fitted.coords)
    assert np.array_equal(again.chunk_ids, fitted.chunk_ids)
    assert np.array_equal(again.clusters, fitted.clusters)
    folder = projection_folder(topics) / fitted.key
    assert folder.parent == topics.folder.parent / "projections"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["chunk_ids.npy", "clusters.npy", "coords.npy", META_FILE]
    )
    record = json.loads((folder / META_FILE).read_text())
    assert record["body"]["version"] == topics.manifest["version"]
    assert not list(folder.glob("*.pkl"))


def test_a_damaged_cache_is_fitted_again(topics: Collection, tmp_path: Path) -> None:
    settings = ProjectionSettings(sample=25, clusters=3)
    first = project(topics, settings)
    coords = projection_folder(topics) / first.key / "coords.npy"
    coords.write_bytes(coords.read_bytes()[:-8] + b"\0" * 8)
    again = project(topics, settings)
    assert not again.cached
    assert np.allclose(again.coords, first.coords)  # seeded: the same map
    assert project(topics, settings).cached


def test_transform_is_deterministic_and_works_from_the_cache(
    topics: Collection, fitted: Projection
) -> None:
    query = topics.embedder.embed_query("my brake pedal is soft and the pads squeal")
    placed = transform(fitted, topics, query)
    assert placed.shape == (1, 2)
    assert np.allclose(transform(fitted, topics, query), placed)
    cached = project(topics, ProjectionSettings(sample=30, clusters=4))
    assert cached.cached
    assert np.allclose(transform(cached, topics, query), placed, atol=1e-3)
    assert np.allclose(cached.coords, fitted.coords, atol=1e-3)  # the refit is the same map
    # the brake query lands among the brake chunks
    topic = [
        topics.documents[int(topics.chunk_doc_index[c])].metadata["topic"] for c in fitted.chunk_ids
    ]
    nearest = np.argsort(np.linalg.norm(fitted.coords - placed[0], axis=1))[:5]
    assert [topic[i] for i in nearest].count("brakes") >= 4


def test_place_chunks_uses_the_map_or_transforms(topics: Collection, fitted: Projection) -> None:
    on_map = int(fitted.chunk_ids[3])
    off_map = next(c for c in range(40) if c not in set(fitted.chunk_ids.tolist()))
    placed = place_chunks(fitted, topics, [off_map, on_map])
    assert np.array_equal(placed[1], fitted.coords[3])
    expected = transform(fitted, topics, topics.embeddings[off_map])[0]
    assert np.allclose(placed[0], expected)
    assert place_chunks(fitted, topics, []).shape == (0, 2)
    assert fitted.rows([on_map, off_map]).tolist() == [3, -1]


def test_three_dimensions(topics: Collection) -> None:
    three = project(topics, ProjectionSettings(dims=3, sample=40, clusters=2), use_cache=False)
    assert three.coords.shape == (40, 3) and not three.sampled
    query = topics.embedder.embed_query("refund")
    assert transform(three, topics, query).shape == (1, 3)


def test_a_rebuilt_collection_drops_stale_maps(tmp_path: Path, embedder) -> None:
    report = IngestReport(DOCS[:12], 0, (), 1, ())
    old = build_collection("small", report, home=tmp_path, embedder=embedder)
    first = project(old, ProjectionSettings(sample=12, clusters=2))
    new = build_collection("small", report, home=tmp_path, embedder=embedder)
    second = project(new, ProjectionSettings(sample=12, clusters=2))
    assert first.key != second.key
    folders = [p.name for p in projection_folder(new).iterdir()]
    assert folders == [second.key]


def test_too_few_chunks_for_a_map(tmp_path: Path, embedder) -> None:
    tiny = build_collection(
        "tiny", IngestReport(DOCS[:2], 0, (), 1, ()), home=tmp_path, embedder=embedder
    )
    with pytest.raises(ValueError, match="at least 3 chunks"):
        project(tiny)


def test_clusters_are_seeded() -> None:
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(loc, 0.05, size=(10, 4)) for loc in (0, 3, 6)])
    labels = cluster_labels(vectors, 3, seed=0)
    assert np.array_equal(labels, cluster_labels(vectors, 3, seed=0))
    assert [len(set(labels[i : i + 10].tolist())) for i in (0, 10, 20)] == [1, 1, 1]
    assert cluster_labels(vectors[:1], 5).tolist() == [0]


def test_warm_up_fits_a_throw_away_map(tmp_path: Path, monkeypatch) -> None:
    from search_core import projection

    fitted: list[tuple[int, int]] = []
    fit = projection._fit

    def counting(vectors, settings):
        fitted.append(vectors.shape)
        return fit(vectors, settings)

    monkeypatch.setattr(projection, "_fit", counting)
    monkeypatch.chdir(tmp_path)
    seconds = projection.warm_up(dim=16)
    assert seconds > 0 and fitted == [(projection.WARM_UP_POINTS, 16)]
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere
