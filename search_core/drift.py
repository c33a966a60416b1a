"""Model drift check: re-embed the probes stored at build time and compare the vectors.

A collection stores a few probe sentences and chunks with the vectors they had when it was
built. If the model installed now (weights, tokenizer, library versions) no longer gives the
same vectors, queries and stored vectors stop being comparable: the check says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .collection import Collection, load_probes
from .embedding import Embedder, manifest_embedder

DRIFT_MIN_COSINE = 0.99
"""Mean cosine between stored and fresh probe vectors below which the model has drifted."""


@dataclass(frozen=True)
class DriftReport:
    """Result of a drift check.

    Attributes:
        probes: number of probe texts compared.
        mean_cosine: mean cosine between stored and fresh vectors.
        min_cosine: the lowest one.
        stored_fingerprint: fingerprint recorded at build time.
        current_fingerprint: fingerprint of the model used now.
        passed: ``mean_cosine >= threshold``.
        threshold: the bar.
    """

    probes: int
    mean_cosine: float
    min_cosine: float
    stored_fingerprint: str
    current_fingerprint: str
    passed: bool
    threshold: float


def drift_check(
    collection: Collection, embedder: Embedder | None = None, threshold: float = DRIFT_MIN_COSINE
) -> DriftReport:
    """Re-embed the collection's probes with the model installed now and compare.

    Args:
        collection: a collection (opened without the fingerprint check, so a changed model can
            still be compared).
        embedder: the model to check; by default the model named in the manifest, as installed.
        threshold: minimum mean cosine.
    """
    embedder = embedder or manifest_embedder(collection.manifest["model"])
    texts, stored = load_probes(collection)
    fresh = embedder.embed_queries(texts)
    if fresh.shape != stored.shape:
        cosines = np.zeros(len(texts), dtype=np.float32)
    else:
        cosines = np.sum(fresh * stored, axis=1)
    mean = float(cosines.mean()) if len(cosines) else 0.0
    return DriftReport(
        probes=len(texts),
        mean_cosine=mean,
        min_cosine=float(cosines.min()) if len(cosines) else 0.0,
        stored_fingerprint=collection.fingerprint,
        current_fingerprint=embedder.fingerprint,
        passed=mean >= threshold,
        threshold=threshold,
    )
