"""Items the rules do not measure: the view says so, and why, instead of showing nothing.

A deployment gives SLA targets only for the kinds it uses: a desk that takes
no orders writes no order targets. An order of its customers is still a valid
item of the one-stop view; it simply has no clock.
"""

import pytest

from sla_rules import DEFAULT_RULES_PATH, parse_rules
from streams.customer_view import find_item, fold, new_view
from streams.item_sla import sla_summary
from tests.builders import event, fault, order, ticket


def without_order_targets(text: str) -> str:
    """The rules text with every ``[policies.targets.order]`` table left out."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skipping = line == "[policies.targets.order]"
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def no_orders():
    """The shipped rules without order targets: every rule sends orders where none are measured."""
    rules, problems = parse_rules(
        without_order_targets(DEFAULT_RULES_PATH.read_text(encoding="utf-8")), "<no orders>"
    )
    assert problems == [] and rules is not None
    assert all("order" not in p.kinds for versions in rules.policies.values() for p in versions)
    return rules


def view_of(*events, tier="gold"):
    view = new_view("C-1")
    fold(view, event("customer.registered", "C-1", tier=tier))
    for e in events:
        fold(view, e)
    return view


class TestAnItemOfAKindWithoutTargets:
    def test_an_order_has_no_clock_and_the_summary_says_why(self, no_orders):
        """A gold customer's order: not measured, because the gold policy has no order targets."""
        view = view_of(order("O-1", "received", "09:00"))
        sla = sla_summary(view, view["open"]["order"]["O-1"], no_orders)
        assert sla["metrics"] == {}
        assert sla["not_measured"] == "no targets for kind order in policy gold v1 (rule '黄金 gold')"

    def test_it_stays_not_measured_as_the_order_moves_on(self, no_orders):
        """Later events change nothing: no clock ever starts for it."""
        view = view_of(
            order("O-1", "received", "09:00"),
            order("O-1", "resource_confirmed", "10:00"),
            order("O-1", "activated", "15:00"),
        )
        sla = sla_summary(view, view["open"]["order"]["O-1"], no_orders)
        assert sla["metrics"] == {} and sla["not_measured"].startswith("no targets for kind order")

    def test_a_customer_without_a_profile_names_the_catch_all(self, no_orders):
        """Before the customer archive arrives the order is a public one: the catch-all's policy."""
        view = new_view("C-1")
        fold(view, order("O-1", "received", "09:00"))
        sla = sla_summary(view, view["open"]["order"]["O-1"], no_orders)
        assert sla["tier_assumed"] is True
        assert sla["not_measured"] == (
            "no targets for kind order in policy public v1 "
            "(rule 'catch-all: 公众 public and anything unmatched')"
        )


class TestMeasuredItemsAreUnchanged:
    @pytest.mark.parametrize(
        "opening",
        [fault("F-1", "reported", "09:00"), ticket("T-1", "opened", "09:00")],
        ids=["fault", "ticket"],
    )
    def test_the_kinds_with_targets_have_clocks_and_no_reason(self, no_orders, opening):
        """Faults and tickets of the same deployment run their clocks as ever."""
        view = view_of(opening)
        item = view["open"][opening.kind][opening.entity_id]
        sla = sla_summary(view, item, no_orders)
        assert "response" in sla["metrics"] and "not_measured" not in sla

    def test_a_closed_and_revisited_item_is_measured_though_its_clocks_have_stopped(self, no_orders):
        """Stopped clocks are clocks: only an item that never had one is 'not measured'."""
        view = view_of(
            ticket("T-1", "opened", "09:00"),
            ticket("T-1", "resolved", "10:00"),
            ticket("T-1", "closed", "10:30"),
            ticket("T-1", "revisit_recorded", "11:00", satisfaction=5),
        )
        sla = sla_summary(view, find_item(view, "ticket", "T-1"), no_orders)
        assert sla["metrics"]["resolve"]["state"] == "met" and "not_measured" not in sla
