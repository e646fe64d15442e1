"""A TCP link in front of PostgreSQL that can be cut and restored: a database outage.

The same idea as the sink's own outage test (tests/streams/test_sql_sink.py), on
a thread and loop of its own so that a synchronous test can cut the database
of a worker running in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from sqlalchemy.engine import make_url


class DatabaseLink:
    """Forwards 127.0.0.1:``port`` to the database of ``url``; ``cut()`` drops every connection."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.target = (parsed.host or "127.0.0.1", parsed.port or 5432)
        self._url = parsed
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="database-link")
        self._thread.start()

    @property
    def url(self) -> str:
        """The database URL through the link (what the worker is given)."""
        return self._url.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def up(self) -> None:
        self._call(self._up())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    async def _up(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._links):  # before wait_closed: it waits for open links
            writer.transport.abort()
        self._links.clear()
        if server is not None:
            await server.wait_closed()

    async def _link(self, reader, writer) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, upstream_writer))

        async def pipe(src, dst):
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()
            self._links.discard(dst)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
