"""The ``quanzhan`` command line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

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
    log_events: Annotated[
        Path | None, typer.Option(help="Also write the run's event log here (for `train`).")
    ] = None,
    models: Annotated[
        Path | None,
        typer.Option(help="A model directory (from `train`) the engine starts from."),
    ] = None,
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
    if log_events is not None:
        _prepare_file(log_events, option="--log-events")
    simulation = Simulation(config, seed=seed, models=models, keep_organic=log_events is not None)
    with _progress(quiet) as progress:
        task = progress.add_task(f"simulating {config.name}", total=simulation.market.n_ticks)
        result = simulation.run(lambda done, _total: progress.update(task, completed=done))
    summary = build_summary(result, wall_seconds=time.perf_counter() - started)
    write_report(summary=summary, path=out / "report.html")
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)  # the report included
    _write_json(out / "summary.json", summary)
    if log_events is not None:
        simulation.write_events(log_events)
    if not quiet:
        print_summary(summary=summary, console=console)
        seconds = summary["wall_seconds"]
        console.print(f"wrote {out / 'summary.json'} and {out / 'report.html'} in {seconds:.1f} s")
        if log_events is not None:
            console.print(f"wrote the event log to {log_events}")


@app.command()
def train(
    events: Annotated[Path, typer.Option(help="An event file, from `simulate --log-events`.")],
    out: Annotated[Path, typer.Option(help="The model directory to write (or replace).")],
    seed: Annotated[
        int | None, typer.Option(help="Seed of the engine's draws; default: the file's.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress and no summary.")] = False,
) -> None:
    """Learn the engine's models from an event log and write them as a model directory."""
    from contextlib import nullcontext

    from quanzhan.engine.eventfile import read_event_file, train_engine
    from quanzhan.engine.modeldir import save_models

    started = time.perf_counter()
    if seed is not None and seed < 0:
        raise QuanzhanError(f"seed must be a non-negative integer, not {seed}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder for the model directory")
    status = nullcontext() if quiet else errors.status("reading the event file")
    with status as spinner:
        found = read_event_file(events)
        if spinner is not None:
            spinner.update(f"learning from {found.n_impressions:,} impressions")
        engine = train_engine(found, seed=seed)
        if spinner is not None:
            spinner.update(f"writing {out}")
        save_models(out, engine, source=str(events))
    if not quiet:
        from rich.table import Table

        table = Table(title=f"Trained from {events}", title_justify="left")
        for column in ("impressions", "clicks", "orders", "seconds"):
            table.add_column(column, justify="right")
        seconds = time.perf_counter() - started
        table.add_row(
            f"{found.n_impressions:,}",
            f"{found.n_clicks:,}",
            f"{found.n_orders:,}",
            f"{seconds:.1f}",
        )
        console.print(table)
        console.print(f"wrote the model directory {out}")


bench = typer.Typer(
    help="Benchmarks that hold the engine against references.", no_args_is_help=True
)
app.add_typer(bench, name="bench")


@bench.command("bidding")
def bench_bidding_command(
    scenario: Annotated[
        str, typer.Option(help="A scenario: steady, surge, shock, cold, delay, or a file.")
    ] = "steady",
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of every random draw.  [default: 7]", show_default=False),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Several seeds instead, like 1-4 or 1,3,7: one market each, the JSON holding"
            " each figure's median over them, its range, and every seed's own figures."
        ),
    ] = None,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the figures.")] = Path(
        "bench.json"
    ),
    dump: Annotated[
        Path | None,
        typer.Option(help="Folder for each run's menus and outcomes (NPZ; seed-N/ per seed)."),
    ] = None,
    policies: Annotated[
        str | None, typer.Option(help="Comma-separated policies; default: all.")
    ] = None,
    oracle_predictions: Annotated[
        bool,
        typer.Option(
            help="Bid on the hidden true click and purchase odds instead of the learned models"
            " (evaluation only: what prediction error costs each policy)."
        ),
    ] = False,
    pctr_perturbation: Annotated[
        float,
        typer.Option(
            help="Scale every pCTR the runs serve by 1 + this, e.g. 1e-9 (evaluation only: a"
            " change that means nothing, so the figures' move against a run without it is the"
            " market's chaos alone; at most 0.01 either way).",
        ),
    ] = 0.0,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Policies run at once, each in its own process (up to 6 GB each on the"
            " benchmark scenarios); the figures are the same whatever the number."
            " [default: one per core, as many as memory holds at 8 GB each]",
            min=1,
            max=64,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Every policy on the same market and seed, against the hindsight optimum."""
    import numpy as np

    from quanzhan.report.bench_plot import write_bench_plot
    from quanzhan.sim.bench import BENCH_POLICIES, PAST, bench_bidding
    from quanzhan.sim.bench_seeds import across_seeds, parse_seeds
    from quanzhan.sim.config import load_scenario
    from quanzhan.sim.run import check_perturbation

    if seed is not None and seeds is not None:
        raise QuanzhanError("give --seed or --seeds, not both")
    if seed is not None and seed < 0:
        raise QuanzhanError(f"seed must be a non-negative integer, not {seed}")
    try:
        check_perturbation(pctr_perturbation)
    except ValueError as error:
        raise QuanzhanError(f"--pctr-perturbation: {error}") from error
    chosen_seeds = parse_seeds(seeds) if seeds is not None else (7 if seed is None else seed,)
    named = [p.strip() for p in policies.split(",") if p.strip()] if policies else BENCH_POLICIES
    chosen = tuple(dict.fromkeys(named))  # each once, in the order given
    unknown = [p for p in chosen if p not in BENCH_POLICIES]
    if unknown or not chosen:
        first = repr(unknown[0]) if unknown else "none"
        raise QuanzhanError(f"unknown policy {first}; known: {', '.join(BENCH_POLICIES)}")
    config = load_scenario(scenario)
    if json_path.is_dir():
        raise OutputError(f"--json {json_path} is a folder; give a file path")
    _prepare_out(json_path.parent)
    if dump is not None:
        _prepare_out(dump)
    several = seeds is not None
    runs: dict[int, dict[str, Any]] = {}
    efficiencies: dict[str, list[np.ndarray]] = {p: [] for p in chosen}
    with _progress(False) as progress:
        before = (PAST,) if config.traffic.warmup_days else ()
        tasks = {p: progress.add_task(p, total=None) for p in (*before, *chosen)}
        over_seeds = progress.add_task("seeds", total=len(chosen_seeds)) if several else None

        def advance(policy: str, done: int, total: int) -> None:
            progress.update(tasks[policy], completed=done, total=total)

        for number in chosen_seeds:
            into = dump / f"seed-{number}" if dump is not None and several else dump
            for task in tasks.values():
                progress.reset(task, total=None)
            runs[number], found = bench_bidding(
                config,
                seed=number,
                policies=chosen,
                progress=advance,
                dump=into,
                oracle_predictions=oracle_predictions,
                jobs=jobs,
                pctr_perturbation=pctr_perturbation,
            )
            for policy, outcome in found.items():
                efficiencies[policy].append(outcome.efficiency)
            if over_seeds is not None:
                progress.advance(over_seeds)
            # Written after every seed: a run stopped later keeps the seeds done so far.
            summary = across_seeds(runs) if several else runs[number]
            _write_json(json_path, summary)
    plot = json_path.with_suffix(".png")
    pooled = {p: np.concatenate(e) for p, e in efficiencies.items()}
    write_bench_plot(summary=summary, efficiencies=pooled, path=plot)
    _print_bench(summary, name=config.name, oracle=oracle_predictions)
    if pctr_perturbation:
        console.print(f"every pCTR served scaled by 1 + {pctr_perturbation:g} (evaluation only)")
    console.print(f"wrote {json_path} and {plot}")


def _print_binding(summary: dict[str, Any]) -> None:
    """Each policy's campaign-days by what binds the learned ceiling: where it loses."""
    from rich.table import Table

    table = Table(title="Against the learned ceiling, by what binds it", title_justify="left")
    for column in (
        "policy", "binds", "campaign-days", "of ceiling", "median", "ROI met", "spend of ceiling",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column in {"policy", "binds"} else "right")
    for policy, figures in summary["policies"].items():
        for binds, part in figures.get("by_binding", {}).items():
            table.add_row(
                policy, "budget" if binds == "budget" else "target", str(part["campaign_days"]),
                *(_fmt(part[f]) for f in (
                    "of_learned_ceiling", "of_learned_ceiling_median", "roi_met_share",
                    "spend_of_ceiling_median",
                )),
            )  # fmt: skip
    console.print(table)


def _print_bench(summary: dict[str, Any], *, name: str, oracle: bool) -> None:
    """The benchmark's table; over several seeds, each figure's median and its range."""
    from rich.table import Table

    spread = summary.get("spread")
    if spread is None:
        title = f"Bidding benchmark: {name}, seed {summary['seed']}"
    else:
        title = f"Bidding benchmark: {name}, median over seeds {_seed_list(summary['seeds'])}"
    if oracle:
        title += ", oracle predictions (evaluation only)"
    table = Table(title=title, title_justify="left")
    columns = (
        "policy", "efficiency median", "p10", "of learned ceiling", "ROI met", "budget use",
        "overspend", "GMV",
    )  # fmt: skip
    for column in (*columns, "CMR"):
        table.add_column(column, justify="left" if column == "policy" else "right")

    def cell(policy: str, figure: str) -> str:
        value = summary["policies"][policy][figure]
        text = str(value) if figure == "overspend_campaigns" else _fmt(value)
        if figure in {"gmv", "cmr"}:
            text = f"{value:,.0f}"
        if spread is not None and figure in {"efficiency_median", "roi_met_share"}:
            low_high = spread[policy][figure]
            if low_high is not None:
                text += f"\n{low_high[0]:.3f}–{low_high[1]:.3f}"  # a second line: narrow
        return text

    for policy in summary["policies"]:
        table.add_row(
            policy + (" (default)" if policy == summary["default_policy"] else ""),
            *(cell(policy, f) for f in (
                "efficiency_median", "efficiency_p10", "efficiency_vs_learned_median",
                "roi_met_share",
                "budget_utilisation_median", "overspend_campaigns", "gmv", "cmr",
            )),
        )  # fmt: skip
    console.print(table)
    if spread is None:
        _print_binding(summary)
    decided = [v for v in summary.get("default_highest", {}).values() if v is not None]
    if decided:
        console.print(
            f"the default had the highest median efficiency on {sum(decided)} of"
            f" {len(decided)} seeds"
        )


def _seed_list(seeds: list[int]) -> str:
    return ", ".join(str(s) for s in seeds)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    database: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://... "
            "[default: QUANZHAN_DATABASE_URL, else sqlite:///quanzhan.db]"
        ),
    ] = None,
    redis: Annotated[
        str | None, typer.Option(help="Redis URL for spend counters shared by processes.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Server processes.", min=1, max=64)] = 1,
    tick_seconds: Annotated[
        float,
        typer.Option(
            help="Seconds between control ticks (bid multiplier updates); the policies are "
            "tuned to the simulator's 15-minute tick."
        ),
    ] = 900.0,
    demo: Annotated[
        bool, typer.Option(help="Make up an operator key and print it (for trying it out).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the HTTP API: merchants, campaigns, ad decisions, events and reports.

    The operator key comes from QUANZHAN_OPERATOR_KEY; the schema is migrated at start.
    """
    import secrets

    import uvicorn

    from quanzhan.api.logs import configure
    from quanzhan.api.settings import OPERATOR_KEY_ENV, ServiceSettings
    from quanzhan.store.database import Database

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise QuanzhanError(f"unknown log level {log_level!r}: use debug, info, warning or error")
    if demo and not os.environ.get(OPERATOR_KEY_ENV):
        os.environ[OPERATOR_KEY_ENV] = secrets.token_urlsafe(24)
        console.print(f"operator key (demo): {os.environ[OPERATOR_KEY_ENV]}")
    database = database or os.environ.get("QUANZHAN_DATABASE_URL") or "sqlite:///quanzhan.db"
    os.environ["QUANZHAN_DATABASE_URL"] = database
    os.environ["QUANZHAN_LOG_LEVEL"] = log_level.lower()
    os.environ["QUANZHAN_TICK_SECONDS"] = str(tick_seconds)
    if redis:
        os.environ["QUANZHAN_REDIS_URL"] = redis
    settings = ServiceSettings.from_environment()  # refuses to start without an operator key
    store = Database(settings.database_url)
    try:
        store.migrate()  # once here, so a bad database stops the start with one line
    except Exception as error:
        raise QuanzhanError(f"cannot open database {database}: {error}") from error
    finally:
        store.dispose()
    configure(log_level)
    uvicorn.run(
        "quanzhan.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
        # Past this many open connections and requests a process answers 503 at once instead
        # of queueing without bound.
        limit_concurrency=2048,
        timeout_keep_alive=15,
    )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


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


def _prepare_file(path: Path, *, option: str) -> None:
    """Refuse a folder, and prove the file's folder writable, before any work is done."""
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file path")
    _prepare_out(path.parent)


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
