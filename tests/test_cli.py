"""The command line as a person uses it: real subprocesses, exit codes, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quanzhan.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_simulate_writes_summary_and_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _run("simulate", "--scenario", "tiny", "--seed", "3", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "tiny" and summary["seed"] == 3
    assert summary["requests"] == 30_000
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "Platform" in done.stdout and "Ad revenue" in done.stdout


def _one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0]


def test_unknown_scenario(tmp_path: Path) -> None:
    done = _run("simulate", "--scenario", "nowhere", "--out", str(tmp_path / "o"), cwd=tmp_path)
    _one_line_error(done, "unknown scenario 'nowhere'")


def test_negative_seed(tmp_path: Path) -> None:
    done = _run(
        "simulate", "--scenario", "tiny", "--seed", "-4", "--out", str(tmp_path), cwd=tmp_path
    )
    _one_line_error(done, "seed")


def test_unwritable_out_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = _run("simulate", "--scenario", "tiny", "--out", str(blocker / "sub"), cwd=tmp_path)
    _one_line_error(done, "cannot write to output folder")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("catalog: {n_items: [", "not valid YAML"), ("name: broken\n", "catalog")],
)
def test_malformed_scenario_file(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    done = _run("simulate", "--scenario", str(path), "--out", str(tmp_path / "o"), cwd=tmp_path)
    _one_line_error(done, fragment)
    assert not (tmp_path / "o").exists()
