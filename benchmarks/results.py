"""Shared by the benchmark scripts: each one owns a marked section of benchmarks/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(section: str, text: str | list[str], path: Path = RESULTS) -> None:
    """Replace the block ``<!-- BEGIN section -->`` ... ``<!-- END section -->`` of ``path``
    with ``text`` (lines or one string), appending it when missing; other blocks are kept."""
    body = "\n".join(text) if isinstance(text, list) else text.rstrip("\n")
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    block = f"{begin}\n{body}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
