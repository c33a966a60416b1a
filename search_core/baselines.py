"""Reference recipes the product's defaults are measured against (tests and benchmarks).

* :func:`plain_bm25s_run`: ``bm25s`` as it comes (its own tokenizer, no stemming, no
  stopwords, default k1 and b) over the texts the collection indexes: the lexical search a
  user gets without any analysis, in any language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import bm25s
import numpy as np

from .evaluation import RUN_DEPTH, RunDict

__all__ = ["plain_bm25s_run"]


def plain_bm25s_run(
    texts: Sequence[str],
    doc_ids: Sequence[str],
    queries: Mapping[str, str],
    *,
    depth: int = RUN_DEPTH,
) -> RunDict:
    """A run of plain ``bm25s`` over ``texts``, best document of each id first.

    Args:
        texts: the indexed texts (a collection's :meth:`~Collection.indexed_texts`).
        doc_ids: the document id of each text (a document's best text counts).
        queries: query id to text.
        depth: documents kept per query.

    Returns:
        Query id to document id to a score that keeps the order.
    """
    model = bm25s.BM25()
    model.index(
        bm25s.tokenize(list(texts), stopwords=None, show_progress=False), show_progress=False
    )
    run: RunDict = {}
    for qid, text in queries.items():
        terms = bm25s.tokenize([text], stopwords=None, return_ids=False, show_progress=False)[0]
        known = [t for t in terms if t in model.vocab_dict]
        scores = model.get_scores(known) if known else np.zeros(len(texts))
        order = [i for i in np.lexsort((np.arange(len(scores)), -scores)) if scores[i] > 0]
        ranked: dict[str, float] = {}
        for i in order:
            if len(ranked) == depth:
                break
            ranked.setdefault(doc_ids[i], float(depth - len(ranked)))
        run[qid] = ranked
    return run
