"""The ``quanzhan`` command line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quanzhan.errors import OutputError, QuanzhanError

app = typer.Typer(
    help="Quanzhan: a full-site promotion engine for e-commerce marketplaces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Quanzhan: a full-site promotion engine for e-commerce marketplaces."""


@app.command()
def simulate(
    scenario: Annotated[
        str, typer.Option(help="A scenario name (tiny, default, large) or a YAML file.")
    ] = "default",
    seed: Annotated[int, typer.Option(help="Seed of every random draw; same seed, same run.")] = 7,
    out: Annotated[Path, typer.Option(help="Folder for summary.json and report.html.")] = Path(
        "out"
    ),
    quiet: Annotated[bool, typer.Option(help="No progress bar and no tables.")] = False,
) -> None:
    """Run a simulated marketplace through the engine and report what happened."""
    from quanzhan.report.html import write_report
    from quanzhan.report.table import print_summary
    from quanzhan.sim.config import load_scenario
    from quanzhan.sim.run import Simulation
    from quanzhan.sim.summary import build_summary

    started = time.perf_counter()
    if seed < 0:
        raise QuanzhanError(f"seed must be a non-negative integer, not {seed}")
    config = load_scenario(scenario)
    _prepare_out(out)
    simulation = Simulation(config, seed=seed)
    with _progress(quiet) as progress:
        task = progress.add_task(f"simulating {config.name}", total=simulation.market.n_ticks)
        result = simulation.run(lambda done, _total: progress.update(task, completed=done))
    summary = build_summary(result, wall_seconds=time.perf_counter() - started)
    _write_json(out / "summary.json", summary)
    write_report(summary=summary, path=out / "report.html")
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    _write_json(out / "summary.json", summary)
    if not quiet:
        print_summary(summary=summary, console=console)
        seconds = summary["wall_seconds"]
        console.print(f"wrote {out / 'summary.json'} and {out / 'report.html'} in {seconds:.1f} s")


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ticks"),
        TimeElapsedColumn(),
        console=errors,
        disable=quiet,
        transient=False,
    )


def _prepare_out(out: Path) -> None:
    """Create the folder and prove it writable before any work is done."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputError(f"cannot write to output folder {out}: {reason}") from error


def _write_json(path: Path, data: object) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error


def main() -> None:
    """Entry point: domain errors become one line on stderr and exit status 2."""
    try:
        app()
    except QuanzhanError as error:
        print(f"error: {error}", file=sys.stderr)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
