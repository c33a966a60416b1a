from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from search_core.cli import _progress, main
from search_core.collection import BUILD_STAGES
from search_core.settings import DEFAULT_BACKEND
from tests.test_embedding import model_copy

CSV = """id,title,text,domain,amount
o1,Shipped order,"Order ID: 12345, status: shipped",commerce,25.5
c1,Cat,The cat sat on the mat.,pets,
o2,Pending order,"Order ID: 67890, status: pending",commerce,99
"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_list_info_delete(capsys, home: Path, corpus: Path) -> None:
    code, out, _ = run(capsys, "index", str(corpus), "--name", "orders", "--title-field", "title")
    assert code == 0 and "indexed 3 documents as 3 chunks" in out

    code, out, _ = run(capsys, "search", "orders", "order 12345", "--mode", "bm25", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["hits"][0]["doc_id"] == "o1"
    assert payload["hits"][0]["metadata"] == {"domain": "commerce", "amount": 25.5}
    assert set(payload["timings_ms"]) >= {"embed_ms", "vector_ms", "bm25_ms", "fusion_ms"}

    code, out, _ = run(capsys, "search", "orders", "order 12345")
    assert code == 0 and out.startswith("#1") and "doc o1" in out.splitlines()[0]

    code, out, _ = run(capsys, "search", "orders", "order", "--filter", "amount>=50", "--json")
    assert [h["doc_id"] for h in json.loads(out)["hits"]] == ["o2"]

    code, out, _ = run(capsys, "list")
    assert out.split()[0] == "orders"
    code, out, _ = run(capsys, "info", "orders")
    assert "fingerprint" in out and "flat" in out
    assert "language     english (detected), Snowball stemmer" in out
    code, out, _ = run(capsys, "delete", "orders")
    assert code == 0
    code, out, err = run(capsys, "search", "orders", "x")
    assert code == 2 and "no collection named 'orders'" in err


def test_index_kinds_and_chunking_options(capsys, home: Path, corpus: Path) -> None:
    code, out, _ = run(
        capsys,
        "index",
        str(corpus),
        "--name",
        "o",
        "--index",
        "ivf",
        "--chunking",
        "paragraphs",
        "--chunk-size",
        "64",
        "--chunk-overlap",
        "0",
        "--json",
    )
    payload = json.loads(out)
    assert code == 0 and payload["index"]["requested_kind"] == "ivf"
    assert payload["index"]["kind"] == "flat" and payload["index"]["fallback_reason"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index", "missing.csv", "--name", "x"], "missing.csv"),
        (["index", "{corpus}", "--name", "../escape"], "invalid collection name"),
        (["index", "{corpus}", "--name", "x", "--text-field", "body"], "body"),
        (["index", "{corpus}", "--name", "x", "--index-param", "nlist=many"], "NAME=INTEGER"),
        (["info", "nothing"], "no collection named"),
    ],
)
def test_errors_are_one_clear_line(
    capsys, home: Path, corpus: Path, argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *[a.replace("{corpus}", str(corpus)) for a in argv])
    assert code == 2
    assert message in err
    # progress lines may come first (stderr is not a terminal here); the error is one line
    progress = tuple(BUILD_STAGES.values())
    lines = [line for line in err.strip().splitlines() if not line.startswith(progress)]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: ")


def test_eval_json(capsys, home: Path, corpus: Path, tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        '{"_id": "q1", "text": "order 12345"}\n{"_id": "q2", "text": "cat on a mat"}\n'
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\to1\t2\nq2\tc1\t1\n")
    run(capsys, "index", str(corpus), "--name", "orders")
    code, out, _ = run(
        capsys,
        "eval",
        "orders",
        "--queries",
        str(queries),
        "--qrels",
        str(qrels),
        "--mode",
        "bm25",
        "--json",
    )
    payload = json.loads(out)
    assert code == 0
    assert payload["queries"] == 2
    assert set(payload["metrics"]) == {"ndcg@10", "recall@100", "mrr@10", "precision@10"}
    assert payload["metrics"]["mrr@10"] == pytest.approx(1.0)
    code, out, _ = run(
        capsys, "eval", "orders", "--queries", str(queries), "--qrels", str(qrels), "--mode", "all"
    )
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == [
        "vector",
        "bm25",
        "hybrid",
    ]


def test_drift_check_passes_then_fails_when_the_model_changes(
    capsys, home: Path, corpus: Path, tmp_path: Path
) -> None:
    model = model_copy(tmp_path)
    # torch: the ONNX backends refuse the CLS pooling this test changes the model to.
    run(
        capsys,
        "index",
        str(corpus),
        "--name",
        "orders",
        "--model",
        str(model),
        "--backend",
        "torch",
    )
    code, out, _ = run(capsys, "drift-check", "orders")
    assert code == 0 and out.startswith("no drift")
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    code, out, _ = run(capsys, "drift-check", "orders")
    assert code == 1 and out.startswith("DRIFT") and "fingerprint changed" in out
    code, _, err = run(capsys, "search", "orders", "order", "--mode", "vector")
    assert code == 2 and "fingerprint" in err


def test_installed_command_runs(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "search_core.cli", "list"],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ},
    )
    assert result.returncode == 0
    assert "no collections yet" in result.stdout
    broken = subprocess.run(
        [sys.executable, "-m", "search_core.cli", "delete", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode == 2 and "Traceback" not in broken.stderr


def test_index_without_a_terminal_prints_a_line_per_tenth_of_each_stage(
    capsys, home: Path, corpus: Path
) -> None:
    code, _, err = run(capsys, "index", str(corpus), "--name", "orders")
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith(tuple(BUILD_STAGES.values()))]
    stages = {label: stage for stage, label in BUILD_STAGES.items()}
    seen = [(stages[line.split(": ")[0]], int(line.split(": ")[1].split("%")[0])) for line in lines]
    # every stage, in order, named as it starts, then at most one line per 10% up to 100%
    assert list(dict.fromkeys(stage for stage, _ in seen)) == list(BUILD_STAGES)
    for stage in BUILD_STAGES:
        percents = [percent for name, percent in seen if name == stage]
        assert percents[0] == 0 and percents[-1] == 100
        assert percents == sorted(set(percents)) and len(percents) <= 11
    size = corpus.stat().st_size
    assert f"Reading, chunking and embedding: 100% ({size:,} of {size:,} bytes)" in err


def test_index_on_a_terminal_shows_a_bar() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = _progress(screen)
    for done in (0, 5, 10):
        progress("index", done, 10)
    assert "Building the indexes" in screen.getvalue() and "5/10" in screen.getvalue()
    assert "\r" in screen.getvalue()  # one bar redrawn, not a line per step


def test_index_builds_with_the_default_backend(capsys, home: Path, corpus: Path) -> None:
    run(capsys, "index", str(corpus), "--name", "orders")
    code, out, _ = run(capsys, "info", "orders", "--json")
    assert code == 0 and json.loads(out)["model"]["backend"] == DEFAULT_BACKEND == "onnx-fp32"


def test_index_lists_the_files_it_skipped_by_name_and_reason(
    capsys, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    from search_core import collection
    from tests.fake_embedder import FakeEmbedder

    monkeypatch.setattr(collection, "shared_embedder", lambda *_, **__: FakeEmbedder())
    source = tmp_path / "source"
    source.mkdir()
    (source / "good.txt").write_text("a document")
    (source / ".hidden.txt").write_text("hidden")
    for i in range(12):
        (source / f"d{i:02}.docx").write_bytes(b"PK")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("x.txt", "x")
    with zipfile.ZipFile(source / "bundle.zip", "w") as archive:
        archive.writestr("in\nner.zip", inner.getvalue())
        archive.writestr("ok.txt", "inside")
    code, out, err = run(capsys, "index", str(source), "--name", "mixed")
    assert code == 0, err
    lines = out.splitlines()
    start = lines.index("skipped 14 files of the source:")
    assert lines[start + 1 : start + 4] == [
        "  .hidden.txt: hidden",
        "  bundle.zip/in%0Aner.zip: archive inside an archive, not read",
        "  d00.docx: unsupported extension '.docx'",
    ]
    assert lines[start + 11] == "  and 4 more"
    code, out, _ = run(capsys, "index", str(source), "--name", "mixed", "--json")
    skipped = json.loads(out)["files_skipped"]
    assert len(skipped) == 14 and skipped[1] == ["bundle.zip/in%0Aner.zip", skipped[1][1]]
