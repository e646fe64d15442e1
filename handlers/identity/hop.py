"""The internal hop: a read one worker forwards to the customer's owner, signed with the desk's secret.

The worker a request arrives at authenticates and authorizes it; when the
customer's partition is another worker's, it forwards the GET (path and query
only) to that owner.  The owner must not answer an unsigned forwarded GET, or
``X-Keydesk-Routed: 1`` would be a way round sign-in: the hop carries
``X-Keydesk-Hop: <unix seconds>.<HMAC-SHA256(desk secret, "GET\\n<path?query>\\n<seconds>")>``
and the owner accepts it within :data:`HOP_WINDOW_SECONDS` of its clock.  Only
a holder of the desk's secret (``Settings.signing_key``: a worker) can sign one;
a captured hop replays only the same read, for at most that window.
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


def _mac(key: bytes, method: str, path_qs: str, seconds: int) -> str:
    message = f"{method.upper()}\n{path_qs}\n{seconds}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def hop_signature(key: bytes, method: str, path_qs: str, now: float | None = None) -> str:
    seconds = int(time.time() if now is None else now)
    return f"{seconds}.{_mac(key, method, path_qs, seconds)}"


def hop_valid(key: bytes, method: str, path_qs: str, value: str, now: float | None = None) -> bool:
    """Whether ``value`` signs this method and path, within the window."""
    stamp, _, mac = value.partition(".")
    if not stamp.isdigit() or len(stamp) > 12:
        return False
    seconds = int(stamp)
    if abs((time.time() if now is None else now) - seconds) > HOP_WINDOW_SECONDS:
        return False
    return hmac.compare_digest(mac, _mac(key, method, path_qs, seconds))


def hop_headers(key: bytes, target: URL) -> dict[str, str]:
    """The headers of a GET forwarded to ``target``: routed (never forwarded again) and signed."""
    return {ROUTED_HEADER: "1", HOP_HEADER: hop_signature(key, "GET", target.raw_path_qs)}
