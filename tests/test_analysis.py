"""Tests for search_core.analysis: analyzers per language, detection, and their use by builds.

The judged sets in tests/data/multilingual/<lang>/ (German, Spanish, Russian, Arabic) were
written for these tests: 40-45 short documents and 15-20 queries each, the queries in other
inflections than the documents' words (``Passwörter zurücksetzen`` for a document that says
``Passwort``), plus two identifier queries. Graded 2 (the answer) or 1 (related).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import Stemmer

from search_core import analysis, lexical
from search_core.analysis import (
    ENGLISH,
    LANGUAGES,
    NO_ANALYSIS,
    Analyzer,
    analyzer_for,
    check_language,
    choose_analyzer,
    detect,
    detect_language,
)
from search_core.baselines import plain_bm25s_run
from search_core.cli import main
from search_core.collection import (
    CURRENT_FILE,
    MANIFEST_FILE,
    BuildOptions,
    build_collection,
    manifest_analyzer,
    open_collection,
    read_manifest,
)
from search_core.evaluation import (
    evaluate_collection,
    evaluate_run,
    load_qrels,
    load_queries,
)
from search_core.lexical import Bm25sIndex, build_lexical_index
from search_core.search import SearchParams, run_search
from search_core.storage import json_bytes, sha256_bytes
from tests.fake_embedder import FakeEmbedder

MULTILINGUAL = Path(__file__).parent / "data" / "multilingual"
SAMPLE_DATA = Path(__file__).parents[1] / "sample_data"
SETS = ("de", "es", "ru", "ar")
IDENTIFIERS = ("ORD-58213", "CVE-2023-4410", "TSB-21-044")
# Snowball languages without a stopword list in stopwordsiso (see the module docstring).
WITHOUT_STOPWORDS = {"ne", "ta", "yi"}


def corpus_texts(lang: str) -> list[str]:
    rows = (MULTILINGUAL / lang / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(row)["text"] for row in rows]


# --- registry and analyzers ------------------------------------------------------------------


def test_every_snowball_stemmer_has_a_language_with_stopwords() -> None:
    stemmers = {a.stemmer: code for code, a in LANGUAGES.items() if a.stemmer}
    algorithms = set(Stemmer.algorithms()) - {"porter", "dutch_porter"}  # English/Dutch variants
    assert algorithms <= set(stemmers)
    for algorithm in algorithms:
        code = stemmers[algorithm]
        assert len(code) == 2 and LANGUAGES[code].name == algorithm
        assert bool(LANGUAGES[code].stopword_set) == (code not in WITHOUT_STOPWORDS), code


def test_collections_built_before_keep_the_first_release_analysis() -> None:
    texts = ["The cats are running", "Order ID: 12345,", "don't on-the-fly", "Café été 19.99"]
    assert ENGLISH.origin == "legacy"
    assert ENGLISH.stopword_set == lexical.STOPWORDS
    assert ENGLISH.tokenize_many(texts) == lexical.tokenize_many(texts)
    assert ENGLISH.tokenize("The cats are running") == ["cat", "run"]


def test_english_drops_nltk_stopwords_and_keeps_only_identifiers_whole() -> None:
    english = LANGUAGES["en"]
    assert english == analyzer_for("en", origin="detected")
    # the first release's analysis but for the stopword list and the identifier rule
    assert replace(english, stopwords="bm25s-en", tokenizer="words") == ENGLISH
    assert english.stopword_set > lexical.STOPWORDS  # NLTK's list holds bm25s's short one
    assert {"doesn't", "doesnt", "very", "own"} <= english.stopword_set
    assert english.tokenize("flow-rate of ORD-58213, v2.3.1 doesn't") == [
        "flow", "rate", "ord-58213", "ord", "58213", "v2.3.1", "v2", "3", "1",
    ]  # fmt: skip


@pytest.mark.parametrize("language", [*LANGUAGES, "none"])
def test_identifiers_stay_whole_in_every_language(language: str) -> None:
    analyzer = analyzer_for(language)
    terms = analyzer.tokenize(f"x {IDENTIFIERS[0]}, {IDENTIFIERS[1]} ({IDENTIFIERS[2]}).")
    for identifier in IDENTIFIERS:
        assert identifier.lower() in terms, (language, terms)
    # the parts follow, unstemmed numbers included
    assert {"58213", "2023", "4410", "044"} <= set(terms)


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("zh", "订单ORD-58213已发货", ["订单", "ord-58213", "ord", "58213", "已发", "发货"]),
        ("zh", "手机 iPhone", ["手机", "iphone"]),
        ("zh", "猫", ["猫"]),  # a lone character is its own term
        ("ja", "東京の天気", ["東京", "京の", "の天", "天気"]),
        ("ko", "한국어 분석", ["한국", "국어", "분석"]),
        ("th", "ภาษาไทย", ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"]),
        ("ja", "ｶﾀｶﾅ", ["カタ", "タカ", "カナ"]),  # half-width kana are normalized (NFKC)
    ],
)
def test_scripts_without_spaces_give_character_bigrams(
    language: str, text: str, expected: list[str]
) -> None:
    assert analyzer_for(language).tokenize(text) == expected


def test_bigrams_match_a_query_inside_a_longer_run() -> None:
    texts = ["北京的天气很好", "上海的地铁很方便", "订单ORD-58213已发货"]
    index = build_lexical_index(texts, analyzer=analyzer_for("zh"))
    assert index.top_k("天气", 3)[0].tolist() == [0]
    assert index.top_k("地铁方便吗", 3)[0].tolist() == [1]
    assert index.top_k("ORD-58213", 3)[0].tolist() == [2]


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        # Devanagari vowel signs are marks: the word stays one word, then it is stemmed
        ("hi", "हिन्दी किताबें", ["हिन्द", "किताब"]),
        # an apostrophe splits and the elided article is a stopword
        ("fr", "L'école d'hiver", ["écol", "hiv"]),
        ("de", "Die Rechnungen wurden storniert", ["rechnung", "storniert"]),
        ("ru", "Заблокированные карты", ["заблокирова", "карт"]),
        ("es", "Las tarjetas bloqueadas", ["tarjet", "bloqu"]),
        ("none", "Die Rechnungen wurden", ["die", "rechnungen", "wurden"]),
    ],
)
def test_language_analysis(language: str, text: str, expected: list[str]) -> None:
    assert analyzer_for(language).tokenize(text) == expected


def test_tokenize_many_equals_tokenize_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [*corpus_texts("ru")[:5], "订单ORD-58213已发货", "", "हिन्दी"]
    monkeypatch.setattr(analysis, "_BATCH_SIZE", 2)
    for analyzer in (analyzer_for("ru"), analyzer_for("zh"), NO_ANALYSIS):
        assert analyzer.tokenize_many(texts) == [analyzer.tokenize(text) for text in texts]


def test_analyzer_round_trips_through_a_dict() -> None:
    for analyzer in (*LANGUAGES.values(), NO_ANALYSIS, ENGLISH):
        copy = Analyzer.from_dict(json.loads(json.dumps(analyzer.to_dict())))
        assert copy == analyzer and copy.origin == analyzer.origin


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**ENGLISH.to_dict(), "stemmer": "klingon"},
            r"stemmer 'klingon' is not one of: none, arabic",
        ),
        ({**ENGLISH.to_dict(), "tokenizer": "spaces"}, r"tokenizer 'spaces'.*cjk-bigrams"),
        ({**ENGLISH.to_dict(), "extra": 1}, r"unknown keys \['extra'\]"),
        ({"language": "en"}, r"missing keys \['stemmer', 'stopwords', 'tokenizer'\]"),
        ("en", "expected an object"),
    ],
)
def test_invalid_analyzer_dicts_are_refused(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Analyzer.from_dict(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("setting", ["xx", "german", "", "auto-detect"])
def test_unknown_language_lists_the_valid_ones(setting: str) -> None:
    pattern = r"unknown language .*auto, none or an ISO 639-1 code: .*de \(german\)"
    with pytest.raises(ValueError, match=pattern):
        check_language(setting)
    with pytest.raises(ValueError, match=pattern):
        analyzer_for(setting)
    with pytest.raises(ValueError, match=pattern):
        BuildOptions(language=setting)


def test_settings_choose_without_reading_the_texts() -> None:
    assert choose_analyzer([], "DE") == (LANGUAGES["de"], None)
    assert choose_analyzer([], "none") == (NO_ANALYSIS, None)
    analyzer, detection = choose_analyzer(corpus_texts("es"), "auto")
    assert analyzer == LANGUAGES["es"] and analyzer.origin == "detected"
    assert detection is not None and detection.language == "es"


def test_describe_names_language_origin_stemmer_and_stopwords() -> None:
    german = analyzer_for("de", origin="detected")
    assert (
        german.describe()
        == f"german (detected), Snowball stemmer, {len(german.stopword_set)} stopwords"
    )
    assert NO_ANALYSIS.describe() == "none (setting), no stemmer, no stopwords"
    assert analyzer_for("zh").describe() == "chinese (setting), character bigrams, no stopwords"


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", SETS)
def test_detection_picks_the_corpus_language(lang: str) -> None:
    detection = detect(corpus_texts(lang))
    assert detection.language == lang
    assert detection.share > 0.9 and detection.texts == len(corpus_texts(lang))


def test_english_corpora_get_the_english_analysis() -> None:
    rows = (SAMPLE_DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(row)["text"] for row in rows]
    analyzer, detection = choose_analyzer(texts)
    assert detection is not None and detection.language == "en" and detection.share > 0.95
    assert analyzer == LANGUAGES["en"] and analyzer.origin == "detected"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (
            ["Der Kunde hat die Rechnung für seine Bestellung nicht erhalten und fragt nach."] * 3,
            "de",
        ),
        (["Le client n'a pas reçu la facture de sa commande et demande des nouvelles."] * 3, "fr"),
        (["Ο πελάτης δεν έλαβε το τιμολόγιο της παραγγελίας του και ρωτάει ξανά."] * 3, "el"),
        (["لم يتلق العميل فاتورة طلبه ويسأل عن موعد وصول الشحنة إليه."] * 3, "ar"),
        (["顾客没有收到订单的发票，他想知道包裹什么时候到。"] * 3, "zh"),
        (["お客様は注文の請求書を受け取っていないので、荷物がいつ届くか知りたいです。"] * 3, "ja"),
        (["The customer did not receive the invoice for the order and asks again."] * 3, "en"),
    ],
)
def test_detect_language(texts: list[str], expected: str) -> None:
    assert detect_language(texts) == expected


def test_a_corpus_without_a_majority_language_gets_no_analysis() -> None:
    mixed = corpus_texts("de")[:10] + corpus_texts("es")[:10] + corpus_texts("ru")[:10]
    detection = detect(mixed)
    assert detection.language == "none" and detection.share < analysis.MIN_SHARE
    assert set(detection.votes) == {"de", "es", "ru"}
    assert detection.note.startswith("no language holds most of the text")


@pytest.mark.parametrize(
    "texts", [[], ["ORD-58213", "CVE-2023-4410", "12 34"], ["a document", "Order 12345 shipped"]]
)
def test_too_little_text_keeps_english(texts: list[str]) -> None:
    detection = detect(texts)
    assert detection.language == "en" and detection.votes == {}
    assert detection.note.startswith("too little text to tell")
    assert choose_analyzer(texts)[0] == LANGUAGES["en"]


def test_short_texts_vote_together() -> None:
    titles = ["Rechnung fehlt", "Drucker defekt", "Heizung kalt", "Passwort vergessen"] * 10
    detection = detect(titles)
    assert detection.language == "de" and detection.share == 1.0


def test_detection_and_analysis_are_deterministic_across_processes() -> None:
    """Same corpus, same analyzer, terms and scores, whatever the hash seed (bm25s orders
    its vocabulary by hash, so only the set of terms is compared)."""
    script = (
        "import json, sys\n"
        "from search_core.analysis import choose_analyzer\n"
        "from search_core.lexical import Bm25sIndex\n"
        "texts = json.load(sys.stdin)\n"
        "analyzer, detection = choose_analyzer(texts)\n"
        "index = Bm25sIndex.build(texts, analyzer=analyzer)\n"
        "scores = index.scores('сброс забытых паролей').tolist()\n"
        "print(json.dumps([analyzer.to_dict(), detection.to_dict(), sorted(index.vocabulary),"
        " scores]))\n"
    )
    texts = corpus_texts("ru") + corpus_texts("de")[:5]
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=Path(__file__).parents[1],
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    analyzer, detection, _, scores = json.loads(outputs.pop())
    assert max(scores) > 0
    assert analyzer["language"] == detection["language"] == "ru"


# --- the analyzer in a collection ------------------------------------------------------------


def fake_build(lang: str, home: Path, name: str | None = None, **options: object):
    return build_collection(
        name or lang,
        MULTILINGUAL / lang,
        BuildOptions(**options),  # type: ignore[arg-type]
        home=home,
        embedder=FakeEmbedder(),
    )


def test_the_analyzer_is_stored_and_used_for_queries(home: Path) -> None:
    built = fake_build("de", home)
    assert built.manifest["analyzer"] == {**LANGUAGES["de"].to_dict(), "origin": "detected"}
    assert built.manifest["language_detection"]["language"] == "de"
    opened = open_collection("de", home, embedder=FakeEmbedder())
    assert opened.analyzer == LANGUAGES["de"] and opened.analyzer.origin == "detected"
    assert opened.lexical.vocabulary == built.lexical.vocabulary
    # "Passwörter" (plural, umlaut) finds the documents that say "Passwort"; English does not
    response = run_search(opened, "Passwörter", SearchParams(mode="bm25", k=5))
    assert {hit.doc_id for hit in response.hits} == {"de-09", "de-10"}
    assert Bm25sIndex.build(opened.indexed_texts()).top_k("Passwörter", 5)[0].size == 0
    # other BM25 parameters and engines are built with the same analysis
    engine = opened.lexical_engine("bm25s", k1=1.2)
    assert isinstance(engine, Bm25sIndex) and engine.analyzer == LANGUAGES["de"]
    assert set(engine.vocabulary) == set(opened.lexical.vocabulary)


def test_language_setting_overrides_detection(home: Path) -> None:
    collection = fake_build("de", home, language="none")
    assert collection.manifest["analyzer"] == NO_ANALYSIS.to_dict()
    assert "language_detection" not in collection.manifest
    assert "verbrauchen" in collection.lexical.vocabulary  # neither stemmed nor ...
    assert "die" in collection.lexical.vocabulary  # ... stopwords dropped


def rewrite_manifest(home: Path, name: str, edit: Callable[[dict], object]) -> None:
    """Change a collection's manifest and write it back with matching checksums."""
    folder, manifest = read_manifest(name, home)
    edit(manifest)
    data = json_bytes(manifest)
    (folder / MANIFEST_FILE).write_bytes(data)
    pointer = {"version": folder.name, "manifest_sha256": sha256_bytes(data)}
    (home / name / CURRENT_FILE).write_bytes(json_bytes(pointer))


def test_collections_without_an_analyzer_keep_the_english_analysis(home: Path) -> None:
    english = fake_build("de", home, language="en")
    queries = load_queries(MULTILINGUAL / "de" / "queries.jsonl").queries
    before = {q: english.lexical.scores(text) for q, text in queries.items()}
    rewrite_manifest(home, "de", lambda manifest: manifest.pop("analyzer"))  # as before analyzers
    old = open_collection("de", home, embedder=FakeEmbedder())
    assert manifest_analyzer(old.manifest) == ENGLISH
    assert old.analyzer == ENGLISH and old.analyzer.origin == "legacy"
    for q, text in queries.items():
        np.testing.assert_array_equal(old.lexical.scores(text), before[q])


def test_a_damaged_analyzer_in_the_manifest_is_an_integrity_error(home: Path) -> None:
    from search_core.errors import IntegrityError

    fake_build("es", home)
    rewrite_manifest(home, "es", lambda manifest: manifest["analyzer"].update(stemmer="klingon"))
    with pytest.raises(IntegrityError, match="stemmer 'klingon'"):
        open_collection("es", home, embedder=FakeEmbedder())


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from search_core import collection

    monkeypatch.setattr(collection, "shared_embedder", lambda *_, **__: FakeEmbedder())


@pytest.mark.usefixtures("fake_model")
def test_cli_index_prints_the_analyzer_and_takes_a_language(capsys, home: Path) -> None:
    source = str(MULTILINGUAL / "ru")
    assert main(["index", source, "--name", "ru"]) == 0
    out = capsys.readouterr().out
    russian = analyzer_for("ru", origin="detected")
    assert f"(flat index; BM25 analyzer: {russian.describe()}) in " in out
    assert russian.describe().startswith("russian (detected), Snowball stemmer, ")

    assert main(["index", source, "--name", "ru", "--language", "none", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["analyzer"] == NO_ANALYSIS.to_dict()
    assert read_manifest("ru", home)[1]["analyzer"]["language"] == "none"


@pytest.mark.usefixtures("fake_model")
def test_cli_refuses_an_unknown_language_before_reading(capsys, home: Path) -> None:
    assert main(["index", str(MULTILINGUAL / "de"), "--name", "x", "--language", "xx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown language 'xx'; choose auto, none or an ISO 639-1 code")
    assert "ru (russian)" in err and "Traceback" not in err
    assert not (home / "x").exists()


# --- quality on the judged multilingual sets -------------------------------------------------


def plain_bm25s_ndcg(collection, lang: str) -> float:
    """nDCG@10 of plain bm25s (its default tokenizer, no stemming or stopwords) on the same
    indexed texts."""
    queries = load_queries(MULTILINGUAL / lang / "queries.jsonl").queries
    qrels = load_qrels(MULTILINGUAL / lang / "qrels" / "test.tsv")
    doc_ids = [chunk.doc_id for chunk in collection.chunks]
    run = plain_bm25s_run(collection.indexed_texts(), doc_ids, queries)
    return evaluate_run(qrels, run, ["ndcg@10"]).metrics["ndcg@10"]


def mode_ndcg(collection, lang: str, mode: str = "bm25") -> float:
    query_set = load_queries(MULTILINGUAL / lang / "queries.jsonl")
    qrels = load_qrels(MULTILINGUAL / lang / "qrels" / "test.tsv")
    return evaluate_collection(collection, query_set, qrels, SearchParams(mode=mode)).metrics[
        "ndcg@10"
    ]


@pytest.mark.parametrize("lang", SETS)
def test_detected_analyzer_beats_the_english_one(lang: str, home: Path) -> None:
    detected = fake_build(lang, home, name=f"{lang}-auto")
    english = fake_build(lang, home, name=f"{lang}-en", language="en")
    assert detected.analyzer == LANGUAGES[lang]
    scores = {
        "detected": mode_ndcg(detected, lang),
        "english": mode_ndcg(english, lang),
        "plain bm25s": plain_bm25s_ndcg(detected, lang),
    }
    print(f"{lang} BM25 nDCG@10: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    assert scores["detected"] > scores["english"]
    assert scores["detected"] > scores["plain bm25s"]


@pytest.fixture(scope="module")
def real_collections(tmp_path_factory, embedder):
    home = tmp_path_factory.mktemp("multilingual")
    return {
        lang: build_collection(
            lang, MULTILINGUAL / lang, BuildOptions(), home=home, embedder=embedder
        )
        for lang in SETS
    }


# all-MiniLM-L6-v2 is an English model: on the Arabic set its vectors alone rank below plain
# bm25s (0.564 against 0.619 when written); no analysis changes vectors. Strict, so that a
# multilingual model turns this into a failure to be removed.
ENGLISH_MODEL_ON_ARABIC = pytest.mark.xfail(
    strict=True, reason="the bundled embedding model is English-only; vectors alone lose on Arabic"
)


@pytest.mark.parametrize(
    ("lang", "mode"),
    [
        pytest.param(
            lang, mode, marks=ENGLISH_MODEL_ON_ARABIC if (lang, mode) == ("ar", "vector") else ()
        )
        for lang in SETS
        for mode in ("vector", "bm25", "hybrid")
    ],
)
def test_no_default_mode_falls_below_plain_bm25s(lang: str, mode: str, real_collections) -> None:
    collection = real_collections[lang]
    plain = plain_bm25s_ndcg(collection, lang)
    score = mode_ndcg(collection, lang, mode)
    print(f"{lang} {mode} nDCG@10 {score:.3f}, plain bm25s {plain:.3f}")
    assert round(score, 3) >= round(plain, 3), f"{lang} {mode}: {score:.4f} < {plain:.4f}"
