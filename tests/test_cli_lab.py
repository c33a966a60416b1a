from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_core.cli import build_parser, main
from search_core.collection import build_collection
from search_core.ingest import IngestReport
from search_core.search import SearchParams
from search_core.types import Document

DOCS = (
    Document("brakes", "Brake pads wear and squeal when they are thin."),
    Document("fluid", "Brake fluid should be replaced every two years."),
    Document("refund", "Refunds are paid back within five days of the return."),
    Document("fuel", "Save money on fuel by checking tyre pressure every month."),
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A collections home with collection ``shop`` and its judgments imported from BEIR files."""
    home = tmp_path_factory.mktemp("cli-lab")
    build_collection("shop", IngestReport(DOCS, 0, (), 1, ()), home=home, embedder=embedder)
    beir = home / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "queries.jsonl").write_text(
        '{"_id": "1", "text": "squealing brakes"}\n'
        '{"_id": "2", "text": "money back"}\n'
        '{"_id": "3", "text": "changing brake fluid"}\n'
    )
    (beir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n1\tbrakes\t3\n2\trefund\t3\n2\tfuel\t1\n3\tfluid\t2\n"
    )
    assert main(["--home", str(home), "judge", "import", "shop", "beir", str(beir)]) == 0
    (home / "a.json").write_text(json.dumps({"mode": "vector"}))
    (home / "b.json").write_text(json.dumps(SearchParams(mode="hybrid").to_dict()))
    return home


def run(lab: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["--home", str(lab), *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_lab_commands_are_part_of_the_main_parser() -> None:
    args = build_parser().parse_args(["tune", "shop", "--folds", "3"])
    assert (args.command, args.folds, args.set) == ("tune", 3, None)


def test_judge_export_and_add(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(lab, capsys, "judge", "export", "shop", "trec", str(lab / "out.qrels"))
    assert status == 0 and "wrote 4 rows" in out and "combined grades" in out
    assert (lab / "out.qrels").read_text().splitlines()[0] == "1 0 brakes 3"

    status, out, _ = run(
        lab,
        capsys,
        "judge",
        "add",
        "shop",
        "9",
        "refund",
        "2",
        "--query",
        "=refund please",
        "--judge",
        "ana",
        "--set",
        "extra",
        "--json",
    )
    assert status == 0 and json.loads(out)["grade"] == 2
    status, _, _ = run(
        lab, capsys, "judge", "export", "shop", "csv", str(lab / "x.csv"), "--set", "extra"
    )
    assert "'=refund please" in (lab / "x.csv").read_text()


def test_a_judging_session_from_the_command_line(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search_core.judgments import open_judgments
    from search_core.pooling import next_pair, submit

    store = open_judgments("shop", "session", lab)
    for query_id, text in (("1", "squealing brakes"), ("2", "money back"), ("3", "fluid")):
        store.add_query(query_id, text)
    status, out, err = run(
        lab,
        capsys,
        "judge",
        "pool",
        "shop",
        "--config",
        str(lab / "a.json"),
        "--config",
        str(lab / "b.json"),
        "--pool",
        "study",
        "--depth",
        "2",
        "--replicates",
        "2",
        "--set",
        "session",
        "--json",
    )
    assert status == 0, err
    made = json.loads(out)
    assert made["pool"] == "study" and made["replicates"] == 2 and made["sources"] == ["a", "b"]
    assert made["grades_given"] == 0 and made["queries"] == 3
    # two judges work the pool; one disagrees on every document
    for judge, grade in (("ana", 3), ("ben", 0)):
        turn = next_pair(store, "study", judge)
        while turn.assignment is not None:
            a = turn.assignment
            turn = submit(store, "study", judge, a.query_id, a.doc_id, grade)
    status, out, _ = run(lab, capsys, "judge", "agreement", "shop", "--set", "session", "--json")
    report = json.loads(out)
    assert status == 0 and report["judges"] == ["ana", "ben"]
    assert report["units"] == made["pairs"] and len(report["disagreements"]) == made["pairs"]
    assert report["pairs"][0]["raw"] == 0.0
    status, out, _ = run(lab, capsys, "judge", "agreement", "shop", "--set", "session")
    assert "Krippendorff's alpha" in out and "spread 3: ana 3, ben 0" in out

    per_judge = lab / "judges.csv"
    status, out, _ = run(
        lab,
        capsys,
        "judge",
        "export",
        "shop",
        "csv",
        str(per_judge),
        "--set",
        "session",
        "--per-judge",
    )
    assert status == 0 and f"wrote {2 * made['pairs']} rows" in out
    assert per_judge.read_text().splitlines()[0].split(",")[4] == "judge"
    minimum = lab / "min.qrels"
    run(
        lab,
        capsys,
        "judge",
        "export",
        "shop",
        "trec",
        str(minimum),
        "--set",
        "session",
        "--rule",
        "minimum",
    )
    assert {line.split()[-1] for line in minimum.read_text().splitlines()} == {"0"}
    status, _, err = run(
        lab, capsys, "judge", "export", "shop", "trec", str(minimum), "--per-judge"
    )
    assert status == 2 and "use the csv format" in err
    # the per-judge file reads back into another set as it was
    run(lab, capsys, "judge", "import", "shop", "csv", str(per_judge), "--set", "copy")
    copy = open_judgments("shop", "copy", lab)
    assert sorted((j.query_id, j.doc_id, j.judge, j.grade) for j in copy.judgments()) == sorted(
        (j.query_id, j.doc_id, j.judge, j.grade) for j in store.judgments()
    )


def test_compare_two_configs_with_a_side_by_side(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compare = ("compare", "shop", "--config", str(lab / "a.json"), "--config", str(lab / "b.json"))
    status, out, _ = run(lab, capsys, *compare, "--query", "2", "-k", "3", "--json")
    assert status == 0
    result = json.loads(out)
    assert result["names"] == ["a", "b"] and result["metric"] == "ndcg@3"
    assert [row["name"] for row in result["table"]] == ["a", "b"]
    assert set(result["wins_ties_losses"]["b"]) == {"wins", "ties", "losses"}
    assert result["side_by_side"]["rows"][0]["rank"] == 1

    status, out, _ = run(lab, capsys, *compare)
    assert status == 0 and "wins" in out and "ndcg@10" in out


def test_compare_keeps_runs_as_snapshots(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(
        lab,
        capsys,
        "compare",
        "shop",
        "--config",
        str(lab / "a.json"),
        "--config",
        str(lab / "b.json"),
        "--save",
    )
    ids = [line.split()[-1] for line in err.splitlines() if "as snapshot" in line]
    assert status == 0 and len(ids) == 2
    status, out, _ = run(
        lab, capsys, "compare", "shop", "--snapshot", ids[0], "--snapshot", ids[1], "--json"
    )
    assert status == 0 and json.loads(out)["names"] == ["a", "b"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "shop", "--config", "a.json"], "at least two runs"),
        (["compare", "shop", "--config", "nope.json", "--config", "b.json"], "neither a file"),
        (["sweep", "shop", "ann"], "sweepable kinds"),
        (["tune", "shop", "--set", "empty"], "is empty"),
        (["tune", "shop", "--queries", "q.jsonl"], "both --queries and --qrels"),
        (["judge", "import", "shop", "csv", "missing.csv"], "missing.csv: file not found"),
    ],
)
def test_errors_are_one_line(lab: Path, capsys, argv: list[str], message: str, monkeypatch) -> None:
    monkeypatch.chdir(lab)
    status, _, err = run(lab, capsys, *argv)
    assert status == 2 and message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_sweeps(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        lab, capsys, "sweep", "shop", "threshold", "--values", "0", "0.5", "0.9", "--json"
    )
    rows = json.loads(out)["rows"]
    assert status == 0 and [r["threshold"] for r in rows] == [0.0, 0.5, 0.9]
    status, out, _ = run(lab, capsys, "sweep", "shop", "fusion", "--values", "10", "60")
    assert status == 0 and "rrf_k" in out and "bm25" in out
    status, out, _ = run(lab, capsys, "sweep", "shop", "health", "--json")
    assert status == 0 and json.loads(out)["recall"] == pytest.approx(1.0)


def test_tune_prints_the_chosen_configuration_and_its_held_out_score(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(lab, capsys, "tune", "shop", "--folds", "3", "--save", "tuned")
    assert status == 0
    config = json.loads(out[: out.index("}\n") + 1])
    assert SearchParams.from_dict(config)
    assert "held-out nDCG@10" in out and "vs default" in out and "95% interval" in out
    assert "Chose " in out or "Kept " in out  # the reason, naming the guard that applied

    status, out, _ = run(lab, capsys, "tune", "shop", "--folds", "3", "--json")
    report = json.loads(out)
    assert status == 0 and set(report["defaults"]) == {"vector", "bm25", "hybrid"}
    assert report["chosen"] == config and 0.0 <= report["held_out"] <= 1.0

    # the saved configuration is usable by name
    status, out, _ = run(
        lab, capsys, "compare", "shop", "--config", "tuned", "--config", str(lab / "b.json")
    )
    assert status == 0 and "tuned" in out
