"""The HTTP edge refuses control characters in every string that can reach SQL, naming the field.

NUL above all: PostgreSQL refuses it in any text, so a NUL in a username, an id
or a body field was a 500 from deep inside a query (the hostile review of the
identity code).  The guard (``handlers/api/http_guard.py``) refuses it first,
with a 422 naming the path parameter, query parameter or body field.
"""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from handlers.api.http_guard import control_character_field, guard_middleware, read_json_object
from handlers.local.ports import LOOPBACK, free_port


@pytest.fixture
async def edge():
    """Two routes behind the guard alone: one echoing its path and query, one its body's fields."""

    async def echo_path(request: web.Request) -> web.Response:
        return web.json_response({"item_id": request.match_info["item_id"], **request.query})

    async def echo_body(request: web.Request) -> web.Response:
        return web.json_response({"fields": sorted(await read_json_object(request))})

    app = web.Application(middlewares=[guard_middleware()])
    app.router.add_get("/api/items/{item_id}", echo_path)
    app.router.add_post("/api/items", echo_body)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        async with aiohttp.ClientSession(f"http://{LOOPBACK}:{port}") as session:
            yield session
    finally:
        await runner.cleanup()


async def answer(response: aiohttp.ClientResponse) -> tuple[int, dict]:
    return response.status, await response.json()


class TestControlCharacters:
    async def test_a_nul_in_a_path_parameter_is_422_naming_it(self, edge):
        async with edge.get("/api/items/F-1%00x") as response:
            assert await answer(response) == (
                422,
                {"error": "must not contain control characters", "field": "item_id"},
            )

    async def test_a_control_character_in_a_query_value_is_422_naming_the_parameter(self, edge):
        async with edge.get("/api/items/F-1", params={"actor": "li\x1bmin"}) as response:
            status, body = await answer(response)
        assert (status, body["field"]) == (422, "actor")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"username": "ad\x00min"}, "username"),
            ({"contacts": [{"name": "ok"}, {"name": "张\x00三"}]}, "contacts[1].name"),
            ({"profile": {"note\x00": "x"}}, "profile.note\\x00"),
            ({"summary": "bell\x07"}, "summary"),
        ],
    )
    async def test_a_control_character_anywhere_in_a_body_is_422_naming_the_field(self, edge, body, field):
        async with edge.post("/api/items", json=body) as response:
            status, answered = await answer(response)
        assert (status, answered["field"]) == (422, field)

    async def test_free_text_keeps_its_tabs_and_line_breaks_and_plain_ids_pass(self, edge):
        body = {"note": "第一行\n第二行\r\n\tindented", "customer_id": "C-1"}
        async with edge.post("/api/items", json=body) as response:
            assert await answer(response) == (200, {"fields": ["customer_id", "note"]})
        async with edge.get("/api/items/F-1", params={"q": "中国 电信"}) as response:
            assert await answer(response) == (200, {"item_id": "F-1", "q": "中国 电信"})

    async def test_a_body_nested_past_pythons_recursion_limit_is_walked_without_a_500(self, edge):
        deep = '{"a": ' + "[" * 1000 + '"\\u0000"' + "]" * 1000 + "}"
        async with edge.post(
            "/api/items", data=deep, headers={"Content-Type": "application/json"}
        ) as response:
            status, body = await answer(response)
        assert (status, body["field"]) == (422, "a" + "[0]" * 21)  # the path, cut at 64 characters

    def test_the_first_culprit_is_named_in_document_order(self):
        assert control_character_field({"a": "ok", "b": ["x", "y\x00"], "c": "\x00"}) == "b[1]"
        assert control_character_field({"a": {"b": {"c": "fine"}}}) is None
