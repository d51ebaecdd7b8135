"""The one way benchmarks write their figures: each owns a delimited section of RESULTS.md and
replaces only that, leaving every other section (and hand-written notes) as they are."""

from __future__ import annotations

from pathlib import Path


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
