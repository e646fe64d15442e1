"""The faust application: topics, the customer-view table and the agent, wired once.

``build_streams`` is the only place that knows how keydesk maps onto Kafka:

* ``<prefix>.events``: every customer/fault/ticket/order event, plain JSON, keyed
  by ``customer_id`` so one customer's events stay ordered on one partition;
* ``<prefix>.dead-letters``: what could not be decoded or validated, original
  bytes untouched, reason and source coordinates in headers;
* the ``customer-views`` table, co-partitioned with the events topic.

Nothing connects at import time; the worker starts the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.serializers import codecs
from faust.types import ProducerT
from mode.utils.objects import cached_property

from sla_rules import RuleSet, load_rules
from streams.consumer_tuning import FlowControl, consumer_urls
from streams.customer_store import CustomerPartitionedTable, CustomerStore
from streams.event_batches import event_batches
from streams.event_processor import EventProcessor
from streams.kafka_security import ssl_context
from streams.partitioning import murmur2_partition
from streams.publisher import HomePublisher
from streams.settings import Settings, SettingsError
from streams.sla_agents import register_sla_agents

# A batch closes when full, when no event came for BATCH_WITHIN, or BATCH_LINGER
# after its first event (streams/event_batches.py): a lone hotline event waits
# BATCH_WITHIN, a backlog is folded in large batches (table writes coalesce per
# customer).
BATCH_MAX = 4000  # events folded per batch at most
BATCH_WITHIN = 0.005  # seconds without a new event that close a partial batch
BATCH_LINGER = 0.1  # seconds a batch may collect events at most
#: Changelog records pending in faust's producer buffer before intake waits for it:
#: a few batches' worth (a batch writes about 0.4 records per event).
PRODUCER_BUFFER_MAX = 5 * BATCH_MAX
#: Past that limit, intake waits for the excess and this many records more to be sent.
PRODUCER_EBB_STEP = 500
#: Bytes of one producer batch (one partition's records in a produce request) at most.
PRODUCER_BATCH_BYTES = 256 * 1024


class _Utf8(codecs.Codec):
    """Keys as their UTF-8 bytes, exactly as kcat or any client would send them.

    Table keys must serialise to the same bytes as the source topic's keys,
    otherwise the murmur2 partition of a view differs from its events'.
    """

    def _dumps(self, obj):
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s):
        return bytes(s).decode()


codecs.register("keydesk-utf8", _Utf8())


@dataclass
class Streams:
    """The running pieces the entry points need to reach."""

    app: faust.App
    events: faust.TopicT
    dead_letters: faust.TopicT
    views: CustomerStore  # the working views; ``views.customers`` routes reads to owners
    processor: EventProcessor
    rules: RuleSet
    # What the edges publish with (keyed to the customer's home partition, waited
    # for), and the SLA topic the alert sender consumes: handed to them by
    # handlers/composition.py, so they need not reach into the processor.
    publisher: HomePublisher
    sla_topic: faust.TopicT
    sink: Any = None  # the SQL sink when this worker runs one (handlers/sink_runner.py)
    #: the rules' revisions this worker follows (streams/rules_feed.py; handlers/composition.py)
    rules_feed: Any = None


def ebb_waiter(buffer: Any) -> Callable[[], Awaitable[None]]:
    """What intake awaits before each message: the producer buffer back under its limit, by a step.

    faust's own ``wait_until_ebb`` waits for ``max_messages`` records to be sent
    once the buffer holds more: right for its 100, but at our limit that is 20,000
    sends, and intake stood still for 8 to 16 s each time a worker near its
    capacity filled the buffer (issue 12's fan-out run: no event folded, so steps
    of the faults sent meanwhile fell due 16 s late).  Waiting only for the excess
    and :data:`PRODUCER_EBB_STEP` more keeps the same bound on the records pending,
    and slows intake to the producer's pace instead of stopping it.
    """

    async def wait_until_ebb() -> None:
        excess = buffer.size - buffer.max_messages
        if excess > 0:
            await buffer.flush_atmost(excess + PRODUCER_EBB_STEP)

    return wait_until_ebb


class SendCount:
    """Records put into faust's producer buffer, and those its sender has handed to aiokafka, counted.

    ``ProducerBuffer.flush_atmost`` counts wake-ups of an event, not sends, and gives
    up after 0.1 s without one; its ``size`` leaves out the record its sender has
    taken but not yet handed on.  A flush that must know that every record put before
    it is in aiokafka's hands counts them here instead.
    """

    def __init__(self, buffer: Any) -> None:
        self.put = self.sent = 0
        self.failed: BaseException | None = None
        self.changed = asyncio.Event()
        put, send = buffer.put, buffer._send_pending

        def counted_put(fut: Any) -> None:
            put(fut)
            self.put += 1

        async def counted_send(fut: Any) -> None:
            try:
                await send(fut)
            except BaseException as exc:
                self.failed = exc
                self.changed.set()  # a flush waiting learns it now
                raise
            self.sent += 1
            self.changed.set()

        # before the buffer starts: its sender binds ``_send_pending`` once, when it starts
        buffer.put = counted_put
        buffer._send_pending = counted_send


def pending_flush(producer: Any) -> Callable[[], Awaitable[None]]:
    """The producer's flush (before each commit, and at shutdown): every record put before it began
    handed to aiokafka, then the broker's acks for what aiokafka holds.

    faust's flush sends until its buffer is empty, and under load intake fills it as
    fast as it is sent: a commit ran 17 to 27 s (issue 12's fan-out run, "Timer
    commit is overlapping"), its offsets left uncommitted all that time.  Every
    record of the events a commit's offsets cover was put before its flush began, so
    those are all it must wait for, each one counted (:class:`SendCount`), where
    faust's ``flush_atmost`` may return with one still in its sender's hands.  A
    buffer that stopped or failed a send makes the flush fail, and so the commit.
    Must be made before the buffer starts.
    """
    buffer = producer.buffer
    count = SendCount(buffer)

    async def flush() -> None:
        target = count.put
        while count.sent < target:
            if count.failed is not None:
                raise RuntimeError("a record was not handed to the producer") from count.failed
            if buffer.state != "running":
                raise RuntimeError(f"cannot flush: the producer buffer is {buffer.state}")
            count.changed.clear()
            if count.sent < target:
                with contextlib.suppress(TimeoutError):  # then look at the buffer's state again
                    await asyncio.wait_for(count.changed.wait(), 1.0)
        if producer._producer is not None:  # aiokafka's: waits for the batches it holds now
            await producer._producer.flush()
        for transactional in producer._transaction_producers.values():
            await transactional.flush()

    return flush


class App(faust.App):
    """faust's app with keydesk's stream flow control (``streams.consumer_tuning.FlowControl``)."""

    def _new_producer(self) -> ProducerT:
        """faust's producer, whose buffer holds up intake only past :data:`PRODUCER_BUFFER_MAX` records.

        Table writes go to the changelog through this buffer, and faust makes every
        incoming message wait while more than ``max_messages`` (100) are pending,
        in steps of up to 0.1 s.  A batch of events writes hundreds of changelog
        records at once, so after every batch intake crawled: with 500 events/s
        and one live client, the timers published due steps 2.6 s late (p50) and
        10.9 s at p99, growing over the run; at this limit 0.33 s (issue 12's
        fan-out; BENCHMARKS.md, "Live fan-out").  The limit still bounds the
        memory pending records take (records are at most 64 KiB, typically 1-3 KB).
        """
        producer = super()._new_producer()
        # threaded, faust's buffer hands records to another thread, never to ``_send_pending``:
        # the counted flush (``pending_flush``) would wait for them forever
        assert not self.conf.producer_threaded, "producer_threaded is not supported"
        producer.buffer.max_messages = PRODUCER_BUFFER_MAX
        producer.buffer.wait_until_ebb = ebb_waiter(producer.buffer)  # type: ignore[method-assign]
        producer.flush = pending_flush(producer)  # type: ignore[method-assign]
        return producer

    @cached_property
    def flow_control(self) -> FlowControl:
        """As faust's, but resuming a flowing stream does not empty its buffers."""
        return FlowControl(loop=self.loop)


def broker_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """``KEYDESK_KAFKA_*`` security (``streams/kafka_security.py``) as faust's ``broker_credentials``.

    faust hands these to every aiokafka client it makes: the worker's consumer
    and producer, and through their connections the CreateTopics requests for
    the tables' changelog topics (``faust/transport/drivers/aiokafka.py``,
    ``credentials_to_aiokafka_auth``).
    """
    context = ssl_context(settings)
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL_"):
        # SASLCredentials means SASL_SSL when given a context, SASL_PLAINTEXT without
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


def faust_settings(settings: Settings) -> dict:
    """Faust settings chosen for a start within seconds and failover within ~10 s.

    Faust's defaults wait for more workers before recovery (``stream_recovery_delay``
    3 s) and keep a dead worker's partitions for a minute (session timeout 60 s).

    Throughput (BENCHMARKS.md, "Worker throughput (issue 2)"): the consumer is
    ``streams.consumer_tuning``'s (no tasks spawned per message), selected by the
    ``keydesk-kafka://`` scheme of ``broker_consumer``; producers stay on the
    plain ``broker``.
    """
    try:
        tuned_consumer = {"broker_consumer": consumer_urls(settings.bootstrap_servers)}
    except SettingsError:  # no broker in the settings: the caller passes its own
        tuned_consumer = {}
    return {
        **tuned_consumer,
        "broker_credentials": broker_credentials(settings),
        "store": "memory://",
        "datadir": str(settings.data_dir / "faust"),  # not <app id>-data in the cwd
        "autodiscover": False,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "web_enabled": True,
        # faust's own pages: /table/{name}/{key} served raw table records to anyone
        # and routed by faust's router; keydesk's API is the only door.
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
        "web_host": settings.http_host,
        "web_port": settings.http_port,
        "canonical_url": f"http://{settings.http_host}:{settings.http_port}",
        "stream_recovery_delay": 0.0,
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        # Not waiting for every event in hand on revocation: a suspended stream can
        # hold one unacked forever. The alert sender hands over by itself
        # (handlers/alerts/sender.py).
        "stream_wait_empty": False,
        "producer_acks": -1,
        # aiokafka fills one batch per partition and makes the next send wait until the sender has
        # taken it: at faust's 16 KiB (5 to 8 changelog records) a busy worker's sends queued behind
        # every round trip to the broker (issue 12's fan-out run)
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
        "table_standby_replicas": 1,
        "key_serializer": "keydesk-utf8",
        "value_serializer": "raw",
    }


def _customer_table(app: faust.App, name: str, partitions: int, partition_of) -> CustomerPartitionedTable:
    """A table of raw JSON bytes whose records sit on their customer's partition."""
    table = CustomerPartitionedTable(
        app, name=name, key_type=None, value_type=None, beacon=app.tables.beacon, partitions=partitions
    )
    table.partition_of = partition_of
    table.key_serializer, table.value_serializer = "keydesk-utf8", "raw"
    # Faust built the changelog topic when the table was made, with JSON
    # serializers; rebuild it so recovery and standbys read back raw bytes.
    table.changelog_topic = table._new_changelog_topic()
    return app.tables.add(table)


def build_streams(settings: Settings, broker: str | None = None, rules: RuleSet | None = None) -> Streams:
    """Create the app with its topics, table and agent; ``broker`` overrides (tests).

    ``rules`` defaults to the file in ``settings.sla_rules`` (or the shipped one);
    an invalid rules file raises :class:`sla_rules.RulesError` here, before any
    event is consumed.
    """
    rules = rules or load_rules(settings.sla_rules)
    brokers = broker or [f"kafka://{server}" for server in settings.bootstrap_servers]
    app = App(settings.app_id, broker=brokers, **faust_settings(settings))

    def processor_partition(customer_id: str) -> int:
        return murmur2_partition(customer_id.encode(), settings.partitions)

    # Keys stay raw bytes here: a key that is not UTF-8 must reach the processor
    # (and the dead-letter topic), not fail inside faust's key decoding.
    events = app.topic(
        settings.events_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    dead_letters = app.topic(
        settings.dead_letter_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    # The views persist as bounded records in three tables on the customer's
    # partition of the events topic (streams/customer_store.py).
    tables = [
        _customer_table(app, name, settings.partitions, processor_partition)
        for name in ("customers", "items", "item-history")
    ]
    views = CustomerStore(*tables, partition_of=processor_partition)
    processor = EventProcessor(
        app=app,
        events=events,
        dead_letters=dead_letters,
        views=views,
        rules=rules,
        partitions=settings.partitions,
        replay=settings.clock == "replay",
        secret=settings.signing_key,
    )

    @app.agent(events, name="fold-events")
    async def fold_events(stream):
        """Fold every event into its customer's view, a batch at a time."""
        async for batch in event_batches(
            stream, BATCH_MAX, idle=BATCH_WITHIN, linger=BATCH_LINGER, stats=processor.stats
        ):
            await processor.process_batch_until_done(batch)

    sla_topic = register_sla_agents(app, settings, processor)
    return Streams(
        app=app,
        events=events,
        dead_letters=dead_letters,
        views=views,
        processor=processor,
        rules=rules,
        sla_topic=sla_topic,
        publisher=HomePublisher(events, settings.partitions, secret=processor.secret),
    )
