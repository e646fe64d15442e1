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
from handlers.api.input_limits import MAX_RULES_BYTES, MAX_RULES_CHARACTERS
from handlers.api.operations import operation
from handlers.identity.guard import audit_change, identity_of
from sla_rules import RuleProblem, RuleSet, parse_rules
from sla_rules.rules_history import history_problems, rules_summary
from streams.rules_feed import RulesFeed
from streams.rules_revisions import InForce, digest_of

__all__ = ["register_rules_routes"]

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
    if not isinstance(text, str) or not text.strip():
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


def register_rules_routes(
    app: Any, feed: RulesFeed, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> None:
    """Attach ``/api/rules`` (GET, PUT) and ``/api/rules/check`` (POST)."""

    def refusal(web: View, status: int, error: str, problems: list[dict[str, Any]]) -> Response:
        return web.json({"error": error, "field": "text", "problems": problems}, status=status)

    async def audit(
        request: Request, kind: str, base: InForce, text: str, after: dict[str, Any], detail: str = ""
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

    @app.page("/api/rules")
    class Rules(View):
        """The rules in force on this worker (GET); replace them (PUT)."""

        async def get(self, request: Request) -> Response:
            operation("get_rules").read(request)
            in_force = feed.in_force
            return self.json(
                {
                    **in_force.describe(),
                    "text": in_force.text,
                    "summary": rules_summary(in_force.rules, clock()),
                    "following": feed.following,
                }
            )

        async def put(self, request: Request) -> Response:
            """``{text}``: 202 on the log, 200 in force (``?wait``), 409 history or raced, 422 invalid."""
            declared = operation("replace_rules")
            wait: float | None = declared.read(request)["wait"]
            text = text_of(declared.check_body(await read_json_object(request)))
            caller = identity_of(request)
            actor = caller.name if caller is not None else "unknown"
            base, now = feed.in_force, clock()
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
                await audit(
                    request,
                    "rules.refused",
                    base,
                    text,
                    {"problems": problems[:20]},
                    "invalid" if invalid else "history",
                )
                log.info("rules.refused", actor=actor, problems=len(problems), invalid=invalid)
                return refusal(self, 422 if invalid else 409, error, problems)
            if digest_of(text) == base.digest:
                return self.json({"outcome": "unchanged", "revision": base.revision, "digest": base.digest})
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
                await audit(request, "rules.refused", base, text, answer, f"{outcome[0]}: {outcome[1]}")
                return refusal(self, 409, f"not applied, {outcome[0]}: {outcome[1]}", [])
            await audit(request, "rules.replaced", base, text, answer)
            log.info("rules.published", actor=actor, revision=revision.revision, offset=offset)
            if wait is None:
                return self.json(answer, status=202)
            if outcome is None:
                return self.json({**answer, "waited": wait}, status=202)
            return self.json({**answer, "outcome": "applied"})

    @app.page("/api/rules/check")
    class CheckRules(View):
        """What a replace by a document would refuse, against this worker's rules; changes nothing."""

        async def post(self, request: Request) -> Response:
            text = text_of(operation("check_rules").check_body(await read_json_object(request)))
            in_force = feed.in_force
            _rules, problems, warnings = check_document(text, in_force, clock())
            return self.json(
                {
                    "valid": not problems,
                    "problems": problems,
                    "warnings": warnings,
                    "against": in_force.describe(),
                }
            )
