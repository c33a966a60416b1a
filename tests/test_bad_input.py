"""Bad input: a folder of nasty files, each refused clearly or skipped and counted.

The module generates the folder once: binary data named ``.csv``, a BOM, Latin-1, UTF-16, mixed
and bare-CR line endings, ragged rows, a cell over 131,072 characters and one over the CSV
limit, broken and blank JSONL lines, empty files of every kind, a 50 MB document, a zip bomb,
zips whose headers lie or whose entries leave the archive, PDFs whose streams expand far
beyond their size, an encrypted PDF, folders nested too deep and a file over the size limit.

Each bad source gives an `InputError` naming the file and, where one applies, the line; each
source with nothing readable (empty files, PDFs without text, hidden and unsupported files,
links) is skipped and counted in the `IngestReport`. A collection built before is then rebuilt
from every bad source under the same name: every attempt fails and the stored collection stays
byte-identical and answers as before. Hypothesis fuzzes the CSV and JSONL readers: generated
files read back exactly, and mutated ones give a report or an `InputError` naming the file.

``RELIABILITY_LONG=1`` raises the fuzzing to 5,000 examples a test and builds a collection from
the 50 MB document in a subprocess, measuring its peak memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_core.collection import build_collection, open_collection
from search_core.errors import InputError
from search_core.ingest import IngestReport, Limits, read_source
from search_core.search import search
from search_core.types import Document
from tests.test_ingest import encrypted_pdf, make_zip, pdf_bytes, pdf_objects, write

MB = 1024 * 1024
LONG = os.environ.get("RELIABILITY_LONG") == "1"
FUZZ_EXAMPLES = 5000 if LONG else 150
REPO = Path(__file__).resolve().parents[1]
DEPTH = 40


# --- building the nasty files ----------------------------------------------------------------


def deflated(size: int, fill: bytes = b"\0", layers: int = 1) -> bytes:
    """``size`` bytes of ``fill``, deflated ``layers`` times over, built block by block."""
    compressor = zlib.compressobj(9)
    block = fill * MB
    parts = [compressor.compress(block[: min(MB, size - done)]) for done in range(0, size, MB)]
    data = b"".join(parts) + compressor.flush()
    for _ in range(layers - 1):
        data = zlib.compress(data, 9)
    return data


def pdf_with_streams(streams: list[bytes], filters: bytes) -> bytes:
    """A PDF with one page per stream, each page's contents being that (encoded) stream.

    Objects: 1 catalog, 2 page tree, 3 font, then a page and its content stream per page; the
    xref table holds each object's byte offset.
    """
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(streams)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(streams)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, stream in enumerate(streams):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(
            b"<< /Length %d /Filter %s >>\nstream\n%s\nendstream" % (len(stream), filters, stream)
        )
    return pdf_objects(objects)


def self_drawing_form_pdf() -> bytes:
    """A page that draws a form XObject that draws itself: a loop for a naive reader."""
    content = b"BT /F1 12 Tf 72 720 Td (Loop) Tj ET /X0 Do"
    resources = b"<< /Font << /F1 3 0 R >> /XObject << /X0 6 0 R >> >>"
    return pdf_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources %s "
            b"/Contents 5 0 R >>" % resources,
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources %s /Length %d >>"
            b"\nstream\n%s\nendstream" % (resources, len(content), content),
        ]
    )


def lying_zip(path: Path) -> Path:
    """A zip whose headers say its entry holds 10 bytes; it holds 5,000."""
    data = bytearray(make_zip(path, {"a.txt": "x" * 5000}).read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def slip_zip(path: Path, entry: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fine.txt", "fine")
        archive.writestr(zipfile.ZipInfo(entry), "evil")
    return path


LONG_CELL = "long " * 26_300 + "end"  # 131,503 characters: over Python's default CSV limit


def make_nasty_files(root: Path) -> None:
    """Write every nasty file and folder under ``root``."""
    write(root / "binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01")
    write(root / "latin1.csv", "id,text\n1,plain\n2,caf\xe9 cr\xe8me\n".encode("latin-1"))
    write(root / "utf16.txt", "Hello in UTF-16".encode("utf-16"))
    write(root / "bare-cr.csv", b"id,text\r\n1,fine\r\n2,old mac\rline ending\n")
    write(root / "ragged.csv", "id,text\n1,one\n2,two\n3,three,extra\n")
    write(root / "over-field-limit.csv", 'id,text\n1,"' + "x" * (16 * MB + 1) + '"\n')
    write(root / "broken.jsonl", '{"text": "one"}\n\n   \n{"text": "two"}\n{"text": "thr\n')
    for name in ("empty.csv", "empty.jsonl", "empty.txt", "empty.pdf", "empty.zip"):
        write(root / name, b"")
    write(root / "blank.md", "  \n\n\t\n")
    write(root / "scan.pdf", pdf_bytes([None, None]))
    write(root / "encrypted.pdf", encrypted_pdf("secret"))
    make_zip(root / "zip-bomb.zip", {"zeros.txt": bytes(50 * MB)})
    lying_zip(root / "zip-liar.zip")
    slip_zip(root / "zip-slip-parent.zip", "../evil.txt")
    slip_zip(root / "zip-slip-nested.zip", "docs/../../evil.txt")
    slip_zip(root / "zip-slip-absolute.zip", "/etc/evil.txt")
    pages = deflated(70_000_000, b" ")
    write(root / "pdf-bomb-pages.pdf", pdf_with_streams([pages] * 20, b"/FlateDecode"))
    write(root / "pdf-bomb-ratio.pdf", pdf_with_streams([deflated(20 * MB)], b"/FlateDecode"))
    nested = deflated(80 * MB, layers=2)
    write(root / "pdf-bomb-nested.pdf", pdf_with_streams([nested], b"[/FlateDecode /FlateDecode]"))
    deep = root / "deep"
    for level in range(1, DEPTH + 1):
        deep = deep / str(level)
    write(deep / "bottom.txt", "Found at the bottom.")
    with (root / "oversized.txt").open("wb") as handle:
        handle.truncate(200 * MB + 1)  # sparse: costs no disk or time
    write(root / "nested/docs/2024/ragged.tsv", "id\ttext\n1\tfine\n2\n")
    skipped = root / "skipped"
    write(skipped / ".hidden.txt", "hidden")
    write(skipped / "notes.docx", b"PK\x03\x04 not really")
    write(skipped / "image.png", b"\x89PNG")
    write(skipped / "empty.txt", "")
    (skipped / "loop").symlink_to(skipped, target_is_directory=True)
    os.mkfifo(skipped / "pipe.txt")
    (root / "empty-folder").mkdir()
    # Awkward but valid.
    write(root / "bom.csv", b"\xef\xbb\xbfid,text\nb1,Byte order mark first\n")
    write(root / "bom.jsonl", b'\xef\xbb\xbf{"id": "j1", "text": "JSON after a BOM"}\n')
    write(root / "mixed-endings.csv", b"id,text\r\nm1,crlf row\nm2,lf row\r\nm3,last\n")
    write(root / "mixed-endings.txt", b"one\r\ntwo\nthree\rstill three\r\n")
    write(root / "long-field.csv", f'id,text\nlong,"{LONG_CELL}"\n')
    write(root / "form-loop.pdf", self_drawing_form_pdf())
    write(
        root / "blank-lines.jsonl",
        '\n{"id": "a", "text": "first"}\n \t \n\n{"id": "b", "text": "x"}',
    )


@pytest.fixture(scope="module")
def nasty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nasty")
    make_nasty_files(root)
    return root


# --- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A source that must be refused with an error naming ``file`` and ``line``."""

    source: str
    problem: str
    line: int | None = None
    file: str | None = None  # defaults to the source

    @property
    def named(self) -> str:
        return self.file or self.source


BAD = [
    # The PNG signature's first line holds no NUL byte; its first byte is not UTF-8.
    Bad("binary.csv", r"not valid UTF-8 \(byte 0x89 at position 1 of the line\)", 1),
    Bad("latin1.csv", r"not valid UTF-8 \(byte 0xe9 at position 6 of the line\)", 3),
    Bad("utf16.txt", "binary file, not text .*UTF-16", 1),
    Bad("bare-cr.csv", "bare carriage return", 3),
    Bad("ragged.csv", "row has 3 cells but the header has 2 columns", 4),
    Bad("over-field-limit.csv", "field larger than field limit", 2),
    Bad("broken.jsonl", "not valid JSON", 5),
    Bad("empty.csv", "empty file: no header row"),
    Bad("empty.pdf", "cannot read the PDF"),
    Bad("empty.zip", "not a valid zip archive"),
    Bad("encrypted.pdf", "encrypted PDF, cannot read its text"),
    Bad("zip-bomb.zip", r"entry 'zeros.txt' expands \d+ times, over the limit of 100"),
    Bad("zip-liar.zip", "damaged zip entry", file="a.txt"),
    Bad("zip-slip-parent.zip", "refused entry '../evil.txt': its path leaves the archive"),
    Bad("zip-slip-nested.zip", "refused entry 'docs/../../evil.txt'"),
    Bad("zip-slip-absolute.zip", "refused entry '/etc/evil.txt'"),
    Bad("pdf-bomb-pages.pdf", r"page 2: the page contents expand to more than 13\d\.\d MB"),
    Bad("pdf-bomb-ratio.pdf", r"page 1: the page contents expand to more than 2\.\d MB"),
    Bad("pdf-bomb-nested.pdf", "cannot read the PDF .*LimitReachedError"),
    Bad("deep", "folders nested more than 32 levels deep", file="/".join(map(str, range(1, 34)))),
    Bad("oversized.txt", r"file is 200\.0 MB, over the limit of 200\.0 MB"),
    Bad("nested", "row has 1 cells but the header has 2 columns", 3, "docs/2024/ragged.tsv"),
]


@dataclass(frozen=True)
class Skipped:
    """A source with nothing to index: read without error, with what was skipped counted."""

    source: str
    files_read: int
    skipped_empty: int = 0
    pages_without_text: int = 0
    files_skipped: tuple[tuple[str, str], ...] = ()


SKIPPED = [
    Skipped("empty.jsonl", files_read=1),
    Skipped("empty.txt", files_read=1, skipped_empty=1),
    Skipped("blank.md", files_read=1, skipped_empty=1),
    Skipped("scan.pdf", files_read=1, skipped_empty=1, pages_without_text=2),
    Skipped("empty-folder", files_read=0),
    Skipped(
        "skipped",
        files_read=1,
        skipped_empty=1,
        files_skipped=(
            (".hidden.txt", "hidden"),
            ("image.png", "unsupported extension '.png'"),
            ("loop", "link to a folder, not followed"),
            ("notes.docx", "unsupported extension '.docx'"),
            ("pipe.txt", "not a regular file"),
        ),
    ),
]

GOOD = {
    "bom.csv": [("b1", "Byte order mark first")],
    "bom.jsonl": [("j1", "JSON after a BOM")],
    "mixed-endings.csv": [("m1", "crlf row"), ("m2", "lf row"), ("m3", "last")],
    "mixed-endings.txt": [("mixed-endings.txt", "one\ntwo\nthree\rstill three\n")],
    "long-field.csv": [("long", LONG_CELL)],
    "blank-lines.jsonl": [("a", "first"), ("b", "x")],
    # pypdf draws the form once and skips the cycle
    "form-loop.pdf": [("form-loop.pdf", "Loop\nLoop\n")],
}


@pytest.mark.parametrize("case", BAD, ids=[case.source for case in BAD])
def test_a_bad_source_is_refused_naming_file_and_line(nasty: Path, case: Bad) -> None:
    with pytest.raises(InputError, match=case.problem) as caught:
        read_source(nasty / case.source)
    assert (caught.value.path, caught.value.line) == (case.named, case.line)
    where = case.named if case.line is None else f"{case.named}, line {case.line}"
    assert str(caught.value).startswith(f"{where}: ")


@pytest.mark.parametrize("case", SKIPPED, ids=[case.source for case in SKIPPED])
def test_a_source_with_nothing_to_index_is_skipped_and_counted(nasty: Path, case: Skipped) -> None:
    report = read_source(nasty / case.source)
    assert report.documents == ()
    assert report.files_read == case.files_read
    assert report.skipped_empty == case.skipped_empty
    assert len(report.pages_without_text) == case.pages_without_text
    assert report.files_skipped == case.files_skipped


@pytest.mark.parametrize("source", GOOD)
def test_an_awkward_but_valid_file_reads_exactly(nasty: Path, source: str) -> None:
    report = read_source(nasty / source)
    assert [(d.doc_id, d.text) for d in report.documents] == GOOD[source]


def test_every_nasty_file_is_covered(nasty: Path) -> None:
    covered = {c.source for c in BAD} | {c.source for c in SKIPPED} | set(GOOD)
    assert sorted(p.name for p in nasty.iterdir()) == sorted(covered)


# --- nothing already stored changes --------------------------------------------------------

KEPT = [
    Document("k1", "Either party may terminate this agreement with thirty days notice."),
    Document("k2", "Brake pads that squeal need replacing soon."),
    Document("k3", "Refunds are issued within five business days."),
]


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, embedder):
    """A home holding collection ``kept``, its file digests and its answers."""
    home = tmp_path_factory.mktemp("kept")
    build_collection("kept", IngestReport(tuple(KEPT), 0, (), 1, ()), home=home, embedder=embedder)
    return home, folder_digest(home / "kept"), answers(home, embedder)


def answers(home: Path, embedder) -> list[list[tuple[str, float]]]:
    collection = open_collection("kept", home, embedder=embedder)
    return [
        [(h.doc_id, round(h.score, 6)) for h in search(collection, query, mode=mode).hits]
        for query in ("ending the contract", "refund")
        for mode in ("vector", "bm25", "hybrid")
    ]


@pytest.mark.parametrize("source", [c.source for c in BAD] + [c.source for c in SKIPPED], ids=str)
def test_a_failed_rebuild_from_a_bad_source_changes_nothing_stored(
    nasty: Path, kept, embedder, source: str
) -> None:
    home, digest, _ = kept
    with pytest.raises(InputError) as caught:
        build_collection("kept", nasty / source, home=home, embedder=embedder)
    assert caught.value.path in {c.named for c in BAD if c.source == source} | {str(nasty / source)}
    assert folder_digest(home / "kept") == digest
    assert len(open_collection("kept", home, embedder=embedder).documents) == len(KEPT)


def test_after_every_failed_rebuild_the_collection_answers_as_before(kept, embedder) -> None:
    home, digest, expected = kept
    assert folder_digest(home / "kept") == digest
    assert answers(home, embedder) == expected


# --- a 50 MB document ------------------------------------------------------------------------


def test_a_50_mb_document_is_read_with_bounded_memory(tmp_path: Path) -> None:
    """Peak Python allocations while reading stay under 3.5 times the file's size.

    The document itself is 50 MB of text; the lines it is read as and their join cost the rest.
    """
    line = b"The quick brown fox jumps over the lazy dog near the riverbank today.\r\n"
    path = tmp_path / "big.txt"
    with path.open("wb") as handle:
        for _ in range(50 * MB // (len(line) * 1000) + 1):
            handle.write(line * 1000)
    size = path.stat().st_size
    assert size >= 50 * MB
    tracemalloc.start()
    try:
        report = read_source(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [document] = report.documents
    assert len(document.text) == size - size // len(line)  # every \r\n became \n
    assert peak < 3.5 * size, f"peak {peak / MB:.0f} MB for a {size / MB:.0f} MB file"
    print(f"\n50 MB document: read with a peak of {peak / MB:.0f} MB ({peak / size:.2f}x)")


BUILD_BIG = textwrap.dedent(
    """
    import resource, sys, time
    from pathlib import Path
    from search_core.collection import build_collection
    from search_core.embedding import shared_embedder
    from tests.fake_embedder import FakeEmbedder

    path, home = Path(sys.argv[1]), sys.argv[2]
    embedder = FakeEmbedder(tokenizer=shared_embedder().tokenizer)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    collection = build_collection("big", path, home=home, embedder=embedder)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = round(time.perf_counter() - started)
    print(len(collection.chunks), before // 1024, peak // 1024, seconds)
    """
)


@pytest.mark.skipif(not LONG, reason="long variant: RELIABILITY_LONG=1")
def test_a_50_mb_document_builds_a_collection(tmp_path: Path) -> None:
    """The whole build (real tokenizer, fake vectors) from a 50 MB document, in bounded memory."""
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\n"
    path = write(tmp_path / "big.txt", words * (50 * MB // len(words) + 1))
    result = subprocess.run(
        [sys.executable, "-c", BUILD_BIG, str(path), str(tmp_path / "home")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    chunks, before, peak, seconds = map(int, result.stdout.split())
    print(
        f"\n50 MB document built: {chunks} chunks in {seconds} s, "
        f"peak RSS {peak} MB (from {before} MB after imports)"
    )
    assert chunks > 50_000
    # Bounded: the build holds the text, its chunks (with their overlap) and per-token spans
    # as arrays; it measured 0.8 GB above the imports (3.1 GB when spans were Python tuples).
    assert peak - before < 40 * 50, f"the build took {peak - before} MB above the imports"


# --- fuzzing ---------------------------------------------------------------------------------

fuzzed = {"files": 0}


@pytest.fixture(scope="module", autouse=True)
def report_fuzzing():
    yield
    print(f"\nfuzzing: {fuzzed['files']} generated or mutated CSV/JSONL files read")


TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=40,
)
ROWS = st.lists(st.tuples(TEXT, TEXT), max_size=8)
SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT
LINE_ENDINGS = st.sampled_from(["\n", "\r\n"])
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def read_back(path: Path, data: bytes) -> IngestReport:
    path.write_bytes(data)
    fuzzed["files"] += 1
    return read_source(path)


@FUZZ_SETTINGS
@given(
    rows=ROWS,
    ending=LINE_ENDINGS,
    bom=st.booleans(),
    delimiter=st.sampled_from([",", "\t"]),
    quote_all=st.booleans(),
)
def test_any_csv_written_by_the_csv_module_reads_back_exactly(
    tmp_path: Path,
    rows: list[tuple[str, str]],
    ending: str,
    bom: bool,
    delimiter: str,
    quote_all: bool,
) -> None:
    # With "\n" line endings csv.writer leaves a lone "\r" unquoted (it quotes only the line
    # terminator's characters): no reader can tell such a cell from a line break.
    quote_all = quote_all or (ending == "\n" and any("\r" in cell for row in rows for cell in row))
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        lineterminator=ending,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerow(["id", "title", "text"])
    writer.writerows((f"r{i}", title, text) for i, (title, text) in enumerate(rows))
    data = (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8")
    report = read_back(tmp_path / ("fuzz.csv" if delimiter == "," else "fuzz.tsv"), data)
    expected = [(f"r{i}", t, x) for i, (t, x) in enumerate(rows) if x.strip()]
    assert [(d.doc_id, d.title, d.text) for d in report.documents] == expected
    assert report.skipped_empty == len(rows) - len(expected)


@FUZZ_SETTINGS
@given(
    objects=st.lists(
        st.fixed_dictionaries(
            {"text": TEXT, "title": TEXT},
            optional={"year": SCALARS, "tag": SCALARS, "metadata": st.dictionaries(TEXT, SCALARS)},
        ),
        max_size=8,
    ),
    blanks=st.lists(st.sampled_from(["", " ", "\t", " \t "]), max_size=8),
    ending=LINE_ENDINGS,
    bom=st.booleans(),
)
def test_any_jsonl_with_blank_lines_reads_back_exactly(
    tmp_path: Path, objects: list[dict], blanks: list[str], ending: str, bom: bool
) -> None:
    lines = [json.dumps({"_id": f"o{i}", **o}, ensure_ascii=False) for i, o in enumerate(objects)]
    for position, blank in enumerate(blanks):
        lines.insert(position * 2 % (len(lines) + 1), blank)
    data = (b"\xef\xbb\xbf" if bom else b"") + ending.join(lines).encode("utf-8")
    report = read_back(tmp_path / "fuzz.jsonl", data)
    expected = [
        (f"o{i}", o["title"], o["text"]) for i, o in enumerate(objects) if o["text"].strip()
    ]
    assert [(d.doc_id, d.title, d.text) for d in report.documents] == expected


VALID = {
    ".csv": b'id,title,text,year\n1,One,"first, with comma",2020\n2,Two,"multi\nline",\n',
    ".jsonl": b'{"_id": "1", "text": "first", "metadata": {"y": 1}}\n\n{"_id": "2", "text": "b"}\n',
}
MUTATION = st.tuples(
    st.sampled_from(["insert", "delete", "replace"]),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=4)
    | st.sampled_from([b'"', b",", b"\n", b"\r", b"{", b"}", b"\x00", b"\xff", b"\xef\xbb\xbf"]),
)


def mutate(data: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, chunk in mutations:
        position = where % (len(out) + 1)
        if kind == "insert":
            out[position:position] = chunk
        elif kind == "delete":
            del out[position : position + len(chunk)]
        else:
            out[position : position + len(chunk)] = chunk
    return bytes(out)


@pytest.mark.parametrize("suffix", VALID)
@FUZZ_SETTINGS
@given(mutations=st.lists(MUTATION, min_size=1, max_size=6))
def test_a_mutated_file_gives_a_report_or_an_error_naming_file_and_line(
    tmp_path: Path, suffix: str, mutations: list[tuple[str, int, bytes]]
) -> None:
    data = mutate(VALID[suffix], mutations)
    name = f"mutated{suffix}"
    try:
        report = read_back(tmp_path / name, data)
    except InputError as error:
        assert error.path == name
        lines = data.count(b"\n") + 1
        assert error.line is None or 1 <= error.line <= lines
        return
    assert all(d.text.strip() and d.source == name for d in report.documents)
    assert len({d.doc_id for d in report.documents}) == len(report.documents)


def test_limits_are_checked_before_a_byte_is_read(nasty: Path, monkeypatch) -> None:
    """Size limits come from the file's size (or zip headers), so a refused file is never opened."""
    opened: list[str] = []
    real_open = Path.open

    def recording_open(self: Path, *args, **kwargs):
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", recording_open)
    with pytest.raises(InputError, match="over the limit"):
        read_source(nasty / "oversized.txt")
    with pytest.raises(InputError, match="over the limit"):
        read_source(nasty / "long-field.csv", limits=Limits(max_file_size=1000))
    assert opened == []
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
