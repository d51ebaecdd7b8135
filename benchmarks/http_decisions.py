"""Ad decisions over HTTP: requests per second and latency on loopback, next to the same server's
bare ``/healthz`` floor measured in the same run.

A ``quanzhan serve`` process (one worker, SQLite) is given a catalog through the API (merchants,
items with titles and categories, one campaign each), then loaded by ``wrk`` with many concurrent
connections: rounds of ``POST /v1/decisions`` (a mix of surfaces, shoppers, queries and context
items) alternate with rounds of ``GET /healthz``, and each figure is the median over its rounds.
The ratio decisions / floor says what the decision path costs on top of the HTTP framework.

    python benchmarks/http_decisions.py            # ~2 minutes; needs wrk (Debian: apt install wrk)
    python benchmarks/http_decisions.py --quick    # a smoke run
    python benchmarks/http_decisions.py --write    # full run, then update RESULTS.md

The load generator shares the machine with the server: on 2 cores both are CPU-bound, so the
absolute figures are lower bounds and the ratio is what compares.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import track
from rich.table import Table

from sections import write_section

RESULTS = Path(__file__).with_name("RESULTS.md")
START = "<!-- http-decisions:start -->"
END = "<!-- http-decisions:end -->"
OPERATOR_KEY = "benchmark-operator-key-0123456789"
CATEGORIES = ("shoes", "bags", "phones", "tea", "toys", "books", "lamps", "coats")
WORDS = ("red", "light", "classic", "pro", "mini", "wool", "smart", "travel", "kids", "green")
SURFACES = ("search", "home_feed", "cart_feed", "post_purchase", "detail", "offsite")

console = Console()

_LUA = """
math.randomseed(7)
local surfaces = {%(surfaces)s}
local words = {%(words)s}
local categories = {%(categories)s}
local items = %(items)d
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  local s = surfaces[math.random(#surfaces)]
  local body = '{"surface":"' .. s .. '","slots":3,"user_id":"u' .. math.random(50000) .. '"'
  if s == "search" then
    body = body .. ',"query":"' .. words[math.random(#words)] .. ' ' ..
      categories[math.random(#categories)] .. '"'
  elseif s ~= "home_feed" and s ~= "offsite" then
    body = body .. ',"item_id":' .. math.random(items)
  end
  return wrk.format(nil, "/v1/decisions", nil, body .. "}")
end
"""


@dataclass(frozen=True)
class Round:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--policy", default=None, help="the service's bidding policy (default: the service's own)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("error: this benchmark needs wrk (Debian: apt install wrk)")
    if args.quick:
        args.items, args.seconds, args.rounds = 100, 2.0, 1
    folder = Path(tempfile.mkdtemp(prefix="quanzhan-http-"))
    port = _free_port()
    server = _start_server(folder, port, args.policy)
    try:
        base = f"http://127.0.0.1:{port}"
        _fill_catalog(base, args.items)
        time.sleep(1.5)  # the serving snapshot picks the catalog up within a refresh
        script = folder / "decisions.lua"
        script.write_text(
            _LUA
            % {
                "surfaces": ",".join(f'"{s}"' for s in SURFACES),
                "words": ",".join(f'"{w}"' for w in WORDS),
                "categories": ",".join(f'"{c}"' for c in CATEGORIES),
                "items": args.items,
                "key": OPERATOR_KEY,
            }
        )
        _check_ads(base)
        _wrk(base + "/healthz", None, args.connections, 1.0)  # warm up both paths
        _wrk(base + "/v1/decisions", script, args.connections, 1.0)
        floor: list[Round] = []
        decisions: list[Round] = []
        for _ in track(range(args.rounds), description="rounds", console=console):
            floor.append(_wrk(base + "/healthz", None, args.connections, args.seconds))
            decisions.append(_wrk(base + "/v1/decisions", script, args.connections, args.seconds))
        batches = _batch_size(base)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    report = _report(args, floor, decisions, batches)
    console.print(report["table"])
    if args.write and not args.quick:
        write_section(RESULTS, START, END, report["markdown"])
        console.print(f"updated {RESULTS}")


def _service_policy(given: str | None) -> str:
    from quanzhan.api.settings import ServiceSettings

    return given or str(ServiceSettings.model_fields["policy"].default)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_server(folder: Path, port: int, policy: str | None) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "quanzhan.cli", "serve", "--port", str(port),
        "--database", f"sqlite:///{folder / 'bench.db'}", "--log-level", "warning",
        # No control tick during the rounds: steering 2,000 campaigns is a second of work that
        # would land in one round or another and blur the comparison; it is not decision work.
        "--tick-seconds", "3600",
    ]  # fmt: skip
    env = {**os.environ, "QUANZHAN_OPERATOR_KEY": OPERATOR_KEY}
    if policy is not None:
        env["QUANZHAN_POLICY"] = policy
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with httpx.Client(timeout=1.0) as probe:
                if probe.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"error: the server did not start: {(folder / 'server.log').read_text()[-2000:]}")


def _fill_catalog(base: str, n_items: int) -> None:
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    with httpx.Client(base_url=base, timeout=30.0) as client:
        keys = []
        for m in range(max(1, n_items // 100)):
            made = client.post("/v1/merchants", json={"name": f"shop {m}"}, headers=operator)
            keys.append(made.raise_for_status().json()["api_key"])
        for i in track(range(n_items), description="catalog", console=console):
            merchant = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
            category = CATEGORIES[i % len(CATEGORIES)]
            title = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} {category} {i}"
            item = client.post(
                "/v1/items",
                json={"title": title, "price": 10.0 + (i * 37) % 190, "category": category},
                headers=merchant,
            ).raise_for_status()
            client.post(
                "/v1/campaigns",
                json={
                    "item_id": item.json()["id"],
                    "daily_budget": 1e6,
                    "target_roi": 2.0 + (i % 5),
                },
                headers=merchant,
            ).raise_for_status()


def _check_ads(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10.0) as client:
        answer = client.post(
            "/v1/decisions",
            json={"surface": "home_feed", "user_id": "u1", "slots": 3},
            headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        ).raise_for_status()
        if not answer.json()["ads"]:
            sys.exit("error: the server answers without ads; the benchmark would flatter it")


def _wrk(url: str, script: Path | None, connections: int, seconds: float) -> Round:
    command = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--latency",
    ]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Round(
        rps=rps,
        p50_ms=_latency(out, "50%"),
        p99_ms=_latency(out, "99%"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _batch_size(base: str) -> float:
    with httpx.Client(base_url=base, timeout=10.0) as client:
        text = client.get("/metrics").text
    found = {
        name: float(value)
        for name, value in re.findall(r"^(quanzhan_decision_\w+_total) ([\d.e+]+)$", text, re.M)
    }
    batches = found.get("quanzhan_decision_batches_total", 0.0)
    return found.get("quanzhan_decision_requests_total", 0.0) / batches if batches else 0.0


def _report(
    args: argparse.Namespace, floor: list[Round], decisions: list[Round], batch: float
) -> dict[str, object]:
    def med(rounds: list[Round], field: str) -> float:
        return statistics.median(getattr(r, field) for r in rounds)

    floor_rps, decision_rps = med(floor, "rps"), med(decisions, "rps")
    ratio = decision_rps / floor_rps
    table = Table(title="HTTP decisions vs the bare /healthz floor (medians)")
    for column in ("", "req/s", "p50 ms", "p99 ms", "non-2xx"):
        table.add_column(column, justify="right")
    for name, rounds in (("GET /healthz", floor), ("POST /v1/decisions", decisions)):
        table.add_row(
            name,
            f"{med(rounds, 'rps'):,.0f}",
            f"{med(rounds, 'p50_ms'):.2f}",
            f"{med(rounds, 'p99_ms'):.2f}",
            str(sum(r.non_2xx for r in rounds)),
        )
    table.caption = f"ratio {ratio:.2f} (target >= 0.5); mean decide batch {batch:.1f} requests"
    per_round = {
        "floor": [round(r.rps) for r in floor],
        "decisions": [round(r.rps) for r in decisions],
    }
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## HTTP decisions (`python benchmarks/http_decisions.py {' '.join(sys.argv[1:])}`)",
        "",
        f"Measured {when} on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}: one `quanzhan serve` worker on SQLite with {args.items} "
        f"items and campaigns steered by `{_service_policy(args.policy)}`, `wrk` with "
        f"{args.connections} connections on loopback on the same machine, {args.rounds} "
        f"rounds of {args.seconds:.0f} s each, rounds alternating; medians.",
        "",
        "| | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rounds in (("`GET /healthz` (floor)", floor), ("`POST /v1/decisions`", decisions)):
        lines.append(
            f"| {name} | {med(rounds, 'rps'):,.0f} | {med(rounds, 'p50_ms'):.2f} | "
            f"{med(rounds, 'p99_ms'):.2f} | {sum(r.non_2xx for r in rounds)} |"
        )
    lines += [
        "",
        f"**Decisions / floor: {ratio:.2f}** (target >= 0.5). Mean engine batch: {batch:.1f} "
        "requests per `Engine.decide` call (concurrent requests are gathered while the engine "
        "works on the previous batch).",
        "",
        "Per round: " + json.dumps(per_round),
    ]
    return {"table": table, "markdown": "\n".join(lines)}


if __name__ == "__main__":
    main()
