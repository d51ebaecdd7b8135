"""The command line the engine benchmarks share: a quick smoke run, ``--write`` for the full
one, the market seed and the number of timed repeats."""

from __future__ import annotations

import argparse


def parse_benchmark_args(
    argv: list[str], *, description: str, results_name: str, repeats_help: str
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny scenario, few repeats (smoke test)"
    )
    parser.add_argument(
        "--write", action="store_true", help=f"update the section in {results_name}"
    )
    parser.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    parser.add_argument("--repeats", type=int, default=None, help=repeats_help)
    args = parser.parse_args(argv)
    if args.quick and args.write:
        parser.error("--write records the full benchmark; drop --quick")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args
