"""The live feed's hub and decoding, the queue's and the inbox's pure rules: no browser, no broker."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from handlers.api.http_guard import BadRequest
from handlers.identity.roles import CustomerFacts, Identity
from handlers.web.inbox_model import Acknowledgement, Customer, InboxRow, Step, inbox, one_row
from handlers.web.inbox_page import arrived_since, page_since
from handlers.web.live_feed import LiveChange, LiveHub, LiveTopics, TooManyStreams, decode_change
from handlers.web.queue_model import FilterProblem, QueueFilters, band, local_rows
from schemas.envelope import new_event
from streams.desk_signature import signature_headers

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TOPICS = LiveTopics(sla="kd.sla", events="kd.events", items_changelog="kd-app-items-changelog")
SECRET = b"s" * 32


def user(*roles: str, staff: str | None = None, region: str | None = None, name: str = "u") -> Identity:
    return Identity(
        name=name, kind="user", credential="c", roles=frozenset(roles), staff_id=staff, region=region
    )


GOV = Customer(
    CustomerFacts("C-GOV", "AM-1", "广东省/广州市", frozenset({"DH-1"})),
    "省政府",
    "diamond",
    {
        "account_manager": {"id": "AM-1", "name": "李敏"},
        "escalation_chain": [{"role": "department_head", "id": "DH-1", "name": "王强"}],
    },
)


def step(customer: str = "C-GOV", item: str = "F-1", n: int | None = 1, role: str | None = "account_manager"):
    return Step(
        event_id=str(uuid.uuid4()),
        event_type="sla.escalation_due" if n else "sla.breached",
        customer_id=customer,
        item_kind="fault",
        item_id=item,
        metric="response",
        cycle=1,
        occurred_at=NOW,
        step=n,
        role=role,
    )


def change(s: Step) -> LiveChange:
    return LiveChange("step", s.customer_id, "fault", s.item_id, step=s, read_at=0.0)


async def lookup(ids):
    return {"C-GOV": GOV} if "C-GOV" in ids else {}


class TestHub:
    async def test_a_stream_gets_only_its_users_customers(self):
        hub = LiveHub(lookup)
        mine = hub.subscribe(user("account_manager", staff="AM-1", name="a"), "inbox")
        other = hub.subscribe(user("account_manager", staff="AM-9", name="b"), "inbox")
        await hub.publish([change(step())])
        assert len(await mine.take(0)) == 1
        assert await other.take(0) == []

    async def test_a_stream_that_does_not_keep_up_is_dropped_and_never_waited_for(self):
        hub = LiveHub(lookup, queue_size=3)
        slow = hub.subscribe(user("manager", region="*", name="slow"), "inbox")
        quick = hub.subscribe(user("manager", region="*", name="quick"), "inbox")
        for _ in range(3):
            await hub.publish([change(step())])
            assert len(await quick.take(0)) == 1
        await hub.publish([change(step())])
        assert slow.dropped and slow not in hub.subscribers
        assert not quick.dropped and len(await quick.take(0)) == 1

    async def test_streams_are_bounded_per_worker_and_per_user(self):
        hub = LiveHub(lookup, max_streams=3, per_user=2)
        hub.subscribe(user("hotline", name="x"), "queue")
        hub.subscribe(user("hotline", name="x"), "queue")
        with pytest.raises(TooManyStreams):
            hub.subscribe(user("hotline", name="x"), "queue")
        hub.subscribe(user("hotline", name="y"), "queue")
        with pytest.raises(TooManyStreams):
            hub.subscribe(user("hotline", name="z"), "queue")

    async def test_a_queue_stream_gets_item_changes_of_its_kind_and_no_steps(self):
        hub = LiveHub(lookup)
        tickets = hub.subscribe(user("hotline"), "queue", "ticket")
        await hub.publish(
            [
                change(step()),
                LiveChange("item", "C-GOV", "fault", "F-1"),
                LiveChange("item", "C-GOV", "ticket", "T"),
            ]
        )
        assert [c.item_id for c, _ in await tickets.take(0)] == ["T"]

    async def test_only_the_customers_of_changes_some_stream_takes_are_looked_up(self):
        asked: list[str] = []

        async def counting(ids):
            asked.extend(ids)
            return await lookup(ids)

        hub = LiveHub(counting)
        inbox_stream = hub.subscribe(user("manager", region="*"), "inbox")
        await hub.publish([LiveChange("item", "C-BG-1", "fault", "F-9"), change(step())])
        assert asked == ["C-GOV"]  # an inbox stream takes no item change: C-BG-1's facts are not needed
        assert [c.kind for c, _ in await inbox_stream.take(0)] == ["step"]
        hub.subscribe(user("hotline", name="h"), "queue")
        await hub.publish([LiveChange("item", "C-BG-1", "fault", "F-9")])
        assert asked == ["C-GOV", "C-BG-1"]

    async def test_a_customer_the_database_cannot_say_is_nobodys_scoped_stream(self):
        async def away(ids):
            raise TimeoutError

        hub = LiveHub(away)
        scoped = hub.subscribe(user("account_manager", staff="AM-1"), "inbox")
        head_office = hub.subscribe(user("manager", region="*", name="hq"), "inbox")
        await hub.publish([change(step())])
        assert await scoped.take(0) == []
        assert len(await head_office.take(0)) == 1


class TestDecoding:
    def sla_record(self, event_type="sla.escalation_due", **payload):
        body = {
            "item_kind": "fault",
            "metric": "response",
            "cycle": 1,
            "due_at": NOW.isoformat(),
            "policy": "p",
        }
        body.update(payload)
        return new_event(event_type, "C-GOV", "F-1", body, source="system", actor="sla", now=NOW).to_bytes()

    def test_a_ladder_step_on_the_sla_topic_is_a_step(self):
        found = decode_change(
            TOPICS.sla, b"C-GOV", self.sla_record(step=2, role="department_head"), [], TOPICS, SECRET
        )
        assert found is not None and found.kind == "step"
        assert (found.step.step, found.step.role, found.step.item_id) == (2, "department_head", "F-1")

    def test_an_acknowledgement_counts_only_with_the_desks_signature(self):
        ack = new_event(
            "sla.escalation_acknowledged",
            "C-GOV",
            "F-1",
            {"item_kind": "fault", "metric": "response", "cycle": 1, "note": "已派单"},
            source="account_manager",
            actor="li",
            now=NOW,
        ).to_bytes()
        assert decode_change(TOPICS.events, b"C-GOV", ack, [], TOPICS, SECRET) is None  # forged
        found = decode_change(TOPICS.events, b"C-GOV", ack, signature_headers(SECRET, ack), TOPICS, SECRET)
        assert found is not None and found.ack.key == ("C-GOV", "fault", "F-1", "response", 1)
        assert (found.ack.actor, found.ack.note) == ("li", "已派单")

    def test_an_items_changelog_record_is_an_item_change_and_other_events_are_nothing(self):
        key = orjson.dumps(["C-GOV", "ticket", "T-1"])
        found = decode_change(TOPICS.items_changelog, key, None, [], TOPICS, SECRET)
        assert (found.kind, found.customer_id, found.item_kind, found.item_id) == (
            "item",
            "C-GOV",
            "ticket",
            "T-1",
        )
        assert decode_change(TOPICS.items_changelog, b"not json", b"{}", [], TOPICS, SECRET) is None
        assert (
            decode_change(TOPICS.events, b"C-GOV", b'{"event_type": "fault.reported"}', [], TOPICS, SECRET)
            is None
        )
        assert decode_change(TOPICS.sla, b"C-GOV", b"garbage", [], TOPICS, SECRET) is None


class TestInbox:
    def test_unacknowledged_first_then_those_to_me_then_newest(self):
        newest = step(item="F-1", n=1)
        older = replace(step(item="F-2", n=1), occurred_at=NOW - timedelta(minutes=5))
        not_to_me = step(item="F-4", n=3, role="branch_leader")  # newest of all, but nobody's here
        not_to_me = replace(not_to_me, occurred_at=NOW + timedelta(minutes=1))
        acked = replace(step(item="F-3"), occurred_at=NOW + timedelta(minutes=2))
        rows = inbox(
            [older, acked, not_to_me, newest],
            {"C-GOV": GOV},
            [Acknowledgement(acked.key, "li", NOW)],
            user("account_manager", staff="AM-1"),
        )
        assert [r.step.item_id for r in rows] == ["F-4", "F-1", "F-2", "F-3"]
        assert [r.to_me for r in rows] == [True, True, True, True]  # step 3 copies the account manager
        assert rows[3].acknowledged is not None
        head = user("account_manager", staff="DH-1")  # in the chain: sees them all, none addressed to them
        second = replace(step(item="F-5", n=2, role="department_head"), occurred_at=NOW - timedelta(hours=1))
        rows = inbox([newest, not_to_me, second], {"C-GOV": GOV}, [], head)
        assert [(r.step.item_id, r.to_me) for r in rows] == [("F-5", True), ("F-4", False), ("F-1", False)]

    def test_a_department_head_gets_step_2_and_not_step_1(self):
        head = user("account_manager", staff="DH-1")
        rows = inbox([step(n=1), step(item="F-2", n=2, role="department_head")], {"C-GOV": GOV}, [], head)
        assert {r.step.item_id: r.to_me for r in rows} == {"F-1": False, "F-2": True}
        assert [r.step.item_id for r in inbox([step(n=1)], {"C-GOV": GOV}, [], head, only_mine=True)] == []

    def test_a_live_steps_row_is_the_one_the_inbox_gives_it_for_every_viewer(self):
        viewers = [
            user("account_manager", staff="AM-1"),
            user("account_manager", staff="DH-1"),
            user("account_manager", staff="AM-9"),
            user("manager", region="*"),
            user("hotline"),
        ]
        steps = [step(n=1), step(n=2, role="department_head"), step(n=3, role="branch_leader"), step(n=None)]
        steps += [step(customer="C-OTHER"), replace(step(), event_type="sla.clock_started")]
        for viewer in viewers:
            for s in steps:
                for customer in (GOV, None):
                    found = inbox([s], {s.customer_id: customer} if customer else {}, [], viewer)
                    live = one_row(s, customer, None, viewer)
                    assert (live.to_me if live else None) == (found[0].to_me if found else None), (viewer, s)

    def test_a_customer_outside_the_scope_is_not_shown(self):
        assert inbox([step(customer="C-OTHER")], {}, [], user("account_manager", staff="AM-1")) == []
        assert len(inbox([step(customer="C-OTHER")], {}, [], user("manager", region="*"))) == 1


class TestNewSincePageShown:
    """A reload of the inbox's table keeps the "new" cue on what the live feed read after the page came."""

    shown = 1_800_000_000.0

    def row(self, s: Step) -> InboxRow:
        return InboxRow(s, None, True, None)

    def test_a_step_read_after_the_page_was_shown_is_new_and_one_read_before_is_not(self):
        came_live, was_there = step(item="F-1"), step(item="F-2")
        read_at = {came_live.event_id: self.shown + 0.5, was_there.event_id: self.shown - 30}
        assert arrived_since(self.row(came_live), read_at, self.shown)
        assert not arrived_since(self.row(was_there), read_at, self.shown)

    def test_event_time_does_not_make_a_step_new_only_its_arrival_does(self):
        late = replace(step(item="F-3"), occurred_at=datetime.fromtimestamp(self.shown + 3600, UTC))
        assert not arrived_since(self.row(late), {}, self.shown)  # from the database only: it was there
        assert arrived_since(self.row(late), {late.event_id: self.shown}, self.shown)

    def test_a_fresh_page_marks_nothing_new(self):
        s = step()
        assert not arrived_since(self.row(s), {s.event_id: self.shown + 1}, None)

    def test_the_pages_time_is_bounded_and_a_bad_one_is_refused_naming_it(self):
        assert page_since(None, self.shown) is None
        assert page_since("", self.shown) is None
        assert page_since(f"{self.shown - 60:.3f}", self.shown) == self.shown - 60
        too_old, too_new = str(self.shown - 8 * 24 * 3600), str(self.shown + 3600)
        for bad in ("soon", "nan", "inf", "1e400", too_old, too_new, "9" * 40):
            with pytest.raises(BadRequest) as refused:
                page_since(bad, self.shown)
            assert (refused.value.status, refused.value.field) == (422, "since")


def queue_view(customer: str, manager: str, region: str, deadline: datetime, kind: str = "fault") -> dict:
    it = {
        "kind": kind,
        "id": f"{kind[0].upper()}-{customer}",
        "state": "reported",
        "attributes": {"priority": "P1"},
        "sla": {
            "metrics": {"response": {"state": "pending", "deadline": deadline.isoformat(), "paused": False}}
        },
    }
    opened = {"fault": {}, "ticket": {}, "order": {}}
    opened[kind][it["id"]] = it
    profile = {"tier": "gold", "region": region, "account_manager": {"id": manager, "name": manager}}
    return {"customer_id": customer, "profile": profile, "open": opened}


class TestQueue:
    VIEWS = [
        ("C-A", queue_view("C-A", "AM-1", "广东省/广州市", NOW + timedelta(hours=1))),
        ("C-B", queue_view("C-B", "AM-2", "广东省/深圳市", NOW - timedelta(minutes=5))),
        ("C-C", queue_view("C-C", "AM-2", "湖南省", NOW + timedelta(minutes=10), kind="ticket")),
    ]

    def rows(self, viewer, **filters):
        return [r["customer_id"] for r in local_rows(self.VIEWS, None, NOW, viewer, QueueFilters(**filters))]

    def test_most_urgent_first_and_scoped_before_the_limit(self):
        assert self.rows(user("hotline")) == ["C-B", "C-C", "C-A"]
        assert self.rows(user("account_manager", staff="AM-1")) == ["C-A"]
        assert self.rows(user("manager", region="湖南省")) == ["C-C"]
        assert [
            r["customer_id"] for r in local_rows(self.VIEWS, None, NOW, user("hotline"), QueueFilters(), 1)
        ] == ["C-B"]

    def test_filters_narrow(self):
        hotline = user("hotline", staff="AM-2")
        assert self.rows(hotline, region="广东省") == ["C-B", "C-A"]
        assert self.rows(hotline, kind="ticket") == ["C-C"]
        assert self.rows(hotline, account_manager="AM-1") == ["C-A"]
        assert self.rows(hotline, mine=True) == ["C-B", "C-C"]
        assert self.rows(hotline, tier="diamond") == []

    def test_bands_follow_the_time_to_breach(self):
        assert [band({"seconds_to_breach": s}) for s in (-1, 60, 3600, 86400)] == [
            "breached",
            "soon",
            "today",
            "later",
        ]
        assert band({"seconds_to_breach": None, "paused": True}) == "paused"

    def test_a_filter_outside_the_vocabulary_is_refused_naming_it(self):
        with pytest.raises(FilterProblem) as refused:
            QueueFilters.from_query({"kind": "incident"})
        assert refused.value.field == "kind"
        with pytest.raises(FilterProblem):
            QueueFilters.from_query({"region": "x" * 500})
        assert QueueFilters.from_query({"mine": "1", "tier": "gold"}).to_query() == {
            "tier": "gold",
            "mine": "1",
        }
