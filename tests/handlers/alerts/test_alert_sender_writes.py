"""The alert sender writes back only the item it recorded an outcome on, as it is now.

Issue 10, point 7: the sender read the customer's view once, awaited the
delivery (up to ~17 s of retries) and then wrote that view back whole.  That is
right only while every agent is handed the very same object (``memory://``).
With a store that hands out copies, the fold meanwhile works on a copy of its
own; whatever it folded then (an acknowledgement, a new fault, a profile
change) was overwritten by the sender's stale copy.

Here the store is the worker's (:class:`~streams.customer_store.CustomerStore`
over in-memory tables), and while a delivery is awaited the fold does what it
does on a batch retry: it takes the customer's view back from the tables (a
copy), folds an event into it and saves it, so the store holds the new copy.
No broker: the sender's collaborators are stand-ins, its channel waits on a gate.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from handlers.alerts.channels import DeliveryResult, Dispatcher, RetryPolicy, Status
from handlers.alerts.routing import EMAIL, LOG, WEBHOOK
from handlers.alerts.sender import AlertSender
from streams.customer_store import CustomerStore
from streams.customer_view import find_item, fold, view_contains_event
from streams.partitioning import Placement
from tests.builders import event, fault

PARTITION = 0
SLA_TOPIC = "keydesk.sla"
MANAGER = {"id": "AM-1", "name": "李敏", "email": "limin@example.cn"}
BREACH = event(
    "sla.breached",
    "F-1",
    "09:05",
    item_kind="fault",
    metric="response",
    cycle=1,
    policy="diamond v1",
    due_at="2026-11-23T01:05:00+00:00",
    deadline="2026-11-23T01:05:00+00:00",
)


class Store(CustomerStore):
    """The worker's store over plain dicts, with the whole-view write a faust table offers.

    ``store[customer_id] = view`` is how a sender that writes the view back
    whole (the code before the fix) puts it: every item of that view and its
    header, as a table would.  The sender as it is now never calls it.
    """

    def __init__(self) -> None:
        super().__init__({}, {}, {}, lambda customer_id: PARTITION)

    def __setitem__(self, customer_id: str, view: dict) -> None:
        items = [(i["kind"], i["id"]) for kind in view["open"].values() for i in kind.values()]
        items += [(i["kind"], i["id"]) for i in view["recent_closed"]]
        self.save(view, items)

    def fold_from_tables(self, customer_id: str, *events) -> None:
        """The fold on a copy read back from the tables (a retried batch), then saved."""
        view = self.reload(customer_id) or self.view_for_update(customer_id)
        changed = set()
        for e in events:
            fold(view, e)
            if e.kind not in ("customer", "sla"):
                changed.add((e.kind, e.entity_id))
        self.save(view, changed)


class GatedChannel:
    """A channel whose deliveries wait until the test opens the gate."""

    def __init__(self, name: str, gate: asyncio.Event, started: asyncio.Event) -> None:
        self.name = name
        self.gate = gate
        self.started = started
        self.delivered: list[str] = []

    async def deliver(self, alert) -> DeliveryResult:
        self.started.set()
        await self.gate.wait()
        self.delivered.append(alert.alert_id)
        return DeliveryResult(self.name, alert.alert_id, Status.DELIVERED)

    async def close(self) -> None:
        """Nothing to release."""


class RecordingTopic:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, **kwargs) -> None:
        self.sent.append(kwargs)


def sender_over(store: Store, channels: list[GatedChannel]) -> AlertSender:
    """An :class:`AlertSender` whose app, processor and producer are stand-ins."""

    async def flush() -> None:
        return None

    assigned = [SimpleNamespace(topic=SLA_TOPIC, partition=PARTITION)]
    app = SimpleNamespace(
        producer=SimpleNamespace(flush=flush), assignor=SimpleNamespace(assigned_actives=lambda: assigned)
    )
    processor = SimpleNamespace(stats={"alerts_recorded": 0, "alert_steps_failed": 0})
    streams = SimpleNamespace(app=app, processor=processor, views=store)
    dispatcher = Dispatcher(channels, retry=RetryPolicy(attempts=1, base_delay=0.0))
    placement = Placement(home=lambda customer_id: PARTITION, owned=lambda: {PARTITION})
    return AlertSender(streams, dispatcher, RecordingTopic(), placement=placement, sla_topic=SLA_TOPIC)


@pytest.fixture
def store() -> Store:
    store = Store()
    store.fold_from_tables(
        "C-1",
        event("customer.registered", "C-1", "08:00", account_manager=MANAGER),
        fault("F-1", "reported", "09:00"),
    )
    return store


# What the fold takes in while the delivery is awaited, and how to see it afterwards.
MEANWHILE = {
    "an acknowledgement of the alerted fault": (
        fault("F-1", "acknowledged", "09:06"),
        lambda view: find_item(view, "fault", "F-1")["state"] == "acknowledged",
    ),
    "another fault of the customer": (
        fault("F-2", "reported", "09:06"),
        lambda view: find_item(view, "fault", "F-2") is not None,
    ),
    "a profile change": (
        event("customer.updated", "C-1", "09:06", region="深圳"),
        lambda view: view["profile"]["region"] == "深圳",
    ),
}


class TestWriteBack:
    @pytest.mark.parametrize("meanwhile", list(MEANWHILE))
    async def test_what_the_fold_took_in_during_the_delivery_survives_the_outcome(self, store, meanwhile):
        """The event folded while the alert was on its way is in the view, and so is the outcome."""
        folded, shows = MEANWHILE[meanwhile]
        gate, started = asyncio.Event(), asyncio.Event()
        channels = [GatedChannel(name, gate, started) for name in (EMAIL, WEBHOOK, LOG)]
        sender = sender_over(store, channels)

        sending = asyncio.create_task(sender.handle(BREACH.to_bytes()))
        await asyncio.wait_for(started.wait(), 5)  # the alert is on its way
        store.fold_from_tables("C-1", folded)  # the fold, on a copy of its own
        gate.set()
        assert await asyncio.wait_for(sending, 5) == 1

        for view in (store.get("C-1"), store.reload("C-1")):  # working copy, then the tables
            assert view_contains_event(view, folded.event_id), "the folded event was lost"
            assert shows(view)
            alerts = find_item(view, "fault", "F-1").get("alerts", [])
            assert [(a["event_id"], a["delivered"]) for a in alerts] == [(BREACH.event_id, True)]

    async def test_a_step_whose_outcome_is_recorded_is_not_sent_again(self, store):
        """Handled twice (a redelivered step), the alert goes out once."""
        gate, started = asyncio.Event(), asyncio.Event()
        gate.set()
        channels = [GatedChannel(name, gate, started) for name in (EMAIL, WEBHOOK, LOG)]
        sender = sender_over(store, channels)

        assert await sender.handle(BREACH.to_bytes()) == 1
        sent = [list(c.delivered) for c in channels]
        store.fold_from_tables("C-1", fault("F-1", "acknowledged", "09:06"))
        assert await sender.handle(BREACH.to_bytes()) == 0
        assert [c.delivered for c in channels] == sent
