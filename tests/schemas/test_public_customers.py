"""Public customers (公众客户) have neither a tier nor an account manager.

``customer.registered`` needs only a name: the decoder and the published JSON
Schema both accept a customer without tier or account manager, the SLA rules
evaluate it as tier public, and its alerts go to the duty desk.
"""

from __future__ import annotations

import orjson
import pytest

from handlers.alerts.routing import DUTY_DESK, route
from schemas.envelope import decode_event
from sla_rules import load_rules
from streams.customer_view import fold, new_view
from streams.item_sla import item_facts, sla_summary
from tests.builders import event, fault
from tests.schemas.test_json_schema import decoder_accepts, schema_accepts

NAME_ONLY = {"name": "张三"}


def registration(payload: dict) -> dict:
    """A customer.registered document with exactly ``payload``."""
    body = event("customer.registered", "C-9", customer="C-9").to_wire()
    return {**body, "payload": payload}


class TestTheContract:
    @pytest.mark.parametrize(
        "payload",
        [
            NAME_ONLY,
            {"name": "张三", "tier": None, "account_manager": None},
            {"name": "张三", "tier": "public"},
            {"name": "某区教育局", "tier": "business", "region": "广州"},
        ],
        ids=["name only", "nulls", "tier without manager", "manager left out"],
    )
    def test_a_customer_without_tier_or_account_manager_is_valid(self, payload):
        """The decoder and the published schema both accept it: they agree."""
        body = registration(payload)
        assert decoder_accepts(body) and schema_accepts(body)

    def test_a_left_out_field_stays_out_of_the_profile(self):
        """A null tier or manager means the field is absent, not a value."""
        decoded = decode_event(
            orjson.dumps(registration({"name": "张三", "tier": None, "account_manager": None}))
        )
        assert decoded.payload == NAME_ONLY

    @pytest.mark.parametrize(
        "payload",
        [
            {"tier": "public"},
            {"name": "张三", "tier": "bronze"},
            {"name": "张三", "account_manager": {"name": "李敏"}},
        ],
        ids=["no name", "unknown tier", "manager without id"],
    )
    def test_what_is_given_is_still_checked(self, payload):
        """Only tier and manager became optional: a name is required, values are checked."""
        body = registration(payload)
        assert not decoder_accepts(body) and not schema_accepts(body)


@pytest.fixture(scope="module")
def public_customer():
    """The one-stop view of a public customer with one critical fault."""
    view = new_view("C-9")
    fold(
        view,
        event("customer.registered", "C-9", customer="C-9", tier=None, account_manager=None, name="张三"),
    )
    fold(view, fault("F-9", "reported", "09:00", customer="C-9"))
    return view


class TestWhatTheDeskDoesWithIt:
    def test_it_is_evaluated_as_tier_public(self, public_customer):
        """No tier: the public policy, and the view says the tier was assumed."""
        item = public_customer["open"]["fault"]["F-9"]
        assert item_facts(public_customer, item).tier == "public"
        sla = sla_summary(public_customer, item, load_rules())
        assert sla["tier_assumed"] is True
        assert sla["metrics"]["response"]["policy"].startswith("public v")

    def test_its_alerts_go_to_the_duty_desk(self, public_customer):
        """No account manager: a breach is routed to the duty desk, never silenced."""
        breach = event(
            "sla.breached",
            "F-9",
            "13:00",
            customer="C-9",
            item_kind="fault",
            metric="restore",
            cycle=1,
            policy="public v1",
            due_at="2026-11-23T05:00:00+00:00",
            deadline="2026-11-23T05:00:00+00:00",
        )
        (alert,) = route(breach, public_customer["profile"], public_customer["open"]["fault"]["F-9"])
        assert alert.fallback and alert.recipient == DUTY_DESK
