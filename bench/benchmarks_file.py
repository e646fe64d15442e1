"""BENCHMARKS.md's sections: a bench's ``--write`` replaces its own section and leaves the others."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def replace_section(section: str, lines: list[str], path: Path = BENCHMARKS) -> None:
    """Put ``lines`` (starting with the ``section`` heading) in place of that section, or at the end."""
    text = path.read_text(encoding="utf-8")
    start = text.find(section)
    if start >= 0:
        end = text.find("\n## ", start + len(section))
        text = text[:start] + "\n".join(lines) + (text[end:] if end >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    path.write_text(text, encoding="utf-8")
