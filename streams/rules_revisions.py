"""Revisions of the SLA rules on the log: the record, and how every reader folds them alike.

``PUT /api/rules`` writes a revision to ``<prefix>.rules`` (one partition, so
one order for every reader): the whole document, its revision number, the
revision it replaces (``base``), who and when, the text's SHA-256, signed with
the desk's secret like an acknowledgement (``streams/desk_signature.py``).
Every worker and sink folds the topic from its beginning with :func:`fold`, a
function of the records alone, so all of them end on the same rules:

* revision 0 is the rules file a process started with (``KEYDESK_SLA_RULES``,
  else the shipped default); the newest applied revision on the log supersedes
  it, so every process of a desk ends on the same rules whatever file it was
  started with, as long as the topic holds one;
* a record is applied only if signed, well formed, its digest that of its text,
  its text valid rules, and its ``base`` the revision in force: two replaces
  made at once from the same base are both written, the first in the log's
  order is applied and the second is *superseded* everywhere (its writer
  answers 409), a compare-and-set without any other store.

Each record has a key of its own (its id), so a compacted topic keeps every
revision: the history of the rules stays on the log, like the events'.
Pure: no Kafka client here (``streams/rules_feed.py`` reads and writes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from sla_rules import RuleSet, parse_rules
from streams.desk_signature import is_signed

#: A rules document on the log at most (the HTTP body bound, ``handlers/api/input_limits.py``).
MAX_RULES_BYTES = 256 * 1024
_FIELDS = ("id", "revision", "base", "text", "digest", "actor", "at")

Outcome = Literal["applied", "superseded", "refused"]


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Revision:
    """One replace of the rules as written to the log."""

    id: str
    revision: int
    base: int
    text: str
    actor: str
    at: datetime

    @property
    def digest(self) -> str:
        return digest_of(self.text)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "revision": self.revision,
                "base": self.base,
                "text": self.text,
                "digest": self.digest,
                "actor": self.actor,
                "at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            }
        )


class RevisionRefused(ValueError):
    """A record that is no revision: its reason is logged, the rules stay as they were."""


def decode(value: bytes | None) -> Revision:
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise RevisionRefused(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != set(_FIELDS):
        raise RevisionRefused(f"a revision has exactly the fields {', '.join(_FIELDS)}")
    revision, base, text = doc["revision"], doc["base"], doc["text"]
    if not (isinstance(revision, int) and isinstance(base, int) and revision == base + 1 and base >= 0):
        raise RevisionRefused("revision must be base + 1, base >= 0")
    if not isinstance(text, str) or len(text.encode()) > MAX_RULES_BYTES:
        raise RevisionRefused(f"text must be a string of at most {MAX_RULES_BYTES} bytes")
    if doc["digest"] != digest_of(text):
        raise RevisionRefused("digest is not the SHA-256 of text")
    if not isinstance(doc["actor"], str) or not isinstance(doc["id"], str):
        raise RevisionRefused("id and actor must be strings")
    try:
        at = datetime.fromisoformat(doc["at"])
    except (TypeError, ValueError):
        raise RevisionRefused("at must be an ISO-8601 instant") from None
    if at.tzinfo is None:
        raise RevisionRefused("at must carry an offset")
    return Revision(doc["id"], revision, base, text, doc["actor"], at)


@dataclass(frozen=True)
class InForce:
    """The rules a process holds now: revision 0 is its file, later ones came from the log."""

    revision: int
    text: str
    rules: RuleSet
    source: str  # the file's path for revision 0, else "log"
    actor: str | None = None
    at: datetime | None = None
    offset: int | None = None  # of the record on the rules topic

    @property
    def digest(self) -> str:
        return digest_of(self.text)

    def describe(self) -> dict[str, Any]:
        """Revision, digest, version, who replaced it when (JSON-able; no text)."""
        return {
            "revision": self.revision,
            "digest": self.digest,
            "version": self.rules.version,
            "source": self.source,
            "replaced_by": self.actor,
            "replaced_at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z") if self.at else None,
        }


def from_file(path: str, text: str, rules: RuleSet) -> InForce:
    return InForce(0, text, rules, path)


def fold(
    current: InForce, value: bytes | None, headers: Any, secret: bytes | None, offset: int
) -> tuple[InForce, Outcome, str]:
    """The rules after one record of the rules topic: the new ones, or ``current`` and why not."""
    if not is_signed(secret, value, headers):
        return current, "refused", "not signed with the desk's secret"
    try:
        revision = decode(value)
    except RevisionRefused as exc:
        return current, "refused", str(exc)
    if revision.base != current.revision:
        return (
            current,
            "superseded",
            f"written on revision {revision.base}, but revision {current.revision} "
            f"({current.actor or current.source}) came first",
        )
    rules, problems = parse_rules(revision.text, f"revision {revision.revision}")
    if rules is None:
        return current, "refused", f"invalid rules: {problems[0]}"
    applied = InForce(revision.revision, revision.text, rules, "log", revision.actor, revision.at, offset)
    return applied, "applied", ""
