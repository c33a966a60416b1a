from __future__ import annotations

import itertools
import math

import pytest

from search_core.chunking import (
    MAX_CHUNK_SIZE,
    MAX_TITLE_TOKENS,
    MIN_CHUNK_SIZE,
    ChunkingConfig,
    chunk_document,
    chunk_documents,
    index_title,
    indexed_text,
    token_spans,
)
from search_core.types import Document, PageSpan

WORDS = " ".join(f"word{i % 37} alpha{i}" for i in range(600))


@pytest.fixture(scope="module")
def tokenizer(embedder):
    return embedder.tokenizer


def _chunks(tokenizer, document: Document, **config):
    return chunk_document(document, tokenizer, ChunkingConfig(**config), max_seq_length=256)


def test_spans_cover_the_text(tokenizer) -> None:
    doc = Document("d", WORDS)
    chunks = _chunks(tokenizer, doc, size=64, overlap=8)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.char_start : chunk.char_end]
        assert chunk.doc_id == "d"
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[0].char_start == 0
    assert chunks[-1].char_end == len(doc.text)


def test_token_windows_are_balanced_and_overlap(tokenizer) -> None:
    doc = Document("d", WORDS)
    spans = token_spans(tokenizer, doc.text)
    chunks = _chunks(tokenizer, doc, size=64, overlap=8)
    start_of = {span[0]: i for i, span in enumerate(spans)}
    end_of = {span[1]: i + 1 for i, span in enumerate(spans)}
    windows = [(start_of[c.char_start], end_of[c.char_end]) for c in chunks]
    sizes = [end - start for start, end in windows]
    assert max(sizes) <= 64
    assert min(sizes) == max(sizes)  # balanced: no tiny tail chunk
    assert len(chunks) == math.ceil((len(spans) - 8) / (64 - 8))
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert 8 <= end - start <= 9
    assert windows[-1][1] == len(spans)


def test_chunks_never_exceed_the_model_limit(tokenizer, embedder) -> None:
    title = "A long title about the many failure modes of hydraulic brake systems in cold weather"
    doc = Document("d", WORDS, title=title)
    chunks = chunk_document(
        doc, tokenizer, ChunkingConfig(size=1000, overlap=0), max_seq_length=embedder.max_seq_length
    )
    for chunk in chunks:
        full = tokenizer(indexed_text(title, chunk.text))["input_ids"]
        assert len(full) <= embedder.max_seq_length


def test_long_titles_are_cut(tokenizer) -> None:
    title = " ".join(f"term{i}" for i in range(200))
    short = index_title(tokenizer, title)
    assert title.startswith(short)
    assert len(token_spans(tokenizer, short)) == MAX_TITLE_TOKENS


def test_short_document_is_one_chunk(tokenizer) -> None:
    chunks = _chunks(tokenizer, Document("d", "Just one sentence."))
    assert len(chunks) == 1
    assert chunks[0].text == "Just one sentence."


def test_paragraph_mode_keeps_paragraphs_whole(tokenizer) -> None:
    paragraphs = [
        (f"Paragraph {i} says " + "something useful " * (5 + i)).strip() for i in range(8)
    ]
    doc = Document("d", "\n\n".join(paragraphs))
    chunks = _chunks(tokenizer, doc, method="paragraphs", size=60, overlap=0)
    assert len(chunks) > 1
    for chunk in chunks:
        pieces = chunk.text.split("\n\n")
        assert all(p in paragraphs for p in pieces)
        assert len(token_spans(tokenizer, chunk.text)) <= 60


def test_paragraph_longer_than_limit_is_split(tokenizer) -> None:
    doc = Document("d", "short intro\n\n" + WORDS)
    chunks = _chunks(tokenizer, doc, method="paragraphs", size=50, overlap=5)
    assert chunks[0].text == "short intro"
    assert all(len(token_spans(tokenizer, c.text)) <= 50 for c in chunks)


def test_pdf_pages_follow_chunks(tokenizer) -> None:
    page1 = "First page text. " * 40
    page2 = "Second page text. " * 40
    text = page1 + "\n\n" + page2
    doc = Document(
        "d", text, pages=(PageSpan(1, 0, len(page1)), PageSpan(2, len(page1) + 2, len(text)))
    )
    chunks = _chunks(tokenizer, doc, size=37, overlap=0)
    assert chunks[0].pages == (1,)
    assert chunks[-1].pages == (2,)
    assert any(c.pages == (1, 2) for c in chunks)


def test_chunk_ids_run_across_documents(tokenizer) -> None:
    docs = [Document("a", WORDS[:2000]), Document("b", "tiny"), Document("c", WORDS[:3000])]
    chunks = chunk_documents(
        docs, tokenizer, ChunkingConfig(size=64, overlap=8), max_seq_length=256
    )
    assert [c.chunk_id for c in chunks] == list(range(len(chunks)))
    assert {c.doc_id for c in chunks} == {"a", "b", "c"}


def test_long_document_is_tokenized_in_segments(tokenizer) -> None:
    text = ("lorem ipsum dolor sit amet " * 4000).strip()
    spans = token_spans(tokenizer, text)
    whole = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    assert len(text) > 50_000
    assert spans.tolist() == [list(s) for s in whole["offset_mapping"]]


@pytest.mark.parametrize(
    "bad", [{"method": "sentences"}, {"size": 4}, {"size": 64, "overlap": 60}, {"overlap": -1}]
)
def test_invalid_config(bad: dict) -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(**bad)


# --- issue 12, D7: every chunking number has a stated range ---------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"size": MAX_CHUNK_SIZE + 1}, "chunk size must be an integer from 8 to 8192 tokens"),
        ({"size": 10**12}, "from 8 to 8192"),
        ({"size": 7}, "from 8 to 8192"),
        ({"size": 256.0}, "chunk size must be an integer"),
        ({"size": True}, "chunk size must be an integer"),
        ({"overlap": 129}, "from 0 to half the chunk size \\(128 tokens\\), got 129"),
        ({"overlap": 8.0}, "chunk overlap must be an integer"),
        ({"overlap": True}, "chunk overlap must be an integer"),
        ({"method": ["tokens"]}, "unknown chunking method"),
    ],
)
def test_out_of_range_config_states_the_range(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkingConfig(**config)


@pytest.mark.parametrize(
    ("size", "overlap"), [(MIN_CHUNK_SIZE, 0), (MIN_CHUNK_SIZE, 4), (MAX_CHUNK_SIZE, 4096)]
)
def test_the_bounds_themselves_are_valid(size: int, overlap: int) -> None:
    assert ChunkingConfig(size=size, overlap=overlap).overlap == overlap


@pytest.mark.parametrize("method", ["tokens", "paragraphs"])
def test_an_overlap_beyond_what_the_model_reads_shrinks_with_the_size(tokenizer, method) -> None:
    # The app allows size 512 with overlap 256; the model reads 256 tokens, so the budget is
    # lower than the overlap, and windows that never advance once dropped the whole text.
    doc = Document("d", WORDS)
    config = ChunkingConfig(method=method, size=512, overlap=256)
    chunks = chunk_document(doc, tokenizer, config, max_seq_length=256)
    assert len(chunks) > 1
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(doc.text)
    for chunk in chunks:
        assert 2 + len(token_spans(tokenizer, chunk.text)) <= 256
