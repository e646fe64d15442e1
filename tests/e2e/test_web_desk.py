"""The web desk's pages on a real worker: beside the API, behind the same table of operations."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the test looks at the redirect itself


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


@pytest.fixture
def worker(desk):
    return desk.workers[0]


def test_the_desks_first_page_sends_a_visitor_without_a_sign_in_to_the_sign_in_page(worker):
    status, headers, _ = fetch(f"{worker.url}/")
    assert (status, headers["Location"]) == (303, "/login?next=/")


def test_the_sign_in_page_and_its_static_files_are_served_by_the_worker(worker):
    status, headers, page = fetch(f"{worker.url}/login")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "登录" in page and 'lang="zh-CN"' in page
    for asset in ("/static/desk.css", "/static/vendor/htmx.org-2.0.11/htmx.min.js"):
        assert fetch(f"{worker.url}{asset}")[0] == 200, asset


@pytest.mark.parametrize("path", ["/router/", "/table/", "/stats/"])
def test_fausts_own_pages_are_not_served(worker, path):
    """faust's debugging pages list tables and routing: off (404), or without a line in the
    table of operations and so refused to all (403)."""
    assert fetch(f"{worker.url}{path}")[0] in (403, 404)
