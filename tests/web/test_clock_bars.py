"""Every clock of an item drawn as a bar against the target in force at the page's instant."""

import pytest

from handlers.web.clock_bars import clock_bars
from sla_rules import evaluate, load_rules
from streams.customer_view import find_item, fold, new_view
from streams.item_sla import clock_history, item_facts
from tests.builders import at, event, ticket


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def bars_in_order(rules, clock: str, *events):
    """The bars of ticket T-1 of a diamond customer at ``clock``, after ``events``, as drawn."""
    view = new_view("C-1")
    fold(view, event("customer.registered", "C-1", "08:00", customer="C-1", tier="diamond"))
    for e in events:
        fold(view, e)
    item = find_item(view, "ticket", "T-1")
    return clock_bars(dict(evaluate(item_facts(view, item), clock_history(item), rules, at(clock)).metrics))


def bars_at(rules, clock: str, *events):
    return {bar.metric: bar for bar in bars_in_order(rules, clock, *events)}


OPENED = ticket("T-1", "opened", "09:00", customer="C-1", priority="P2", kind="complaint")


def test_a_just_opened_tickets_clocks_are_all_drawn_and_running(rules):
    bars = bars_at(rules, "09:01", OPENED)
    assert set(bars) == {"response", "resolve"}
    assert all(bar.tone == "running" and 0 < bar.share < 0.5 for bar in bars.values())


def test_a_clock_past_its_target_is_drawn_full_and_breached_first(rules):
    bars = bars_at(rules, "23:00", OPENED)
    first = bars_in_order(rules, "23:00", OPENED)[0]
    assert first.tone == "breached" and first.percent == 100 and first.overdue_seconds > 0
    assert bars["response"].tone == "breached"


def test_an_acknowledged_ticket_shows_its_response_clock_met(rules):
    bars = bars_at(rules, "09:30", OPENED, ticket("T-1", "acknowledged", "09:05", customer="C-1"))
    assert bars["response"].tone == "met" and bars["response"].stopped_at == at("09:05")
    assert bars["resolve"].tone in ("running", "warning")


def test_a_ticket_pending_on_the_customer_shows_its_clock_paused_with_the_reason(rules):
    pending = ticket("T-1", "status_changed", "09:10", customer="C-1", status="pending_customer")
    bars = bars_at(rules, "10:00", OPENED, ticket("T-1", "acknowledged", "09:05", customer="C-1"), pending)
    assert bars["resolve"].tone == "paused" and bars["resolve"].pause_reason


def test_a_raised_priority_measures_the_bar_against_the_new_shorter_target(rules):
    raised = ticket("T-1", "priority_changed", "09:02", customer="C-1", priority="P1")
    before, after = bars_at(rules, "09:03", OPENED), bars_at(rules, "09:03", OPENED, raised)
    assert after["resolve"].target_seconds < before["resolve"].target_seconds
    assert after["resolve"].share > before["resolve"].share
