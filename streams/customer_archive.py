"""The customer archive (客户档案) as a hotline operator looks it up: pure functions.

A customer's archive record is its profile, folded from ``customer.registered``
and ``customer.updated`` last-writer-wins per field by event time
(``streams/customer_view.py``; arrays such as ``services`` are one field and
replace whole).  Here: the one shape of a record (the same from the owner's
view and from the reporting database), and the *search terms* a record is
found by besides its name and id: every circuit id of its services, and every
phone number on it (its contacts', the account manager's, the escalation
chain's).  The sink stores the terms beside the ``customers`` row
(``customer_search_terms``), so a search is an indexed lookup on any worker.
The circuits of the customer's service register (``streams/customer_services.py``)
are found the same way, by the ``circuit_term`` of their ``customer_services`` rows.

Terms are normalised so that the way an operator types one finds the way it
was registered: circuit ids upper-case without spaces, phone numbers digits
as dialled inside China (``+86 138-0013-8000`` and ``13800138000`` are one
number).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CIRCUIT = "circuit"
PHONE = "phone"
#: The longest term stored (the longest circuit id and phone the catalogue allows).
TERM_LENGTH = 64
#: The fields of an archive record, in the order they are shown.
RECORD_FIELDS = (
    "name",
    "tier",
    "tier_label",
    "industry",
    "region",
    "account_manager",
    "escalation_chain",
    "contacts",
    "services",
)
_CHINA = "86"


def circuit_term(text: str) -> str:
    """A circuit id as stored and searched: upper-case, no white space."""
    return "".join(text.split()).upper()[:TERM_LENGTH]


def phone_term(text: str) -> str:
    """A phone number as stored and searched: its digits, as dialled inside China.

    ``+86 138-0013-8000``, ``0086 13800138000``, ``8613800138000`` and
    ``13800138000`` are one number; a fixed line keeps its area code with the
    trunk prefix (``+86 20 8888 1234`` and ``020-8888 1234`` -> ``02088881234``).
    Other countries' numbers keep their country code (``+852 ...`` -> ``00852...``).
    """
    stripped = text.strip()
    digits = "".join(c for c in stripped if c.isdigit())
    international = stripped.startswith("+") or digits.startswith("00")
    if digits.startswith("00"):
        digits = digits[2:]
    if international and digits.startswith(_CHINA):
        national = digits[2:]
        digits = national if national.startswith("1") else "0" + national.lstrip("0")
    elif international:
        digits = "00" + digits
    elif digits.startswith(_CHINA + "1") and len(digits) == 13:  # a mobile with its country code
        digits = digits[2:]
    return digits[:TERM_LENGTH]


def _people(profile: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    manager = profile.get("account_manager")
    if isinstance(manager, Mapping):
        yield manager
    for group in ("contacts", "escalation_chain"):
        for person in profile.get(group) or ():
            if isinstance(person, Mapping):
                yield person


def search_terms(profile: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Every (kind, term) a customer is found by besides name and id, each once, sorted."""
    if not profile:
        return []
    terms: set[tuple[str, str]] = set()
    for service in profile.get("services") or ():
        circuit = service.get("circuit_id") if isinstance(service, Mapping) else None
        if isinstance(circuit, str) and circuit_term(circuit):
            terms.add((CIRCUIT, circuit_term(circuit)))
    for person in _people(profile):
        phone = person.get("phone")
        if isinstance(phone, str) and len(phone_term(phone)) >= 3:  # "110" is a number; "1" matches all
            terms.add((PHONE, phone_term(phone)))
    return sorted(terms)


def query_terms(q: str) -> list[tuple[str, str]]:
    """The (kind, term) a search text can be, to look up exactly: a circuit id, a phone number."""
    terms = [(CIRCUIT, circuit_term(q))] if circuit_term(q) else []
    phone = phone_term(q)
    # Only text that reads as a phone number: digits and the usual separators.
    if len(phone) >= 3 and all(c.isdigit() or c in "+-() ." for c in q.strip()):
        terms.append((PHONE, phone))
    return terms


def archive_record(
    customer_id: str, profile: Mapping[str, Any] | None, updated_at: str | None
) -> dict[str, Any]:
    """One customer's archive record: id, every profile field (``None`` when never given), last change.

    ``updated_at``: the event time (ISO, UTC) of the latest customer event folded.
    """
    profile = profile or {}
    record: dict[str, Any] = {"customer_id": customer_id}
    for name in RECORD_FIELDS:
        value = profile.get(name)
        record[name] = [] if value is None and name in ("escalation_chain", "contacts", "services") else value
    record["updated_at"] = updated_at
    return record


def latest_stamp(stamps: Mapping[str, str]) -> str | None:
    """The event time of the latest profile change, from the view's per-field stamps (``time|event_id``)."""
    times = [stamp.partition("|")[0] for stamp in stamps.values()]
    return max(times) if times else None
