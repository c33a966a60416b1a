"""``search-explorer report``: run configurations, compare them, write the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_core.judgments import open_judgments
from tests.test_cli_lab import lab, run
from tests.test_report import Page

__all__ = ["lab"]  # the fixture, imported to be used here


def test_report_writes_one_page_with_both_configurations(
    lab: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "plain vector.json").write_text(json.dumps({"mode": "vector"}))
    out = tmp_path / "reports" / "shop.html"
    status, printed, err = run(
        lab,
        capsys,
        "report",
        "shop",
        "--config",
        str(tmp_path / "plain vector.json"),
        "--config",
        str(lab / "b.json"),
        "-k",
        "3",
        "--changed",
        "2",
        "--title",
        "Brakes <and> refunds",
        "--out",
        str(out),
    )
    assert status == 0, err
    size = out.stat().st_size
    assert printed == f"wrote {out} ({size / 1e6:.1f} MB)\n"
    page = Page(out.read_text(encoding="utf-8"))
    assert ("h1", "Brakes <and> refunds") in page.headings
    assert page.table("settings")[0] == ["setting", "plain vector", "b"]
    assert page.table("metrics")[0] == ["metric", "plain vector", "95% CI", "b", "95% CI"]
    facts = dict(page.facts)
    assert facts["judgment set"] == "default"
    assert facts["judges"] == ", ".join(open_judgments("shop", "default", lab).judges())
    assert facts["cutoff k"] == "3"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--challenger", "nope"], "--challenger 'nope' is not a configuration"),
        (["--changed", "0"], "--changed must be at least 1"),
    ],
)
def test_report_errors_are_one_line(
    lab: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    configs = ["--config", str(lab / "a.json"), "--config", str(lab / "b.json")]
    out = tmp_path / "r.html"
    status, _, err = run(lab, capsys, "report", "shop", *configs, *extra, "--out", str(out))
    assert status == 2 and err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and not out.exists()


def test_report_needs_two_configurations_and_an_output(
    lab: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    argv = ["report", "shop", "--config", str(lab / "a.json"), "--out", str(out)]
    status, _, err = run(lab, capsys, *argv)
    assert status == 2 and "at least two configurations" in err
    with pytest.raises(SystemExit):  # argparse: --out is required
        run(lab, capsys, "report", "shop", "--config", "a", "--config", "b")
