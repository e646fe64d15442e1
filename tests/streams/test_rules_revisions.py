"""Every reader of the rules topic ends on the same rules (streams/rules_revisions.py), and a swap
happens between batches (streams/rules_gate.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sla_rules import DEFAULT_RULES_PATH, load_rules
from streams.desk_signature import signature_headers
from streams.rules_gate import RulesGate
from streams.rules_revisions import Revision, decode, fold, from_file

SECRET = b"s" * 32
TEXT = DEFAULT_RULES_PATH.read_text()
AT = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def start():
    return from_file(str(DEFAULT_RULES_PATH), TEXT, load_rules())


def record(revision: Revision, secret: bytes = SECRET) -> tuple[bytes, list]:
    value = revision.encode()
    return value, signature_headers(secret, value)


def test_a_signed_revision_on_the_one_in_force_is_applied_and_round_trips():
    text = TEXT.replace('version = "2026.11-1"', 'version = "2026.12-1"')
    revision = Revision("r-1", 1, 0, text, "admin", AT)
    assert decode(revision.encode()) == revision
    new, outcome, reason = fold(start(), *record(revision), SECRET, offset=7)
    assert (outcome, reason) == ("applied", "")
    assert (new.revision, new.rules.version, new.actor, new.at, new.offset) == (
        1,
        "2026.12-1",
        "admin",
        AT,
        7,
    )
    assert new.describe()["replaced_at"] == "2026-12-01T04:00:00Z"


def test_of_two_replaces_on_one_revision_the_first_in_the_log_wins_everywhere():
    first = Revision("r-a", 1, 0, TEXT.replace("2026.11-1", "A"), "alice", AT)
    second = Revision("r-b", 1, 0, TEXT.replace("2026.11-1", "B"), "bob", AT)
    state = start()
    state, outcome, _ = fold(state, *record(first), SECRET, 0)
    assert outcome == "applied"
    after, outcome, reason = fold(state, *record(second), SECRET, 1)
    assert outcome == "superseded" and after is state and "revision 1 (alice) came first" in reason


def test_unsigned_forged_or_invalid_revisions_change_nothing():
    state = start()
    good = Revision("r-1", 1, 0, TEXT, "admin", AT)
    assert fold(state, good.encode(), None, SECRET, 0)[1:] == ("refused", "not signed with the desk's secret")
    assert fold(state, *record(good, b"x" * 32), SECRET, 0)[1] == "refused"
    broken = Revision("r-2", 1, 0, "schema = 2", "admin", AT)
    after, outcome, reason = fold(state, *record(broken), SECRET, 0)
    assert after is state and outcome == "refused" and reason.startswith("invalid rules:")
    tampered = good.encode().replace(b'"digest":"sha256:', b'"digest":"sha256:0')
    assert "digest" in fold(state, tampered, signature_headers(SECRET, tampered), SECRET, 0)[2]


async def test_a_swap_waits_for_the_batches_under_way_and_holds_new_ones():
    gate = RulesGate()
    order: list[str] = []
    release = asyncio.Event()

    async def batch(name: str, hold: asyncio.Event | None = None) -> None:
        async with gate.batch():
            order.append(f"{name} start")
            if hold is not None:
                await hold.wait()
            order.append(f"{name} end")

    running = asyncio.create_task(batch("first", release))
    await asyncio.sleep(0)  # one turn of the loop (no timed wait): each task runs to its next await
    swapping = asyncio.create_task(gate.swap(lambda: order.append("swap")))
    await asyncio.sleep(0)
    later = asyncio.create_task(batch("later"))
    await asyncio.sleep(0)
    assert order == ["first start"]  # the swap waits for the first, the later batch for the swap
    release.set()
    await asyncio.gather(running, swapping, later)
    assert order == ["first start", "first end", "swap", "later start", "later end"]
