"""The one table of every HTTP operation and the permission it needs: deny by default.

Each row is a method and an aiohttp route pattern, exactly as the route is
registered.  The middleware (``handlers/identity/guard.py``) finds the row of
the route a request matched; a route with no row is refused to everyone (403),
so a new route is closed until someone writes its line here.  Only the rows
marked :data:`OPEN` need no credential: health and sign-in.

``customer`` says where the operation's customer is: ``"path"`` (the
``customer_id`` path parameter: the middleware checks it before the handler), or
``"body"`` (the handler reads the body and calls ``authorize`` with it; the
middleware refuses to let a 2xx out of a handler that did not).  ``any_of``
lists the permissions of which the caller needs one before the handler runs; a
handler that publishes checks the one its event type needs
(``roles.permission_to_publish``).  ``hop``: a read a worker may forward to the
customer's owner, signed with the desk's secret (``handlers/identity/hop.py``).

Pure data.  ``tests/handlers/identity/test_identity_policy.py`` checks that the worker's
routes and this table name the same operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from handlers.identity.roles import (
    ARCHIVE_READ,
    ARCHIVE_WRITE,
    AUDIT_READ,
    CUSTOMER_READ,
    ESCALATION_ACK,
    ITEM_WRITE,
    QUEUE_READ,
    REPORT_READ,
    RULES_READ,
    RULES_WRITE,
    SELF,
    SINK_READ,
    TOKENS_ADMIN,
    USERS_ADMIN,
)

#: the permission of an operation anyone may call
OPEN = "open"
#: a permission no role holds: the operation is only for a worker's signed hop
HOP_ONLY = "hop.only"


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    any_of: tuple[str, ...]
    customer: Literal["path", "body"] | None = None
    hop: bool = False
    #: a page of the web desk: without a sign-in it redirects to the sign-in page instead of a 401,
    #: and its forms may send the CSRF token as the field ``csrf_token`` (no script sets a header)
    page: bool = False

    @property
    def open(self) -> bool:
        return self.any_of == (OPEN,)


def _op(
    method: str,
    path: str,
    *any_of: str,
    customer: Literal["path", "body"] | None = None,
    hop: bool = False,
    page: bool = False,
) -> Operation:
    return Operation(method, path, any_of, customer, hop, page)


_ITEM = "/api/customers/{customer_id}/items/{kind}/{item_id}"

OPERATIONS: tuple[Operation, ...] = (
    _op("GET", "/api/health", OPEN),
    # the web desk's pages (handlers/web/pages.py) and its static files
    _op("GET", "/static", OPEN),
    _op("GET", "/login", OPEN),
    _op("POST", "/login", OPEN),
    _op("GET", "/", SELF, page=True),
    _op("POST", "/logout", SELF, page=True),
    # the signed-in user's own password (handlers/web/account_page.py): the API's /api/me/password
    _op("GET", "/account/password", SELF, page=True),
    _op("POST", "/account/password", SELF, page=True),
    # screens 2-4 (handlers/web/customer_screens.py): the hotline console, the customer and item pages
    _op("GET", "/console", ARCHIVE_READ, page=True),
    _op("GET", "/customers/{customer_id}", CUSTOMER_READ, customer="path", page=True),
    # the forms for a new item (handlers/web/new_item_pages.py): the API's POST /api/faults etc.
    _op("GET", "/customers/{customer_id}/faults/new", ITEM_WRITE, customer="path", page=True),
    _op("POST", "/customers/{customer_id}/faults", ITEM_WRITE, customer="path", page=True),
    _op("GET", "/customers/{customer_id}/tickets/new", ITEM_WRITE, customer="path", page=True),
    _op("POST", "/customers/{customer_id}/tickets", ITEM_WRITE, customer="path", page=True),
    _op("GET", "/customers/{customer_id}/orders/new", ITEM_WRITE, customer="path", page=True),
    _op("POST", "/customers/{customer_id}/orders", ITEM_WRITE, customer="path", page=True),
    _op("GET", "/customers/{customer_id}/items/{kind}/{item_id}", CUSTOMER_READ, customer="path", page=True),
    _op(
        "POST",
        "/customers/{customer_id}/items/{kind}/{item_id}/steps/{action}",
        ITEM_WRITE,
        customer="path",
        page=True,
    ),
    _op(
        "POST",
        "/customers/{customer_id}/items/{kind}/{item_id}/acknowledge",
        ESCALATION_ACK,
        customer="path",
        page=True,
    ),
    # screens 5-6 (handlers/web/dispatch_page.py, inbox_page.py, live_stream.py): each row of the
    # queue and the inbox is scoped by the customer's facts; /queue/local is a signed hop only
    _op("GET", "/queue", CUSTOMER_READ, page=True),
    _op("GET", "/queue/rows", CUSTOMER_READ, page=True),
    _op("GET", "/queue/local", HOP_ONLY, hop=True),
    _op("GET", "/inbox", ESCALATION_ACK, page=True),
    _op("GET", "/inbox/table", ESCALATION_ACK, page=True),
    _op("POST", "/inbox/acknowledge", ESCALATION_ACK, customer="body", page=True),
    _op("GET", "/live", CUSTOMER_READ, ESCALATION_ACK, page=True),
    _op("GET", "/api/openapi.json", SELF),
    _op("POST", "/api/login", OPEN),
    _op("POST", "/api/logout", SELF),
    _op("GET", "/api/me", SELF),
    _op("POST", "/api/me/password", SELF),
    # writes of the closed loops: the customer is in the body
    _op("POST", "/api/faults", ITEM_WRITE, customer="body"),
    _op("POST", "/api/tickets", ITEM_WRITE, customer="body"),
    _op("POST", "/api/orders", ITEM_WRITE, customer="body"),
    _op("POST", "/api/events", ITEM_WRITE, ARCHIVE_WRITE, customer="body"),
    _op("POST", "/api/faults/{item_id}/{action}", ITEM_WRITE, ESCALATION_ACK, customer="body"),
    _op("POST", "/api/tickets/{item_id}/{action}", ITEM_WRITE, ESCALATION_ACK, customer="body"),
    _op("POST", "/api/orders/{item_id}/{action}", ITEM_WRITE, ESCALATION_ACK, customer="body"),
    # one customer's reads, routed to its owner
    _op("GET", "/api/customers/{customer_id}/view", CUSTOMER_READ, customer="path", hop=True),
    _op("GET", f"{_ITEM}/sla", CUSTOMER_READ, customer="path", hop=True),
    _op("GET", f"{_ITEM}/events/{{event_id}}", CUSTOMER_READ, customer="path", hop=True),
    _op("POST", f"{_ITEM}/acknowledge", ESCALATION_ACK, customer="path"),
    # the customer archive (客户档案): admins change it, a record is read like the view
    _op("POST", "/api/customers", ARCHIVE_WRITE, customer="body"),
    _op("GET", "/api/customers", ARCHIVE_READ),
    _op("GET", "/api/customers/{customer_id}", CUSTOMER_READ, ARCHIVE_READ, customer="path", hop=True),
    _op("PATCH", "/api/customers/{customer_id}", ARCHIVE_WRITE, customer="body"),
    # its service register: changed by admins like the record, read like it (from the database)
    _op("POST", "/api/customers/{customer_id}/services", ARCHIVE_WRITE, customer="body"),
    _op("DELETE", "/api/customers/{customer_id}/services/{service_id}", ARCHIVE_WRITE, customer="body"),
    _op("GET", "/api/customers/{customer_id}/services", CUSTOMER_READ, ARCHIVE_READ, customer="path"),
    # across customers
    _op("GET", "/api/dispatch-queue", QUEUE_READ, hop=True),
    _op("GET", "/api/reports/compliance", REPORT_READ),
    _op("GET", "/api/sink", SINK_READ),
    # administration
    _op("GET", "/api/users", USERS_ADMIN),
    _op("POST", "/api/users", USERS_ADMIN),
    _op("PATCH", "/api/users/{username}", USERS_ADMIN),
    _op("GET", "/api/tokens", TOKENS_ADMIN),
    _op("POST", "/api/tokens", TOKENS_ADMIN),
    _op("DELETE", "/api/tokens/{token_id}", TOKENS_ADMIN),
    _op("GET", "/api/audit", AUDIT_READ),
    # the SLA rules: managers read the policies their clocks run under; admins replace them
    _op("GET", "/api/rules", RULES_READ),
    _op("POST", "/api/rules/check", RULES_READ),
    _op("PUT", "/api/rules", RULES_WRITE),
    # screens 7-8 of the web desk: reports (handlers/web/reports_page.py) and admin
    # (handlers/web/admin_pages.py), each over the same functions as its API route
    _op("GET", "/reports", REPORT_READ, page=True),
    _op("GET", "/reports/export", REPORT_READ, page=True),
    _op("GET", "/admin/users", USERS_ADMIN, page=True),
    _op("POST", "/admin/users", USERS_ADMIN, page=True),
    _op("GET", "/admin/users/{username}", USERS_ADMIN, page=True),
    _op("POST", "/admin/users/{username}", USERS_ADMIN, page=True),
    _op("GET", "/admin/tokens", TOKENS_ADMIN, page=True),
    _op("POST", "/admin/tokens", TOKENS_ADMIN, page=True),
    _op("POST", "/admin/tokens/{token_id}/revoke", TOKENS_ADMIN, page=True),
    _op("GET", "/admin/customers", ARCHIVE_WRITE, page=True),
    _op("GET", "/admin/customers/new", ARCHIVE_WRITE, page=True),
    _op("POST", "/admin/customers", ARCHIVE_WRITE, customer="body", page=True),
    _op("GET", "/admin/customers/{customer_id}", ARCHIVE_WRITE, page=True),
    _op("POST", "/admin/customers/{customer_id}", ARCHIVE_WRITE, customer="body", page=True),
    _op("GET", "/admin/audit", AUDIT_READ, page=True),
    # the rules screen (handlers/web/rules_page.py): read and check like the API, replace only with write
    _op("GET", "/admin/rules", RULES_READ, page=True),
    _op("POST", "/admin/rules/check", RULES_READ, page=True),
    _op("POST", "/admin/rules/replace", RULES_WRITE, page=True),
)

#: (method, path) -> operation; ``HEAD`` is looked up as ``GET``
TABLE: Mapping[tuple[str, str], Operation] = {(op.method, op.path): op for op in OPERATIONS}


def find_operation(method: str, path: str) -> Operation | None:
    """The operation of a matched route, or ``None``: no such operation, refused to all."""
    return TABLE.get(("GET" if method == "HEAD" else method, path))
