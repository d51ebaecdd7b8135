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
    assert html.count("data:image/png;base64,") == 5
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


def test_bench_bidding_writes_the_documented_json_and_a_plot(
    tmp_path: Path, two_day_scenario: Path
) -> None:
    scenario = two_day_scenario
    out = tmp_path / "bench" / "b.json"
    done = _run(
        "bench", "bidding", "--scenario", str(scenario), "--seed", "2",
        "--json", str(out), "--policies", "landscape,manual_cpc", "--dump", str(tmp_path / "dump"),
        "--jobs", "2", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert summary["scenario"] == "two_days" and summary["default_policy"] == "landscape"
    assert set(summary["policies"]) == {"landscape", "manual_cpc"}
    for figures in summary["policies"].values():
        assert {
            "efficiency_median", "efficiency_p10", "roi_met_share", "budget_utilisation_median",
            "overspend_campaigns", "gmv", "cmr",
        } <= set(figures)  # fmt: skip
        assert figures["overspend_campaigns"] == 0
        assert set(figures["by_binding"]) == {"budget", "roi"}
    assert "by what binds it" in done.stdout
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "dump" / "landscape.npz").exists()  # written by a worker process


def test_bench_bidding_with_oracle_predictions_says_so(
    tmp_path: Path, two_day_scenario: Path
) -> None:
    scenario = two_day_scenario
    runs = {}
    for mode, extra in (("learned", []), ("oracle", ["--oracle-predictions"])):
        out = tmp_path / f"{mode}.json"
        done = _run(
            "bench", "bidding", "--scenario", str(scenario), "--seed", "2",
            "--json", str(out), "--policies", "landscape", *extra, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs[mode] = json.loads(out.read_text())
        assert runs[mode]["predictions"] == mode
    # Same market, same seed: only the predictions differ, and so do the outcomes.
    learned, oracle = (runs[m]["policies"]["landscape"] for m in ("learned", "oracle"))
    assert learned["gmv"] != oracle["gmv"]


def test_bench_over_several_seeds_holds_each_seeds_own_figures_and_their_median(
    tmp_path: Path, two_day_scenario: Path
) -> None:
    common = ("--scenario", str(two_day_scenario), "--policies", "landscape,manual_cpc")
    out = tmp_path / "seeds.json"
    done = _run(
        "bench", "bidding", *common, "--seeds", "2-3", "--json", str(out),
        "--dump", str(tmp_path / "dump"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "median over seeds 2, 3" in done.stdout
    summed = json.loads(out.read_text())
    assert summed["seeds"] == [2, 3] and set(summed["by_seed"]) == {"2", "3"}
    single = tmp_path / "single.json"
    done = _run("bench", "bidding", *common, "--seed", "3", "--json", str(single), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert summed["by_seed"]["3"] == json.loads(single.read_text())
    for policy, figures in summed["policies"].items():
        each = [summed["by_seed"][s]["policies"][policy]["gmv"] for s in ("2", "3")]
        assert figures["gmv"] == pytest.approx(sum(each) / 2, abs=1e-4)  # two seeds' median
        assert summed["spread"][policy]["gmv"] == [min(each), max(each)]
    assert set(summed["default_highest"]) == {"2", "3"}
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "dump" / "seed-2" / "landscape.npz").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(("--seed", "1", "--seeds", "1-2"), "not both"), (("--seeds", "2-1"), "upwards")],
)
def test_bench_refuses_seeds_it_cannot_read_before_any_work(
    tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    done = _run("bench", "bidding", "--scenario", "tiny", *args, cwd=tmp_path)
    _one_line_error(done, fragment)
    assert not (tmp_path / "bench.json").exists()


def test_bench_with_a_pctr_perturbation_records_it(tmp_path: Path, two_day_scenario: Path) -> None:
    out = tmp_path / "nudged.json"
    done = _run(
        "bench", "bidding", "--scenario", str(two_day_scenario), "--seed", "2",
        "--json", str(out), "--policies", "landscape", "--pctr-perturbation", "1e-9",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["pctr_perturbation"] == 1e-9
    assert "scaled by 1 + 1e-09" in done.stdout


@pytest.mark.parametrize("value", ["0.5", "-0.02", "nan", "inf"])
def test_bench_refuses_a_pctr_perturbation_that_would_mean_something(
    tmp_path: Path, value: str
) -> None:
    done = _run(
        "bench", "bidding", "--scenario", "tiny", "--pctr-perturbation", value, cwd=tmp_path
    )
    _one_line_error(done, "pctr-perturbation")
    assert not (tmp_path / "bench.json").exists()


def test_bench_refuses_an_unknown_policy_before_any_work(tmp_path: Path) -> None:
    done = _run("bench", "bidding", "--policies", "dual,guesswork", cwd=tmp_path)
    _one_line_error(done, "unknown policy 'guesswork'")


def test_bench_refuses_a_folder_for_its_json(tmp_path: Path) -> None:
    done = _run("bench", "bidding", "--scenario", "tiny", "--json", str(tmp_path), cwd=tmp_path)
    _one_line_error(done, "is a folder")


def _serve(*args: str, cwd: Path, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANZHAN_")}
    if key is not None:
        env["QUANZHAN_OPERATOR_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "quanzhan.cli", "serve", "--port", "1", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "120"},
    )


def test_serve_refuses_to_start_without_an_operator_key(tmp_path: Path) -> None:
    _one_line_error(_serve(cwd=tmp_path, key=None), "QUANZHAN_OPERATOR_KEY")
    assert not (tmp_path / "quanzhan.db").exists()


def test_serve_refuses_a_short_operator_key(tmp_path: Path) -> None:
    _one_line_error(_serve(cwd=tmp_path, key="short"), "at least 16")


@pytest.mark.parametrize(
    ("database", "fragment"),
    [
        ("mysql://nobody@127.0.0.1/x", "unsupported database"),
        ("not a url", "not a database URL"),
        ("sqlite:////no/such/folder/q.db", "no such folder"),
        ("sqlite:///:memory:", "needs a file"),
    ],
)
def test_serve_refuses_a_bad_database(tmp_path: Path, database: str, fragment: str) -> None:
    done = _serve("--database", database, cwd=tmp_path, key="a-long-enough-operator-key")
    _one_line_error(done, fragment)


def test_simulate_logs_events_train_learns_and_simulate_starts_from_the_models(
    tmp_path: Path,
) -> None:
    events, models = tmp_path / "events.npz", tmp_path / "models"
    first = _run(
        "simulate", "--scenario", "tiny", "--seed", "2", "--quiet", "--out", str(tmp_path / "a"),
        "--log-events", str(events), cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    trained = _run("train", "--events", str(events), "--out", str(models), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "impressions" in trained.stdout and "clicks" in trained.stdout
    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest["format"] == "quanzhan-models" and (models / "model.npz").exists()
    second = _run(
        "simulate", "--scenario", "tiny", "--seed", "2", "--quiet", "--out", str(tmp_path / "b"),
        "--models", str(models), cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["requests"] == 30_000
    other = _run(
        "simulate", "--scenario", "tiny", "--seed", "3", "--quiet", "--out", str(tmp_path / "c"),
        "--models", str(models), cwd=tmp_path,
    )  # fmt: skip
    _one_line_error(other, "trained on another catalog")


def test_train_refuses_a_missing_event_file(tmp_path: Path) -> None:
    done = _run("train", "--events", "nowhere.npz", "--out", "models", cwd=tmp_path)
    _one_line_error(done, "event file nowhere.npz does not exist")
    assert not (tmp_path / "models").exists()


def test_train_refuses_a_corrupt_event_file(tmp_path: Path) -> None:
    (tmp_path / "events.npz").write_bytes(b"PK\x03\x04 truncated")
    done = _run("train", "--events", "events.npz", "--out", "models", cwd=tmp_path)
    _one_line_error(done, "not readable")


def test_simulate_refuses_a_missing_model_directory(tmp_path: Path) -> None:
    done = _run(
        "simulate", "--scenario", "tiny", "--out", str(tmp_path / "o"), "--models", "nowhere",
        cwd=tmp_path,
    )  # fmt: skip
    _one_line_error(done, "model directory nowhere does not exist")


def test_simulate_refuses_a_folder_for_the_event_log(tmp_path: Path) -> None:
    done = _run(
        "simulate", "--scenario", "tiny", "--out", str(tmp_path / "o"),
        "--log-events", str(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    _one_line_error(done, "is a folder")
