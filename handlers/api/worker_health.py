"""What ``/api/health`` says: whether this worker is doing its job, and if not, what is wrong.

Issue 9 found the endpoint saying ``ok`` while the fold agent had crashed, the
sink had stopped on one record and the broker was gone.  A health check that
only says the process is alive is worse than none: it tells the load balancer
and the operator that a desk losing events is fine.  So every condition that
stops events, steps or alerts from flowing is checked here and named:

* ``broker``: the cluster does not answer a metadata request (probed at most
  once per :data:`PROBE_EVERY` seconds, within :data:`PROBE_TIMEOUT`);
* ``group``: the consumer is not a member of its group (no coordinator, or no
  generation) for :data:`GROUP_GRACE` seconds: its partitions are nobody's or
  somebody else's;
* ``agent``: an agent's actor has stopped with an exception;
* ``events``: a batch of events has been retried for more than
  :data:`STUCK_AFTER` seconds (the broker refuses the dead letters, say);
* ``sink``: the SQL sink is stopped, or retrying for more than :data:`STUCK_AFTER`.

``recovering`` (rebalancing or table recovery, a normal few seconds) is not a
problem but not ready either.  The answer is 200 for ``ok`` and ``recovering``
and 503 for ``degraded``, so a load balancer takes a degraded worker out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust

if TYPE_CHECKING:
    from streams.sql_sink import SinkStatus

PROBE_EVERY = 2.0  # seconds between broker probes (health may be polled often)
PROBE_TIMEOUT = 2.0  # seconds a metadata request may take before the broker counts as down
STUCK_AFTER = 30.0  # seconds of retrying after which a retrying part counts as down
GROUP_GRACE = 10.0  # seconds the group may look unsettled after a rebalance (session timeout)
_NO_GENERATION = -1  # aiokafka's DEFAULT_GENERATION_ID: not in a group


@dataclass(frozen=True, slots=True)
class Retrying:
    """The fold's batch that does not go through: retried since ``since`` (wall clock), last failing so."""

    since: float
    error: str | None


@dataclass
class _Probe:
    at: float = 0.0
    error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class WorkerHealth:
    """Collects the worker's problems; :meth:`report` is the endpoint's body.

    Given what it reads, by the composition root (``handlers/composition.py``):
    the faust app (rebalancing, the producer's and consumer's clients, the
    agents), ``retrying`` (the fold's batch being retried, ``None`` while
    events flow) and ``sink_status`` (the SQL sink's, ``None`` without one).
    """

    def __init__(
        self,
        app: faust.App,
        retrying: Callable[[], Retrying | None],
        sink_status: Callable[[], SinkStatus | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.retrying = retrying
        self.sink_status = sink_status  # the sink is attached after the routes are built
        self.clock = clock
        self.wall = wall
        self._probe = _Probe()
        self._group_bad_since: float | None = None
        self._joined = False

    def ready(self) -> bool:
        """In its group, rebalanced and recovered: the views hold every owned customer's latest state.

        Not before the first join: a worker just started has no partitions yet
        because it has not been given any, not because it owns none (the
        restart bench saw ``200 ok, ready: true`` with no partitions for the
        first 1.5 s of every start).  Once joined, a worker given no partition
        (more workers than partitions) is ready.
        """
        return self._settled() and self._has_joined()

    def _settled(self) -> bool:
        return not self.app.rebalancing and not getattr(self.app, "in_recovery", False)

    def _has_joined(self) -> bool:
        """Whether the consumer has ever been a member of its group (kept once true)."""
        if not self._joined:
            coordinator = self._coordinator()
            self._joined = getattr(coordinator, "generation", _NO_GENERATION) != _NO_GENERATION
        return self._joined

    async def problems(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        if self._settled():  # while rebalancing these are expected to be unsettled
            broker = await self._broker_error()
            if broker:
                problems["broker"] = broker
            group = self._lasting(self._group_error())
            if group:
                problems["group"] = group
        for name, error in self._crashed_agents().items():
            problems[f"agent:{name}"] = error
        failing = self.retrying()
        if failing is not None and self.wall() - failing.since > STUCK_AFTER:
            problems["events"] = (
                f"a batch has been retried for {self.wall() - failing.since:.0f} s: {failing.error}"
            )
        sink = self._sink_error()
        if sink:
            problems["sink"] = sink
        return problems

    async def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): ``ok``, ``recovering`` or ``degraded`` with the problems."""
        problems = await self.problems()
        ready = self.ready()
        status = "degraded" if problems else ("ok" if ready else "recovering")
        return (503 if problems else 200), {
            "status": status,
            "ready": ready and not problems,
            "problems": problems,
        }

    async def _broker_error(self) -> str | None:
        probe = self._probe
        async with probe.lock:
            if self.clock() - probe.at < PROBE_EVERY:
                return probe.error
            probe.error = await self._probe_broker()
            probe.at = self.clock()
            return probe.error

    async def _probe_broker(self) -> str | None:
        producer = getattr(self.app.producer, "_producer", None)
        client = getattr(producer, "client", None)
        if client is None:
            return "the producer has not started"
        try:
            await asyncio.wait_for(client.fetch_all_metadata(), PROBE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            return f"no metadata from the cluster within {PROBE_TIMEOUT:.0f} s: {exc!r}"[:300]
        return None

    def _lasting(self, error: str | None) -> str | None:
        """``error`` once it has lasted :data:`GROUP_GRACE` seconds: right after a
        rebalance the coordinator is briefly unknown, which is not a problem yet."""
        if error is None:
            self._group_bad_since = None
            return None
        if self._group_bad_since is None:
            self._group_bad_since = self.clock()
        waited = self.clock() - self._group_bad_since
        return f"{error} (for {waited:.0f} s)" if waited >= GROUP_GRACE else None

    def _coordinator(self) -> Any:
        thread = getattr(self.app.consumer, "_thread", None)
        consumer = getattr(thread, "_consumer", None)
        return getattr(consumer, "_coordinator", None)

    def _group_error(self) -> str | None:
        coordinator = self._coordinator()
        if coordinator is None:
            return "the consumer has not started"
        if coordinator.coordinator_id is None:
            return "no group coordinator known: the broker may be unreachable"
        if getattr(coordinator, "generation", _NO_GENERATION) == _NO_GENERATION:
            return "not a member of the consumer group"
        return None

    def _crashed_agents(self) -> dict[str, str]:
        crashed = {}
        for name, agent in self.app.agents.items():
            for actor in list(getattr(agent, "_actors", ())):
                task = getattr(actor, "actor_task", None)
                if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                    crashed[name] = repr(task.exception())[:300]
        return crashed

    def _sink_error(self) -> str | None:
        status = self.sink_status()
        if status is None:
            return None
        if status.state == "stopped":
            return f"the SQL sink has stopped: {status.last_error}"
        waited = status.retrying_seconds
        if status.state == "retrying" and waited is not None and waited > STUCK_AFTER:
            return f"the SQL sink has been retrying for {waited:.0f} s: {status.last_error}"
        return None
