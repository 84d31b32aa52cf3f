"""The documents the code cites are in the repository, and every cited section exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = {
    "CONVENTIONS.md": ROOT / "tvdenoise" / "CONVENTIONS.md",
    "PROTOCOL.md": ROOT / "benchmarks" / "PROTOCOL.md",
}
# `CONVENTIONS.md, "Differences"`, also inside a Python string literal (\"...\").
CITATION = re.compile(r'\b(CONVENTIONS\.md|PROTOCOL\.md), \\?"([^"\\]+)\\?"')


def _sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for folder in ("tvdenoise", "tests", "benchmarks", "sample_images", "configs", ".ci"):
        files += [
            path
            for path in sorted((ROOT / folder).rglob("*"))
            if path.is_file()
            and path.suffix in {".py", ".md", ".toml", ".c", ""}
            and "__pycache__" not in path.parts
        ]
    return files


def _sections(document: Path) -> set[str]:
    return {
        line[3:].strip() for line in document.read_text().splitlines() if line.startswith("## ")
    }


def test_cited_sections_exist() -> None:
    cited = 0
    for path in _sources():
        for match in CITATION.finditer(path.read_text(errors="replace")):
            name, section = match.groups()
            assert section in _sections(DOCUMENTS[name]), f"{path}: {name} has no {section!r}"
            cited += 1
    assert cited >= 10  # the pattern still finds the citations in the docstrings


def test_nothing_cites_a_document_outside_the_repository() -> None:
    outside = re.compile(r"DESIGN(\.md)? section \d")
    for path in _sources():
        assert not outside.search(path.read_text(errors="replace")), path
