"""The result objects of an evaluation: plain, immutable, JSON-able.

``MetricStatus`` (one clock), ``Threshold`` (a warning or escalation step)
and ``ItemEvaluation`` (all clocks of an item) are what the stream processor
stores and the one-stop view shows, so each has a ``to_dict()`` with
ISO-8601 instants and seconds.  ``Crossing`` and ``StepSet`` are the steps
an event log leads to (what the SLA timers publish).

Two details exist only for speed, and neither is visible in the values:
a clock's detail (``trace``, ``warnings``, ``escalations``) may be built on
first read (``RenderedOnRead``), and the engine builds these frozen objects
with ``assemble`` instead of their generated ``__init__``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from .instants import iso_instant


def _secs(value: dt.timedelta) -> float:
    return value.total_seconds()


@dataclass(frozen=True)
class Threshold:
    """A warning, the breach or an escalation step, and when it is (or was) due."""

    kind: str  # warning | escalation
    label: str  # "50%" or a role
    at_elapsed: dt.timedelta  # business time elapsed at which it is due
    due_at: dt.datetime | None  # None: not determinable now (paused) or never (clock stopped first)
    reached: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "at_elapsed_seconds": _secs(self.at_elapsed),
            "due_at": iso_instant(self.due_at),
            "reached": self.reached,
        }


class Deferred:
    """A value not built yet: ``render()`` builds it (see ``RenderedOnRead``)."""

    __slots__ = ("render",)

    def __init__(self, render: Callable[[], Any]) -> None:
        self.render = render


class RenderedOnRead:
    """A dataclass field whose value may be given as a ``Deferred``, built on first read.

    Used for a clock's detail: its ``trace`` lines and its ``warnings`` and
    ``escalations`` steps. The stream worker and the deadline index evaluate
    far more often than anyone reads that detail (``explain``, ``to_dict``),
    and building it (ISO instants, pause lines, a Threshold object per step)
    was about a third of an evaluation. The renderer is pure and only reads
    values fixed when the clock was measured, so reading the field always
    gives the same tuple as eager building did: equality, ``repr``,
    ``to_dict``, pickling and ``dataclasses.replace`` see no difference.
    The field keeps no default (``__get__`` on the class raises
    AttributeError, which dataclasses reads as "no default").
    """

    def __set_name__(self, owner: type, name: str) -> None:
        # The value lives in the instance dict under the field's own name: a
        # data descriptor takes precedence over the instance dict on lookup.
        self.slot = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            raise AttributeError(self.slot)
        value = obj.__dict__[self.slot]
        if type(value) is Deferred:
            value = value.render()
            obj.__dict__[self.slot] = value  # rendering is pure: keeping the result is invisible
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        # reached only from the frozen dataclass's own __init__ (object.__setattr__)
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class MetricStatus:
    """The state of one metric's clock at the evaluation instant."""

    metric: str
    cycle: int
    policy_id: str
    policy_version: int
    rule: str
    calendar_id: str
    priority: str
    target: dt.timedelta
    started_at: dt.datetime
    measured_from: dt.datetime
    deadline: dt.datetime | None
    elapsed: dt.timedelta
    remaining: dt.timedelta
    overdue: dt.timedelta
    paused: bool
    pause_reason: str | None
    pause_detail: str | None
    state: str  # pending | met | breached | cancelled
    met_at: dt.datetime | None
    breached_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    paused_by_reason: Mapping[str, dt.timedelta]
    warnings: tuple[Threshold, ...] = RenderedOnRead()  # type: ignore[assignment]
    escalations: tuple[Threshold, ...] = RenderedOnRead()  # type: ignore[assignment]
    # (mypy takes the RenderedOnRead fields above for defaults; they have none: see its docstring)
    next_change_at: dt.datetime | None  # type: ignore[misc]
    previous_cycles: tuple[MetricStatus, ...]  # type: ignore[misc]
    trace: tuple[str, ...] = RenderedOnRead()  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and copy rendered values, never their renderers."""
        self.warnings, self.escalations, self.trace  # noqa: B018  (renders and stores them)
        return self.__dict__

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "cycle": self.cycle,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "rule": self.rule,
            "calendar_id": self.calendar_id,
            "priority": self.priority,
            "target_seconds": _secs(self.target),
            "started_at": iso_instant(self.started_at),
            "measured_from": iso_instant(self.measured_from),
            "deadline": iso_instant(self.deadline),
            "elapsed_seconds": _secs(self.elapsed),
            "remaining_seconds": _secs(self.remaining),
            "overdue_seconds": _secs(self.overdue),
            "paused": self.paused,
            "pause_reason": self.pause_reason,
            "pause_detail": self.pause_detail,
            "state": self.state,
            "met_at": iso_instant(self.met_at),
            "breached_at": iso_instant(self.breached_at),
            "cancelled_at": iso_instant(self.cancelled_at),
            "paused_seconds_by_reason": {k: _secs(v) for k, v in sorted(self.paused_by_reason.items())},
            "warnings": [w.to_dict() for w in self.warnings],
            "escalations": [e.to_dict() for e in self.escalations],
            "next_change_at": iso_instant(self.next_change_at),
            "previous_cycles": [c.to_dict() for c in self.previous_cycles],
            "trace": list(self.trace),
        }


@dataclass(frozen=True)
class ItemEvaluation:
    """All clocks of one item at one instant."""

    at: dt.datetime
    customer_id: str
    entity_id: str | None
    kind: str
    priority: str | None
    rules_version: str
    metrics: Mapping[str, MetricStatus]
    next_change_at: dt.datetime | None
    match_trace: tuple[str, ...]
    notes: tuple[str, ...]
    voided: tuple[MetricStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso_instant(self.at),
            "customer_id": self.customer_id,
            "entity_id": self.entity_id,
            "kind": self.kind,
            "priority": self.priority,
            "rules_version": self.rules_version,
            "metrics": {name: status.to_dict() for name, status in self.metrics.items()},
            "next_change_at": iso_instant(self.next_change_at),
            "match_trace": list(self.match_trace),
            "notes": list(self.notes),
            "voided": [v.to_dict() for v in self.voided],
        }


@dataclass(frozen=True, slots=True)
class Crossing:
    """One step of one clock cycle in event time: a threshold crossed, or the clock met.

    ``step`` names it within its (metric, cycle): ``warning:50%``, ``breach``,
    ``step:2`` (the second ladder step), ``met``; the SLA step event's id is
    derived from these three, so a step is one event however often it is
    computed.  The other fields are what was in force in the window of the
    event log that first produced it (``evaluation.step_set``): the cycle's
    priority, target and policy version.  ``caused_by`` is the event that set
    the instant it was due at; ``detected_at`` is set only when that instant
    was already past when the event happened (a priority raised past the
    deadline): the step was only known then.
    """

    metric: str
    cycle: int
    step: str
    kind: str  # warning | breach | escalation | met
    label: str | None  # warning "50%" or ladder role
    number: int | None  # ladder step, 1 = first
    due_at: dt.datetime
    deadline: dt.datetime | None
    priority: str
    target: dt.timedelta
    policy_id: str
    policy_version: int
    caused_by: str | None = None
    detected_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class StepSet:
    """The steps an item's event log leads to by an instant (``evaluation.step_set``).

    ``crossed``: every step due by then, each from the first window that had
    it.  ``next_at``: when the next one may be due, ``None`` when only an
    event can change anything.
    """

    crossed: tuple[Crossing, ...]
    next_at: dt.datetime | None
    rules_version: str


T = TypeVar("T")
_FIELD_COUNTS: dict[type, int] = {}


def assemble(cls: type[T], **values: Any) -> T:
    """A frozen result object from its field values, without the generated ``__init__``.

    A frozen dataclass's ``__init__`` sets every field through
    ``object.__setattr__``; for the ~25 objects of one evaluation that was a
    sixth of its cost. Filling the instance dict gives the same object (equal,
    same repr and ``to_dict``; tests compare the two). Every field must be
    given, by name.
    """
    count = _FIELD_COUNTS.get(cls)
    if count is None:
        count = _FIELD_COUNTS[cls] = len(fields(cls))  # type: ignore[arg-type]
    if len(values) != count:
        raise TypeError(f"{cls.__name__} needs all {count} fields by name, got {sorted(values)}")
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj
