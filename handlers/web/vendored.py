"""Front-end files taken byte for byte from their npm registry packages, with their licences.

The web desk has no Node build step at install or at run time: htmx and its
server-sent-events extension are served from the repository as their packages
ship them, and axe-core (accessibility checks, tests only) is injected by the
browser tests.  This list is the one record of where each file came from; its
digests make a hand-edited copy fail the suite (``tests/web/test_vendored.py``).

To take a new version: change the version here, run
``python -m handlers.web.vendored fetch`` (``npm pack`` from the registry, so
it needs npm), check the printed digests into this file, and delete the old
folder.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Package:
    """One npm package's files as kept here: ``{path in the tarball: (path here, sha256)}``."""

    name: str
    version: str
    folder: str  # relative to the repository
    files: dict[str, tuple[str, str]]

    def path(self, kept_as: str) -> Path:
        return ROOT / self.folder / f"{self.name}-{self.version}" / kept_as


PACKAGES = (
    Package(
        "htmx.org",
        "2.0.11",
        "handlers/web/static/vendor",
        {
            "dist/htmx.min.js": (
                "htmx.min.js",
                "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
            ),
            "LICENSE": ("LICENSE", "d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38"),
        },
    ),
    Package(
        "htmx-ext-sse",
        "2.2.4",
        "handlers/web/static/vendor",
        {
            "dist/sse.min.js": (
                "sse.min.js",
                "98a46496de0c3605fbffdce9167ba427bdd9553184f83f149c261891a92c0136",
            ),
            "LICENSE": ("LICENSE", "a17d224ce9afdc21ec9491b76a2f5d036d19aa641ac4f85ca29c21f9f7e54fdf"),
        },
    ),
    Package(
        "axe-core",
        "4.14.1",
        "tests/web/vendor",
        {
            "axe.min.js": ("axe.min.js", "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"),
            "LICENSE": ("LICENSE", "af175b9d96ee93c21a036152e1b905b0b95304d4ae8c2c921c7609100ba8df7e"),
        },
    ),
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def differences() -> list[str]:
    """Every kept file that is missing or not the package's bytes, as a sentence each."""
    found = []
    for package in PACKAGES:
        for kept_as, expected in package.files.values():
            path = package.path(kept_as)
            if not path.is_file():
                found.append(f"{path.relative_to(ROOT)}: missing")
            elif digest(path) != expected:
                found.append(f"{path.relative_to(ROOT)}: not {package.name}@{package.version}'s bytes")
    return found


def fetch() -> None:
    """Take every package's files from the npm registry and print their digests."""
    with tempfile.TemporaryDirectory() as scratch:
        for package in PACKAGES:
            spec = f"{package.name}@{package.version}"
            out = subprocess.run(
                ["npm", "pack", spec, "--silent"], cwd=scratch, check=True, capture_output=True, text=True
            )
            with tarfile.open(Path(scratch) / out.stdout.strip().splitlines()[-1]) as tarball:
                for inside, (kept_as, _) in package.files.items():
                    source = tarball.extractfile(f"package/{inside}")
                    assert source is not None, f"{spec} has no {inside}"
                    target = package.path(kept_as)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(source.read())
                    print(f"{spec} {inside} -> {target.relative_to(ROOT)} sha256 {digest(target)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["fetch"]:
        fetch()
    else:
        problems = differences()
        print("\n".join(problems) or "every vendored file is its package's")
        sys.exit(1 if problems else 0)
