"""A key account's service register end to end: the real broker, a worker, the sink into PostgreSQL.

One customer gets 1,000 services, one event each (``keydesk customer service add
--from``, each line a ``POST /api/customers/{id}/services``); the hotline then
finds the customer by the circuit id of the last of them, the register pages
through all 1,000, the worker's persisted view of the customer stays as small as
it was (no changelog record near Kafka's limit), and a removed service's circuit
no longer finds it (issue 11, point 3; issue 9, point 2).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse

import orjson
import pytest

from handlers.local.postgres_server import create_database, drop_database
from tests.e2e.conftest import http, new_desk, poll
from tests.e2e.test_acknowledge_any_worker import wait_until_every_partition_is_owned

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

CUSTOMER = "C-KEY-001"
SERVICES = 1000
#: Kafka's default max.message.bytes, the limit a changelog record must stay under.
KAFKA_MESSAGE_LIMIT = 1_048_588


@pytest.fixture(scope="module")
def register_desk(kafka_bootstrap, postgres_url, tmp_path_factory):
    url = create_database(postgres_url, "services")
    desk = new_desk(kafka_bootstrap, tmp_path_factory.mktemp("services"), KEYDESK_DB=url)
    try:
        desk.start_worker()
        wait_until_every_partition_is_owned(desk)
        yield desk
    finally:
        desk.stop()
        drop_database(postgres_url, url)


def keydesk(desk, *args: str) -> subprocess.CompletedProcess:
    env = desk.env(6066) | {"KEYDESK_API": desk.workers[0].url}
    return subprocess.run(
        [sys.executable, "-m", "handlers.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def search(worker, q: str) -> list[str]:
    status, page = http("GET", f"{worker.url}/api/customers?{urllib.parse.urlencode({'q': q})}")
    assert status == 200, page
    return [c["customer_id"] for c in page["customers"]]


def changelog_sizes(desk, kcat: str, table: str) -> list[tuple[str, int]]:
    """(key, bytes) of every record of one of the worker's view tables' changelog topics."""
    topic = f"{desk.prefix}-app-{table}-changelog"
    done = subprocess.run(
        [kcat, "-b", desk.bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%k\t%S\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [(key, int(size)) for key, size in (line.rsplit("\t", 1) for line in done.stdout.splitlines())]


@pytest.fixture(scope="module")
def key_account(register_desk, kcat, tmp_path_factory):
    """The customer registered, then 1,000 services added through the CLI, the last one found."""
    desk = register_desk
    (worker,) = desk.workers
    status, answer = http(
        "POST",
        f"{worker.url}/api/customers?wait=10",
        {
            "customer_id": CUSTOMER,
            "name": "全省政务外网",
            "tier": "diamond",
            "services": [{"service": "MPLS VPN", "circuit_id": "GZ-LIST-0001"}],
        },
    )
    assert status == 200, answer
    header_before = max(size for key, size in changelog_sizes(desk, kcat, "customers") if key == CUSTOMER)
    lines = tmp_path_factory.mktemp("services") / "services.jsonl"
    lines.write_bytes(
        b"\n".join(
            orjson.dumps(
                {
                    "service_id": f"SVC-{n:04d}",
                    "service": "MPLS VPN" if n % 2 else "dedicated internet",
                    "circuit_id": f"GZ-MPLS-{n:04d}",
                    "address": f"广州市第{n}号站点",
                    "bandwidth": "100M",
                }
            )
            for n in range(1, SERVICES + 1)
        )
    )
    started = time.monotonic()
    done = keydesk(desk, "customer", "service", "add", CUSTOMER, "--from", str(lines))
    assert done.returncode == 0, done.stderr
    assert f"published: {SERVICES} services of {CUSTOMER}" in done.stdout
    poll(lambda: search(worker, f"GZ-MPLS-{SERVICES:04d}") == [CUSTOMER], "the last circuit found", 120)
    return desk, header_before, time.monotonic() - started


class TestAThousandServices:
    def test_the_last_circuit_id_finds_the_customer(self, key_account):
        desk, _, seconds = key_account
        (worker,) = desk.workers
        assert search(worker, "gz-mpls-1000") == [CUSTOMER], f"after {seconds:.1f} s"
        assert search(worker, "GZ-MPLS-0001") == [CUSTOMER]
        assert search(worker, "GZ-LIST-0001") == [CUSTOMER]  # the profile's own list still finds it

    def test_the_register_pages_through_every_service_once(self, key_account):
        desk, _, _ = key_account
        (worker,) = desk.workers
        seen, after = [], None
        while True:
            query = "limit=300" + (f"&after={after}" if after else "")
            status, page = http("GET", f"{worker.url}/api/customers/{CUSTOMER}/services?{query}")
            assert status == 200, page
            assert page["count"] == SERVICES
            seen += [s["service_id"] for s in page["services"]]
            after = page["next"]
            if after is None:
                break
        assert seen == [f"SVC-{n:04d}" for n in range(1, SERVICES + 1)]
        done = keydesk(desk, "customer", "service", "list", CUSTOMER, "--after", "SVC-0998")
        assert done.returncode == 0, done.stderr
        assert [line.split("\t")[:3] for line in done.stdout.splitlines()] == [
            ["SVC-0999", "MPLS VPN", "GZ-MPLS-0999"],
            ["SVC-1000", "dedicated internet", "GZ-MPLS-1000"],
        ]

    def test_the_worker_s_records_stay_far_below_kafka_s_message_limit(self, key_account, kcat):
        """The view keeps no services: its header is as small after 1,000 adds as before them."""
        desk, header_before, _ = key_account
        (worker,) = desk.workers
        assert worker.alive()
        status, health = http("GET", f"{worker.url}/api/health")
        assert status == 200 and health["status"] == "ok", health
        headers = [size for key, size in changelog_sizes(desk, kcat, "customers") if key == CUSTOMER]
        assert max(headers) < header_before + 16 * 1024, (header_before, max(headers))
        for table in ("customers", "items", "item-history"):
            sizes = [size for _, size in changelog_sizes(desk, kcat, table)]
            assert max(sizes, default=0) < KAFKA_MESSAGE_LIMIT // 4, (table, max(sizes, default=0))
        assert "MessageSizeTooLarge" not in worker.log_path.read_text()

    def test_a_removed_service_is_out_of_the_search_and_the_register(self, key_account):
        desk, _, _ = key_account
        (worker,) = desk.workers
        done = keydesk(desk, "customer", "service", "remove", CUSTOMER, "SVC-1000")
        assert done.returncode == 0, done.stderr
        poll(lambda: search(worker, "GZ-MPLS-1000") == [], "the removed circuit gone from the search", 120)
        status, page = http("GET", f"{worker.url}/api/customers/{CUSTOMER}/services?after=SVC-0999")
        assert status == 200 and page["services"] == [] and page["count"] == SERVICES - 1
        assert search(worker, "GZ-MPLS-0999") == [CUSTOMER]
        status, answer = http("DELETE", f"{worker.url}/api/customers/{CUSTOMER}/services/SVC-1000")
        assert status == 404 and answer["field"] == "service_id", answer

    def test_the_audit_holds_each_change_to_the_register(self, key_account):
        desk, _, _ = key_account
        (worker,) = desk.workers
        status, trail = http("GET", f"{worker.url}/api/audit?kind=customer.service_added&limit=500")
        assert status == 200, trail
        assert len(trail["records"]) == 500
        assert {e["target"] for e in trail["records"]} <= {
            f"{CUSTOMER}/services/SVC-{n:04d}" for n in range(1, SERVICES + 1)
        }
        status, trail = http("GET", f"{worker.url}/api/audit?kind=customer.service_removed")
        assert status == 200 and [e["target"] for e in trail["records"]] == [f"{CUSTOMER}/services/SVC-1000"]


class TestRefusals:
    @pytest.mark.parametrize(
        "customer, body, status, field",
        [
            ("C-NOBODY", {"service_id": "S-1", "service": "MPLS VPN"}, 404, "customer_id"),
            (CUSTOMER, {"service": "MPLS VPN"}, 422, "service_id"),
            (CUSTOMER, {"service_id": "S-1"}, 422, "service"),
            (CUSTOMER, {"service_id": "S-1", "service": "x", "circuit_id": "G" * 65}, 422, "circuit_id"),
            (CUSTOMER, {"service_id": "S-1", "service": "x", "colour": "red"}, 422, "colour"),
            (CUSTOMER, {"service_id": "S-1", "service": "x", "customer_id": "C-2"}, 422, "customer_id"),
        ],
    )
    def test_a_bad_add_is_refused_naming_the_field(self, key_account, customer, body, status, field):
        desk, _, _ = key_account
        got, answer = http("POST", f"{desk.workers[0].url}/api/customers/{customer}/services", body)
        assert (got, answer.get("field")) == (status, field), answer

    def test_the_register_of_an_unknown_customer_is_404(self, key_account):
        desk, _, _ = key_account
        status, answer = http("GET", f"{desk.workers[0].url}/api/customers/C-NOBODY/services")
        assert status == 404 and answer["field"] == "customer_id", answer

    def test_without_credentials_the_register_is_closed(self, key_account):
        desk, _, _ = key_account
        status, _ = http("GET", f"{desk.workers[0].url}/api/customers/{CUSTOMER}/services", token=None)
        assert status == 401
