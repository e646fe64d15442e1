"""SLA timers across a rebalance: a step published but never folded back is published again.

Issue 10, point 7: ``SlaTimers.drop()`` kept the ``in_flight`` ids of a revoked
partition.  A step published just before the revocation, whose copy never came
back through the SLA topic to this worker (the partition moved away first), was
then held back as "in flight" for good: when the partition came back, the
rebuilt index found the step due again, and the tick withheld it until the
worker restarted.  Pure: no broker, the timers and a view folded by hand.
"""

from __future__ import annotations

import pytest

from sla_rules import load_rules
from streams.customer_view import fold, new_view
from streams.item_sla import sla_summary
from streams.sla_timers import SlaTimers
from tests.builders import at, event, fault

HOME = 2  # the customer's partition, whatever the customer id hashes to
OTHER = 3  # a partition of another customer, kept throughout


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def diamond_view(customer: str, *events) -> dict:
    """A diamond customer's view with ``events`` folded and its items' SLA summaries set."""
    view = new_view(customer)
    fold(view, event("customer.registered", customer, "08:00", customer=customer, tier="diamond"))
    for e in events:
        fold(view, e)
    return view


def summarised(view: dict, rules) -> dict:
    for item in view["open"]["fault"].values():
        item["sla"] = sla_summary(view, item, rules)
    return view


def live_timers(rules, partitions: dict[str, int]) -> SlaTimers:
    return SlaTimers(rules, lambda customer_id: partitions[customer_id])


def ids(steps) -> set[str]:
    return {s.event_id for s in steps}


class TestHandover:
    def test_a_step_left_in_flight_by_a_revocation_is_published_when_the_partition_returns(self, rules):
        """Published, revoked before it came back, assigned again: the step goes out again."""
        views = {
            "C-1": summarised(diamond_view("C-1", fault("F-1", "reported", "09:00", customer="C-1")), rules)
        }
        timers = live_timers(rules, {"C-1": HOME})
        timers.rebuild(views.items(), [HOME])
        first = timers.tick(views, at("09:06"))
        assert first, "the unacknowledged P1 fault has response steps due by 09:06"

        timers.drop([HOME])  # revoked before any step came back
        timers.rebuild(views.items(), [HOME])  # and assigned to this worker again
        again = timers.tick(views, at("09:06"))

        assert ids(again) == ids(first)

    def test_steps_of_a_partition_kept_through_the_rebalance_are_not_repeated(self, rules):
        """Only the revoked partition's steps are forgotten; a kept one's stay in flight."""
        views = {
            "C-1": summarised(diamond_view("C-1", fault("F-1", "reported", "09:00", customer="C-1")), rules),
            "C-2": summarised(diamond_view("C-2", fault("F-2", "reported", "09:00", customer="C-2")), rules),
        }
        timers = live_timers(rules, {"C-1": HOME, "C-2": OTHER})
        timers.rebuild(views.items(), [HOME, OTHER])
        first = timers.tick(views, at("09:06"))
        kept = {s.event_id for s in first if s.customer_id == "C-2"}
        assert kept

        timers.drop([HOME])
        view = views["C-2"]
        timers.schedule(view, view["open"]["fault"]["F-2"])  # C-2's item due again
        again = timers.tick(views, at("09:06"))

        assert not kept & ids(again)

    def test_a_step_folded_back_before_the_revocation_is_not_published_again(self, rules):
        """What came back is in the item's log: the returning partition publishes nothing of it."""
        views = {
            "C-1": summarised(diamond_view("C-1", fault("F-1", "reported", "09:00", customer="C-1")), rules)
        }
        timers = live_timers(rules, {"C-1": HOME})
        timers.rebuild(views.items(), [HOME])
        first = timers.tick(views, at("09:06"))
        for step in first:  # the SLA topic brought every step back
            fold(views["C-1"], step)
            timers.folded(step.event_id)

        timers.drop([HOME])
        timers.rebuild(views.items(), [HOME])

        assert timers.tick(views, at("09:06")) == []


def test_a_rolled_back_batch_puts_the_watermarks_back_and_keeps_dropped_partitions_dropped(rules):
    """A replay's watermarks go back to where the failed batch found them; a partition
    revoked while the batch ran is not brought back by the roll-back."""
    timers = SlaTimers(rules, lambda customer_id: {"C-1": 0, "C-2": 1}[customer_id], replay=True)
    timers.advance(0, at("09:00"))
    timers.advance(1, at("09:00"))
    before = dict(timers.watermarks)
    timers.advance(0, at("15:00"))
    timers.advance(1, at("15:00"))
    timers.advance(2, at("15:00"))  # first seen in the failed batch
    timers.drop([1])  # revoked at one of the batch's awaits
    timers.roll_back(before, ["C-1"])
    assert timers.watermarks == {0: at("09:00")}


def test_new_rules_time_every_open_clock_again_at_once(rules):
    """A replaced rule set (streams/rules_feed.py): the memo of the old one is dropped and each open
    clock is due at the next tick, not at the instant the old rules had indexed it for."""
    from sla_rules import DEFAULT_RULES_PATH, parse_rules

    text = DEFAULT_RULES_PATH.read_text()
    old = 'P1 = { response = "5m",  restore = "2h"'
    assert text.count(old) == 1
    shorter, problems = parse_rules(text.replace(old, 'P1 = { response = "1m",  restore = "2h"'))
    assert shorter is not None, problems
    views = {"C-1": summarised(diamond_view("C-1", fault("F-1", "reported", "09:00", customer="C-1")), rules)}
    timers = live_timers(rules, {"C-1": HOME})
    timers.rebuild(views.items(), [HOME])
    assert timers.tick(views, at("09:01")) == []  # the first warning of 5 min is at 09:02:30
    assert timers.tick(views, at("09:01:10")) == []
    timers.use_rules(shorter, views.items())
    steps = timers.tick(views, at("09:01:10"))
    assert {(s.event_type, s.payload["metric"]) for s in steps} >= {("sla.breached", "response")}
    assert {s.payload["target_seconds"] for s in steps if s.payload["metric"] == "response"} == {60}
