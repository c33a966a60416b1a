"""Tests for search_core.lexical: the tokenizer, both BM25 engines and bm25s persistence."""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Callable
from itertools import pairwise

import bm25s
import numpy as np
import pytest
import rank_bm25
from hypothesis import given, settings
from hypothesis import strategies as st

from search_core import analysis
from search_core.analysis import ENGLISH, analyzer_for
from search_core.lexical import (
    ENGINES,
    Bm25sIndex,
    LexicalIndex,
    OkapiReferenceIndex,
    build_lexical_index,
    identifier_matches,
    is_identifier_term,
    tokenize,
    tokenize_many,
)

ORDERS = [
    "Order ID: 12345, status: shipped",
    "The cat sat on the mat.",
    "Order ID: 67890, status: pending",
]

# Long enough that no word is in more than half the documents, so rank-bm25's idf stays positive.
FRUIT = [
    "apple banana apple",
    "banana cherry",
    "cherry cherry cherry date",
    "elderberry fig",
    "grape",
    "apple grape grape honeydew kiwi",
]

ENGINE_NAMES = sorted(ENGINES)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# --- tokenizer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Order ID: 12345,", ["order", "id", "12345"]),
        ("CVE-2024-1234", ["cve-2024-1234", "cve", "2024", "1234"]),
        ("ORD-58213", ["ord-58213", "ord", "58213"]),
        ("v2.3.1", ["v2.3.1", "v2", "3", "1"]),
        ("SKU_BT_4471", ["sku_bt_4471", "sku", "bt", "4471"]),
        ("see issue#42", ["see", "issue#42", "issu", "42"]),
        ("It ends.", ["end"]),  # trailing full stop: no compound
        ("Patched CVE-2024-1234.", ["patch", "cve-2024-1234", "cve", "2024", "1234"]),
        ("Ends. Next", ["end", "next"]),
        ("The cats are running", ["cat", "run"]),  # stopwords dropped, words stemmed
        ("on-the-fly", ["on-the-fly", "fli"]),  # parts are stopword-filtered and stemmed
        ("Café résumé été", ["café", "résumé", "été"]),  # unicode letters kept
        ("3 of 42 items cost 19.99", ["3", "42", "item", "cost", "19.99", "19", "99"]),
        ("don't", ["dont"]),  # an apostrophe inside a word is dropped, not split on
        ("", []),
        ("the and of ...", []),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


@pytest.mark.parametrize(
    ("document", "query"),
    [
        ("Order ID: 12345,", "order 12345"),
        ("CVE-2024-1234", "CVE-2024-1234"),
        ("CVE-2024-1234", "cve 2024 1234"),
        ("Firmware v2.3.1 released", "v2.3.1"),
        ("Ticket ORD-58213 closed", "ord 58213"),
    ],
)
def test_query_terms_are_all_in_the_document(document: str, query: str) -> None:
    assert tokenize(query)
    assert set(tokenize(query)) <= set(tokenize(document))
    index = build_lexical_index([document, "something unrelated"])
    ids, _ = index.top_k(query, k=2)
    assert ids.tolist() == [0]


def test_tokenize_many_matches_tokenize_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [*ORDERS, *FRUIT, "CVE-2024-1234 again", ""]
    monkeypatch.setattr(analysis, "_BATCH_SIZE", 2)
    assert tokenize_many(texts) == [tokenize(text) for text in texts]
    assert tokenize_many(iter(texts)) == tokenize_many(texts)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="aZé1İß_-./:#'’ \t\n.,!?")))
def test_tokenize_never_raises_and_gives_lower_case_tokens(text: str) -> None:
    tokens = tokenize(text)
    for token in tokens:
        assert token
        assert token == token.lower()
        assert not any(char.isspace() for char in token)


# --- bm25s engine ----------------------------------------------------------------------------


def test_bm25s_ranks_the_matching_order_first() -> None:
    index = build_lexical_index(ORDERS)
    ids, scores = index.top_k("order 12345", k=3)
    # Doc 2 matches "order" only; the cat document matches nothing and is left out.
    assert ids.tolist() == [0, 2]
    assert ids.dtype == np.int64
    assert scores.dtype == np.float32
    assert scores[0] > scores[1] > 0


def _lucene_bm25(corpus: list[list[str]], query: list[str], k1: float, b: float) -> list[float]:
    """BM25 as bm25s's "lucene" method defines it, from the tokenized corpus."""
    n = len(corpus)
    avgdl = sum(len(doc) for doc in corpus) / n
    df = Counter(term for doc in corpus for term in set(doc))
    expected = []
    for doc in corpus:
        tf = Counter(doc)
        score = 0.0
        for term in query:
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        expected.append(score)
    return expected


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.5), (0.9, 0.0), (2.0, 1.0)])
@pytest.mark.parametrize("query", ["apple cherry", "grape", "banana date kiwi", "apple apple"])
def test_bm25s_scores_match_the_formula(k1: float, b: float, query: str) -> None:
    index = build_lexical_index(FRUIT, "bm25s", k1=k1, b=b)
    expected = _lucene_bm25(tokenize_many(FRUIT), tokenize(query), k1, b)
    scores = index.scores(query)
    assert scores.dtype == np.float32
    assert scores.shape == (len(FRUIT),)
    assert scores.tolist() == pytest.approx(expected, rel=1e-5)


def test_bm25s_scores_match_bm25s_get_scores() -> None:
    corpus = tokenize_many(FRUIT)
    reference = bm25s.BM25(method="lucene")
    reference.index(corpus, create_empty_token=False, show_progress=False)
    query = tokenize("apple cherry grape")
    index = build_lexical_index(FRUIT)
    np.testing.assert_array_equal(index.scores("apple cherry grape"), reference.get_scores(query))


def test_bm25s_ignores_unknown_query_terms() -> None:
    index = build_lexical_index(FRUIT)
    np.testing.assert_array_equal(index.scores("apple zebra"), index.scores("apple"))


# --- okapi-reference engine ------------------------------------------------------------------


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.3)])
@pytest.mark.parametrize("query", ["apple cherry", "Grape", "banana date kiwi", "zebra"])
def test_okapi_reference_scores_equal_rank_bm25(k1: float, b: float, query: str) -> None:
    reference = rank_bm25.BM25Okapi([text.lower().split() for text in FRUIT], k1=k1, b=b)
    index = build_lexical_index(FRUIT, "okapi-reference", k1=k1, b=b)
    assert isinstance(index, OkapiReferenceIndex)
    scores = index.scores(query)
    assert scores.dtype == np.float32
    assert scores.tolist() == pytest.approx(reference.get_scores(query.lower().split()).tolist())


def test_okapi_reference_ranks_sensibly() -> None:
    index = build_lexical_index(FRUIT, "okapi-reference")
    ids, _ = index.top_k("cherry", k=10)
    # Three cherries in a four-word document beat one in a two-word document.
    assert ids.tolist() == [2, 1]
    ids, _ = index.top_k("apple grape", k=1)
    assert ids.tolist() == [5]


# --- shared top_k behaviour ------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_allowed_mask_filters_inside_the_search(engine: str) -> None:
    # Every document matches "order"; the ones with more repeats score higher.
    texts = [" ".join(["order"] * (1 + i % 7) + ["filler"] * 5 + [f"w{i}"]) for i in range(40)]
    texts += ["nothing here"] * 10
    index = build_lexical_index(texts, engine)
    allowed = np.zeros(index.size, dtype=bool)
    allowed[::5] = True  # 8 matching documents, few of them among the best overall
    ids, _ = index.top_k("order", k=6, allowed=allowed)
    assert len(ids) == 6
    assert allowed[ids].all()
    expected = [i for i in np.argsort(-index.scores("order"), kind="stable") if allowed[i]]
    assert ids.tolist() == expected[:6]
    # Asking for more than the 8 allowed matches returns just those.
    ids, _ = index.top_k("order", k=20, allowed=allowed)
    assert sorted(ids.tolist()) == list(range(0, 40, 5))


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_ties_are_broken_by_lower_id(engine: str) -> None:
    texts = ["plain text here", "order shipped", "other words", "order shipped", "order shipped"]
    index = build_lexical_index(texts, engine)
    ids, scores = index.top_k("order", k=2)
    assert ids.tolist() == [1, 3]
    assert scores[0] == scores[1]


@pytest.mark.parametrize("engine", ENGINE_NAMES)
@pytest.mark.parametrize(
    ("texts", "query", "k"),
    [
        (ORDERS, "", 5),  # empty query
        (ORDERS, "zebra", 5),  # no match
        (ORDERS, "of and a", 5),  # only stopwords for bm25s; words absent for okapi
        (ORDERS, "order", 0),  # k = 0
        ([], "order", 5),  # empty corpus
        (["", "the a of"], "order", 5),  # corpus without any term
    ],
)
def test_no_result_cases_give_empty_arrays(
    engine: str, texts: list[str], query: str, k: int
) -> None:
    index = build_lexical_index(texts, engine)
    assert index.size == len(texts)
    ids, scores = index.top_k(query, k)
    assert ids.dtype == np.int64
    assert scores.dtype == np.float32
    assert len(ids) == len(scores) == 0


@pytest.mark.parametrize("engine", ENGINE_NAMES)
@pytest.mark.parametrize(
    "allowed",
    [
        np.ones(2, dtype=bool),  # wrong length
        np.ones(3, dtype=np.int64),  # not bool
        [True, True, True],  # not an array
    ],
)
def test_invalid_allowed_mask_raises(engine: str, allowed: object) -> None:
    index = build_lexical_index(ORDERS, engine)
    with pytest.raises(ValueError, match="allowed"):
        index.top_k("order", 2, allowed=allowed)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_negative_k_raises(engine: str) -> None:
    with pytest.raises(ValueError, match="k must be"):
        build_lexical_index(ORDERS, engine).top_k("order", -1)


WORDS = ["order", "orders", "cat", "mat", "12345", "CVE-2024-1234", "shipped", "the", "apple"]


@settings(max_examples=100, deadline=None)
@given(
    engine=st.sampled_from(ENGINE_NAMES),
    texts=st.lists(
        st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join), min_size=1, max_size=25
    ),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    k=st.integers(min_value=0, max_value=30),
    data=st.data(),
)
def test_top_k_is_sorted_and_within_the_mask(
    engine: str, texts: list[str], query: str, k: int, data: st.DataObject
) -> None:
    index = build_lexical_index(texts, engine)
    mask = data.draw(st.lists(st.booleans(), min_size=len(texts), max_size=len(texts)))
    allowed = np.array(mask, dtype=bool)
    ids, scores = index.top_k(query, k, allowed=allowed)
    all_scores = index.scores(query)
    assert len(ids) == min(k, int(((all_scores > 0) & allowed).sum()))
    assert allowed[ids].all()
    assert (scores > 0).all()
    np.testing.assert_array_equal(scores, all_scores[ids])
    for (id_a, score_a), (id_b, score_b) in pairwise(zip(ids, scores, strict=True)):
        assert score_a > score_b or (score_a == score_b and id_a < id_b)


# --- persistence -----------------------------------------------------------------------------


def test_files_round_trip_gives_identical_scores() -> None:
    index = build_lexical_index([*ORDERS, *FRUIT, "Café CVE-2024-1234"], k1=1.2, b=0.6)
    assert isinstance(index, Bm25sIndex)
    files = index.to_files()
    assert set(files) == {
        "bm25_data.npy",
        "bm25_indices.npy",
        "bm25_indptr.npy",
        "bm25_vocab.json",
        "bm25_params.json",
    }
    assert not any(content.startswith(b"\x80") for content in files.values())
    loaded = Bm25sIndex.from_files(files)
    assert loaded.size == index.size
    assert loaded.params == index.params == {"k1": 1.2, "b": 0.6, "method": "lucene"}
    assert loaded.vocabulary == index.vocabulary
    for query in ["order 12345", "café", "cve-2024-1234", "apple cherry grape", "zebra"]:
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))


def test_empty_index_round_trips() -> None:
    index = build_lexical_index(["", "the"])
    assert isinstance(index, Bm25sIndex)
    loaded = Bm25sIndex.from_files(index.to_files())
    assert loaded.size == 2
    assert len(loaded.top_k("anything", 3)[0]) == 0


def _corrupt(files: dict[str, bytes], name: str, content: bytes | None) -> dict[str, bytes]:
    changed = dict(files)
    if content is None:
        del changed[name]
    else:
        changed[name] = content
    return changed


@pytest.mark.parametrize(
    ("name", "make_content", "message"),
    [
        ("bm25_data.npy", lambda b: b[: len(b) - 3], "bm25_data.npy"),
        ("bm25_indices.npy", lambda b: b[:20], "bm25_indices.npy"),
        ("bm25_indptr.npy", lambda b: b[: len(b) // 2], "bm25_indptr.npy"),
        ("bm25_data.npy", lambda b: b"\x80\x04\x95garbage", "not a .npy"),
        ("bm25_data.npy", lambda b: _npy(np.zeros(3, dtype=np.float64)), "float32"),
        ("bm25_indptr.npy", lambda b: _npy(np.zeros(2, dtype=np.int64)), "indptr has length"),
        ("bm25_indices.npy", lambda b: _npy(np.zeros(1, dtype=np.int64)), "indices has length"),
        ("bm25_vocab.json", lambda b: b'{"not": "a list"}', "list of strings"),
        ("bm25_vocab.json", lambda b: b"[\xff", "bm25_vocab.json"),
        ("bm25_params.json", lambda b: b"{", "bm25_params.json"),
        ("bm25_params.json", lambda b: b.replace(b'"size"', b'"sighs"'), "size"),
        ("bm25_params.json", lambda b: b.replace(b'"lucene"', b'"robertson"'), "lucene"),
        ("bm25_params.json", lambda b: None, "missing"),
    ],
)
def test_corrupted_files_raise_value_error(
    name: str, make_content: Callable[[bytes], bytes | None], message: str
) -> None:
    files = Bm25sIndex.build(ORDERS).to_files()
    with pytest.raises(ValueError, match=message):
        Bm25sIndex.from_files(_corrupt(files, name, make_content(files[name])))


def test_inconsistent_document_ids_raise_value_error() -> None:
    files = Bm25sIndex.build(ORDERS).to_files()
    params = json.loads(files["bm25_params.json"])
    params["size"] = 1  # fewer documents than the ids stored in bm25_indices.npy
    files["bm25_params.json"] = json.dumps(params).encode()
    with pytest.raises(ValueError, match=r"document ids in \[0, 1\)"):
        Bm25sIndex.from_files(files)


# --- registry --------------------------------------------------------------------------------


def test_registry_names_and_defaults() -> None:
    assert ENGINE_NAMES == ["bm25s", "okapi-reference"]
    index = build_lexical_index(ORDERS)
    assert isinstance(index, LexicalIndex)
    assert index.engine == "bm25s"
    assert index.size == 3
    assert index.params == {"k1": 1.5, "b": 0.75, "method": "lucene"}
    okapi = build_lexical_index(ORDERS, "okapi-reference", k1=1.2, b=0.5)
    assert okapi.engine == "okapi-reference"
    assert okapi.params == {"k1": 1.2, "b": 0.5, "epsilon": 0.25}


def test_unknown_engine_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'faiss'.*bm25s.*okapi-reference"):
        build_lexical_index(ORDERS, "faiss")


def test_identifier_matches_need_every_rare_identifier() -> None:
    texts = [f"Ticket about order ORD-{n} filed in 2024." for n in range(100, 150)]
    texts += [
        "Advisory CVE-2024-1234 for gateway 4.2.1.",
        "Release note for version 4.2.1 in 2024.",
    ]
    index = build_lexical_index(texts)
    assert is_identifier_term("12345") and is_identifier_term("p0301")
    assert not is_identifier_term("42") and not is_identifier_term("order")
    assert identifier_matches(index, "ORD-123").tolist() == [23]
    assert identifier_matches(index, "order 123").tolist() == [23]
    assert identifier_matches(index, "CVE-2024-1234").tolist() == [50]
    assert identifier_matches(index, "cve 2024 1234 on 4.2.1").tolist() == [50]
    # "2024" is in 52 of 52 texts: far above sqrt(N), so it is not an identifier
    assert identifier_matches(index, "2024").tolist() == []
    assert identifier_matches(index, "order 999").tolist() == []


# --- analyzers -------------------------------------------------------------------------------

GERMAN = [
    "Die Rechnung für die Bestellung ORD-58213 fehlt.",
    "Der Drucker meldet einen Papierstau.",
    "Rechnungen werden per E-Mail verschickt.",
]


def test_queries_are_analyzed_as_the_documents_were() -> None:
    german = analyzer_for("de")
    index = build_lexical_index(GERMAN, analyzer=german)
    assert isinstance(index, Bm25sIndex) and index.analyzer == german
    # "Rechnungen" and "Rechnung" share the stem; English analysis keeps them apart
    assert sorted(index.top_k("Rechnungen", 3)[0].tolist()) == [0, 2]
    assert build_lexical_index(GERMAN).top_k("Rechnungen", 3)[0].tolist() == [2]
    # identifiers are found through the same analysis
    assert identifier_matches(index, "ord-58213").tolist() == [0]


def test_files_round_trip_keeps_scores_with_the_given_analyzer() -> None:
    chinese = analyzer_for("zh")
    texts = ["北京的天气很好", "上海的地铁很方便", "订单ORD-58213已发货"]
    index = Bm25sIndex.build(texts, analyzer=chinese)
    loaded = Bm25sIndex.from_files(index.to_files(), chinese)
    assert loaded.analyzer == chinese and loaded.vocabulary == index.vocabulary
    for query in ("天气", "地铁方便", "ORD-58213"):
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))
        assert loaded.scores(query).max() > 0
    assert Bm25sIndex.from_files(index.to_files()).analyzer == ENGLISH  # the default


def test_the_reference_engine_ignores_the_analyzer() -> None:
    plain = build_lexical_index(GERMAN, "okapi-reference")
    german = build_lexical_index(GERMAN, "okapi-reference", analyzer=analyzer_for("de"))
    np.testing.assert_array_equal(plain.scores("rechnungen"), german.scores("rechnungen"))
