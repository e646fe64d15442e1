"""What the screenshot script puts in through the API before its shots (docs/screenshot_items.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from docs.screenshot_items import STAGED, Staged, already_open, stage
from streams.item_sla import step_event_id

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def view_with(**open_items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"customer_id": "C-1", "open": open_items, "recent_closed": []}


class FakeDesk:
    """The API as the staging sees it: each call recorded, views as given, ids as a desk makes them."""

    def __init__(self, views: dict[str, dict[str, Any]]) -> None:
        self.views = views
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []

    def __call__(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        self.calls.append((method, path, body))
        if method == "GET":
            return self.views[path.split("/")[3]]
        if path.count("/") == 2:  # POST /api/faults: a new item
            kind = path.rsplit("/", 1)[1].removesuffix("s")
            return {
                f"{kind}_id": f"{kind[0].upper()}-NEW{len(self.calls)}",
                "event_id": f"e-{len(self.calls)}",
            }
        return {"outcome": "applied"}

    def posts(self) -> list[tuple[str, dict[str, Any] | None]]:
        return [(path, body) for method, path, body in self.calls if method == "POST"]


LATE = Staged(
    "fault",
    "fault",
    "C-1",
    {"severity": "critical", "summary": "down", "service": "MPLS VPN"},
    ("summary", "down"),
    ago=timedelta(minutes=45),
    awaited=(("response", 1, "step:2"),),
)
PAUSED = Staged(
    "ticket",
    "ticket",
    "C-1",
    {"kind": "complaint", "priority": "P2", "subject": "bill"},
    ("subject", "bill"),
    then=(("pending", {"status": "pending_customer"}),),
)


class TestAlreadyOpen:
    def test_an_open_item_with_the_mark_is_found(self) -> None:
        """The staged item of an earlier run is told by its attribute among the customer's open items."""
        view = view_with(
            fault={
                "F-1": {"attributes": {"summary": "other"}},
                "F-2": {"attributes": {"summary": "down"}},
            }
        )
        assert already_open(view, "fault", ("summary", "down")) == "F-2"

    def test_another_kind_or_value_is_not_it(self) -> None:
        """A ticket with the same text, or a fault with another, is not the staged fault."""
        view = view_with(
            fault={"F-1": {"attributes": {"summary": "other"}}}, ticket={"T-1": {"attributes": {}}}
        )
        assert already_open(view, "fault", ("summary", "down")) is None
        assert already_open(view, "order", ("product", "x")) is None


class TestStage:
    def test_a_new_item_is_logged_late_and_waited_for_with_its_steps(self) -> None:
        """Logged with occurred_at ``ago`` ago; its event and its ladder step waited for in the view."""
        desk = FakeDesk({"C-1": view_with()})
        ids = stage(desk, NOW, (LATE,))
        assert ids == {"fault": "F-NEW2"}
        [(path, body)] = desk.posts()
        assert path == "/api/faults"
        assert body == {**LATE.body, "customer_id": "C-1", "occurred_at": "2026-12-02T01:15:00.000000+00:00"}
        waits = [path for method, path, _ in desk.calls if method == "GET" and "wait_for" in path]
        step = step_event_id("C-1", "fault", "F-NEW2", "response", 1, "step:2")
        assert waits == [
            "/api/customers/C-1/view?wait_for=e-2&timeout=10",
            f"/api/customers/C-1/view?wait_for={step}&timeout=10",
        ]

    def test_the_steps_after_it_are_taken_on_the_new_item(self) -> None:
        """A paused complaint: opened, then its pending step on the id the desk gave it."""
        desk = FakeDesk({"C-1": view_with()})
        ids = stage(desk, NOW, (PAUSED,))
        assert [path for path, _ in desk.posts()] == [
            "/api/tickets",
            f"/api/tickets/{ids['ticket']}/pending?wait=10",
        ]
        assert desk.posts()[1][1] == {"status": "pending_customer", "customer_id": "C-1"}

    def test_a_second_run_adds_nothing(self) -> None:
        """Against a desk that has them open, nothing is posted and their ids are the open ones."""
        desk = FakeDesk(
            {
                "C-1": view_with(
                    fault={"F-OLD": {"attributes": {"summary": "down"}}},
                    ticket={"T-OLD": {"attributes": {"subject": "bill"}}},
                )
            }
        )
        assert stage(desk, NOW, (LATE, PAUSED)) == {"fault": "F-OLD", "ticket": "T-OLD"}
        assert desk.posts() == []

    def test_the_shipped_items_name_every_id_the_screens_use(self) -> None:
        """Each ``{name}`` in a screen's path or selector is a staged item's name."""
        from string import Formatter

        from docs.screenshots import SCREENS

        named = {
            name
            for screen in SCREENS
            for text in (screen.path, screen.ready or "")
            for _, name, _, _ in Formatter().parse(text)
            if name
        }
        assert named <= {item.name for item in STAGED}
        assert named, "the screens name no staged item: the inbox and the item page would be empty"
