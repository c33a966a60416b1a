"""BM25 quality against the peers: nDCG@10 of the project, Qdrant Edge and LanceDB in one run.

Every system indexes the same whole documents (``title + "\\n" + text``, no chunking) of the
judged collections ``cranfield`` and ``msmarco-5k`` (``../shared/data``), answers every judged
query with its top 100, and is scored with nDCG@10 (``search_core.evaluation.ndcg_at_k``, the
numbers ranx gives):

- the project: ``search_core.lexical.build_lexical_index`` with the analyzer
  ``search_core.analysis.choose_analyzer`` detects for the corpus (English: bm25s's 33
  stopwords, Snowball English, the ``"words"`` tokenizer), k1 1.5, b 0.75, Lucene BM25;
- Qdrant Edge (``qdrant-edge-py``, Qdrant's engine in-process): a payload text index with BM25
  scoring (``TextIndexParams(scoring=True)``), word tokenizer, English stopwords, Snowball
  English stemmer, queried with ``TextQuery`` (its defaults k 1.2, b 0.75);
- LanceDB (``lancedb``, its native FTS index): the defaults (simple tokenizer, English,
  stemming, stopwords, ASCII folding), and the same without stemming and stopwords.

A peer whose package is missing is skipped with a note. With ``--variants`` the script also
builds variants of the project's BM25 with bm25s and PyStemmer directly (one change at a time
from the project's default: k1 and b, the bm25s method, the stopword list, the stemmer, the
tokenizer, repeated query terms; the peers' recipe; then a grid of k1 and b over the analysis
changes that help) and marks those at least as good as the best peer on both collections,
with how many of their k1/b neighbours are too (a lone point is a setting fitted to noise:
msmarco-5k has 43 queries) and paired bootstrap intervals against the best peer.

The peers are not dependencies of the project; install them into a separate environment:

    python -m venv /tmp/peers-venv --system-site-packages
    /tmp/peers-venv/bin/pip install qdrant-edge-py lancedb
    /tmp/peers-venv/bin/python bench/bm25_peers.py --variants --out bench/results/bm25-peers.md
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # search_core, from any venv

from common import dataset, machine, qdrant_text_index, read_jsonl

from search_core.analysis import JOINERS, Analyzer, choose_analyzer
from search_core.evaluation import load_qrels, ndcg_at_k
from search_core.lab import bootstrap_interval
from search_core.lexical import build_lexical_index

COLLECTIONS = ("cranfield", "msmarco-5k")
DEPTH = 100
"""Results kept per query."""
CUTOFF = 10
"""nDCG cut-off."""


# ---------------------------------------------------------------------------------------------
# Collections and scoring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """A judged collection: the documents' ids and texts, the judged queries, the grades.

    Attributes:
        name: the folder name under ``../shared/data``.
        doc_ids: document ids, in index order (a system returns positions into it).
        texts: ``title + "\\n" + text`` of each document.
        queries: the judged queries, query id to text, in file order.
        qrels: query id to {document id: grade}.
    """

    name: str
    doc_ids: list[str]
    texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_judged(name: str) -> Judged:
    """Read a BEIR-layout collection and keep the queries that have judgments."""
    folder = dataset(name)
    docs = read_jsonl(folder / "corpus.jsonl")
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    queries = {
        str(q["_id"]): q["text"]
        for q in read_jsonl(folder / "queries.jsonl")
        if str(q["_id"]) in qrels
    }
    return Judged(
        name=name,
        doc_ids=[str(d["_id"]) for d in docs],
        texts=[f"{d.get('title') or ''}\n{d.get('text') or ''}" for d in docs],
        queries=queries,
        qrels=qrels,
    )


Rankings = list[list[int]]
"""Per judged query (in ``Judged.queries`` order), document positions best first."""


def per_query_ndcg(collection: Judged, rankings: Rankings) -> np.ndarray:
    """nDCG@10 of each judged query, in ``Judged.queries`` order."""
    return np.array(
        [
            ndcg_at_k([collection.doc_ids[i] for i in ranking], collection.qrels[qid], CUTOFF)
            for qid, ranking in zip(collection.queries, rankings, strict=True)
        ]
    )


def top_positions(scores: np.ndarray, k: int = DEPTH) -> list[int]:
    """The k best documents with a score above 0, ties broken by the lower position (as
    ``LexicalIndex.top_k`` does)."""
    ids = np.flatnonzero(scores > 0)
    order = np.lexsort((ids, -scores[ids]))[:k]
    return ids[order].tolist()


# ---------------------------------------------------------------------------------------------
# The project, through its own API
# ---------------------------------------------------------------------------------------------


def project_rankings(collection: Judged) -> tuple[Rankings, str]:
    """The project's default BM25: detected analyzer, ``build_lexical_index`` defaults."""
    analyzer, _ = choose_analyzer(collection.texts)
    index = build_lexical_index(collection.texts, analyzer=analyzer)
    rankings = [index.top_k(q, DEPTH)[0].tolist() for q in collection.queries.values()]
    params = ", ".join(f"{k} {v}" for k, v in index.params.items())
    return rankings, f"{analyzer.describe()}, tokenizer {analyzer.tokenizer}; {params}"


# ---------------------------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------------------------


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


QDRANT_CONFIG = (
    "qdrant-edge-py {version}: payload text index, TextIndexParams(tokenizer=Word, "
    "lowercase=True, stopwords=Language.English, stemmer=SnowballParams(English), "
    "scoring=True); TextQuery with the default Bm25Params (k 1.2, b 0.75); segments merged "
    "with EdgeShard.optimize() before searching"
)


def qdrant_rankings(collection: Judged) -> Rankings:
    """Qdrant Edge's BM25 over a payload text index (English stopwords, Snowball English)."""
    import qdrant_edge as q

    with tempfile.TemporaryDirectory(prefix="bm25-peers-qdrant-") as folder:
        # A shard needs a vector; the sparse one stays empty.
        config = q.EdgeConfig(sparse_vectors={"unused": q.EdgeSparseVectorParams()})
        shard = q.EdgeShard.create(folder, config)
        shard.update(q.UpdateOperation.create_field_index("text", qdrant_text_index(q)))
        for start in range(0, len(collection.texts), 1000):
            points = [
                q.Point(i, {}, {"text": collection.texts[i]})
                for i in range(start, min(start + 1000, len(collection.texts)))
            ]
            shard.update(q.UpdateOperation.upsert_points(points))
        shard.optimize()
        rankings = []
        for text in collection.queries.values():
            hits = shard.query(q.QueryRequest(limit=DEPTH, query=q.TextQuery("text", text)))
            # Sort as top_positions does, so ties do not depend on the engine's order.
            ranked = sorted(hits, key=lambda p: (-p.score, int(p.id)))
            rankings.append([int(p.id) for p in ranked])
        shard.close()
    return rankings


LANCEDB_CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no stemming, no stopwords": {"stem": False, "remove_stop_words": False},
}
LANCEDB_CONFIG = (
    "lancedb {version}, native FTS (lancedb.index.FTS): base_tokenizer simple, language "
    "English, lower_case, stem {stem}, remove_stop_words {stop}, ascii_folding, "
    "max_token_length 40; MatchQuery (OR) over the column, limit 100"
)


def lancedb_rankings(collection: Judged, options: dict[str, Any]) -> Rankings:
    """LanceDB's native full-text search with the FTS options given (defaults otherwise)."""
    import lancedb
    from lancedb.index import FTS
    from lancedb.query import MatchQuery

    with tempfile.TemporaryDirectory(prefix="bm25-peers-lancedb-") as folder:
        db = lancedb.connect(folder)
        rows = [{"id": i, "text": t} for i, t in enumerate(collection.texts)]
        table = db.create_table("docs", data=rows)
        table.create_index("text", config=FTS(**options))
        rankings = []
        for text in collection.queries.values():
            hits = (
                table.search(MatchQuery(text, "text"), query_type="fts")
                .limit(DEPTH)
                .select(["id", "_score"])
                .to_list()
            )
            ranked = sorted(hits, key=lambda h: (-h["_score"], h["id"]))
            rankings.append([int(h["id"]) for h in ranked])
    return rankings


# ---------------------------------------------------------------------------------------------
# Variants of the project's BM25, built with bm25s and PyStemmer directly
# ---------------------------------------------------------------------------------------------


@cache
def stopword_lists() -> dict[str, frozenset[str]]:
    """English stopword lists by name (see the report's legend for their origins)."""
    import stopwordsiso
    from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_EN_PLUS
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    lists: dict[str, Iterable[str]] = {
        "bm25s-en": STOPWORDS_EN,
        "nltk": STOPWORDS_EN_PLUS,
        "sklearn": ENGLISH_STOP_WORDS,
        "stopwords-iso": stopwordsiso.stopwords("en"),
        "none": (),
    }
    # The project's "words" tokenizer drops apostrophes ("don't" -> "dont"), so a listed
    # "don't" is also listed as "dont"; the other tokenizers split on them.
    return {
        name: frozenset(w.lower() for word in words for w in (word, word.translate(_APOSTROPHES)))
        for name, words in lists.items()
    }


TOKENIZER_LEGEND = (
    "words = the project's (word parts joined by -_./:# also kept whole, before the parts; an "
    "apostrophe inside a word dropped); words-digit-ids = words, a joined token kept whole only "
    "when it has a digit (ord-58213, v2.3.1; not flow-rate, u.s), the project's own test for an "
    "identifier (lexical.is_identifier_term); words-no-ids = words, never kept whole; "
    "words-possessive = words after a trailing 's is dropped (Lucene's EnglishPossessiveFilter); "
    "unicode-words = the project's for other languages (NFKC, splits on apostrophes); split = "
    "the peers': every character that is not a letter or digit splits (don't -> don, t)."
)
TOKENIZERS = (
    "words",
    "words-digit-ids",
    "words-no-ids",
    "words-possessive",
    "unicode-words",
    "split",
)
"""Tokenizer names, described in :data:`TOKENIZER_LEGEND`."""
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
_SPLIT = re.compile(r"[^\W_]+")
_APOSTROPHES = str.maketrans("", "", "'’")
_POSSESSIVE = re.compile(r"(?<=[^\W_])['’]s\b", re.IGNORECASE)
_JOINED = re.compile(f"[{re.escape(JOINERS)}]")


def _has_digit(term: str) -> bool:
    return any(c.isdigit() for c in term)


@dataclass(frozen=True)
class Recipe:
    """One BM25 configuration: analysis and scoring.

    Attributes:
        tokenizer: a key of :data:`TOKENIZERS`.
        stopwords: a key of :func:`stopword_lists`.
        stemmer: a PyStemmer algorithm, or None.
        k1: term-frequency saturation.
        b: length normalization.
        method: a bm25s method (:data:`METHODS`).
        dedup_query: count a repeated query term once (Qdrant) instead of again (the project,
            LanceDB).
    """

    tokenizer: str = "words"
    stopwords: str = "bm25s-en"
    stemmer: str | None = "english"
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    dedup_query: bool = False

    def __post_init__(self) -> None:
        checks = (
            ("tokenizer", self.tokenizer, TOKENIZERS),
            ("stopwords", self.stopwords, tuple(stopword_lists())),
            ("method", self.method, METHODS),
        )
        for name, value, valid in checks:
            if value not in valid:
                raise ValueError(f"{name} {value!r} is not one of: {', '.join(valid)}")

    def changes(self, base: Recipe) -> str:
        """What differs from ``base``, e.g. ``"k1 1.2, stopwords nltk"``."""
        parts = []
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(base, name)
            if mine != theirs:
                shown = {True: "on", False: "off", None: "none"}.get(mine, mine)
                parts.append(f"{name.replace('_', ' ')} {shown}")
        return ", ".join(parts) or "(the project's default)"

    def analysis(self) -> dict[str, Any]:
        """The fields that decide the terms (tokenizer, stopwords, stemmer)."""
        return {"tokenizer": self.tokenizer, "stopwords": self.stopwords, "stemmer": self.stemmer}

    def analyze(self, texts: Sequence[str]) -> list[list[str]]:
        """The terms of each text: tokens, stopwords dropped, alphabetic words stemmed."""
        if self.tokenizer == "split":
            raw = [_SPLIT.findall(t.lower()) for t in texts]
        else:
            # The project's tokenizer alone: lower-cased words, apostrophes dropped,
            # identifiers whole before their parts (a whole one holds a joiner).
            project_tokenizer = "unicode-words" if self.tokenizer == "unicode-words" else "words"
            if self.tokenizer == "words-possessive":
                texts = [_POSSESSIVE.sub("", t) for t in texts]
            raw = Analyzer("none", None, "none", project_tokenizer).tokenize_many(texts)
            if self.tokenizer in ("words-digit-ids", "words-no-ids"):
                with_digit = self.tokenizer == "words-digit-ids"
                raw = [
                    [t for t in terms if not _JOINED.search(t) or (with_digit and _has_digit(t))]
                    for terms in raw
                ]
        stop = stopword_lists()[self.stopwords]
        stem = _stem_function(self.stemmer)
        # As the project does: stopwords before stemming, only words without digits stemmed
        # (so an identifier kept whole stays as it is).
        return [[stem(t) for t in terms if t not in stop] for terms in raw]


PROJECT = Recipe()
"""The project's default BM25 for English, rebuilt here (checked against the real one)."""
CANDIDATE = Recipe(tokenizer="words-digit-ids", stopwords="nltk")
"""The two analysis changes that follow from the peers and the project's own rules, k1 and b
kept: the stopword list both peers use, and a joined token kept whole only when it is an
identifier by ``lexical.is_identifier_term`` (it has a digit)."""
K1S = (0.9, 1.2, 1.5, 1.8)
BS = (0.4, 0.5, 0.6, 0.75)


_ANALYZED: dict[tuple[str, Recipe], tuple[list[list[str]], list[list[str]]]] = {}


def _analyzed(collection: Judged, analysis: Recipe) -> tuple[list[list[str]], list[list[str]]]:
    """The terms of the documents and of the queries, kept for the other k1, b and methods."""
    key = (collection.name, analysis)
    if key not in _ANALYZED:
        queries = list(collection.queries.values())
        _ANALYZED[key] = (analysis.analyze(collection.texts), analysis.analyze(queries))
    return _ANALYZED[key]


def _stem_function(algorithm: str | None) -> Callable[[str], str]:
    if algorithm is None:
        return lambda word: word
    import Stemmer

    stemmer = Stemmer.Stemmer(algorithm)
    stems: dict[str, str] = {}

    def stem(word: str) -> str:
        if word not in stems:
            stems[word] = stemmer.stemWord(word) if word.isalpha() else word
        return stems[word]

    return stem


def recipe_rankings(collection: Judged, recipe: Recipe) -> Rankings:
    """Index the collection with bm25s as the recipe says and answer its judged queries."""
    import bm25s

    corpus, queries = _analyzed(collection, replace(Recipe(), **recipe.analysis()))
    model = bm25s.BM25(k1=recipe.k1, b=recipe.b, method=recipe.method)
    model.index(corpus, create_empty_token=False, show_progress=False)
    rankings = []
    for terms in queries:
        if recipe.dedup_query:
            terms = list(dict.fromkeys(terms))
        known = [t for t in terms if t in model.vocab_dict]
        scores = model.get_scores(known) if known else np.zeros(len(corpus))
        rankings.append(top_positions(np.asarray(scores)))
    return rankings


def variant_recipes() -> list[tuple[str, Recipe]]:
    """The variants measured with ``--variants``: (group, recipe), without duplicates."""
    one_at_a_time: list[tuple[str, Recipe]] = [
        ("k1, b", replace(PROJECT, k1=k1, b=b)) for k1, b in product(K1S, BS)
    ]
    one_at_a_time += [("method", replace(PROJECT, method=m)) for m in METHODS]
    one_at_a_time += [("stopwords", replace(PROJECT, stopwords=s)) for s in stopword_lists()]
    one_at_a_time += [("stemmer", replace(PROJECT, stemmer=s)) for s in ("english", "porter", None)]
    one_at_a_time += [("tokenizer", replace(PROJECT, tokenizer=t)) for t in TOKENIZERS]
    one_at_a_time += [("query terms", replace(PROJECT, dedup_query=True))]
    peers_recipe = Recipe(tokenizer="split", stopwords="nltk", k1=1.2, dedup_query=True)
    combined = [("the peers' recipe", peers_recipe), ("candidate", CANDIDATE)]
    # The changes that help, crossed with k1 and b, to see whether a choice holds in its
    # neighbourhood or only at one point.
    combined += [
        ("grid", Recipe(tokenizer=t, stopwords="nltk", k1=k1, b=b))
        for t, k1, b in product(("words", "words-digit-ids", "split"), K1S, BS)
    ]
    seen: set[Recipe] = set()
    unique = []
    for group, recipe in one_at_a_time + combined:
        if recipe not in seen:
            seen.add(recipe)
            unique.append((group, recipe))
    return unique


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One system's figures.

    Attributes:
        kind: ``"project"``, ``"peer"`` or the variant group.
        name: the system or the change from the project's default.
        ndcg: collection name to the per-query nDCG@10 array.
        seconds: wall seconds to index and answer both collections.
        recipe: the variant's recipe; None for the project's API and the peers.
    """

    kind: str
    name: str
    ndcg: dict[str, np.ndarray] = field(compare=False)
    seconds: float
    recipe: Recipe | None = None

    def mean(self, collection: str) -> float:
        return float(self.ndcg[collection].mean())


def measure(
    kind: str,
    name: str,
    run: Callable[[Judged], Rankings],
    collections: Sequence[Judged],
    recipe: Recipe | None = None,
) -> Row:
    """Run a system on every collection and score it; prints a line as it goes."""
    start = time.perf_counter()
    ndcg = {c.name: per_query_ndcg(c, run(c)) for c in collections}
    row = Row(kind, name, ndcg, time.perf_counter() - start, recipe)
    figures = "  ".join(f"{c.name} {row.mean(c.name):.4f}" for c in collections)
    print(f"{kind:18} {name:58} {figures}  ({row.seconds:.1f} s)", file=sys.stderr, flush=True)
    return row


def _neighbours(recipe: Recipe, measured: dict[Recipe, Row]) -> list[Row]:
    """The measured recipes one step away from ``recipe`` in :data:`K1S` or :data:`BS`."""
    others: list[Recipe] = []
    if recipe.k1 in K1S:
        at = K1S.index(recipe.k1)
        others += [replace(recipe, k1=K1S[i]) for i in (at - 1, at + 1) if 0 <= i < len(K1S)]
    if recipe.b in BS:
        at = BS.index(recipe.b)
        others += [replace(recipe, b=BS[i]) for i in (at - 1, at + 1) if 0 <= i < len(BS)]
    return [measured[other] for other in others if other in measured]


def report(
    rows: list[Row],
    collections: Sequence[Judged],
    notes: list[str],
    configs: list[str],
    started: str,
) -> str:
    """The markdown report: setup, the table, and the variants that reach the best peer."""
    names = [c.name for c in collections]
    peers = [r for r in rows if r.kind == "peer"]
    best = {n: max((r.mean(n) for r in peers), default=float("nan")) for n in names}
    lines = [
        "# BM25 nDCG@10: the project against Qdrant Edge and LanceDB, one run",
        "",
        f"Run {started} with `{' '.join([Path(sys.executable).as_posix(), *sys.argv])}`.",
        "",
        'Whole documents (title + "\\n" + text), every judged query, top '
        f"{DEPTH}, nDCG@{CUTOFF} (`search_core.evaluation.ndcg_at_k`); "
        + ", ".join(
            f"{c.name}: {len(c.texts):,} documents, {len(c.queries)} judged queries"
            for c in collections
        )
        + ".",
        "",
        f"Machine: {machine()}.",
        "",
        "Versions: "
        + ", ".join(
            f"{d} {version(d)}"
            for d in ("bm25s", "PyStemmer", "qdrant-edge-py", "lancedb", "stopwordsiso")
        )
        + ".",
        "",
        "Configurations:",
        "",
        *[f"- {c}" for c in configs],
        *[f"- note: {n}" for n in notes],
        "",
    ]
    columns = ["kind", "system or change from the project's default", *names]
    if peers:
        columns += [*(f"vs best peer, {n}" for n in names), ">= best peer on all"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [r.kind, r.name, *(f"{r.mean(n):.4f}" for n in names)]
        if peers:
            deltas = [r.mean(n) - best[n] for n in names]
            reaches = r.kind != "peer" and all(d >= 0 for d in deltas)
            cells += [*(f"{d:+.4f}" for d in deltas), "yes" if reaches else ""]
        lines.append("| " + " | ".join(cells) + " |")
    if not peers:
        return "\n".join(lines) + "\n"
    reaching = [r for r in rows if r.kind != "peer" and all(r.mean(n) >= best[n] for n in names)]
    reaching.sort(key=lambda r: -min(r.mean(n) - best[n] for n in names))
    lines += [
        "",
        f"Best peer: {', '.join(f'{n} {best[n]:.4f}' for n in names)}. "
        f"{len(reaching)} of the project's variants reach it on every collection (by their "
        "smallest margin; a variant's k1/b neighbours are the measured recipes one step away "
        f"in k1 {K1S} or b {BS}, all else equal):",
        "",
    ]
    recipes = {r.recipe: r for r in rows if r.recipe is not None}
    for r in reaching:
        near = _neighbours(r.recipe, recipes) if r.recipe is not None else []
        also = sum(all(x.mean(n) >= best[n] for n in names) for x in near)
        lines.append(
            f"- {r.kind}: {r.name}: "
            + ", ".join(f"{n} {r.mean(n):.4f} ({r.mean(n) - best[n]:+.4f})" for n in names)
            + f"; k1/b neighbours that also reach it: {also} of {len(near)}"
        )
    if not reaching:
        lines.append("- none")
    lines += [
        "",
        "Paired bootstrap (10,000 resamples of the queries): the mean per-query difference "
        "against the best peer of each collection, and its 95% interval:",
        "",
    ]
    shown = [r for r in rows if r.kind in ("project", "candidate")] + reaching[:3]
    for r in dict.fromkeys(shown):
        cells = []
        for n in names:
            peer = max(peers, key=lambda p, at=n: p.mean(at))  # type: ignore[misc]
            low, high = bootstrap_interval(r.ndcg[n] - peer.ndcg[n], resamples=10_000)
            cells.append(
                f"{n} vs {peer.name} {r.mean(n) - peer.mean(n):+.4f} [{low:+.4f}, {high:+.4f}]"
            )
        lines.append(f"- {r.kind}: {r.name}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
    parser.add_argument(
        "--variants", action="store_true", help="also measure variants of the project's BM25"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    collections = [load_judged(name) for name in args.collections]
    notes: list[str] = []
    configs: list[str] = []
    rows: list[Row] = []

    described: list[str] = []

    def project(c: Judged) -> Rankings:
        rankings, description = project_rankings(c)
        described.append(f"{c.name}: {description}")
        return rankings

    rows.append(measure("project", "search_core default", project, collections))
    configs.append(
        "project: `build_lexical_index(texts, analyzer=choose_analyzer(texts)[0])`, "
        "`LexicalIndex.top_k(query, 100)`; " + "; ".join(described)
    )

    if installed("qdrant_edge"):
        configs.append("Qdrant: " + QDRANT_CONFIG.format(version=version("qdrant-edge-py")))
        rows.append(measure("peer", "Qdrant Edge, text index BM25", qdrant_rankings, collections))
    else:
        notes.append("Qdrant skipped: qdrant-edge-py is not installed (pip install qdrant-edge-py)")
        print(notes[-1], file=sys.stderr)
    if installed("lancedb"):
        for label, options in LANCEDB_CONFIGS.items():
            configs.append(
                f"LanceDB, {label}: "
                + LANCEDB_CONFIG.format(
                    version=version("lancedb"),
                    stem=options.get("stem", True),
                    stop=options.get("remove_stop_words", True),
                )
            )
            rows.append(
                measure(
                    "peer",
                    f"LanceDB FTS, {label}",
                    lambda c, o=options: lancedb_rankings(c, o),  # type: ignore[misc]
                    collections,
                )
            )
    else:
        notes.append("LanceDB skipped: lancedb is not installed (pip install lancedb)")
        print(notes[-1], file=sys.stderr)

    if args.variants:
        rebuilt = measure(
            "check",
            "project's default rebuilt with bm25s here",
            lambda c: recipe_rankings(c, PROJECT),
            collections,
            PROJECT,
        )
        same = all(np.array_equal(rebuilt.ndcg[c.name], rows[0].ndcg[c.name]) for c in collections)
        notes.append(
            "the project's default rebuilt in this script gives the same nDCG@10 as "
            f"search_core, query for query: {'yes' if same else 'NO'}"
        )
        rows.append(rebuilt)
        for group, recipe in variant_recipes():
            if recipe == PROJECT:
                continue
            rows.append(
                measure(
                    group,
                    recipe.changes(PROJECT),
                    lambda c, r=recipe: recipe_rankings(c, r),  # type: ignore[misc]
                    collections,
                    recipe,
                )
            )
        configs.append(
            "variants: bm25s `BM25(k1, b, method).index` on terms made here, scored with "
            "`get_scores`, top 100 ties broken by the lower position; the project's default "
            "is tokenizer words, stopwords bm25s-en, stemmer english (Snowball English, "
            "PyStemmer), k1 1.5, b 0.75, method lucene, a repeated query term counted again. "
            "Stopword lists (words with an apostrophe also listed without it, as the words "
            "tokenizer drops it; entries in brackets): bm25s-en = "
            "`bm25s.stopwords.STOPWORDS_EN` (Lucene's); nltk = `bm25s.stopwords."
            "STOPWORDS_EN_PLUS` (NLTK's 179, the list both peers use: indexing each candidate "
            "word alone, Qdrant and LanceDB drop the same 147 of them, all of NLTK's words "
            "without an apostrophe that were tried); sklearn = `ENGLISH_STOP_WORDS`; "
            "stopwords-iso = `stopwordsiso.stopwords('en')`: "
            + ", ".join(f"{name} [{len(words)}]" for name, words in stopword_lists().items())
            + ". Tokenizers: "
            + TOKENIZER_LEGEND
        )

    text = report(rows, collections, notes, configs, started)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
