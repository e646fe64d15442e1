"""Every operation of ``/api/openapi.json``, driven by schemathesis against a real worker.

The document is fetched from the worker itself (``GET /api/openapi.json``, built
from the declarations the handlers validate with) and handed to schemathesis
4.x's command line (``st run``), which for every operation generates requests
from the declared parameters and bodies, valid ones and hostile ones (the
coverage phase's boundary and wrong-type values, the fuzzing phase's random
ones, unknown fields and parameters), and checks each answer:

* ``not_a_server_error``: no 5xx, ever;
* ``status_code_conformance``: only a status the operation declares;
* ``response_schema_conformance`` and ``content_type_conformance``: the body is
  what the declared status says, in the declared media type;
* ``negative_data_rejection``: what the document says is invalid is refused
  (4xx), so the document is not laxer than the handlers.

The number of examples per operation is bounded (``MAX_EXAMPLES``) so the run
stays within about three minutes, most of it the declared waits (up to 10 s)
that the generator is free to ask for.  One schemathesis worker: its threads
crashed CPython 3.11's ``ast.parse`` inside Hypothesis
(``SystemError: AST constructor recursion depth mismatch``).

Credentials come from the :func:`api_headers` fixture alone: the suite's token
(``tests/e2e/conftest.py``), a user holding every role.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from openapi_spec_validator import validate

from tests.e2e.conftest import auth

pytestmark = pytest.mark.broker

#: Test cases per operation in the fuzzing phase (the coverage phase adds its own, ~100 each).
MAX_EXAMPLES = 10
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "negative_data_rejection",
)


@pytest.fixture(scope="module")
def api_headers(desk) -> dict[str, str]:
    """The headers that authenticate the run's caller with ``desk``: the suite's token (every role)."""
    return auth()


def call(method: str, url: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, dict]:
    """One request with the run's credentials."""
    request = urllib.request.Request(
        url,
        data=None if body is None else orjson.dumps(body),
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


@pytest.fixture(scope="module")
def document(desk, api_headers) -> dict:
    status, doc = call("GET", f"{desk.workers[0].url}/api/openapi.json", api_headers)
    assert status == 200
    return doc


def test_the_served_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


class TestAWaitThatEndsEmptyIsNotAServerError:
    """Regressions the contract run found: 504 for a wait on an event nobody wrote."""

    def test_the_view_answers_404_naming_wait_for(self, desk, api_headers):
        worker = desk.workers[0]
        customer = f"C-OA-{uuid.uuid4().hex[:6]}"
        status, answer = call(
            "GET",
            f"{worker.url}/api/customers/{customer}/view?wait_for={uuid.uuid4()}&timeout=0",
            api_headers,
        )
        assert (status, answer["field"]) == (404, "wait_for")

    def test_an_items_event_answers_404_naming_event_id(self, desk, api_headers):
        worker = desk.workers[0]
        path = f"/api/customers/C-OA-1/items/fault/F-1/events/{uuid.uuid4()}?timeout=0"
        status, answer = call("GET", f"{worker.url}{path}", api_headers)
        assert (status, answer["field"]) == (404, "event_id")

    def test_an_archive_record_answers_404_naming_wait_for(self, desk, api_headers):
        worker = desk.workers[0]
        path = f"/api/customers/C-OA-1?wait_for={uuid.uuid4()}&timeout=0"
        status, answer = call("GET", f"{worker.url}{path}", api_headers)
        assert (status, answer["field"]) == (404, "wait_for")


def test_every_operation_answers_as_documented_to_generated_and_hostile_input(
    desk, document, api_headers, tmp_path: Path
):
    worker = desk.workers[0]
    # Something to find: a customer with an open fault, so that reads and steps also meet real items
    # (schemathesis draws path values from the schema, and "0" is a likely one).
    for customer in ("0", "C-OA-SEED"):
        status, logged = call(
            "POST",
            f"{worker.url}/api/faults",
            api_headers,
            {"customer_id": customer, "fault_id": "0", "severity": "major", "summary": "s", "service": "x"},
        )
        assert status == 202, logged
    report = tmp_path / "schemathesis.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{worker.url}/api/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    for name, value in api_headers.items():
        command += ["--header", f"{name}: {value}"]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    took = time.monotonic() - started
    output = run.stdout[-20000:] + run.stderr[-5000:]
    assert report.exists(), output
    result = orjson.loads(report.read_bytes())
    documented = {
        f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods
    }
    # Sign-in answers every generated username 401 (or 429 once the address is rate-limited), which
    # schemathesis keeps out of its valid rates; it is tested all the same (its failures would be
    # in the report, and the count of tested operations below includes it).
    tested = set(result["valid_rates"]) | {"POST /api/login"}
    # schemathesis leaves out the document's own operation; the test above covers it.
    assert tested == documented - {"GET /api/openapi.json"}, output
    assert result["operations"]["tested"] == len(tested), output
    assert result["failures"] == [] and result["errors"] == [], output
    assert run.returncode == 0, output
    assert result["test_cases"]["generated"] >= len(tested) * MAX_EXAMPLES, output
    seed = re.search(r"Seed: (\d+)", run.stdout)
    print(
        f"schemathesis: {result['test_cases']['generated']} requests in {took:.0f} s, seed {seed and seed[1]}"
    )
