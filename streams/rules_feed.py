"""Following the rules topic: every worker and sink holds the newest applied revision.

A process starts from its rules file (revision 0), then :meth:`RulesFeed.catch_up`
reads ``<prefix>.rules`` from its beginning to its end *before* anything is
folded (``handlers/composition.py``, ``handlers/sink_runner.py``), so the newest
revision there is in force from the first event on.  While running,
:meth:`RulesFeed.follow` reads on and hands each applied revision to the
``appliers`` (the event processor swaps its rule set between batches, the sink
between its batches); only when they all have it is it this process's rules
(:attr:`RulesFeed.in_force`).  :meth:`RulesFeed.publish` writes a revision and
returns its offset once the broker has it; :meth:`RulesFeed.outcome_of` says
what this process's fold made of it (applied, superseded by another replace,
refused).

A record the fold does not apply (superseded by a replace that came first,
unsigned, undecodable, invalid rules) is folded too, as a no-op with its
reason: every process reaches the same outcome for it (``outcome_of`` gives it
to the writer, the log says it with the record's offset and key), and its
original bytes stay where they are: each revision has its own key, so
compaction never removes one.  It is not copied to the dead-letter topic:
every worker and sink reads this topic whole, and each would copy it again.

Swapping is safe for the folds' determinism because of what a replace may
change (``sla_rules/rules_history.py``): nothing evaluated at an instant up to
the replace.  An event that occurs after a new version's ``effective_from``
but is folded by a process that does not have the revision yet (normally a
matter of milliseconds; a process cut off from the broker does not fold
either) is evaluated under the older rules until its item's next event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from sla_rules import DEFAULT_RULES_PATH, RuleProblem, RulesError, parse_rules
from streams.desk_signature import signature_headers
from streams.kafka_security import client_options
from streams.rules_revisions import InForce, Outcome, Revision, fold, from_file
from streams.settings import Settings

log = structlog.get_logger("keydesk.rules")

_KEEP_OUTCOMES = 256
_RETRY_SECONDS = 1.0


def rules_of_file(path: Path | None) -> InForce:
    """Revision 0: the rules file (``None``: the shipped default); RulesError if invalid."""
    path = path or DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([RuleProblem(str(path), "0", f"cannot read file: {exc}")]) from exc
    rules, problems = parse_rules(text, str(path))
    if rules is None:
        raise RulesError(problems)
    return from_file(str(path), text, rules)


class RulesFeed:
    """This process's rules in force, and its reader and writer of the rules topic."""

    def __init__(
        self,
        bootstrap_servers: list[str] | None,
        topic: str,
        initial: InForce,
        *,
        secret: bytes | None,
        security: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.in_force = initial
        self.secret = secret
        self.security = dict(security or {})
        self.position = 0  # the next offset of the topic to fold
        self.appliers: list[Callable[[InForce], Awaitable[None]]] = []
        self.outcomes: OrderedDict[int, tuple[Outcome, str]] = OrderedDict()
        self.following = False
        self.last_error: str | None = None
        self._progress: asyncio.Condition | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RulesFeed:
        try:
            servers: list[str] | None = settings.bootstrap_servers
        except Exception:  # no broker configured (unit tests): the file only
            servers = None
        return cls(
            servers,
            settings.rules_topic,
            rules_of_file(settings.sla_rules),
            secret=settings.signing_key,
            security=client_options(settings),
        )

    # -- reading ------------------------------------------------------------------------

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **self.security,
        )

    async def _fold(self, record: Any) -> None:
        new, outcome, reason = fold(self.in_force, record.value, record.headers, self.secret, record.offset)
        if outcome == "applied":
            for apply in self.appliers:
                await apply(new)
            self.in_force = new
            log.info(
                "rules.applied",
                revision=new.revision,
                digest=new.digest,
                version=new.rules.version,
                actor=new.actor,
                offset=record.offset,
            )
        else:
            log.warning(
                "rules.not_applied",
                outcome=outcome,
                reason=reason,
                offset=record.offset,
                key=(record.key or b"")[:64].decode("utf-8", "replace"),
                size=len(record.value or b""),
            )
        self.outcomes[record.offset] = (outcome, reason)
        while len(self.outcomes) > _KEEP_OUTCOMES:
            self.outcomes.popitem(last=False)
        self.position = record.offset + 1

    async def _read(self, *, until_end: bool) -> bool:
        """Fold records (to the topic's end, or until stopped); ``False`` if there is no topic yet."""
        consumer = self._consumer()
        await consumer.start()
        try:
            if self.topic not in await consumer.topics():
                # Created by the first worker (handlers/kafka_topics.py); a sink of its own may not
                # create topics, and before that topic there is no revision: the file's rules hold.
                return False
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, self.position)
            end = (await consumer.end_offsets([tp]))[tp] if until_end else None
            while not self._stopping and (end is None or self.position < end):
                batches = await consumer.getmany(tp, timeout_ms=500)
                for record in batches.get(tp, []):
                    await self._fold(record)
                await self._notify()
            return True
        finally:
            await consumer.stop()

    async def catch_up(self) -> InForce:
        """Fold the topic from where this feed stands to its current end (at start)."""
        if not await self._read(until_end=True):
            log.warning("rules.no_topic", topic=self.topic)
        self._progress = None  # made in this loop: the running one makes its own
        log.info("rules.in_force", **self.in_force.describe(), position=self.position)
        return self.in_force

    async def follow(self) -> None:
        """Fold every later record until :meth:`stop`; a broker away is retried."""
        self.following = True
        try:
            while not self._stopping:
                try:
                    if await self._read(until_end=False):
                        continue
                    self.last_error = f"no topic {self.topic} yet"
                except (KafkaError, OSError) as exc:
                    self.last_error = repr(exc)[:300]
                log.warning("rules.follow_retrying", error=self.last_error)
                await asyncio.sleep(_RETRY_SECONDS)  # backoff before reconnecting
        finally:
            self.following = False
            await self._notify()

    async def stop(self) -> None:
        self._stopping = True
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def _condition(self) -> asyncio.Condition:
        if self._progress is None:
            self._progress = asyncio.Condition()
        return self._progress

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()

    async def outcome_of(self, offset: int, timeout: float) -> tuple[Outcome, str] | None:
        """What this process's fold made of the record at ``offset``, or ``None`` if not there yet."""
        condition = self._condition()
        try:
            async with condition:
                await asyncio.wait_for(condition.wait_for(lambda: self.position > offset), timeout)
        except TimeoutError:
            return None
        return self.outcomes.get(offset)

    # -- writing ------------------------------------------------------------------------

    async def publish(self, text: str, actor: str, at: datetime) -> tuple[Revision, int]:
        """Write a revision on the one in force; returns it and its offset once the broker has it."""
        if self.bootstrap_servers is None:
            raise KafkaError("no broker configured")
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                max_request_size=1024 * 1024,
                **self.security,
            )
            await producer.start()
            self._producer = producer
        base = self.in_force.revision
        revision = Revision(str(uuid.uuid4()), base + 1, base, text, actor, at)
        value = revision.encode()
        meta = await self._producer.send_and_wait(
            self.topic,
            value=value,
            key=revision.id.encode(),
            partition=0,
            headers=signature_headers(self.secret, value) if self.secret else None,
        )
        return revision, int(meta.offset)
