"""Free loopback ports, for the local servers and for the tests and benchmarks that start servers.

One definition instead of a copy per module: bind port 0 on 127.0.0.1, read
the port the kernel picked, release it.  Another process can take it before
the caller binds it, which a local server or a test can live with (the
local broker also probes a port before it reuses it, ``kafka_broker.py``).
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(*taken: int | None) -> int:
    """A loopback port nothing listens on now, and none of ``taken``."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port
