"""The control: without a fault, the books balance (else the harness, not the desk, is wrong)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.broker


def test_without_a_fault_every_event_step_and_alert_is_accounted_for_once(scenario):
    """Steady load on one worker: views, event_log, SLA steps and webhook alerts all agree."""
    scenario.start_workers(1)
    scenario.start_load(seconds=10)
    stock = scenario.finish()
    assert stock.expected.alerts, "the traffic should make alerts due"
    assert stock.nothing_lost, scenario.verdict(stock)
