"""The one table of closed-loop steps, a step's body checks, and what the fold says of it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handlers.api.actions import ACKNOWLEDGEMENT, ACTIONS, fold_outcome
from handlers.api.commands import action_to_event
from handlers.api.http_guard import BadRequest
from handlers.cli import parser
from schemas.event_catalogue import EVENT_TYPES, entity_kind
from streams.customer_view import fold, new_view
from streams.lifecycles import NEW, TRANSITIONS
from tests.builders import fault

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
#: who takes the steps: the signed-in identity's (handlers/identity/guard.author), never the body's
WHO = {"actor": "hotline-7", "source": "hotline"}


def refusal(kind: str, action: str, body: dict) -> tuple[int, str | None]:
    with pytest.raises(BadRequest) as caught:
        action_to_event(ACTIONS[kind][action], "F-1", body, NOW, **WHO)
    return caught.value.status, caught.value.field


class TestActionTable:
    @pytest.mark.parametrize("kind", list(TRANSITIONS))
    def test_every_transition_but_the_opening_is_an_action(self, kind):
        """Each event type of a lifecycle table after the opening one is some action's."""
        steps = {a.event_type for a in ACTIONS[kind].values()}
        later = {t for t, (sources, _) in TRANSITIONS[kind].items() if NEW not in sources}
        assert later <= steps, later - steps

    def test_every_action_is_a_catalogued_event_of_its_kind_or_the_acknowledgement(self):
        """An action names a catalogue event type of the item's kind (or the escalation ack)."""
        for kind, actions in ACTIONS.items():
            for name, action in actions.items():
                assert action.event_type in EVENT_TYPES, name
                assert action.event_type == ACKNOWLEDGEMENT or entity_kind(action.event_type) == kind

    def test_pause_and_resume_are_both_steps_of_every_kind(self):
        """status_changed is two steps: pending (pausing) and resume / start (in_progress)."""
        assert ACTIONS["fault"]["pending"].event_type == ACTIONS["fault"]["resume"].event_type
        assert ACTIONS["ticket"]["start"].fixed == {"status": "in_progress"}
        assert ACTIONS["order"]["pending"].fields()["status"].enum == (
            "pending_customer",
            "pending_third_party",
        )

    def test_fields_are_the_catalogues(self):
        """dispatch takes the catalogue's team (required) and engineer; resume does not take status."""
        dispatch = ACTIONS["fault"]["dispatch"].fields()
        assert set(dispatch) == {"team", "engineer"} and dispatch["team"].required
        assert "status" not in ACTIONS["fault"]["resume"].fields()
        ack = ACTIONS["ticket"]["ack-escalation"].fields()
        assert set(ack) == {"metric", "cycle", "note"} and not ack["cycle"].required


class TestActionBody:
    def test_a_step_becomes_its_event_on_the_item(self):
        """The body's customer and fields, the path's id, the action's event type."""
        event = action_to_event(
            ACTIONS["fault"]["dispatch"], "F-1", {"customer_id": "C-1", "team": "一班"}, NOW, **WHO
        )
        assert (event.event_type, event.customer_id, event.entity_id) == ("fault.dispatched", "C-1", "F-1")
        assert (event.actor, event.source) == ("hotline-7", "hotline")
        assert event.payload == {"team": "一班"}

    def test_pending_defaults_to_waiting_for_the_customer(self):
        """pending without a status pauses for the customer."""
        event = action_to_event(ACTIONS["ticket"]["pending"], "T-1", {"customer_id": "C-1"}, NOW, **WHO)
        assert event.payload == {"status": "pending_customer"}

    def test_close_without_resolution_carries_why(self):
        """close takes closed_unresolved from the catalogue's reasons."""
        body = {"customer_id": "C-1", "closed_unresolved": "duplicate"}
        event = action_to_event(ACTIONS["fault"]["close"], "F-1", body, NOW, **WHO)
        assert event.payload == {"closed_unresolved": "duplicate"}
        assert refusal("fault", "close", {**body, "closed_unresolved": "bored"}) == (422, "closed_unresolved")

    @pytest.mark.parametrize(
        ("kind", "action", "body", "field"),
        [
            ("fault", "revisit", {"customer_id": "C-1", "satisfaction": 9}, "satisfaction"),
            ("fault", "revisit", {"customer_id": "C-1"}, "satisfaction"),
            ("fault", "dispatch", {"customer_id": "C-1", "team": "x", "colour": "red"}, "colour"),
            ("fault", "ack", {"note": "no customer"}, "customer_id"),
            ("fault", "resume", {"customer_id": "C-1", "status": "pending_customer"}, "status"),
            ("fault", "pending", {"customer_id": "C-1", "status": "in_progress"}, "status"),
            ("ticket", "priority", {"customer_id": "C-1", "priority": "P9"}, "priority"),
            ("fault", "ack", {"customer_id": "C-1", "item_id": "F-2"}, "item_id"),
            ("fault", "ack", {"customer_id": "C-1", "source": "hotline"}, "source"),
            ("fault", "ack", {"customer_id": "C-1", "actor": "someone-else"}, "actor"),
        ],
    )
    def test_a_bad_field_is_a_422_naming_it(self, kind, action, body, field):
        """Every refusal names the request's own field."""
        assert refusal(kind, action, body) == (422, field)


class TestFoldOutcome:
    def test_an_applied_step_gives_the_new_state(self):
        """Once folded, the outcome is the history's, with the item's state."""
        view = new_view("C-1")
        fold(view, fault("F-1", "reported", "09:00"))
        ack = fault("F-1", "acknowledged", "09:01")
        assert fold_outcome(view, "fault", "F-1", ack.event_id) is None  # not folded yet
        fold(view, ack)
        found = fold_outcome(view, "fault", "F-1", ack.event_id)
        assert (found["outcome"], found["state"], found["reason"]) == ("applied", "acknowledged", None)

    def test_a_forbidden_step_gives_the_lifecycles_reason(self):
        """A confirmation before restoration is rejected, and says why."""
        view = new_view("C-1")
        fold(view, fault("F-1", "reported", "09:00"))
        confirm = fault("F-1", "customer_confirmed", "09:01")
        fold(view, confirm)
        found = fold_outcome(view, "fault", "F-1", confirm.event_id)
        assert found["outcome"] == "rejected" and found["state"] == "reported"
        assert found["reason"] == "fault.customer_confirmed not allowed in state reported"


class TestCommandLine:
    def test_every_action_is_a_command(self):
        """keydesk KIND ACTION ID parses for each action of the table."""
        for kind, actions in ACTIONS.items():
            for name, action in actions.items():
                required = [
                    arg
                    for field_name, spec in action.fields().items()
                    if spec.required
                    for arg in (f"--{field_name.replace('_', '-')}", str(spec.enum[0]) if spec.enum else "3")
                ]
                args = parser().parse_args([kind, name, "X-1", "--customer", "C-1", *required])
                assert (args.item_kind, args.step, args.item_id) == (kind, name, "X-1")

    def test_fields_are_options_with_the_catalogues_choices(self):
        """--closed-unresolved offers the catalogue's reasons; --satisfaction is a number."""
        args = parser().parse_args(
            ["fault", "close", "F-1", "--customer", "C-1", "--closed-unresolved", "no_fault_found"]
        )
        assert args.closed_unresolved == "no_fault_found"
        with pytest.raises(SystemExit):
            parser().parse_args(["fault", "close", "F-1", "--customer", "C-1", "--closed-unresolved", "x"])
        assert (
            parser()
            .parse_args(["order", "revisit", "O-1", "--customer", "C", "--satisfaction", "4"])
            .satisfaction
            == 4
        )
