"""``/api/rules``: the SLA rules in force, a check of a draft, a replace through the log.

A replace is checked here, on the worker that takes it, against the rules this
worker has in force: the document must be valid rules (422 with every problem,
its field path and line) and must not rewrite history (409 naming the policy
version, rule or calendar: ``sla_rules/rules_history.py``).  Then it is written
to the rules topic as the next revision (``streams/rules_feed.py``): ``202``
once the broker has it; with ``?wait=S`` once this worker's fold has it in
force (``200``), or ``409`` if another replace made on the same revision came
first in the log.  Every worker and sink follows the topic and swaps its rules
between batches.  Each replace, and each refused one, is in the audit trail
with the revision and digest before and after and the text's diff.

The rules screen of the web desk (``handlers/web/rules_page.py``) answers with
the same functions (:func:`rules_in_force`, :func:`check_answer`,
:func:`replace_rules`), so a page and the API never disagree on what a
document may do.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View

from handlers.api.http_guard import BadRequest, read_json_object
from handlers.api.input_limits import MAX_RULES_BYTES, MAX_RULES_CHARACTERS, RULES_TEXT_NOT_BLANK
from handlers.api.operations import operation
from handlers.identity.guard import audit_change, identity_of
from sla_rules import RuleProblem, RuleSet, parse_rules
from sla_rules.rules_history import history_problems, rules_summary
from streams.rules_feed import RulesFeed
from streams.rules_revisions import InForce, digest_of

__all__ = ["check_answer", "register_rules_routes", "replace_rules", "rules_in_force", "text_of"]

log = structlog.get_logger("keydesk.rules")

#: how much of a diff the audit keeps (a whole rules file is ~20 KB; a diff of two is bounded here)
MAX_AUDIT_DIFF = 32 * 1024
#: what the check answers against; the document's problems are named "text" (the body's field)
_SOURCE = "text"


def _problems(kind: str, problems: list[RuleProblem]) -> list[dict[str, Any]]:
    return [{"kind": kind, **p.located()} for p in problems]


def text_of(body: dict[str, Any]) -> str:
    """The body's ``text``: exactly that field, a string with something in it, bounded."""
    extra = sorted(set(body) - {"text"})
    if extra:
        raise BadRequest(422, extra[0][:64], "unknown field; send {text}")
    text = body.get("text")
    if not isinstance(text, str) or not RULES_TEXT_NOT_BLANK.search(text):
        raise BadRequest(422, "text", "is required: the rules document as a string")
    if len(text) > MAX_RULES_CHARACTERS or len(text.encode()) > MAX_RULES_BYTES:
        raise BadRequest(
            422, "text", f"longer than {MAX_RULES_CHARACTERS} characters or {MAX_RULES_BYTES} bytes of UTF-8"
        )
    return text


def check_document(
    text: str, in_force: InForce, now: datetime
) -> tuple[RuleSet | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """The document's rules (None if invalid), its problems (invalid, else history) and warnings."""
    rules, problems = parse_rules(text, _SOURCE)
    if rules is None:
        return None, _problems("invalid", problems), []
    history = history_problems(in_force.rules, rules, now, _SOURCE)
    return rules, _problems("history", history), _problems("warning", list(rules.warnings))


def bounded_diff(before: str, after: str) -> tuple[str, bool]:
    """The unified diff of two texts, cut at :data:`MAX_AUDIT_DIFF` characters (and whether it was)."""
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), "in force", "replacement"
        )
    )
    return diff[:MAX_AUDIT_DIFF], len(diff) > MAX_AUDIT_DIFF


def rules_in_force(feed: RulesFeed, now: datetime) -> dict[str, Any]:
    """``GET /api/rules``'s answer: revision, digest, who replaced them when, the text, a summary."""
    in_force = feed.in_force
    return {
        **in_force.describe(),
        "text": in_force.text,
        "summary": rules_summary(in_force.rules, now),
        "following": feed.following,
    }


def check_answer(text: str, in_force: InForce, now: datetime) -> dict[str, Any]:
    """``POST /api/rules/check``'s answer: what a replace by ``text`` would refuse; changes nothing."""
    _rules, problems, warnings = check_document(text, in_force, now)
    return {"valid": not problems, "problems": problems, "warnings": warnings, "against": in_force.describe()}


def _refusal(error: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {"error": error, "field": "text", "problems": problems}


async def _audit(
    request: Any, kind: str, base: InForce, text: str, after: dict[str, Any], detail: str = ""
) -> None:
    diff, cut = bounded_diff(base.text, text)
    await audit_change(
        request,
        kind,
        "rules",
        before=base.describe(),
        after={
            **after,
            "digest": digest_of(text),
            "diff": diff,
            "diff_truncated": cut,
            **({"reason": detail} if detail else {}),
        },
    )


async def replace_rules(
    request: Any,
    feed: RulesFeed,
    text: str,
    now: datetime,
    wait: float | None,
    *,
    seen: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """A replace of the rules by ``text`` (checked by :func:`text_of`), audited: its status and answer.

    ``PUT /api/rules`` and the rules screen's replace both come here: 422 invalid, 409 history
    (or, after ``wait`` seconds at most, superseded by another replace), 200 unchanged or applied,
    202 on the log.  ``seen``: the revision the caller based the text on (the screen's form, which
    shows one revision's text to edit); another one in force is a 409 before anything is written,
    so that a person's edit never silently undoes a replace made while they were typing.
    """
    caller = identity_of(request)
    actor = caller.name if caller is not None else "unknown"
    base = feed.in_force
    if seen is not None and seen != base.revision:
        reason = (
            f"the text was edited on revision {seen}, but revision {base.revision} "
            f"({base.actor or base.source}) is in force now: check the draft against it and replace again"
        )
        await _audit(request, "rules.refused", base, text, {"seen": seen}, f"stale: {reason}")
        log.info("rules.refused", actor=actor, stale=seen, in_force=base.revision)
        return 409, _refusal(f"not applied, stale: {reason}", [])
    rules, problems, _warnings = check_document(text, base, now)
    if problems:
        invalid = rules is None
        first = problems[0]
        where = first["path"] or f"line {first['line']}"
        error = (
            f"not valid rules: {len(problems)} problem(s), first {where}: {first['reason']}"
            if invalid
            else f"would rewrite history: {first['path']}: {first['reason']}"
        )
        await _audit(
            request,
            "rules.refused",
            base,
            text,
            {"problems": problems[:20]},
            "invalid" if invalid else "history",
        )
        log.info("rules.refused", actor=actor, problems=len(problems), invalid=invalid)
        return 422 if invalid else 409, _refusal(error, problems)
    if digest_of(text) == base.digest:
        return 200, {"outcome": "unchanged", "revision": base.revision, "digest": base.digest}
    try:
        revision, offset = await feed.publish(text, actor, now)
    except KafkaError as exc:
        log.warning("rules.publish_failed", error=repr(exc)[:300])
        raise BadRequest(
            503, None, "the broker did not take the revision; retry", {"Retry-After": "1"}
        ) from None
    answer: dict[str, Any] = {
        "outcome": "published",
        "revision": revision.revision,
        "base": revision.base,
        "digest": revision.digest,
        "offset": offset,
    }
    outcome = None if wait is None else await feed.outcome_of(offset, wait)
    if outcome is not None and outcome[0] != "applied":
        await _audit(request, "rules.refused", base, text, answer, f"{outcome[0]}: {outcome[1]}")
        return 409, _refusal(f"not applied, {outcome[0]}: {outcome[1]}", [])
    await _audit(request, "rules.replaced", base, text, answer)
    log.info("rules.published", actor=actor, revision=revision.revision, offset=offset)
    if wait is None:
        return 202, answer
    if outcome is None:
        return 202, {**answer, "waited": wait}
    return 200, {**answer, "outcome": "applied"}


def register_rules_routes(
    app: Any, feed: RulesFeed, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> None:
    """Attach ``/api/rules`` (GET, PUT) and ``/api/rules/check`` (POST)."""

    @app.page("/api/rules")
    class Rules(View):
        """The rules in force on this worker (GET); replace them (PUT)."""

        async def get(self, request: Request) -> Response:
            operation("get_rules").read(request)
            return self.json(rules_in_force(feed, clock()))

        async def put(self, request: Request) -> Response:
            """``{text}``: 202 on the log, 200 in force (``?wait``), 409 history or raced, 422 invalid."""
            declared = operation("replace_rules")
            wait: float | None = declared.read(request)["wait"]
            text = text_of(declared.check_body(await read_json_object(request)))
            status, answer = await replace_rules(request, feed, text, clock(), wait)
            return self.json(answer, status=status)

    @app.page("/api/rules/check")
    class CheckRules(View):
        """What a replace by a document would refuse, against this worker's rules; changes nothing."""

        async def post(self, request: Request) -> Response:
            text = text_of(operation("check_rules").check_body(await read_json_object(request)))
            return self.json(check_answer(text, feed.in_force, clock()))
