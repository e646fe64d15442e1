"""The one order of an item's events, used by the view's fold, the SLA engine and the SQL projection.

Pure, no faust, no I/O.  Why one place: the view once sorted an item's history
by (occurred_at, recorded_at, event_id) while the SLA engine broke ties by a
fixed precedence, so events sharing an instant were ordered two ways.  Source
systems record to the minute, and an importer or an alarm system sends
``recorded_at = occurred_at``: ties are common, and ordering them by a random
event id rejected an acknowledgement in half of all tries.

The order, for the events of one item:

1. by ``occurred_at``;
2. among events at the same instant, the lifecycle's causal order
   (``streams/lifecycles.py``): of all the orders of those events, only the
   ones in which the lifecycle accepts the most of them.  So an item is opened
   before anything else happens to it, acknowledged before it is dispatched,
   resolved before it is closed, closed before its revisit, restored before it
   is reopened and reopened before it is worked on again.  The transition
   tables *are* this precedence; there is no second table to drift from them;
3. of those orders, the one whose accepted events come earliest by
   ``recorded_at``, then by where the source put them (see below), compared
   event by event.  When the source's own order is one the lifecycle accepts
   it is therefore kept exactly, whatever the event types;
4. the events the lifecycle cannot accept at that instant in any order come
   last among that instant's events, by ``recorded_at``, then the source order.

The source order is a record's ``position``: the offset on its customer's
partition (the view), ``(partition, offset)`` in the reporting database, the
line number in a replayed file.  A record without one (stored before positions
were kept, or folded from a list) uses its ``arrival`` index, the order the
fold saw it in, and comes before any record with a position.  A record
without either uses its index in the sequence given.  Never an event id: the
outcome depends on what happened and on the source, not on a random number.

Only the state the lifecycle is in matters, so the cost stays small: one pass
when the source order is accepted (almost always), otherwise a search over the
tied events grouped by what they do to the state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar

from streams import lifecycles
from streams.lifecycles import NEW, Accepted, Rejected

Record = Mapping[str, Any]
#: the records' own type: what goes in comes out (the view gives its dicts, to mutate them)
R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True)
class Placed(Generic[R]):
    """A record at its place in the order, and what the lifecycle made of it there."""

    record: R
    outcome: Accepted | Rejected


@lru_cache(maxsize=1 << 16)
def _parsed(text: str) -> datetime:
    return datetime.fromisoformat(text)


def instant(value: str | datetime) -> datetime:
    """An instant given as an aware datetime or as ISO-8601 text."""
    return _parsed(value) if isinstance(value, str) else value


def source_key(record: Record, index: int = 0) -> tuple[datetime, tuple[Any, ...]]:
    """Where the source put ``record``: its ``recorded_at``, then its position.

    ``index`` is the record's place in the sequence given, for records that
    carry neither a ``position`` nor an ``arrival`` index.
    """
    recorded = record.get("recorded_at") or record["occurred_at"]
    position = record.get("position")
    if position is None:
        where: tuple[Any, ...] = (0, record.get("arrival", index))
    elif isinstance(position, (tuple, list)):
        where = (1, *position)
    else:
        where = (1, position)
    return instant(recorded), where


def item_kind(records: Iterable[Record]) -> str:
    """The item kind of a history, from its event types (``fault.closed`` -> ``fault``)."""
    for record in records:
        return str(record["event_type"]).partition(".")[0]
    return ""


def causal_order(kind: str, records: Iterable[R], state: str | None = NEW) -> list[Placed[R]]:
    """``records`` (one item's, each event once) in the one order, with each one's outcome.

    ``state`` is the item's state before the first record (new, by default).
    Records of a kind without a lifecycle keep (instant, source) order, all rejected.
    """
    groups = _instants(records)
    if kind not in lifecycles.TRANSITIONS:
        return [Placed(r, Rejected(f"{kind!r} items have no lifecycle")) for g in groups for r in g]
    placed: list[Placed[R]] = []
    for group in groups:
        state = _place_group(kind, state, group, placed)
    return placed


def in_order(kind: str, records: Iterable[R]) -> list[R]:
    """``records`` in the one order, without their outcomes (what the SLA engine needs).

    With no two records at one instant the order is event time alone, and the
    lifecycle need not be asked (the usual case: this runs for every clock
    evaluation).
    """
    groups = _instants(records)
    if all(len(group) == 1 for group in groups):
        return [group[0] for group in groups]
    return [p.record for p in causal_order(kind, [r for group in groups for r in group])]


def _instants(records: Iterable[R]) -> list[list[R]]:
    """The records grouped by instant, in event time; each group in source order."""
    keyed = sorted(((instant(r["occurred_at"]), n, r) for n, r in enumerate(records)), key=lambda k: k[:2])
    groups: list[list[tuple[int, R]]] = []
    last = None
    for at, n, record in keyed:
        if groups and at == last:
            groups[-1].append((n, record))
        else:
            groups.append([(n, record)])
            last = at
    return [
        [r for _, r in group]
        if len(group) == 1
        else [r for _, r in sorted(group, key=lambda g: (source_key(g[1], g[0]), g[0]))]
        for group in groups
    ]


def _move(kind: str, state: str | None, record: Record) -> Accepted | Rejected:
    # Looked up on the module each time: one lifecycle, wherever it is read from.
    return lifecycles.transition(kind, state, str(record["event_type"]), record.get("payload") or {})


def _place_group(kind: str, state: str | None, group: list[R], placed: list[Placed[R]]) -> str | None:
    """Place one instant's records (in source order) after ``placed``; the state after them."""
    fast: list[Placed[R]] = []
    current = state
    for record in group:
        outcome = _move(kind, current, record)
        if isinstance(outcome, Rejected):
            break
        fast.append(Placed(record, outcome))
        current = outcome.state
    else:
        placed.extend(fast)  # the source's order is one the lifecycle accepts: keep it
        return current
    return _search_group(kind, state, group, placed)


def _signature(record: Record) -> tuple[str, bool]:
    """What a record can do to a lifecycle state: its type (and for a status, pending or not)."""
    payload = record.get("payload") or {}
    return str(record["event_type"]), str(payload.get("status") or "").startswith("pending")


def _search_group(kind: str, state: str | None, group: Sequence[R], placed: list[Placed[R]]) -> str | None:
    """The most accepted events, earliest by source order among equals (see the module doc).

    Records with the same signature are interchangeable for the count, so the
    search runs over (state, how many of each signature remain): a handful of
    lifecycle states times a small product of counts.
    """
    signatures: list[tuple[str, bool]] = []
    of: list[int] = []
    for record in group:
        signature = _signature(record)
        if signature not in signatures:
            signatures.append(signature)
        of.append(signatures.index(signature))
    example = {signatures.index(_signature(r)): r for r in reversed(group)}
    moves: dict[tuple[str | None, int], Accepted | Rejected] = {}
    most: dict[tuple[str | None, tuple[int, ...]], int] = {}

    def move(at: str | None, j: int) -> Accepted | Rejected:
        if (at, j) not in moves:
            moves[(at, j)] = _move(kind, at, example[j])
        return moves[(at, j)]

    def best(at: str | None, counts: tuple[int, ...]) -> int:
        """How many of the remaining records the lifecycle can accept from ``at``, at most."""
        key = (at, counts)
        if key not in most:
            result, total = 0, sum(counts)
            for j, count in enumerate(counts):
                if not count:
                    continue
                outcome = move(at, j)
                if isinstance(outcome, Accepted):
                    rest = counts[:j] + (count - 1,) + counts[j + 1 :]
                    result = max(result, 1 + best(outcome.state, rest))
                    if result == total:
                        break
            most[key] = result
        return most[key]

    remaining = list(range(len(group)))
    counts = [0] * len(signatures)
    for j in of:
        counts[j] += 1
    goal = best(state, tuple(counts))
    while goal:
        for n, i in enumerate(remaining):  # noqa: B007 (n is read after the loop: the move taken)
            j = of[i]
            outcome = move(state, j)
            if not isinstance(outcome, Accepted):
                continue
            counts[j] -= 1
            if 1 + best(outcome.state, tuple(counts)) == goal:
                break
            counts[j] += 1
        assert isinstance(outcome, Accepted)  # best() counted a move that keeps the goal: it was found
        del remaining[n]
        placed.append(Placed(group[i], outcome))
        state, goal = outcome.state, goal - 1
    for i in remaining:  # none of these can happen at this instant, in any order
        outcome = _move(kind, state, group[i])
        placed.append(Placed(group[i], outcome))
        if isinstance(outcome, Accepted):  # only if the lifecycle changed under us
            state = outcome.state
    return state


__all__ = ["Placed", "causal_order", "in_order", "instant", "item_kind", "source_key"]
