"""The one way benchmarks write their figures: each owns a delimited section of RESULTS.md and
replaces only that, leaving every other section (and hand-written notes) as they are; and the
one way they say where the figures came from (``machine``, ``code_version``)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import scipy


def machine() -> str:
    """Cores, CPU model, OS and the numeric libraries, in one line."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    return (
        f"nproc {len(os.sched_getaffinity(0))} ({cpu}), {platform.system()}"
        f" {platform.release()}; Python {platform.python_version()}, numpy {np.__version__},"
        f" scipy {scipy.__version__} (OpenBLAS threads:"
        f" {os.environ.get('OPENBLAS_NUM_THREADS', 'default')})"
    )


def code_version() -> str:
    """The commit measured, and whether ``src`` held uncommitted changes."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False)

    head = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    dirty = git("diff", "--quiet", "HEAD", "--", "src").returncode != 0
    return f"commit {head}" + (" with uncommitted changes under src/" if dirty else "")


def write_section(path: Path, start: str, end: str, body: str) -> None:
    """Replace the text between ``start`` and ``end`` in ``path`` (markers included) with
    ``body`` between the same markers; append the section where it is not there yet."""
    section = f"{start}\n{body}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
