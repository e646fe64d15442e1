"""What only keydesk itself may put on a topic that others write too: signed with the desk's secret.

A manager's acknowledgement of an escalation stops the rest of a ladder, so it
must not come from just any producer of the events topic (issue 9: a forged
one was accepted).  Yet it belongs on the events topic, in order with the
item's other events: on the SLA topic it met them in whatever order the worker
fetched the two topics, and whether a ladder step due after it was published
depended on that (issue 10).  So the acknowledge API, and ``keydesk publish``
for an imported history, put an HMAC-SHA256 of the record's bytes, keyed with
the desk's secret, in the record's ``keydesk.signature`` header; the worker's
fold and the SQL sink take an acknowledgement from the events topic only with
a valid one.  Every worker and sink of a desk needs the same secret
(``KEYDESK_SECRET``, or the file ``secret`` in the data directory, made at the
first start: ``streams/settings.py``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

SIGNATURE_HEADER = "keydesk.signature"


def signature(secret: bytes, value: bytes) -> bytes:
    """The signature of a record's bytes (hex, as the header carries it)."""
    return hmac.new(secret, value, hashlib.sha256).hexdigest().encode()


def signature_headers(secret: bytes, value: bytes) -> list[tuple[str, bytes]]:
    """The headers that make a record keydesk's own."""
    return [(SIGNATURE_HEADER, signature(secret, value))]


def is_signed(secret: bytes | None, value: bytes | None, headers: Any) -> bool:
    """Whether a record carries a valid signature of its bytes by ``secret``.

    ``headers`` as Kafka clients give them: a sequence of (name, bytes) pairs
    (aiokafka) or a mapping (faust); a missing secret signs nothing.
    """
    if not secret or value is None or not headers:
        return False
    pairs: Iterable[tuple[Any, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    for name, given in pairs:
        name = name.decode() if isinstance(name, bytes) else name
        if name == SIGNATURE_HEADER and isinstance(given, bytes | bytearray):
            return hmac.compare_digest(bytes(given), signature(secret, value))
    return False


def fingerprint(secret: bytes) -> str:
    """A short public name of the secret, logged at start so that operators can see at a glance
    that every worker and sink of a desk has the same one (acknowledgements signed with another
    are parked, not folded), without the secret itself ever reaching a log."""
    return hashlib.sha256(b"keydesk.secret-fingerprint\x00" + secret).hexdigest()[:12]
