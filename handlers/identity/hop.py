"""The internal hop: a read one worker forwards to the customer's owner, signed with the desk's secret.

The worker a request arrives at authenticates and authorizes it; when the
customer's partition is another worker's, it forwards the GET (path and query
only) to that owner.  The owner must not answer an unsigned forwarded GET, or
``X-Keydesk-Routed: 1`` would be a way round sign-in: the hop carries
``X-Keydesk-Hop: <unix seconds>.<HMAC-SHA256(desk secret, "<host:port>\\nGET\\n<path?query>\\n<seconds>")>``
where ``host:port`` is the owner's canonical URL (where the workers' table
metadata says it serves), and the owner accepts it only for its own canonical
``host:port`` and within :data:`HOP_WINDOW_SECONDS` of its clock.  Only a holder
of the desk's secret (``Settings.signing_key``: a worker) can sign one; a
captured hop replays only the same read on the same worker, for at most that
window (sent to another worker, it signs someone else's address: 401).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from yarl import URL

HOP_HEADER = "X-Keydesk-Hop"
#: set on a forwarded read: it is never forwarded again
ROUTED_HEADER = "X-Keydesk-Routed"
HOP_WINDOW_SECONDS = 30


def hop_target(url: URL) -> str:
    """The worker a hop is meant for, as signed: ``host:port`` of its canonical URL, lower-case."""
    return f"{(url.host or '').lower()}:{url.port}"


def _mac(key: bytes, target: str, method: str, path_qs: str, seconds: int) -> str:
    message = f"{target}\n{method.upper()}\n{path_qs}\n{seconds}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def hop_signature(key: bytes, target: str, method: str, path_qs: str, now: float | None = None) -> str:
    """Sign ``method path_qs`` for the worker ``target`` (:func:`hop_target`) at ``now``."""
    seconds = int(time.time() if now is None else now)
    return f"{seconds}.{_mac(key, target, method, path_qs, seconds)}"


def hop_valid(key: bytes, here: str, method: str, path_qs: str, value: str, now: float | None = None) -> bool:
    """Whether ``value`` signs this method and path for this worker (``here``), within the window."""
    stamp, _, mac = value.partition(".")
    if not stamp.isdigit() or len(stamp) > 12:
        return False
    seconds = int(stamp)
    if abs((time.time() if now is None else now) - seconds) > HOP_WINDOW_SECONDS:
        return False
    return hmac.compare_digest(mac, _mac(key, here, method, path_qs, seconds))


def hop_headers(key: bytes, target: URL) -> dict[str, str]:
    """The headers of a GET forwarded to ``target``: routed (never forwarded again) and signed for it."""
    return {ROUTED_HEADER: "1", HOP_HEADER: hop_signature(key, hop_target(target), "GET", target.raw_path_qs)}
