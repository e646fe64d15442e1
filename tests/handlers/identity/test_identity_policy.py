"""The policy: every role against every operation, customer scoping, tokens, the table against the routes."""

from __future__ import annotations

from pathlib import Path

import pytest
from yarl import URL

from handlers.identity.hop import HOP_HEADER, hop_headers, hop_signature, hop_target, hop_valid
from handlers.identity.operations import OPERATIONS, find_operation
from handlers.identity.roles import (
    ARCHIVE_WRITE,
    CUSTOMER_READ,
    ESCALATION_ACK,
    ITEM_WRITE,
    ROLES,
    SELF,
    CustomerFacts,
    Identity,
    SentStep,
    event_source,
    may,
    may_acknowledge,
    may_for_customer,
    may_publish,
)


def user(*roles: str, name: str = "u1", staff_id: str | None = None, region: str | None = None, **kw):
    return Identity(
        name=name,
        kind="user",
        credential="s-1",
        roles=frozenset(roles),
        staff_id=staff_id,
        region=region,
        **kw,
    )


def integration(*event_types: str, source: str = "network_alarm") -> Identity:
    return Identity(
        name="nms", kind="integration", credential="t-1", event_types=frozenset(event_types), source=source
    )


ITEM = "/api/customers/{customer_id}/items/{kind}/{item_id}"
SELF_OPS = {
    ("POST", "/api/logout"),
    ("GET", "/api/me"),
    ("POST", "/api/me/password"),
    ("GET", "/api/openapi.json"),
    ("GET", "/"),  # the web desk's first page, and signing out of it
    ("POST", "/logout"),
    ("GET", "/account/password"),  # changing one's own password on the desk
    ("POST", "/account/password"),
}
WRITES = {
    ("POST", "/api/faults"),
    ("POST", "/api/tickets"),
    ("POST", "/api/orders"),
    ("POST", "/api/events"),
    ("POST", "/api/faults/{item_id}/{action}"),
    ("POST", "/api/tickets/{item_id}/{action}"),
    ("POST", "/api/orders/{item_id}/{action}"),
}
READS = {
    ("GET", "/api/customers/{customer_id}/view"),
    ("GET", f"{ITEM}/sla"),
    ("GET", f"{ITEM}/events/{{event_id}}"),
    ("GET", "/api/customers/{customer_id}"),  # an archive record, scoped like the view
    ("GET", "/api/customers/{customer_id}/services"),  # its service register, scoped alike
}
ARCHIVE_WRITES = {
    ("POST", "/api/customers"),
    ("PATCH", "/api/customers/{customer_id}"),
    ("POST", "/api/customers/{customer_id}/services"),
    ("DELETE", "/api/customers/{customer_id}/services/{service_id}"),
}
# screens 2-4: the customer pages, scoped like the view and the steps; the console like the archive's search
PAGE_ITEM = "/customers/{customer_id}/items/{kind}/{item_id}"
CUSTOMER_PAGES = {
    ("GET", "/customers/{customer_id}"),
    ("GET", PAGE_ITEM),
    *(
        ("GET", f"/customers/{{customer_id}}/{collection}/new")
        for collection in ("faults", "tickets", "orders")
    ),
    *(("POST", f"/customers/{{customer_id}}/{collection}") for collection in ("faults", "tickets", "orders")),
    ("POST", f"{PAGE_ITEM}/steps/{{action}}"),
}
ACK_PAGE = ("POST", f"{PAGE_ITEM}/acknowledge")
CONSOLE = ("GET", "/console")
RULES_READS = {("GET", "/api/rules"), ("POST", "/api/rules/check")}
ADMIN = {
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("PATCH", "/api/users/{username}"),
    ("GET", "/api/tokens"),
    ("POST", "/api/tokens"),
    ("DELETE", "/api/tokens/{token_id}"),
    ("GET", "/api/audit"),
    ("GET", "/api/sink"),
    ("POST", "/api/events"),  # customer.* events: the archive
    ("GET", "/api/customers"),
    ("GET", "/api/customers/{customer_id}"),
    ("GET", "/api/customers/{customer_id}/services"),
    *ARCHIVE_WRITES,
    *RULES_READS,
    ("PUT", "/api/rules"),
}
# screens 5-6: the dispatch queue for every desk role (scoped per row), the inbox for those who acknowledge
LIVE_QUEUE = {("GET", "/queue"), ("GET", "/queue/rows"), ("GET", "/live")}
LIVE_INBOX = {("GET", "/inbox"), ("GET", "/inbox/table"), ("POST", "/inbox/acknowledge")}
#: the web desk's report and admin screens (screens 7-8)
REPORT_PAGES = {("GET", "/reports"), ("GET", "/reports/export")}
ADMIN_PAGES = {
    ("GET", "/admin/users"),
    ("POST", "/admin/users"),
    ("GET", "/admin/users/{username}"),
    ("POST", "/admin/users/{username}"),
    ("GET", "/admin/tokens"),
    ("POST", "/admin/tokens"),
    ("POST", "/admin/tokens/{token_id}/revoke"),
    ("GET", "/admin/customers"),
    ("GET", "/admin/customers/new"),
    ("POST", "/admin/customers"),
    ("GET", "/admin/customers/{customer_id}"),
    ("POST", "/admin/customers/{customer_id}"),
    ("GET", "/admin/audit"),
    ("POST", "/admin/rules/replace"),
}
#: the rules screen's view and check: whoever reads the rules (managers, admins); its replace is admin's
RULES_PAGES = {("GET", "/admin/rules"), ("POST", "/admin/rules/check")}
#: role -> the operations (beyond the open ones) it may call at all, before any customer is looked at
ALLOWED = {
    "hotline": SELF_OPS
    | WRITES
    | READS
    | CUSTOMER_PAGES
    | LIVE_QUEUE
    | {("GET", "/api/dispatch-queue"), ("GET", "/api/customers"), CONSOLE},
    "account_manager": SELF_OPS
    | WRITES
    | READS
    | CUSTOMER_PAGES
    | LIVE_QUEUE
    | LIVE_INBOX
    | {("POST", f"{ITEM}/acknowledge"), ACK_PAGE},
    "manager": SELF_OPS
    | WRITES
    | READS
    | CUSTOMER_PAGES
    | RULES_READS
    | RULES_PAGES
    | LIVE_QUEUE
    | LIVE_INBOX
    | REPORT_PAGES
    | {("POST", f"{ITEM}/acknowledge"), ("GET", "/api/reports/compliance"), ACK_PAGE},
    "report_reader": SELF_OPS | REPORT_PAGES | {("GET", "/api/reports/compliance"), ("GET", "/api/sink")},
    "admin": SELF_OPS | ADMIN | ADMIN_PAGES | RULES_PAGES | {CONSOLE},
}


class TestEveryRoleAgainstEveryOperation:
    @pytest.mark.parametrize("role", ROLES)
    @pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: f"{o.method} {o.path}")
    def test_the_role_may_call_exactly_its_operations(self, role, operation):
        allowed = operation.open or any(may(user(role), p) for p in operation.any_of)
        expected = operation.open or (operation.method, operation.path) in ALLOWED[role]
        assert allowed == expected

    def test_only_health_sign_in_and_the_pages_static_files_are_open(self):
        assert {(o.method, o.path) for o in OPERATIONS if o.open} == {
            ("GET", "/api/health"),
            ("POST", "/api/login"),
            ("GET", "/login"),
            ("POST", "/login"),
            ("GET", "/static"),
        }

    def test_an_unknown_operation_is_nobodys(self):
        assert find_operation("GET", "/api/secret") is None
        assert find_operation("DELETE", "/api/customers/{customer_id}/view") is None
        assert find_operation("HEAD", "/api/health") is not None  # HEAD is GET's

    def test_admin_does_no_ticket_work_unless_also_given_a_desk_role(self):
        assert not may(user("admin"), ITEM_WRITE)
        assert not may(user("admin"), CUSTOMER_READ)
        assert may(user("admin", "hotline"), ITEM_WRITE)

    def test_a_one_time_password_allows_only_changing_it(self):
        first = user("admin", must_change_password=True)
        assert may(first, SELF)
        assert not may(first, "users.admin")


AM_A, AM_B = "AM-101", "AM-102"
CUST_A = CustomerFacts("C-A", account_manager_id=AM_A, region="广东省/广州市", chain_ids=frozenset({"DH-1"}))
CUST_B = CustomerFacts("C-B", account_manager_id=AM_B, region="广东省/深圳市", chain_ids=frozenset({"DH-2"}))


class TestCustomerScope:
    @pytest.mark.parametrize("permission", [CUSTOMER_READ, ITEM_WRITE, ESCALATION_ACK])
    def test_account_manager_a_reads_and_acts_on_a_customer_and_not_on_b(self, permission):
        a = user("account_manager", name="li.min", staff_id=AM_A)
        assert may_for_customer(a, permission, CUST_A)
        refused = may_for_customer(a, permission, CUST_B)
        assert not refused and "C-B" in refused.reason

    def test_the_staff_id_defaults_to_the_username(self):
        assert may_for_customer(user("account_manager", name=AM_A), CUSTOMER_READ, CUST_A)

    def test_a_chain_step_naming_the_user_counts(self):
        head = user("account_manager", name="wang", staff_id="DH-2")
        assert may_for_customer(head, ESCALATION_ACK, CUST_B)
        assert not may_for_customer(head, ESCALATION_ACK, CUST_A)

    def test_a_manager_has_their_region_and_their_chain(self):
        manager = user("manager", name="m", staff_id="DH-1", region="广东省/深圳市")
        assert may_for_customer(manager, CUSTOMER_READ, CUST_B)  # region
        assert may_for_customer(manager, CUSTOMER_READ, CUST_A)  # chain
        elsewhere = user("manager", name="m2", region="湖南省/长沙市")
        assert not may_for_customer(elsewhere, CUSTOMER_READ, CUST_A)
        assert may_for_customer(user("manager", region="*"), ESCALATION_ACK, None)

    def test_the_hotline_serves_every_customer_even_one_not_projected_yet(self):
        assert may_for_customer(user("hotline"), ITEM_WRITE, CUST_B)
        assert may_for_customer(user("hotline"), CUSTOMER_READ, None)
        assert not may_for_customer(user("hotline"), ESCALATION_ACK, CUST_B)  # managers acknowledge

    def test_a_customer_not_in_the_database_is_no_account_managers(self):
        assert not may_for_customer(user("account_manager", staff_id=AM_A), CUSTOMER_READ, None)

    def test_a_second_role_does_not_lend_its_scope_to_another_permission(self):
        """A report reader who is also B's account manager still cannot read A."""
        both = user("report_reader", "account_manager", staff_id=AM_B)
        assert not may_for_customer(both, CUSTOMER_READ, CUST_A)
        assert may_for_customer(both, CUSTOMER_READ, CUST_B)


def sent(step: int, role: str, *staff: str, metric: str = "response", cycle: int = 1) -> SentStep:
    return SentStep(metric, cycle, step, role, frozenset(staff))


class TestAcknowledgingAnEscalation:
    """Who may acknowledge a clock's escalation, once scope is granted: whom its sent steps went to."""

    AM_1 = user("account_manager", name="li.min", staff_id="AM-1")

    def test_an_account_manager_acknowledges_a_step_addressed_to_them(self):
        decision = may_acknowledge(self.AM_1, "response", 1, [sent(1, "account_manager", "AM-1", "AM-2")])
        assert decision and "step 1" in decision.reason

    def test_a_step_addressed_to_a_colleague_is_not_theirs(self):
        decision = may_acknowledge(self.AM_1, "response", 1, [sent(1, "account_manager", "AM-2")])
        assert not decision
        assert "AM-1" in decision.reason and "step 1 to the account_manager" in decision.reason
        assert "AM-2" not in decision.reason  # who else was alerted is not the refusal's to tell

    def test_nothing_sent_yet_is_nothing_to_acknowledge(self):
        decision = may_acknowledge(self.AM_1, "response", 1, [])
        assert not decision and "no escalation of response cycle 1 has been sent" in decision.reason

    def test_only_a_step_of_that_clock_and_cycle_counts(self):
        elsewhere = [
            sent(1, "account_manager", "AM-1", metric="restore"),
            sent(1, "account_manager", "AM-1", cycle=2),
        ]
        assert not may_acknowledge(self.AM_1, "response", 1, elsewhere)
        assert may_acknowledge(self.AM_1, "response", 2, elsewhere)
        assert may_acknowledge(self.AM_1, "restore", 1, elsewhere)

    def test_any_sent_step_of_the_cycle_addressed_to_them_counts_not_only_the_last(self):
        steps = [sent(1, "account_manager", "AM-1"), sent(2, "department_head", "DH-1")]
        assert may_acknowledge(self.AM_1, "response", 1, steps)
        assert may_acknowledge(user("account_manager", staff_id="DH-1"), "response", 1, steps)

    def test_the_staff_id_defaults_to_the_username(self):
        assert may_acknowledge(user("account_manager", name="AM-1"), "response", 1, [sent(1, "x", "AM-1")])

    def test_an_owner_that_cannot_say_refuses_an_account_manager(self):
        decision = may_acknowledge(self.AM_1, "response", 1, None)
        assert not decision and "retry" in decision.reason

    def test_a_manager_acknowledges_within_their_scope_whatever_was_sent(self):
        manager = user("manager", staff_id="BL-1", region="广东省/广州市")
        assert may_acknowledge(manager, "response", 1, [])
        assert may_acknowledge(manager, "response", 1, [sent(1, "account_manager", "AM-2")])
        assert may_acknowledge(manager, "response", 1, None)
        assert may_acknowledge(user("manager", "account_manager", staff_id="AM-1"), "response", 1, [])

    def test_roles_without_the_permission_are_refused(self):
        for who in (user("hotline"), user("report_reader"), user("admin"), integration("fault.reported")):
            assert not may_acknowledge(who, "response", 1, [sent(1, "account_manager", who.staff)])


class TestIntegrationTokens:
    def test_it_publishes_only_its_event_types(self):
        nms = integration("fault.reported", "fault.restored")
        assert may_publish(nms, "fault.reported")
        assert not may_publish(nms, "ticket.opened")
        assert not may_publish(nms, "customer.registered")

    def test_it_reads_nothing_and_administers_nothing(self):
        nms = integration("fault.reported")
        for permission in (CUSTOMER_READ, ESCALATION_ACK, "queue.read", "report.read", "users.admin", SELF):
            assert not may(nms, permission)
        assert may(nms, ITEM_WRITE) and may(nms, ARCHIVE_WRITE)  # route level: then its event types

    def test_its_events_carry_its_source_and_a_users_their_roles(self):
        assert event_source(integration("fault.reported"), ITEM_WRITE) == "network_alarm"
        assert event_source(user("hotline"), ITEM_WRITE) == "hotline"
        assert event_source(user("account_manager"), ITEM_WRITE) == "account_manager"
        assert event_source(user("hotline", "manager"), ESCALATION_ACK) == "account_manager"
        assert event_source(user("admin"), ARCHIVE_WRITE) == "web"

    def test_users_publish_customer_events_only_as_admins(self):
        assert not may_publish(user("hotline"), "customer.registered")
        assert may_publish(user("admin"), "customer.updated")
        assert may_publish(user("hotline"), "fault.reported")


class TestHop:
    KEY = b"k" * 32

    def test_a_signed_hop_holds_for_its_path_within_the_window(self):
        here = "127.0.0.1:6066"
        signature = hop_signature(self.KEY, here, "GET", "/api/customers/C-1/view?x=1", now=1000)
        assert hop_valid(self.KEY, here, "GET", "/api/customers/C-1/view?x=1", signature, now=1010)
        assert not hop_valid(self.KEY, here, "GET", "/api/customers/C-2/view?x=1", signature, now=1010)
        assert not hop_valid(self.KEY, here, "GET", "/api/customers/C-1/view?x=1", signature, now=1031)
        assert not hop_valid(b"j" * 32, here, "GET", "/api/customers/C-1/view?x=1", signature, now=1010)
        assert not hop_valid(self.KEY, here, "GET", "/api/customers/C-1/view?x=1", "1", now=1000)
        assert not hop_valid(self.KEY, here, "GET", "/api/customers/C-1/view?x=1", "", now=1000)

    def test_a_hop_signed_for_one_worker_is_refused_by_another_and_for_another_method(self):
        """A captured hop cannot be replayed against another worker of the desk."""
        signature = hop_signature(self.KEY, "127.0.0.1:6066", "GET", "/api/dispatch-queue?local=1", now=1000)
        assert not hop_valid(
            self.KEY, "127.0.0.1:6067", "GET", "/api/dispatch-queue?local=1", signature, now=1001
        )
        assert not hop_valid(
            self.KEY, "127.0.0.1:6066", "POST", "/api/dispatch-queue?local=1", signature, now=1001
        )
        target = URL("http://127.0.0.1:6066/api/customers/C-1/view?x=1")
        sent = hop_headers(self.KEY, target)[HOP_HEADER]
        assert hop_target(target) == "127.0.0.1:6066"
        assert hop_valid(self.KEY, "127.0.0.1:6066", "GET", target.raw_path_qs, sent)
        assert not hop_valid(self.KEY, "localhost:6066", "GET", target.raw_path_qs, sent)


def test_the_table_names_exactly_the_workers_routes(tmp_path: Path):
    """Deny by default has one place: every route of a worker has its row, every row its route."""
    from handlers.composition import build_worker_streams
    from streams.settings import Settings

    settings = Settings.from_env({}, data_dir=tmp_path, kafka="127.0.0.1:1")
    app = build_worker_streams(settings).app
    routes = {
        (r.method, r.resource.canonical)
        for r in app.web.web_app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert routes == {(o.method, o.path) for o in OPERATIONS}
