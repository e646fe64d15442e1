"""Problems found in a rules file, and the error that carries them.

Validation collects every problem instead of stopping at the first, so an
operator fixes a file in one pass; each problem says FILE:LOCATION: reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_LINE_COLUMN = re.compile(r"(\d+):(\d+)")
_LINE_PATH = re.compile(r"(\d+):(.+)", re.DOTALL)


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rules file."""

    file: str
    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.location}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        """JSON-able form for machine-readable check output."""
        return {"file": self.file, "location": self.location, "reason": self.reason}

    def located(self) -> dict[str, Any]:
        """``{path, line, column, reason}``: the location split into the field path and its line
        (``12:policies[0](id=p).version``), or a TOML syntax error's line and column (``3:7``)."""
        line: int | None = None
        column: int | None = None
        path = self.location
        syntax = _LINE_COLUMN.fullmatch(self.location)
        if self.location.isdigit():  # a TOML error without a position (at the end), an unreadable file
            line, path = int(self.location) or None, ""
        elif syntax:
            line, column, path = int(syntax[1]), int(syntax[2]), ""
        else:
            at_line = _LINE_PATH.fullmatch(self.location)
            if at_line:
                line, path = int(at_line[1]), at_line[2]
        return {"path": path, "line": line, "column": column, "reason": self.reason}


class RulesError(Exception):
    """A rules file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ProblemCollector:
    """Collects problems while building the rule set."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.problems: list[RuleProblem] = []

    def line_of(self, pattern: str, nth: int = 0) -> int | None:
        rx = re.compile(pattern)
        seen = 0
        for number, line in enumerate(self.lines, 1):
            if rx.match(line.strip()):
                if seen == nth:
                    return number
                seen += 1
        return None

    def add(self, location: str, reason: str, line: int | None = None) -> None:
        self.problems.append(RuleProblem(self.file, f"{line}:{location}" if line else location, reason))

    def unknown_keys(self, table: Any, allowed: set[str], location: str, line: int | None) -> None:
        if isinstance(table, dict):
            for key in sorted(set(table) - allowed):
                self.add(
                    f"{location}.{key}", f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})", line
                )

    def str_list(
        self, value: Any, location: str, line: int | None, allowed: tuple[str, ...] | None = None
    ) -> frozenset[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            self.add(location, "must be a non-empty list of strings", line)
            return None
        if allowed is not None:
            for v in value:
                if v not in allowed:
                    self.add(location, f"unknown value {v!r} (allowed: {', '.join(allowed)})", line)
        return frozenset(value)
