"""What /api/health says: ok only while nothing stops events, steps or alerts from flowing."""

import asyncio
import time
from types import SimpleNamespace

from handlers.api.worker_health import GROUP_GRACE, STUCK_AFTER, Retrying, WorkerHealth
from handlers.composition import worker_health
from streams.sql_sink import SinkStatus


class Client:
    def __init__(self, error=None):
        self.error = error

    async def fetch_all_metadata(self):
        if self.error:
            raise self.error
        return object()


def finished_task(exc=None):
    loop = asyncio.get_running_loop()
    task = loop.create_future()
    task.set_exception(exc) if exc else task.set_result(None)
    return task


def worker(
    *,
    client=None,
    generation=3,
    coordinator_id=1,
    actors=(),
    failing_since=None,
    rebalancing=False,
    sink=None,
):
    coordinator = SimpleNamespace(coordinator_id=coordinator_id, generation=generation)
    app = SimpleNamespace(
        rebalancing=rebalancing,
        in_recovery=False,
        producer=SimpleNamespace(_producer=SimpleNamespace(client=client or Client())),
        consumer=SimpleNamespace(
            _thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator))
        ),
        agents={"fold-events": SimpleNamespace(_actors=list(actors))},
    )
    retrying = None if failing_since is None else Retrying(failing_since, "KafkaTimeoutError()")
    return WorkerHealth(app, lambda: retrying, sink_status=lambda: sink, wall=lambda: 1000.0)


class TestWorkerHealth:
    async def test_a_worker_with_nothing_wrong_is_ok(self):
        """Broker answers, group joined, agents running, no retries: ok and ready."""
        status, body = await worker().report()
        assert (status, body["status"], body["ready"], body["problems"]) == (200, "ok", True, {})

    async def test_an_unreachable_broker_is_named(self):
        """A metadata request that fails makes the worker degraded, naming the broker."""
        status, body = await worker(client=Client(ConnectionError("refused"))).report()
        assert status == 503 and body["status"] == "degraded"
        assert "refused" in body["problems"]["broker"]

    async def test_a_worker_out_of_its_group_for_long_is_named_but_not_at_first(self):
        """No generation for the grace period is degraded; the first moments are not."""
        now = [0.0]
        health = worker(generation=-1)
        health.clock = lambda: now[0]
        _, first = await health.report()
        now[0] = GROUP_GRACE + 1
        _, later = await health.report()
        assert "group" not in first["problems"]
        assert "not a member" in later["problems"]["group"]

    async def test_a_worker_not_yet_in_its_group_is_recovering_until_it_joins(self):
        """The restart bench saw `ok, ready` with no partitions before the first join."""
        health = worker(generation=-1)
        coordinator = health.app.consumer._thread._consumer._coordinator
        starting = await health.report()
        coordinator.generation = 1
        joined = await health.report()
        coordinator.generation = -1  # later out of the group: named once it lasts, not hidden
        health.clock = lambda: 1e9
        await health.report()
        health.clock = lambda: 1e9 + GROUP_GRACE + 1
        out = await health.report()
        assert (starting[0], starting[1]["status"], starting[1]["ready"]) == (200, "recovering", False)
        assert (joined[0], joined[1]["status"], joined[1]["ready"]) == (200, "ok", True)
        assert out[0] == 503 and "not a member" in out[1]["problems"]["group"]

    async def test_a_crashed_agent_is_named(self):
        """An agent whose actor ended with an exception is reported with that exception."""
        actor = SimpleNamespace(actor_task=finished_task(OverflowError("date value out of range")))
        _, body = await worker(actors=[actor]).report()
        assert "OverflowError" in body["problems"]["agent:fold-events"]

    async def test_a_batch_retried_for_long_is_named_and_a_short_retry_is_not(self):
        """Retrying past the grace period is a problem; a brief retry is not."""
        _, stuck = await worker(failing_since=1000.0 - STUCK_AFTER - 1).report()
        _, brief = await worker(failing_since=1000.0 - 1).report()
        assert "KafkaTimeoutError" in stuck["problems"]["events"]
        assert brief["problems"] == {}

    async def test_a_stopped_or_long_retrying_sink_is_named(self):
        """The SQL sink stopped, or retrying past the grace period, degrades the worker."""
        stopped = SinkStatus(state="stopped", last_error="boom")
        retrying = SinkStatus(
            state="retrying", last_error="OperationalError", retrying_from=time.monotonic() - STUCK_AFTER - 5
        )
        _, first = await worker(sink=stopped).report()
        _, second = await worker(sink=retrying).report()
        _, running = await worker(sink=SinkStatus(state="running")).report()
        assert "stopped" in first["problems"]["sink"]
        assert "retrying for" in second["problems"]["sink"]
        assert running["problems"] == {}

    async def test_a_rebalancing_worker_is_recovering_not_degraded(self):
        """While rebalancing the group and broker checks wait: recovering, 200, not ready."""
        status, body = await worker(rebalancing=True, generation=-1).report()
        assert (status, body["status"], body["ready"]) == (200, "recovering", False)


class TestWhatTheCompositionRootHandsIt:
    async def test_the_folds_retries_and_a_sink_attached_after_the_routes(self):
        """The verdict reads the processor's retry and the sink's status at each report, not once."""
        processor = SimpleNamespace(failing_since=None, last_error=None)
        streams = SimpleNamespace(app=worker().app, processor=processor, sink=None)
        health = worker_health(streams)
        health.wall = lambda: 1000.0
        assert (await health.report())[1]["problems"] == {}
        processor.failing_since, processor.last_error = 1000.0 - STUCK_AFTER - 1, "KafkaTimeoutError()"
        streams.sink = SimpleNamespace(status=SinkStatus(state="stopped", last_error="boom"))
        status, body = await health.report()
        assert status == 503 and set(body["problems"]) == {"events", "sink"}
        assert "KafkaTimeoutError" in body["problems"]["events"] and "boom" in body["problems"]["sink"]
