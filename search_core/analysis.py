"""Text analysis for BM25: which terms a text gives, chosen per collection from its language.

An :class:`Analyzer` names four things: the language, the Snowball stemmer (PyStemmer), the
stopword list and the tokenizer. A build chooses one (:func:`choose_analyzer`): detected from a
sample of the documents (:func:`detect_language`), or named by a setting (an ISO 639-1 code, or
``"none"`` for no stemming and no stopwords). It is stored in the collection's manifest
(:meth:`Analyzer.to_dict`) and the BM25 index analyzes documents and queries with it.
Collections built before analyzers existed have none in their manifest and keep
:data:`ENGLISH`, the analysis every collection had then, term for term.

Tokenizers (:data:`TOKENIZERS`):

* ``"words"``: the first release's, unchanged: letters and digits, an apostrophe inside a
  word dropped (``don't`` -> ``dont``).
* ``"words-digit-ids"``: English's: as ``"words"``, but word parts joined by ``-_./:#`` are
  kept whole only when they hold a digit (``ORD-58213``, ``v2.3.1``), as identifiers are;
  ``flow-rate`` and ``u.s`` give their parts only.
* ``"unicode-words"``: every other language: the text NFKC-normalized, a letter's combining
  marks kept in its word (Devanagari, Tamil and Arabic words would otherwise fall apart at
  their vowel signs), and an apostrophe splits (French ``l'école`` -> ``l``, ``école``).
* ``"cjk-bigrams"``: scripts written without spaces (Chinese, Japanese, Korean, Thai, Lao,
  Khmer, Burmese): each run of those characters gives its overlapping character bigrams (a
  lone character itself), as Lucene's ``CJKAnalyzer`` does; other runs are unicode words.

In every tokenizer an identifier, word parts joined by ``-_./:#`` (``ORD-58213``,
``CVE-2023-4410``, ``TSB-21-044``), is emitted whole, lower-cased and unstemmed, followed by its
parts, each a word; so identifiers match exactly in any language.

English uses NLTK's stopword list (``bm25s.stopwords.STOPWORDS_EN_PLUS``, with each entry's
apostrophe-free form, as the tokenizer drops apostrophes), the list Qdrant's and LanceDB's
English text indexes use: measured against them (``bench/bm25_peers.py``), it and the
digit rule for identifiers lift BM25 from 0.434 to 0.444 nDCG@10 on cranfield and from 0.727
to 0.730 on msmarco-5k. Collections built before keep :data:`ENGLISH`, term for term.

Why these dependencies:

* Stemming: PyStemmer (Snowball), already used; every algorithm of ``Stemmer.algorithms()`` has
  a language in :data:`LANGUAGES`.
* Stopwords: ``stopwordsiso`` (the stopwords-iso lists, MIT, 75 kB, typed, offline, keyed by
  ISO 639-1): it covers 30 of the 34 Snowball languages and the CJK ones, against 22 for
  ``stop-words``. Its lists are long (they include some frequent content words), so queries
  made only of such words find nothing in BM25 (vector and hybrid still answer). English keeps
  bm25s's list, as before. Serbian uses the Croatian list with its Cyrillic spelling; Nepali,
  Tamil and Yiddish have no list in either package and are stemmed without stopwords.
* Detection: ``py3langid`` (BSD, 4.6 MB, numpy only, maintained; a naive Bayes model over byte
  n-grams stored as ``.npz`` inside the package, loaded with ``allow_pickle=False``). It is
  deterministic, offline and knows 130 languages including every one of :data:`LANGUAGES`
  but Sesotho and Yiddish (set those with the setting). ``lingua-language-detector`` is
  hundreds of MB, ``langdetect`` is random unless seeded globally and unmaintained since 2021,
  ``pycld2`` wraps an unmaintained C++ library.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import chain, islice
from pathlib import Path
from typing import Any

import Stemmer

__all__ = [
    "ENGLISH",
    "JOINERS",
    "LANGUAGES",
    "LANGUAGE_SETTINGS",
    "NO_ANALYSIS",
    "STOPWORDS",
    "Analyzer",
    "Detection",
    "analyzer_for",
    "check_language",
    "choose_analyzer",
    "detect",
    "detect_language",
]

# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

TOKENIZERS: tuple[str, ...] = ("words", "words-digit-ids", "unicode-words", "cjk-bigrams")
"""Tokenizer names; see the module docstring."""

STOPWORD_LISTS: tuple[str, ...] = ("bm25s-en", "nltk-en", "stopwords-iso", "none")
"""Where a stopword list comes from: bm25s's short English list, NLTK's English list (as bm25s
ships it), stopwords-iso's for the language, or no list."""

ORIGINS: tuple[str, ...] = ("detected", "setting", "legacy")
"""How an analyzer was chosen: detected from the corpus, named by a setting, or the English
analysis of a collection built before analyzers existed."""

# code: (name, Snowball algorithm or None, stopword list, tokenizer)
_REGISTRY: dict[str, tuple[str, str | None, str, str]] = {
    # every Snowball algorithm of PyStemmer ("porter" and "dutch_porter" are variants)
    "ar": ("arabic", "arabic", "stopwords-iso", "unicode-words"),
    "hy": ("armenian", "armenian", "stopwords-iso", "unicode-words"),
    "eu": ("basque", "basque", "stopwords-iso", "unicode-words"),
    "ca": ("catalan", "catalan", "stopwords-iso", "unicode-words"),
    "cs": ("czech", "czech", "stopwords-iso", "unicode-words"),
    "da": ("danish", "danish", "stopwords-iso", "unicode-words"),
    "nl": ("dutch", "dutch", "stopwords-iso", "unicode-words"),
    "en": ("english", "english", "nltk-en", "words-digit-ids"),
    "eo": ("esperanto", "esperanto", "stopwords-iso", "unicode-words"),
    "et": ("estonian", "estonian", "stopwords-iso", "unicode-words"),
    "fi": ("finnish", "finnish", "stopwords-iso", "unicode-words"),
    "fr": ("french", "french", "stopwords-iso", "unicode-words"),
    "de": ("german", "german", "stopwords-iso", "unicode-words"),
    "el": ("greek", "greek", "stopwords-iso", "unicode-words"),
    "hi": ("hindi", "hindi", "stopwords-iso", "unicode-words"),
    "hu": ("hungarian", "hungarian", "stopwords-iso", "unicode-words"),
    "id": ("indonesian", "indonesian", "stopwords-iso", "unicode-words"),
    "ga": ("irish", "irish", "stopwords-iso", "unicode-words"),
    "it": ("italian", "italian", "stopwords-iso", "unicode-words"),
    "lt": ("lithuanian", "lithuanian", "stopwords-iso", "unicode-words"),
    "ne": ("nepali", "nepali", "none", "unicode-words"),
    "no": ("norwegian", "norwegian", "stopwords-iso", "unicode-words"),
    "fa": ("persian", "persian", "stopwords-iso", "unicode-words"),
    "pl": ("polish", "polish", "stopwords-iso", "unicode-words"),
    "pt": ("portuguese", "portuguese", "stopwords-iso", "unicode-words"),
    "ro": ("romanian", "romanian", "stopwords-iso", "unicode-words"),
    "ru": ("russian", "russian", "stopwords-iso", "unicode-words"),
    "sr": ("serbian", "serbian", "stopwords-iso", "unicode-words"),
    "st": ("sesotho", "sesotho", "stopwords-iso", "unicode-words"),
    "es": ("spanish", "spanish", "stopwords-iso", "unicode-words"),
    "sv": ("swedish", "swedish", "stopwords-iso", "unicode-words"),
    "ta": ("tamil", "tamil", "none", "unicode-words"),
    "tr": ("turkish", "turkish", "stopwords-iso", "unicode-words"),
    "yi": ("yiddish", "yiddish", "none", "unicode-words"),
    # stopwords but no Snowball stemmer
    "af": ("afrikaans", None, "stopwords-iso", "unicode-words"),
    "bg": ("bulgarian", None, "stopwords-iso", "unicode-words"),
    "bn": ("bengali", None, "stopwords-iso", "unicode-words"),
    "br": ("breton", None, "stopwords-iso", "unicode-words"),
    "gl": ("galician", None, "stopwords-iso", "unicode-words"),
    "gu": ("gujarati", None, "stopwords-iso", "unicode-words"),
    "he": ("hebrew", None, "stopwords-iso", "unicode-words"),
    "hr": ("croatian", None, "stopwords-iso", "unicode-words"),
    "lv": ("latvian", None, "stopwords-iso", "unicode-words"),
    "mr": ("marathi", None, "stopwords-iso", "unicode-words"),
    "ms": ("malay", None, "stopwords-iso", "unicode-words"),
    "sk": ("slovak", None, "stopwords-iso", "unicode-words"),
    "sl": ("slovenian", None, "stopwords-iso", "unicode-words"),
    "sw": ("swahili", None, "stopwords-iso", "unicode-words"),
    "tl": ("tagalog", None, "stopwords-iso", "unicode-words"),
    "uk": ("ukrainian", None, "stopwords-iso", "unicode-words"),
    "ur": ("urdu", None, "stopwords-iso", "unicode-words"),
    "vi": ("vietnamese", None, "stopwords-iso", "unicode-words"),
    # scripts without spaces between words: character bigrams
    "zh": ("chinese", None, "none", "cjk-bigrams"),
    "ja": ("japanese", None, "none", "cjk-bigrams"),
    "ko": ("korean", None, "none", "cjk-bigrams"),
    "th": ("thai", None, "none", "cjk-bigrams"),
    "lo": ("lao", None, "none", "cjk-bigrams"),
    "km": ("khmer", None, "none", "cjk-bigrams"),
    "my": ("burmese", None, "none", "cjk-bigrams"),
}


@dataclass(frozen=True)
class Analyzer:
    """How BM25 turns a text into terms: language, stemmer, stopwords and tokenizer.

    Two analyzers that analyze alike are equal whatever their ``origin``.

    Attributes:
        language: an ISO 639-1 code of :data:`LANGUAGES`, or ``"none"``.
        stemmer: a PyStemmer algorithm (``Stemmer.algorithms()``), or None for no stemming.
        stopwords: a key of :data:`STOPWORD_LISTS`.
        tokenizer: a key of :data:`TOKENIZERS`.
        origin: how it was chosen, a key of :data:`ORIGINS`.
    """

    language: str
    stemmer: str | None
    stopwords: str
    tokenizer: str
    origin: str = field(default="setting", compare=False)

    def __post_init__(self) -> None:
        checks = (
            ("language", self.language, ("none", *_REGISTRY)),
            ("stemmer", self.stemmer, (None, *Stemmer.algorithms())),
            ("stopwords", self.stopwords, STOPWORD_LISTS),
            ("tokenizer", self.tokenizer, TOKENIZERS),
            ("origin", self.origin, ORIGINS),
        )
        for name, value, valid in checks:
            if value not in valid:
                choices = ", ".join("none" if v is None else str(v) for v in valid)
                raise ValueError(f"analyzer {name} {value!r} is not one of: {choices}")

    @property
    def name(self) -> str:
        """The language's English name (``"german"``), or ``"none"``."""
        return _REGISTRY[self.language][0] if self.language in _REGISTRY else "none"

    @property
    def stopword_set(self) -> frozenset[str]:
        """The stopwords dropped before stemming (lower-case)."""
        return _stopwords(self.stopwords, self.language)

    def describe(self) -> str:
        """One line for people, e.g. ``"german (detected), Snowball stemmer, 620 stopwords"``."""
        if self.tokenizer == "cjk-bigrams":
            method = "character bigrams"
        else:
            method = "Snowball stemmer" if self.stemmer else "no stemmer"
        count = len(self.stopword_set)
        stopwords = f"{count} stopwords" if count else "no stopwords"
        return f"{self.name} ({self.origin}), {method}, {stopwords}"

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``"analyzer"`` entry (JSON-ready)."""
        return {
            "language": self.language,
            "stemmer": self.stemmer,
            "stopwords": self.stopwords,
            "tokenizer": self.tokenizer,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Analyzer:
        """Read a manifest's ``"analyzer"`` entry.

        Raises:
            ValueError: not a mapping, a key missing or unknown, or a value not valid.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"analyzer: expected an object, got {type(data).__name__}")
        keys = ("language", "stemmer", "stopwords", "tokenizer", "origin")
        unknown = sorted(set(data) - set(keys))
        missing = [key for key in keys[:4] if key not in data]
        if unknown or missing:
            raise ValueError(
                f"analyzer: unknown keys {unknown} / missing keys {missing}; "
                f"expected {', '.join(keys)}"
            )
        return cls(**{key: data[key] for key in keys if key in data})

    def tokenize(self, text: str) -> list[str]:
        """The terms of one text (see :meth:`tokenize_many`)."""
        return self.tokenize_many([text])[0]

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        """Split texts into the terms BM25 indexes and searches, each distinct token once.

        Lower-cased tokens (see the module docstring for each tokenizer); stopwords dropped;
        words without a digit stemmed; identifiers kept whole before their parts.

        Args:
            texts: the texts.

        Returns:
            One list of terms per text, in text order.
        """
        parts = _parts(self)
        terms_of: dict[str, list[str]] = {}
        result: list[list[str]] = []
        remaining = iter(texts)
        # Batches bound the memory held by raw matches; terms_of carries over between them.
        while batch := list(islice(remaining, _BATCH_SIZE)):
            doc_matches = [parts.find(parts.prepare(text)) for text in batch]
            new = set().union(*doc_matches).difference(terms_of)
            terms_of.update(_terms_of_matches(new, parts))
            result.extend(
                [term for m in matches for term in terms_of[m]] for matches in doc_matches
            )
        return result


def _analyzer(code: str, origin: str) -> Analyzer:
    _, stemmer, stopwords, tokenizer = _REGISTRY[code]
    return Analyzer(code, stemmer, stopwords, tokenizer, origin)


LANGUAGES: dict[str, Analyzer] = {code: _analyzer(code, "setting") for code in sorted(_REGISTRY)}
"""Analyzer of each language, by ISO 639-1 code."""

ENGLISH: Analyzer = Analyzer("en", "english", "bm25s-en", "words", origin="legacy")
"""The analysis of every collection built before analyzers existed: the first release's."""

NO_ANALYSIS: Analyzer = Analyzer("none", None, "none", "unicode-words")
"""Unicode words, no stemming, no stopwords: for a language without an analyzer."""

LANGUAGE_SETTINGS: tuple[str, ...] = ("auto", "none", *LANGUAGES)
"""Values of the language setting: detect, no analysis, or an ISO 639-1 code."""


def check_language(setting: str) -> str:
    """Check a language setting (``BuildOptions.language``, ``--language``).

    Returns:
        The setting, lower-cased.

    Raises:
        ValueError: not ``"auto"``, ``"none"`` or a code of :data:`LANGUAGES`; the message
            lists the valid ones.
    """
    value = setting.strip().lower() if isinstance(setting, str) else setting
    if value not in LANGUAGE_SETTINGS:
        raise ValueError(
            f"unknown language {setting!r}; choose auto, none or an ISO 639-1 code: "
            + ", ".join(f"{code} ({LANGUAGES[code].name})" for code in LANGUAGES)
        )
    return str(value)


def analyzer_for(language: str, origin: str = "setting") -> Analyzer:
    """The analyzer of a language.

    Args:
        language: an ISO 639-1 code of :data:`LANGUAGES`, or ``"none"`` (no stemming, no
            stopwords).
        origin: recorded with it (a key of :data:`ORIGINS`).

    Raises:
        ValueError: an unknown language (the message lists the valid ones).
    """
    code = check_language(language)
    if code == "auto":
        raise ValueError("'auto' needs the corpus: use choose_analyzer(texts, 'auto')")
    return replace(NO_ANALYSIS if code == "none" else LANGUAGES[code], origin=origin)


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------

JOINERS = "-_./:#"
"""Punctuation that joins word parts into one identifier (``ORD-58213``, ``v2.3.1``)."""

_BATCH_SIZE = 10_000

# The first release's tokenizer ("words"), kept exactly. A word part is letters and digits
# (``_`` is a joiner, not part of a word); an apostrophe inside a word is matched so that it
# can be dropped ("don't" -> "dont") instead of splitting.
_PART = r"[^\W_]+(?:['’][^\W_]+)*"
# A joiner only counts when a word part follows it, so "ends." stays the single word "ends".
_TOKEN_RE = re.compile(rf"{_PART}(?:[{re.escape(JOINERS)}]+{_PART})*")
_JOINER_RE = re.compile(rf"[{re.escape(JOINERS)}]+")
_APOSTROPHES = str.maketrans("", "", "'’")
_WORD_TOKENIZERS = ("words", "words-digit-ids")

# Scripts written without spaces between words: Thai, Lao, Burmese, Hangul Jamo, Khmer,
# CJK punctuation-free blocks (kana, Hangul compatibility Jamo, ideographs), Hangul syllables,
# compatibility ideographs, halfwidth forms, and the supplementary ideograph planes.
_BIGRAM_SCRIPTS = (
    "\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u3130-\u318f"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    "\uff66-\uffdc\U00020000-\U0003ffff"
)
_BIGRAM_RUN = re.compile(f"[{_BIGRAM_SCRIPTS}]+")


@cache
def _marks() -> str:
    """A regex class body of the combining marks of the Basic Multilingual Plane."""
    codes = [c for c in range(0x10000) if unicodedata.category(chr(c))[0] == "M"]
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


@cache
def _unicode_token_re(bigrams: bool) -> re.Pattern[str]:
    """Unicode words with their marks, joined into identifiers; runs of bigram scripts apart."""
    excluded = _BIGRAM_SCRIPTS if bigrams else ""
    # A word starts with a letter or digit and goes on with letters, digits and marks
    # (written unrolled, runs of letters between runs of marks: as fast as the "words" one).
    part = rf"[^\W_{excluded}]+(?:[{_marks()}]+[^\W_{excluded}]*)*"
    token = rf"{part}(?:[{re.escape(JOINERS)}]+{part})*"
    return re.compile(rf"[{_BIGRAM_SCRIPTS}]+|{token}" if bigrams else token)


@dataclass(frozen=True)
class _Parts:
    """What an analyzer needs at run time, built once per analyzer."""

    tokenizer: str
    pattern: re.Pattern[str]
    stopwords: frozenset[str]
    stemmer: Any  # Stemmer.Stemmer, or None

    def prepare(self, text: str) -> str:
        if self.tokenizer in _WORD_TOKENIZERS:
            return text.lower()
        return unicodedata.normalize("NFKC", text).lower()

    def find(self, text: str) -> list[str]:
        return self.pattern.findall(text)


@cache
def _parts(analyzer: Analyzer) -> _Parts:
    if analyzer.tokenizer in _WORD_TOKENIZERS:
        pattern = _TOKEN_RE
    else:
        pattern = _unicode_token_re(analyzer.tokenizer == "cjk-bigrams")
    stemmer = _stemmer(analyzer.stemmer) if analyzer.stemmer else None
    return _Parts(analyzer.tokenizer, pattern, analyzer.stopword_set, stemmer)


@cache
def _stemmer(algorithm: str) -> Any:
    return Stemmer.Stemmer(algorithm)


def _terms_of_matches(matches: Iterable[str], parts: _Parts) -> dict[str, list[str]]:
    """Map each distinct match to its terms, stemming all their words in one call."""
    terms_of: dict[str, list[str]] = {}
    tokens: dict[str, str] = {}
    for match in matches:
        if parts.tokenizer == "cjk-bigrams" and _BIGRAM_RUN.fullmatch(match):
            terms_of[match] = [match[i : i + 2] for i in range(max(1, len(match) - 1))]
        else:
            tokens[match] = match if match.isalnum() else match.translate(_APOSTROPHES)
    words_of = {
        match: [token] if token.isalnum() else _JOINER_RE.split(token)
        for match, token in tokens.items()
    }
    # Stopwords map to "", words without digits to their stem, numbers and the like to
    # themselves.
    normal = {
        word: "" if word in parts.stopwords else word
        for word in chain.from_iterable(words_of.values())
    }
    if parts.stemmer is not None:
        stemmable = [
            word
            for word, term in normal.items()
            if term and (word.isalpha() or not any(c.isnumeric() for c in word))
        ]
        normal.update(zip(stemmable, parts.stemmer.stemWords(stemmable), strict=True))
    digits_only = parts.tokenizer == "words-digit-ids"
    for match, words in words_of.items():
        terms = [normal[word] for word in words if normal[word]]
        # An identifier is also kept whole, unstemmed, before its parts.
        whole = len(words) > 1 and (not digits_only or any(c.isdigit() for c in match))
        terms_of[match] = [tokens[match], *terms] if whole else terms
    return terms_of


# ---------------------------------------------------------------------------------------------
# Stopwords
# ---------------------------------------------------------------------------------------------


def _bm25s_stopwords(name: str = "STOPWORDS_EN") -> tuple[str, ...]:
    """A list of ``bm25s.stopwords``, read from its module without running the bm25s package."""
    module = sys.modules.get("bm25s.stopwords")
    if module is None:
        package = importlib.util.find_spec("bm25s")  # finds it; imports nothing
        if package is None or not package.submodule_search_locations:
            raise ImportError("bm25s is not installed")
        path = Path(next(iter(package.submodule_search_locations))) / "stopwords.py"
        spec = importlib.util.spec_from_file_location("bm25s.stopwords", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot read {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return tuple(getattr(module, name))


STOPWORDS: frozenset[str] = frozenset(_bm25s_stopwords())
"""English stopwords (bm25s's list), the ones dropped by :data:`ENGLISH`."""

# Serbian is written in Latin and Cyrillic letters; the Croatian list gives its function words
# in Latin letters, transliterated to Cyrillic (digraphs first).
_SERBIAN_CYRILLIC = (
    ("lj", "љ"), ("nj", "њ"), ("dž", "џ"), ("a", "а"), ("b", "б"), ("c", "ц"), ("č", "ч"),
    ("ć", "ћ"), ("d", "д"), ("đ", "ђ"), ("e", "е"), ("f", "ф"), ("g", "г"), ("h", "х"),
    ("i", "и"), ("j", "ј"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"),
    ("p", "п"), ("r", "р"), ("s", "с"), ("š", "ш"), ("t", "т"), ("u", "у"), ("v", "в"),
    ("z", "з"), ("ž", "ж"),
)  # fmt: skip


def _cyrillic(word: str) -> str:
    for latin, cyrillic in _SERBIAN_CYRILLIC:
        word = word.replace(latin, cyrillic)
    return word


@cache
def _stopwords(source: str, language: str) -> frozenset[str]:
    """The stopword set of a list source for a language (empty for ``"none"``)."""
    if source == "none":
        return frozenset()
    if source == "bm25s-en":
        return STOPWORDS
    if source == "nltk-en":
        words = {w.lower() for w in _bm25s_stopwords("STOPWORDS_EN_PLUS")}
        return frozenset(words | {w.translate(_APOSTROPHES) for w in words})
    import stopwordsiso

    if language == "sr":
        latin = {w.lower() for w in stopwordsiso.stopwords("hr")}
        return frozenset(latin | {_cyrillic(w) for w in latin})
    return frozenset(
        unicodedata.normalize("NFKC", w).lower() for w in stopwordsiso.stopwords(language)
    )


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

DETECTION_TEXTS = 200
"""Texts sampled for detection, evenly spread over the corpus."""
DETECTION_CHARS = 1000
"""Characters of each sampled text that are read."""
MIN_LETTERS = 20
"""Texts with fewer letters (ids, names, numbers) do not vote alone: they vote together."""
MIN_TOTAL_LETTERS = 100
"""Letters a corpus needs for detection; with fewer, it keeps the English analysis."""
MIN_SHARE = 0.5
"""Share of the votes the most frequent language needs; a more mixed corpus gets no analysis."""
FALLBACK = "en"
"""The language of a corpus with too little text to tell: the analysis every collection had
before analyzers existed."""

# py3langid labels that are variants of a language of the registry.
_DETECTED_AS = {"nb": "no", "nn": "no", "arz": "ar", "ary": "ar", "yue": "zh", "wuu": "zh"}

_identifier_lock = threading.Lock()


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


@dataclass(frozen=True)
class Detection:
    """The outcome of :func:`detect`.

    Attributes:
        language: a code of :data:`LANGUAGES`, or ``"none"`` when the corpus has no majority
            language or its language has no analyzer.
        share: the share of the letters read that the majority language's texts hold.
        texts: the number of texts read that had letters.
        votes: letters per detected language label (py3langid's codes), largest first; a
            character of Chinese, Japanese, Korean or Thai counts as three letters.
        note: why the language is not the majority's (too little text, no majority, no
            analyzer for it); empty otherwise.
    """

    language: str
    share: float
    texts: int
    votes: dict[str, int]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the manifest."""
        return {
            "language": self.language,
            "share": round(self.share, 4),
            "texts": self.texts,
            "votes": dict(list(self.votes.items())[:5]),
            "note": self.note,
        }


def _letters(text: str) -> int:
    """Letters of a text, a character of a script without spaces counting as three (it
    carries about as much as three letters of an alphabet)."""
    return sum(c.isalpha() for c in text) + 2 * sum(map(len, _BIGRAM_RUN.findall(text)))


def detect(texts: Sequence[str]) -> Detection:
    """Detect the language of a corpus from a sample of its texts.

    Up to :data:`DETECTION_TEXTS` texts, evenly spread over the corpus, are read (their first
    :data:`DETECTION_CHARS` characters). Each with at least :data:`MIN_LETTERS` letters is
    classified by py3langid and votes with its number of letters; the shorter ones are
    classified together, as one text. The label with the most letters wins if it holds at
    least :data:`MIN_SHARE` of them and has an analyzer, else the corpus gets ``"none"``.
    With fewer than :data:`MIN_TOTAL_LETTERS` letters in all there is too little to tell, and
    the corpus keeps English (:data:`FALLBACK`). The same texts always give the same answer
    (no randomness; ties go to the smaller code).

    Args:
        texts: the documents' texts.

    Returns:
        The detection.
    """
    count = len(texts)
    picks = (
        sorted({(i * count) // DETECTION_TEXTS for i in range(DETECTION_TEXTS)}) if count else []
    )
    sample = [texts[i][:DETECTION_CHARS] for i in picks]
    letters_of = [_letters(text) for text in sample]
    short = " ".join(t for t, n in zip(sample, letters_of, strict=True) if 0 < n < MIN_LETTERS)
    voters = [(t, n) for t, n in zip(sample, letters_of, strict=True) if n >= MIN_LETTERS]
    pooled = short[:DETECTION_CHARS]
    if _letters(pooled) >= MIN_LETTERS:
        voters.append((pooled, _letters(pooled)))
    read = sum(1 for n in letters_of if n)
    total = sum(n for _, n in voters)
    if total < MIN_TOTAL_LETTERS:
        note = f"too little text to tell ({total} letters); English, the default"
        return Detection(FALLBACK, 0.0, read, {}, note)
    votes: dict[str, int] = {}
    with _identifier_lock:  # the model is loaded once and shared
        identifier = _identifier()
        for text, letters in voters:
            label = identifier.classify(text)[0]
            label = _DETECTED_AS.get(label, label)
            votes[label] = votes.get(label, 0) + letters
    ranked = dict(sorted(votes.items(), key=lambda item: (-item[1], item[0])))
    label, top = next(iter(ranked.items()))
    share = top / total
    if share < MIN_SHARE:
        note = f"no language holds most of the text ({label} {share:.0%})"
        return Detection("none", share, read, ranked, note)
    if label not in LANGUAGES:
        note = f"no analyzer for the language detected ({label})"
        return Detection("none", share, read, ranked, note)
    return Detection(label, share, read, ranked)


def detect_language(texts: Sequence[str]) -> str:
    """The language of a corpus: a code of :data:`LANGUAGES`, or ``"none"`` (see :func:`detect`)."""
    return detect(texts).language


def choose_analyzer(
    texts: Sequence[str], setting: str = "auto"
) -> tuple[Analyzer, Detection | None]:
    """The analyzer of a corpus for a language setting.

    Args:
        texts: the documents' texts (read only when the setting is ``"auto"``).
        setting: ``"auto"`` (detect), ``"none"`` or an ISO 639-1 code of :data:`LANGUAGES`.

    Returns:
        The analyzer, and the detection when there was one.

    Raises:
        ValueError: an unknown setting (the message lists the valid ones).
    """
    if check_language(setting) != "auto":
        return analyzer_for(setting), None
    detection = detect(texts)
    return analyzer_for(detection.language, origin="detected"), detection
