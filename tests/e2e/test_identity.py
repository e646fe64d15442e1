"""Sign-in, roles, tokens and the audit, against three real workers sharing one database.

Issue 11's tests for points 4-6: without credentials 401, a role that may not
403, one that may the documented answer; account manager A cannot read or act
on B's customer; an event's actor is the signed-in user; a step through a
non-owner works; a revoked token or ended session is refused at once by every
worker; a cookie write without the CSRF token is refused; sign-ins are rate
limited across workers; the audit holds each of these.
"""

from __future__ import annotations

import stat
import time
import uuid

import orjson
import pytest
from yarl import URL

from handlers.identity.hop import HOP_HEADER, ROUTED_HEADER, hop_headers
from handlers.identity.operations import OPERATIONS
from streams.partitioning import murmur2_partition
from streams.settings import Settings
from tests.e2e.conftest import PARTITIONS, PASSWORD, TEST_TOKEN, add_user, http, new_desk, poll
from tests.e2e.conftest import keydesk as run_keydesk
from tests.e2e.test_acknowledge_any_worker import wait_until_every_partition_is_owned

pytestmark = pytest.mark.broker

FAULT = {"severity": "critical", "summary": "专线中断", "service": "MPLS VPN"}
PATH_VALUES = {
    "customer_id": "C-ID-A",
    "kind": "fault",
    "item_id": "F-1",
    "event_id": str(uuid.uuid4()),
    "action": "ack",
    "username": "nobody",
    "token_id": "t-000000000000",
    "service_id": "S-1",
}


@pytest.fixture(scope="module")
def desk(kafka_bootstrap, tmp_path_factory):
    """Three workers, one data directory: one SQLite database, one desk secret."""
    d = new_desk(kafka_bootstrap, tmp_path_factory.mktemp("identity"))
    for _ in range(3):
        d.start_worker()
    try:
        wait_until_every_partition_is_owned(d)
        yield d
    finally:
        d.stop()


def register(desk, customer_id: str, account_manager: str, region: str) -> None:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "customer.registered",
        "schema_version": 1,
        "customer_id": customer_id,
        "entity_id": customer_id,
        "occurred_at": "2026-11-23T09:00:00+08:00",
        "recorded_at": "2026-11-23T09:00:00+08:00",
        "source": "account_manager",
        "actor": "whoever",
        "payload": {
            "name": f"客户 {customer_id}",
            "tier": "diamond",
            "industry": "9221",
            "region": region,
            "account_manager": {"id": account_manager, "name": "经理", "email": "am@example.cn"},
            "escalation_chain": [{"role": "account_manager", "name": "经理", "email": "am@example.cn"}],
        },
    }
    status, answer = http("POST", f"{desk.workers[0].url}/api/events", event)  # the suite's admin
    assert status == 202, answer


def audit(desk, **query) -> list[dict]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    status, answer = http("GET", f"{desk.workers[2].url}/api/audit?limit=500&{params}")
    assert status == 200, answer
    return answer["records"]


def sample_path(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    return path


class TestDenyByDefault:
    @pytest.mark.parametrize(
        # a page asked for without a sign-in redirects to it instead (tests/e2e/test_web_desk.py)
        "operation",
        [o for o in OPERATIONS if not o.open and not (o.page and o.method == "GET")],
        ids=lambda o: f"{o.method} {o.path}",
    )
    def test_every_operation_but_health_and_sign_in_wants_a_credential(self, desk, operation):
        body = {} if operation.method in ("POST", "PATCH") else None
        status, answer = http(
            operation.method, desk.workers[0].url + sample_path(operation.path), body, token=None
        )
        if operation.page:  # a form posted without a sign-in: the refusal is a page saying so
            assert status == 401, answer
        else:
            assert (status, answer["field"]) == (401, "Authorization"), answer

    def test_health_answers_anyone(self, desk):
        status, _ = http("GET", f"{desk.workers[0].url}/api/health", token=None)
        assert status == 200

    def test_an_unknown_or_forged_credential_is_401(self, desk):
        url = f"{desk.workers[0].url}/api/dispatch-queue"
        for token in ("kdt_forged", "kds_forged", "not-ours"):
            assert http("GET", url, token=token)[0] == 401

    def test_a_forwarded_read_without_the_desks_signature_is_refused(self, desk):
        url = f"{desk.workers[0].url}/api/customers/C-ID-A/view"
        status, answer = http("GET", url, token=None, headers={ROUTED_HEADER: "1"})
        assert status == 401
        forged = {ROUTED_HEADER: "1", HOP_HEADER: f"{int(time.time())}.{'0' * 64}"}
        status, answer = http("GET", url, token=None, headers=forged)
        assert (status, answer["field"]) == (401, HOP_HEADER)


class TestRoles:
    def test_a_role_that_may_not_is_403_and_audited_one_that_may_gets_its_answer(self, desk):
        reader = add_user(desk, "reader-1", ["report_reader"])
        url = desk.workers[1].url
        status, answer = http("POST", f"{url}/api/faults", {"customer_id": "C-ID-A", **FAULT}, token=reader)
        assert status == 403, answer
        status, _ = http("GET", f"{url}/api/reports/compliance?from=2026-11-01&to=2026-11-02", token=reader)
        assert status == 200
        assert http("GET", f"{url}/api/users", token=reader)[0] == 403
        denied = audit(desk, kind="denied", actor="reader-1")
        assert any("POST /api/faults" in (r["detail"] or "") for r in denied), denied
        assert all(r["credential"].startswith("s-") and r["address"] for r in denied)

    def test_admin_does_no_ticket_work(self, desk):
        admin = add_user(desk, "admin-only", ["admin"])
        status, answer = http(
            "POST", f"{desk.workers[0].url}/api/faults", {"customer_id": "C-ID-A", **FAULT}, token=admin
        )
        assert status == 403, answer
        assert http("GET", f"{desk.workers[0].url}/api/users", token=admin)[0] == 200

    def test_the_events_actor_and_source_are_the_signed_in_users(self, desk):
        hotline = add_user(desk, "hotline-7", ["hotline"])
        worker = desk.workers[2]
        status, answer = http(
            "POST", f"{worker.url}/api/faults", {"customer_id": "C-ACTOR", **FAULT}, token=hotline
        )
        assert status == 202, answer
        status, answer_body = http(
            "POST",
            f"{worker.url}/api/faults",
            {"customer_id": "C-ACTOR", "actor": "boss", **FAULT},
            token=hotline,
        )
        assert (status, answer_body["field"]) == (422, "actor")
        status, view = http(
            "GET",
            f"{worker.url}/api/customers/C-ACTOR/view?wait_for={answer['event_id']}&timeout=10",
            token=hotline,
        )
        assert status == 200, view
        record = view["open"]["fault"][answer["fault_id"]]["history"][0]
        assert (record["actor"], record["source"]) == ("hotline-7", "hotline")

    def test_account_manager_a_cannot_read_nor_act_on_bs_customer(self, desk):
        register(desk, "C-ID-A", "AM-A", "广东省/广州市")
        register(desk, "C-ID-B", "AM-B", "广东省/深圳市")
        am_a = add_user(desk, "am-a", ["account_manager"], staff_id="AM-A")
        url = desk.workers[0].url
        # visible once the sink has projected the customer into the customers table
        poll(
            lambda: http("GET", f"{url}/api/customers/C-ID-A/view", token=am_a)[0] == 200,
            "A's customer visible to A",
        )
        status, answer = http("GET", f"{url}/api/customers/C-ID-B/view", token=am_a)
        assert (status, answer["field"]) == (403, "customer_id"), answer
        status, answer = http("POST", f"{url}/api/faults", {"customer_id": "C-ID-B", **FAULT}, token=am_a)
        assert (status, answer["field"]) == (403, "customer_id"), answer
        status, answer = http("POST", f"{url}/api/faults", {"customer_id": "C-ID-A", **FAULT}, token=am_a)
        assert status == 202, answer
        fault_b = http("POST", f"{url}/api/faults", {"customer_id": "C-ID-B", **FAULT})[1]["fault_id"]
        status, answer = http(
            "POST", f"{url}/api/faults/{fault_b}/ack?wait=5", {"customer_id": "C-ID-B"}, token=am_a
        )
        assert status == 403, answer
        assert any(r["target"] == "C-ID-B" for r in audit(desk, kind="denied", actor="am-a"))

    def test_a_step_through_each_worker_owner_or_not_is_taken_as_the_signed_in_user(self, desk):
        hotline = add_user(desk, "hotline-8", ["hotline"])
        customer = "C-STEPS"
        url = desk.workers[0].url
        status, answer = http("POST", f"{url}/api/faults", {"customer_id": customer, **FAULT}, token=hotline)
        assert status == 202
        fault_id = answer["fault_id"]
        owner = next(
            w
            for w in desk.workers
            if murmur2_partition(customer.encode(), PARTITIONS) in (w.partitions() or ())
        )
        steps = [("ack", {}), ("dispatch", {"team": "一班"}), ("repair", {})]
        others = [w for w in desk.workers if w is not owner]
        for worker, (action, fields) in zip([*others, owner], steps):
            status, answer = http(
                "POST",
                f"{worker.url}/api/faults/{fault_id}/{action}?wait=10",
                {"customer_id": customer, **fields},
                token=hotline,
            )
            assert (status, answer["outcome"]) == (200, "applied"), (worker is owner, answer)
        view = http("GET", f"{url}/api/customers/{customer}/view", token=hotline)[1]
        history = view["open"]["fault"][fault_id]["history"]
        assert {r["actor"] for r in history} == {"hotline-8"}


class TestCustomerArchive:
    def test_archive_changes_are_the_admins_and_audited_a_record_is_read_in_scope(self, desk):
        am = add_user(desk, "am-arch", ["account_manager"], staff_id="AM-ARCH")
        other = add_user(desk, "am-other", ["account_manager"], staff_id="AM-OTHER")
        url = desk.workers[1].url
        body = {
            "customer_id": "C-ARCH",
            "name": "档案客户",
            "tier": "gold",
            "region": "广东/佛山",
            "account_manager": {"id": "AM-ARCH", "name": "李敏"},
            "escalation_chain": [{"role": "department_head", "id": "DH-ARCH", "name": "王强"}],
        }
        status, answer = http("POST", f"{url}/api/customers", body, token=am)
        assert (status, answer["field"]) == (403, None), answer  # not the account manager's to change
        status, answer = http("POST", f"{url}/api/customers?wait=10", body)  # the suite's admin
        assert status == 200, answer
        status, answer = http("PATCH", f"{url}/api/customers/C-ARCH?wait=10", {"tier": "diamond"})
        assert status == 200, answer
        rows = {r["kind"]: r for r in audit(desk, target="C-ARCH")}
        assert rows["customer.registered"]["after"]["tier"] == "gold"
        updated = rows["customer.updated"]
        assert (updated["before"]["tier"], updated["after"]["tier"]) == ("gold", "diamond")
        assert updated["actor"] == "e2e-suite" and updated["credential"].startswith("t-")
        # its account manager reads it once the sink has projected it; another does not
        poll(lambda: http("GET", f"{url}/api/customers/C-ARCH", token=am)[0] == 200, "the record for its AM")
        assert http("GET", f"{url}/api/customers/C-ARCH", token=other)[0] == 403
        assert http("GET", f"{url}/api/customers?q=C-ARCH", token=am)[0] == 403  # the list is the hotline's
        assert http("GET", f"{url}/api/customers?q=C-ARCH")[0] == 200


class TestIntegrationTokens:
    def test_a_token_publishes_only_its_event_types_with_its_name_and_source(self, desk):
        status, made = http(
            "POST",
            f"{desk.workers[0].url}/api/tokens",
            {"name": "nms-1", "event_types": ["fault.reported"], "source": "network_alarm"},
        )
        assert status == 201, made
        token, url = made["token"], desk.workers[1].url
        status, answer = http("POST", f"{url}/api/faults", {"customer_id": "C-NMS", **FAULT}, token=token)
        assert status == 202, answer
        status, answer_ticket = http(
            "POST",
            f"{url}/api/tickets",
            {"customer_id": "C-NMS", "kind": "complaint", "priority": "P2", "subject": "x"},
            token=token,
        )
        assert (status, answer_ticket["field"]) == (403, "event_type")
        assert http("GET", f"{url}/api/customers/C-NMS/view", token=token)[0] == 403
        view = http("GET", f"{url}/api/customers/C-NMS/view?wait_for={answer['event_id']}&timeout=10")[1]
        record = view["open"]["fault"][answer["fault_id"]]["history"][0]
        assert (record["actor"], record["source"]) == ("nms-1", "network_alarm")


class TestRevocation:
    def test_a_revoked_token_stops_working_at_once_on_every_worker(self, desk):
        status, made = http(
            "POST", f"{desk.workers[0].url}/api/tokens", {"name": "revoke-me", "username": "e2e-suite"}
        )
        assert status == 201, made
        for worker in desk.workers:
            assert http("GET", f"{worker.url}/api/me", token=made["token"])[0] == 200
        assert http("DELETE", f"{desk.workers[1].url}/api/tokens/{made['id']}")[0] == 200
        for worker in desk.workers:
            assert http("GET", f"{worker.url}/api/me", token=made["token"])[0] == 401
        revoked = audit(desk, kind="token.revoked", target=made["id"])
        assert revoked and revoked[0]["before"]["revoked_at"] is None and revoked[0]["after"]["revoked_at"]

    def test_an_ended_session_stops_working_at_once_on_every_worker(self, desk):
        session = add_user(desk, "leaver", ["hotline"])
        for worker in desk.workers:
            assert http("GET", f"{worker.url}/api/me", token=session)[0] == 200
        assert http("POST", f"{desk.workers[2].url}/api/logout", {}, token=session)[0] == 200
        for worker in desk.workers:
            assert http("GET", f"{worker.url}/api/me", token=session)[0] == 401

    def test_a_disabled_user_is_refused_at_once_on_every_worker(self, desk):
        session = add_user(desk, "disabled-1", ["hotline"])
        status, answer = http("PATCH", f"{desk.workers[0].url}/api/users/disabled-1", {"disabled": True})
        assert status == 200 and answer["disabled"], answer
        for worker in desk.workers:
            assert http("GET", f"{worker.url}/api/me", token=session)[0] == 401


class TestBrowserSessions:
    def test_a_cookie_write_needs_the_csrf_token(self, desk):
        add_user(desk, "browser-1", ["hotline"])
        url = desk.workers[0].url
        status, answer = http(
            "POST", f"{url}/api/login", {"username": "browser-1", "password": PASSWORD}, token=None
        )
        assert status == 200 and "token" not in answer  # a browser's secret stays in the cookie
        status, answer_full = _login_cookie(url, "browser-1")
        cookie = {"Cookie": f"keydesk_session={answer_full['cookie']}"}
        body = {"customer_id": "C-CSRF", **FAULT}
        status, refused = http("POST", f"{url}/api/faults", body, token=None, headers=cookie)
        assert (status, refused["field"]) == (403, "X-CSRF-Token"), refused
        wrong = {**cookie, "X-CSRF-Token": "guess"}
        assert http("POST", f"{url}/api/faults", body, token=None, headers=wrong)[0] == 403
        right = {**cookie, "X-CSRF-Token": answer_full["csrf_token"]}
        assert http("POST", f"{url}/api/faults", body, token=None, headers=right)[0] == 202
        assert http("GET", f"{url}/api/me", token=None, headers=cookie)[0] == 200  # reads need no CSRF
        assert any(r["detail"].endswith("csrf") for r in audit(desk, kind="denied", actor="browser-1"))

    def test_login_is_rate_limited_across_workers_and_audited(self, desk):
        add_user(desk, "target-1", ["hotline"])
        for n in range(5):
            worker = desk.workers[n % 3]
            status, _ = http(
                "POST",
                f"{worker.url}/api/login",
                {"username": "target-1", "password": "wrong guess"},
                token=None,
            )
            assert status == 401
        status, answer = http(
            "POST",
            f"{desk.workers[2].url}/api/login",
            {"username": "target-1", "password": PASSWORD},
            token=None,
        )
        assert (status, answer["field"]) == (429, "username"), answer
        failed = audit(desk, kind="login_failed", target="target-1")
        assert len(failed) == 5 and all(r["address"] == "127.0.0.1" for r in failed)
        assert audit(desk, kind="login_limited", target="target-1")
        assert audit(desk, kind="login", target="target-1")  # the sign-in add_user made first


def _login_cookie(url: str, username: str) -> tuple[int, dict]:
    """Sign in as a browser does and read the ``Set-Cookie`` (urllib keeps no cookie jar)."""
    import http.cookies
    import urllib.request

    request = urllib.request.Request(
        f"{url}/api/login",
        data=orjson.dumps({"username": username, "password": PASSWORD}),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        jar = http.cookies.SimpleCookie(response.headers["Set-Cookie"])
        morsel = jar["keydesk_session"]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        return response.status, {**orjson.loads(response.read()), "cookie": morsel.value}


def keydesk(desk, *args: str, data_dir, token: str | None = None, stdin: str | None = None):
    """The CLI against the first worker: as ``token``, else as whoever ``keydesk login`` saved."""
    return run_keydesk(
        desk, *args, stdin=stdin, env={"KEYDESK_DATA_DIR": str(data_dir), "KEYDESK_TOKEN": token}
    )


class TestCommandLine:
    def test_users_tokens_login_and_audit_from_the_cli(self, desk, tmp_path):
        admin = {"data_dir": tmp_path / "admin", "token": TEST_TOKEN}
        added = keydesk(
            desk, "user", "add", "cli-am", "--role", "account_manager", "--staff-id", "AM-A", **admin
        )
        assert added.returncode == 0, added.stderr
        one_time = added.stdout.split("one-time password: ")[1].strip()

        me = {"data_dir": tmp_path / "me"}
        signed = keydesk(
            desk,
            "login",
            "--username",
            "cli-am",
            "--password-stdin",
            stdin=f"{one_time}\nmy new password 1\n",
            **me,
        )
        assert signed.returncode == 0, signed.stderr
        saved = tmp_path / "me" / "credentials.json"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        whoami = keydesk(desk, "whoami", **me)
        assert whoami.returncode == 0 and '"name": "cli-am"' in whoami.stdout, whoami.stderr
        queue = keydesk(desk, "queue", **me)  # the queue is the hotline's, not an account manager's
        assert queue.returncode == 2 and queue.stderr.startswith("refused (403)"), queue.stderr
        assert keydesk(desk, "user", "role", "cli-am", "hotline", "account_manager", **admin).returncode == 0
        assert keydesk(desk, "queue", **me).returncode == 0  # the new role holds at the next request
        again = keydesk(
            desk, "login", "--username", "cli-am", "--password-stdin", stdin=f"{one_time}\n", **me
        )
        assert again.returncode == 2 and "401" in again.stderr  # the one-time password is spent

        made = keydesk(
            desk,
            "token",
            "create",
            "nms-cli",
            "--event-type",
            "fault.reported",
            "--source",
            "network_alarm",
            **admin,
        )
        assert made.returncode == 0, made.stderr
        token_id, secret = made.stdout.split()[1], made.stdout.strip().splitlines()[-1]
        listed = keydesk(desk, "token", "list", "--json", **admin)
        assert token_id in listed.stdout and secret not in listed.stdout
        fault = {"customer_id": "C-CLI", **FAULT}
        assert http("POST", f"{desk.workers[1].url}/api/faults", fault, token=secret)[0] == 202
        assert keydesk(desk, "token", "revoke", token_id, **admin).returncode == 0
        assert http("POST", f"{desk.workers[1].url}/api/faults", fault, token=secret)[0] == 401

        out = keydesk(desk, "logout", **me)
        assert out.returncode == 0 and not saved.exists(), out.stderr
        trail = keydesk(desk, "audit", "--target", "cli-am", "--json", **admin)
        kinds = {r["kind"] for r in orjson.loads(trail.stdout)}
        assert {"user.added", "user.changed", "user.password_changed", "login", "login_failed"} <= kinds, (
            kinds
        )
        assert keydesk(desk, "audit", **me).returncode == 2  # signed out: no credential


class TestHostileReviewFindings:
    """Last stop's hostile review of the identity code: each finding, against the real workers."""

    def test_a_raw_customer_event_is_audited_like_the_archive_routes(self, desk):
        register(desk, "C-RAW-AUDIT", "AM-RAW", "广东省/珠海市")
        rows = audit(desk, kind="customer.registered", target="C-RAW-AUDIT")
        assert len(rows) == 1, rows
        assert (rows[0]["actor"], rows[0]["after"]["region"]) == ("e2e-suite", "广东省/珠海市")
        assert rows[0]["detail"] == "POST /api/events" and rows[0]["after"]["event_id"]

    def test_an_admin_cannot_mint_a_personal_token_for_someone_else(self, desk):
        add_user(desk, "victim-1", ["hotline"])
        url = f"{desk.workers[0].url}/api/tokens"
        status, answer = http("POST", url, {"name": "act-as-victim", "username": "victim-1"})
        assert (status, answer["field"]) == (403, "username"), answer
        assert not any(t["name"] == "act-as-victim" for t in http("GET", url)[1]["tokens"])

    def test_an_integration_token_cannot_take_a_users_name(self, desk):
        add_user(desk, "li.ming", ["account_manager"], staff_id="AM-LM")
        status, answer = http(
            "POST",
            f"{desk.workers[1].url}/api/tokens",
            {"name": "li.ming", "event_types": ["fault.reported"], "source": "network_alarm"},
        )
        assert (status, answer["field"]) == (409, "name"), answer

    def test_the_current_password_check_is_rate_limited_like_sign_in(self, desk):
        session = add_user(desk, "guessed-1", ["hotline"])
        url = f"{desk.workers[0].url}/api/me/password"
        for n in range(5):
            guess = {"password": f"wrong guess {n}", "new_password": "a new long password"}
            status, answer = http("POST", url, guess, token=session)
            assert (status, answer["field"]) == (403, "password"), answer
        right = {"password": PASSWORD, "new_password": "a new long password"}
        status, answer = http("POST", url, right, token=session)
        assert (status, answer["field"]) == (429, "password"), answer
        status, answer = http(  # one count per user: sign-in is closed to the guesser too
            "POST",
            f"{desk.workers[1].url}/api/login",
            {"username": "guessed-1", "password": PASSWORD},
            token=None,
        )
        assert status == 429, answer
        assert audit(desk, kind="login_limited", target="guessed-1")

    def test_a_hop_captured_on_its_way_to_one_worker_is_refused_by_another(self, desk):
        key = Settings.from_env(desk.env(0) | {"KEYDESK_HTTP_PORT": "1"}).signing_key
        path = "/api/dispatch-queue?local=1&limit=5"
        first, second = (URL(w.url) for w in desk.workers[:2])
        captured = hop_headers(key, first.join(URL(path)))
        status, answer = http("GET", f"{first}{path}", token=None, headers=captured)
        assert status == 200, answer  # the worker it was signed for answers it
        status, answer = http("GET", f"{str(second).rstrip('/')}{path}", token=None, headers=captured)
        assert (status, answer["field"]) == (401, HOP_HEADER), answer

    def test_a_nul_in_a_username_or_an_id_is_a_422_naming_the_field(self, desk):
        url = desk.workers[0].url
        status, answer = http(
            "POST", f"{url}/api/login", {"username": "ad\u0000min", "password": "whatever it is"}, token=None
        )
        assert (status, answer["field"]) == (422, "username"), answer
        status, answer = http("GET", f"{url}/api/customers/C-1%00/view")
        assert (status, answer["field"]) == (422, "customer_id"), answer
        status, answer = http(
            "POST", f"{url}/api/users", {"username": "n1", "roles": ["hotline"], "region": "广东\u0000省"}
        )
        assert (status, answer["field"]) == (422, "region"), answer

    def test_a_manager_gets_a_report_of_their_own_customers(self, desk):
        manager = add_user(desk, "manager-r", ["manager"], staff_id="DH-R", region="湖南省/长沙市")
        status, answer = http(
            "GET",
            f"{desk.workers[2].url}/api/reports/compliance?from=2026-11-01&to=2026-11-02",
            token=manager,
        )
        assert status == 200 and answer["total"]["items"] == 0, answer
