"""The SLA rules managed through the API: two workers and a sink of their own follow one replace.

Issue 11, points 4 and 6 for the rules: who may read, check and replace them
(401/403/200), a document refused with its problems (422) or for rewriting
history (409), a replace on worker A that worker B and the stand-alone sink
then apply to a fault reported after the new version's ``effective_from``
(while a fault before it keeps the old version), a worker started later that
has it from its first answer, and the audit trail holding each replace.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from sla_rules import DEFAULT_RULES_PATH
from streams.partitioning import murmur2_partition
from tests.e2e.conftest import PARTITIONS, PASSWORD, http, login, new_desk
from tests.e2e.conftest import keydesk as run_keydesk
from tests.e2e.test_identity import poll

pytestmark = pytest.mark.broker

SHIPPED = DEFAULT_RULES_PATH.read_text()
RULES_MARKER = "# ------------------------------------------------------------------- rules"
#: diamond P1 faults' restore target in the shipped v1 and in the v2 the test adds
V1_RESTORE, V2_RESTORE = 2 * 3600, 77 * 60


def with_diamond_v2(effective: datetime) -> str:
    """The shipped rules plus a diamond version 2 (P1 restore 77 min) effective at ``effective``."""
    start = SHIPPED.index('[[policies]]\nid = "diamond"')
    block = SHIPPED[start : SHIPPED.index("[[policies]]", start + 1)]
    old_restore = 'P1 = { response = "5m",  restore = "2h",'
    assert block.count(old_restore) == 1 and block.count("version = 1\n") == 1
    v2 = (
        block.replace("version = 1\n", "version = 2\n")
        .replace(
            "effective_from = 2026-01-01", f"effective_from = {effective.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        )
        .replace(old_restore, 'P1 = { response = "5m",  restore = "77m",')
    )
    assert SHIPPED.count(RULES_MARKER) == 1
    return SHIPPED.replace(RULES_MARKER, v2 + "\n" + RULES_MARKER)


@pytest.fixture(scope="module")
def desk(kafka_bootstrap, tmp_path_factory):
    """Two workers without a sink of their own, and one stand-alone sink (`keydesk sink`)."""
    d = new_desk(kafka_bootstrap, tmp_path_factory.mktemp("rules"), KEYDESK_SINK="off")
    for _ in range(2):
        d.start_worker()
    d.wait_until_partitions_split(timeout=90)
    sink_log = open(d.tmp / "sink.log", "wb")
    sink = subprocess.Popen(
        [sys.executable, "-m", "handlers.cli", "sink"],
        env=d.env(0) | {"KEYDESK_HTTP_PORT": "1"},  # the sink serves no HTTP
        stdout=sink_log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parents[2],
    )
    try:
        yield d
    finally:
        sink.terminate()
        try:
            sink.wait(20)
        except subprocess.TimeoutExpired:
            sink.kill()
            sink.wait()
        d.stop()


def token_of(desk, username: str, roles: list[str]) -> str:
    status, answer = http(
        "POST",
        f"{desk.workers[0].url}/api/users",
        {"username": username, "roles": roles, "password": PASSWORD},
    )
    assert status == 201, answer
    return login(desk.workers[1].url, username)["token"]


def customer_on(desk, worker: int) -> str:
    """A new diamond customer whose partition the given worker owns, registered."""
    owned = set(desk.workers[worker].partitions() or ())
    n = 0
    while murmur2_partition(f"C-RUL-{worker}-{n}".encode(), PARTITIONS) not in owned:
        n += 1
    customer_id = f"C-RUL-{worker}-{n}"
    body = {
        "customer_id": customer_id,
        "name": f"规则客户 {customer_id}",
        "tier": "diamond",
        # before the faults: the sink takes the profile as of each event (a fault logged before
        # its customer's registration is a public customer's there)
        "occurred_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
    }
    status, answer = http("POST", f"{desk.workers[0].url}/api/customers?wait=10", body)
    assert status == 200, answer
    return customer_id


def log_fault(desk, customer_id: str, occurred_at: datetime) -> str:
    body = {
        "customer_id": customer_id,
        "severity": "critical",
        "summary": "专线中断",
        "service": "MPLS VPN",
        "occurred_at": occurred_at.isoformat(),
    }
    status, answer = http("POST", f"{desk.workers[0].url}/api/faults", body)
    assert status == 202, answer
    return answer["fault_id"]


def restore_clock(desk, customer_id: str, fault_id: str, at: datetime) -> tuple[dict, str]:
    """The fault's restore clock and explanation, as the customer's owner evaluates it."""
    url = f"{desk.workers[0].url}/api/customers/{customer_id}/items/fault/{fault_id}/sla"
    answers: list[tuple[int, dict]] = []

    def evaluated() -> dict | None:
        answers.append(http("GET", f"{url}?at={quote(at.isoformat())}"))
        return answers[-1][1] if answers[-1][0] == 200 else None

    found = poll(evaluated, f"the SLA of {fault_id} (last answer: {answers[-1:]})")
    return found["evaluation"]["metrics"]["restore"], found["explanation"]


def sink_restore(engine, fault_id: str) -> tuple[int, float] | None:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT policy_version, target_seconds FROM sla_outcomes "
                "WHERE item_id = :id AND metric = 'restore'"
            ),
            {"id": fault_id},
        ).first()
    return (row[0], row[1]) if row else None


class TestWhoMay:
    def test_without_credentials_401_a_desk_role_403_a_manager_reads_an_admin_writes(self, desk):
        url = desk.workers[0].url
        assert http("GET", f"{url}/api/rules", token=None)[0] == 401
        hotline = token_of(desk, "rules-hotline", ["hotline"])
        manager = token_of(desk, "rules-manager", ["manager"])
        for method, path, body in (
            ("GET", "/api/rules", None),
            ("POST", "/api/rules/check", {"text": SHIPPED}),
            ("PUT", "/api/rules", {"text": SHIPPED}),
        ):
            status, answer = http(method, f"{url}{path}", body, token=hotline)
            assert status == 403 and set(answer) == {"error", "field"}, (method, path, answer)
        status, answer = http("GET", f"{url}/api/rules", token=manager)
        assert status == 200 and answer["text"] == SHIPPED and answer["revision"] == 0, answer
        diamond = next(p for p in answer["summary"]["policies"] if p["id"] == "diamond")
        assert [(v["version"], v["frozen"]) for v in diamond["versions"]] == [(1, True)]
        assert http("POST", f"{url}/api/rules/check", {"text": SHIPPED}, token=manager)[1]["valid"] is True
        assert http("PUT", f"{url}/api/rules", {"text": SHIPPED}, token=manager)[0] == 403
        denied = http("GET", f"{url}/api/audit?kind=denied&actor=rules-manager")[1]["records"]
        assert any(r["detail"].startswith("PUT /api/rules") for r in denied)


class TestRefused:
    def test_an_invalid_document_is_422_with_each_problems_path_and_line(self, desk):
        url = desk.workers[1].url
        broken = SHIPPED.replace(
            'calendar = "24x7"\ndescription = "钻石', 'calendar = "25x8"\ndescription = "钻石', 1
        )
        assert broken != SHIPPED
        status, checked = http("POST", f"{url}/api/rules/check", {"text": broken})
        assert status == 200 and checked["valid"] is False, checked
        problem = checked["problems"][0]
        assert problem["kind"] == "invalid" and problem["path"] == "policies[0](id=diamond).calendar"
        assert SHIPPED.splitlines()[problem["line"] - 1] == "[[policies]]"
        status, refused = http("PUT", f"{url}/api/rules", {"text": broken})
        assert status == 422 and refused["field"] == "text" and refused["problems"] == checked["problems"]
        status, syntax = http("PUT", f"{url}/api/rules", {"text": "schema = 1\nversion = = 2\n"})
        assert status == 422 and syntax["problems"][0]["line"] == 2, syntax
        assert syntax["problems"][0]["column"] is not None
        assert http("PUT", f"{url}/api/rules", {"body": SHIPPED})[1]["field"] == "body"
        assert http("PUT", f"{url}/api/rules", {"text": ""})[1]["field"] == "text"
        assert http("GET", f"{url}/api/rules")[1]["revision"] == 0  # nothing changed

    def test_rewriting_a_version_in_force_is_409_naming_it(self, desk):
        url = desk.workers[0].url
        changed = SHIPPED.replace(
            'P1 = { response = "5m",  restore = "2h",', 'P1 = { response = "5m",  restore = "3h",', 1
        )
        status, refused = http("PUT", f"{url}/api/rules?wait=5", {"text": changed})
        assert status == 409, refused
        assert refused["problems"][0]["path"] == "policies(id=diamond).version=1"
        assert "policies(id=diamond).version=1" in refused["error"]
        backdated = with_diamond_v2(datetime.now(UTC) - timedelta(minutes=1))
        status, refused = http("PUT", f"{url}/api/rules", {"text": backdated})
        assert status == 409 and "must take effect in the future" in refused["error"], refused
        kinds = [
            r["after"]["reason"] for r in http("GET", f"{url}/api/audit?kind=rules.refused")[1]["records"]
        ]
        assert kinds.count("history") == 2 and "invalid" in kinds


class TestReplace:
    def test_a_replace_on_one_worker_is_applied_by_the_other_and_the_sink_and_audited(self, desk):
        a, b = desk.workers
        on_a, on_b = customer_on(desk, 0), customer_on(desk, 1)
        effective = (datetime.now(UTC) + timedelta(seconds=90)).replace(microsecond=0)
        # faults of both customers before the new version takes effect: they keep version 1
        before = {c: log_fault(desk, c, effective - timedelta(minutes=5)) for c in (on_a, on_b)}
        document = with_diamond_v2(effective)
        status, replaced = http("PUT", f"{a.url}/api/rules?wait=10", {"text": document})
        assert status == 200 and replaced["outcome"] == "applied" and replaced["revision"] == 1, replaced
        status, in_force = http("GET", f"{a.url}/api/rules")
        assert in_force["revision"] == 1 and in_force["text"] == document
        assert in_force["replaced_by"] == "e2e-suite" and in_force["source"] == "log"
        # worker B follows the rules topic
        poll(lambda: http("GET", f"{b.url}/api/rules")[1]["revision"] == 1, "revision 1 on worker B")
        assert http("GET", f"{b.url}/api/rules")[1]["digest"] == replaced["digest"]
        # the same text again is no new revision
        again = http("PUT", f"{b.url}/api/rules?wait=10", {"text": document})
        assert again[0] == 200 and again[1]["outcome"] == "unchanged" and again[1]["revision"] == 1
        after = {c: log_fault(desk, c, effective + timedelta(seconds=30)) for c in (on_a, on_b)}
        when = effective + timedelta(minutes=1)
        for customer_id in (on_a, on_b):  # evaluated by worker A's and B's fold alike
            restore, explanation = restore_clock(desk, customer_id, after[customer_id], when)
            assert (restore["policy_version"], restore["target_seconds"]) == (2, V2_RESTORE), restore
            assert "diamond v2" in explanation
            restore, explanation = restore_clock(desk, customer_id, before[customer_id], when)
            assert (restore["policy_version"], restore["target_seconds"]) == (1, V1_RESTORE), restore
            assert "diamond v1" in explanation
        # the stand-alone sink projects the clocks under the rules of each one's instant
        engine = create_engine(desk.database_url)
        try:
            for customer_id in (on_a, on_b):
                assert poll(lambda c=customer_id: sink_restore(engine, after[c]), "the sink's clock") == (
                    2,
                    V2_RESTORE,
                )
                assert poll(lambda c=customer_id: sink_restore(engine, before[c]), "the sink's clock") == (
                    1,
                    V1_RESTORE,
                )
        finally:
            engine.dispose()
        # the audit holds the change: who, revisions and digests before and after, the diff
        records = http("GET", f"{b.url}/api/audit?kind=rules.replaced&target=rules")[1]["records"]
        assert len(records) == 1, records
        record = records[0]
        assert record["actor"] == "e2e-suite" and record["detail"] == "PUT /api/rules"
        assert (record["before"]["revision"], record["after"]["revision"]) == (0, 1)
        assert record["after"]["digest"] == replaced["digest"] != record["before"]["digest"]
        assert '+P1 = { response = "5m",  restore = "77m",' in record["after"]["diff"]
        # once v2 is in force it is history too: changing it now is refused ... at its instant
        status, checked = http("POST", f"{b.url}/api/rules/check", {"text": SHIPPED})
        assert status == 200 and checked["valid"] is True  # v2 is still in the future: it may go

    def test_a_worker_started_later_has_the_newest_revision_from_its_first_answer(self, desk):
        assert http("GET", f"{desk.workers[0].url}/api/rules")[1]["revision"] == 1
        late = desk.start_worker()
        deadline = time.monotonic() + 90
        while True:
            try:
                status, answer = http("GET", f"{late.url}/api/rules")
                break
            except OSError:  # not listening yet
                assert late.alive() and time.monotonic() < deadline, late.log_path.read_text()[-3000:]
                time.sleep(0.2)  # polling for the port, not waiting a fixed time
        assert status == 200 and answer["revision"] == 1, answer


class TestCli:
    def test_show_check_and_replace_from_the_cli(self, desk, tmp_path):
        def keydesk(*args: str) -> subprocess.CompletedProcess:
            return run_keydesk(desk, "rules", *args, worker=1)

        shown = keydesk("show")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("revision 1 (log, replaced by e2e-suite at ")
        assert "  diamond v2  from " in shown.stdout
        in_force = tmp_path / "in-force.toml"
        in_force.write_text(keydesk("show", "--text").stdout)
        assert keydesk("check", str(in_force)).returncode == 0
        same = keydesk("replace", str(in_force))
        assert (same.returncode, same.stdout.strip()) == (0, "unchanged: revision 1 has this text already")
        broken = tmp_path / "broken.toml"
        broken.write_text(in_force.read_text().replace('calendar = "24x7"', 'calendar = "25x8"', 1))
        checked = keydesk("check", str(broken))
        assert checked.returncode == 1
        line = SHIPPED.splitlines().index('id = "diamond"')  # its [[policies]] line, 1-based
        assert f"{broken}:{line}:policies[0](id=diamond).calendar: unknown calendar '25x8'" in checked.stderr
        refused = keydesk("replace", str(broken))
        assert refused.returncode == 2 and refused.stderr.startswith("refused (422): text: not valid rules")
        assert http("GET", f"{desk.workers[0].url}/api/rules")[1]["revision"] == 1
