"""The SLA compliance report, computed in SQL from the reporting database.

Every figure is defined in ``docs/compliance_reports.md``; this module is the
SQL reading of those definitions.  Aggregation happens in the database (GROUP
BY with CASE, COUNT and SUM) so that a year of a million closed items on
PostgreSQL is a handful of scans, not a million rows shipped to Python.  Only
portable SQLAlchemy Core constructs are used, so the same queries run on the
SQLite file of a fresh clone: week boundaries, for example, are computed here
in the report's time zone (DST included) and compared as plain instants,
instead of relying on a dialect's date functions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Engine, and_, case, func, or_, select, text

from handlers.api.input_limits import MAX_REPORT_DAYS
from handlers.identity.roles import ReportScope
from handlers.reports.arguments import parse_group_by
from handlers.reports.model import Breach, ComplianceReport, Figures, Step, Week
from schemas.reporting_tables import Customer, Item, SlaOutcome, SlaPausedTime, SlaStep

_DIMENSION_COLUMNS = {
    "tier": Item.tier,
    "customer": Item.customer_id,
    "priority": Item.priority,
    "kind": Item.kind,
    "region": Item.region,
    "account_manager": Item.account_manager_id,
    "policy": Item.policy,
}
FAMILIES = ("response", "repair", "provision")
#: The clock families of the SQL pass: ``repair`` is kept apart per kind there, so
#: that the report knows which of its labels apply, and added up in :func:`_rollup`.
_SQL_FAMILIES = {
    "response": "response",
    "restore": "repair",
    "resolve": "repair",
    "provision": "provision",
    "revisit": "revisit",
    "other": "other",
}
MTTR_BUCKETS = (
    ("0-1h", 3600),
    ("1-2h", 7200),
    ("2-4h", 14400),
    ("4-8h", 28800),
    ("8-24h", 86400),
    ("1-3d", 259200),
    (">3d", None),
)
NO_VALUE = "-"  # the group of items without a region, account manager, ...
REPORT_WORK_MEM = "64MB"  # PostgreSQL memory per sort/hash of a report's queries


# -- the report --------------------------------------------------------------------------


def compliance_report(
    engine: Engine,
    *,
    period_start: datetime,
    period_end: datetime,
    as_of: datetime,
    group_by: Sequence[str] = (),
    zone: ZoneInfo,
    breach_limit: int | None = None,
    customer_id: str | None = None,
    customers: ReportScope | None = None,
) -> ComplianceReport:
    """The report of items opened in ``[period_start, period_end)``, true at ``as_of``.

    ``customer_id``: of that customer's items only (the customer page's figures of the month).

    ``breach_limit``: list at most that many breaches, earliest deadline first
    (the counts in the figures are always complete).  A period longer than
    :data:`~handlers.api.input_limits.MAX_REPORT_DAYS` is a ``ValueError``.
    ``customers``: count only the items of these customers (a manager's own,
    ``roles.report_scope``); every figure, group and breach is of them alone.
    """
    dims = parse_group_by(group_by)
    for name, value in (("period_start", period_start), ("period_end", period_end), ("as_of", as_of)):
        if value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime")
    if period_end - period_start > timedelta(days=MAX_REPORT_DAYS + 1):  # +1: a DST hour
        # One CASE branch per week: from year 1000 that was 53,583 of them and 0.8 GB.
        raise ValueError(f"a report covers at most {MAX_REPORT_DAYS} days")
    weeks = week_starts(period_start, period_end, zone)
    keys = {f"k{i}": _dimension(d) for i, d in enumerate(dims)}
    with _snapshot(engine) as connection:
        scope = _Scope(period_start, period_end, as_of, _customers_of(connection, customers, customer_id))
        items = _item_sums(connection, scope, keys, weeks)
        clocks, spread = _clock_sums(connection, scope, keys, weeks, with_spread="customer" not in dims)
        if spread is None:
            spread = _clock_spread(connection, scope)
        paused = _paused_sums(connection, scope, keys)
        breaches = _breaches(connection, scope, breach_limit)
    by_group = _rollup(items, clocks, paused, lambda key: key[: len(dims)])
    by_week = _rollup(items, clocks, {}, lambda key: key[len(dims) : len(dims) + 1])
    total = _rollup(items, clocks, paused, lambda key: ())
    groups = by_group if dims else {(): total.get((), Figures())}
    return ComplianceReport(
        period_start=period_start,
        period_end=period_end,
        as_of=as_of,
        group_by=dims,
        zone=zone,
        groups=[(dict(zip(dims, key)), groups[key]) for key in sorted(groups)],
        total=total.get((), Figures()),
        breaches=breaches,
        weekly_trend=[_week(weeks[i], figures) for (i,), figures in sorted(by_week.items())],
        breaches_by_tier=_breaches_by_tier(spread),
        mttr_distribution=_mttr_distribution(spread),
        repair_kinds=_repair_kinds(clocks),
    )


def _snapshot(engine: Engine) -> Connection:
    """A connection whose queries all see one snapshot on PostgreSQL.

    The sink writes while reports are read; under the default READ COMMITTED
    the total, the groups and the breach list could each see a different
    moment and disagree.  (SQLite's driver reads outside a transaction, each
    query seeing the latest commit; a fresh clone's SQLite is single-user.)
    """
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        if REPORT_WORK_MEM:
            # For this transaction only: the clock aggregate hashes a million items'
            # clocks; at PostgreSQL's default 4 MB it spills to disk (BENCHMARKS.md).
            connection.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    return connection


@dataclass(frozen=True)
class _Scope:
    """What every query of one report shares: the opening period, the as-of instant, the customers."""

    start: datetime
    end: datetime
    as_of: datetime
    #: only items of these customers (``None``: every customer's)
    customers: ColumnElement[bool] | None = None

    def items(self):
        """The report's population: items opened in the period (of the customers in scope)."""
        opened = and_(Item.opened_at >= self.start, Item.opened_at < self.end)
        return opened if self.customers is None else and_(opened, self.customers)


def _customers_of(
    connection: Connection, scope: ReportScope | None, customer_id: str | None = None
) -> ColumnElement[bool] | None:
    """``Item.customer_id`` among the customers of ``scope``, by their rows in ``customers``
    (and ``customer_id``'s, if given: the customer page's figures).

    The rule of ``roles.may_for_customer`` for a manager: account manager,
    region (in SQL) or a step of the escalation chain (in the profile's JSON, read
    here: a dialect-neutral JSON query would be a second reading of the chain).
    """
    one = None if customer_id is None else Item.customer_id == customer_id
    if scope is None:
        return one
    named = [Customer.account_manager_id == scope.staff]
    if scope.region:
        named.append(Customer.region == scope.region)
    in_chain = [
        customer_id
        for customer_id, profile in connection.execute(select(Customer.customer_id, Customer.profile))
        if any(
            isinstance(step, dict) and str(step.get("id") or "") == scope.staff
            for step in (profile or {}).get("escalation_chain") or ()
        )
    ]
    if in_chain:
        named.append(Customer.customer_id.in_(in_chain))
    in_scope = Item.customer_id.in_(select(Customer.customer_id).where(or_(*named)))
    return in_scope if one is None else and_(one, in_scope)


def _dimension(name: str):
    return func.coalesce(_DIMENSION_COLUMNS[name], NO_VALUE)


def week_starts(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """Local Mondays 00:00 of every week that overlaps ``[start, end)`` (the CASE's edges).

    Computed on local dates and then placed in ``zone``, so a week that crosses
    a DST change still starts at local midnight (it is 167 or 169 hours long).
    """
    local = start.astimezone(zone).date()
    first = local - timedelta(days=local.weekday())
    starts = [datetime.combine(first, time(), tzinfo=zone)]
    while (monday := datetime.combine(first + timedelta(weeks=len(starts)), time(), tzinfo=zone)) < end:
        starts.append(monday)
    return starts


def _week_index(weeks: list[datetime]):
    """The number of the week an item was opened in (latest matching Monday wins)."""
    return case(*[(Item.opened_at >= monday, i) for i, monday in reversed(list(enumerate(weeks)))])


def _week(start: datetime, figures: Figures) -> Week:
    return Week(
        start.date(),
        figures.items,
        figures.response_met_pct,
        figures.repair_met_pct,
        figures.provision_met_pct,
    )


def _clock_family():
    """Which figure a clock counts in (``_SQL_FAMILIES``): response, repair (a fault's
    restore, a ticket's resolve), provision, revisit, or other."""
    kind, metric = SlaOutcome.item_kind, SlaOutcome.metric
    return case(
        (and_(metric == "response", kind.in_(("fault", "ticket"))), "response"),
        (and_(kind == "fault", metric == "restore"), "restore"),
        (and_(kind == "ticket", metric == "resolve"), "resolve"),
        (and_(kind == "order", metric == "provision"), "provision"),
        (metric == "revisit", "revisit"),
        else_="other",
    )


def _repair_kinds(clocks: list) -> tuple[str, ...]:
    """The kinds with a counted restore (faults) or resolve (tickets) clock in the period."""
    seen = {key[-2] for key, _ in clocks}
    return tuple(kind for kind, family in (("fault", "restore"), ("ticket", "resolve")) if family in seen)


def _overdue(as_of: datetime):
    """Pending, running and past its deadline: counts as breached (docs: "As of")."""
    return and_(SlaOutcome.state == "pending", SlaOutcome.paused.is_(False), SlaOutcome.deadline < as_of)


def _clock_outcome(as_of: datetime):
    return case(
        (SlaOutcome.state == "met", "met"),
        (or_(SlaOutcome.state == "breached", _overdue(as_of)), "breached"),
        else_="open",
    )


def _counted_clocks():
    """Clocks of the items in scope; cancelled clocks count nowhere."""
    return and_(
        SlaOutcome.customer_id == Item.customer_id,
        SlaOutcome.item_kind == Item.kind,
        SlaOutcome.item_id == Item.item_id,
        SlaOutcome.state != "cancelled",
    )


def _int(total) -> int:
    """A SQL SUM as an int: NULL over no rows, Decimal on PostgreSQL."""
    return int(total or 0)


def _ratio(part, whole, scale: float = 1.0) -> float | None:
    """``scale × part / whole``; a percentage or mean over nothing is null, not 0."""
    return None if not whole else scale * float(part) / int(whole)


# One pass per table: every sum is taken at the finest grain the report needs
# (its dimensions and the week; for clocks also family and outcome) and the
# total, the groups and the weekly trend are added up from those rows in
# Python.  Every figure is a count or a sum, so nothing is lost.  Breaches by
# tier and the MTTR distribution come from the same pass, or from a coarse one
# of their own when the report is grouped by customer (_clock_sums).


def _item_sums(connection: Connection, scope: _Scope, keys: dict, weeks: list[datetime]) -> dict[tuple, dict]:
    closed = and_(Item.closed, ~and_(Item.kind == "order", func.coalesce(Item.state, "") == "cancelled"))
    rows = (
        select(
            *[expr.label(name) for name, expr in keys.items()],
            _week_index(weeks).label("week"),
            case((closed, 1), else_=0).label("closed"),
            case((and_(closed, Item.revisit_count > 0), 1), else_=0).label("revisited"),
            Item.last_satisfaction.label("satisfaction"),
        )
        .where(scope.items())
        .subquery()
    )
    key_columns = [*(rows.c[name] for name in keys), rows.c.week]
    query = select(
        *key_columns,
        func.count().label("items"),
        func.sum(rows.c.closed).label("closed"),
        func.sum(rows.c.revisited).label("revisited"),
        func.sum(rows.c.satisfaction).label("satisfaction_sum"),
        func.count(rows.c.satisfaction).label("satisfaction_n"),
    ).group_by(*key_columns)
    return _split(connection, query, len(key_columns))


def _clock_sums(
    connection: Connection, scope: _Scope, keys: dict, weeks: list[datetime], with_spread: bool
) -> tuple[list, list | None]:
    """Per (keys, week, family, outcome): clocks, stopped clocks and their time-to-met sums.

    ``with_spread``: the same pass also keys by tier and MTTR bucket and returns
    the spread (see :func:`_clock_spread`) too; worth it unless the keys are many
    already (by customer, it multiplied the rows shipped to Python several times).
    """
    spread_keys = [_dimension("tier").label("tier"), _mttr_bucket().label("bucket")] if with_spread else []
    rows = (
        select(
            *[expr.label(name) for name, expr in keys.items()],
            _week_index(weeks).label("week"),
            _clock_family().label("family"),
            _clock_outcome(scope.as_of).label("outcome"),
            *spread_keys,
            SlaOutcome.business_seconds,
            SlaOutcome.calendar_seconds,
            SlaOutcome.met_at,
        )
        .select_from(Item)
        .join(SlaOutcome, _counted_clocks())
        .where(scope.items())
        .subquery()
    )
    width = len(keys) + 3  # the keys, week, family, outcome
    key_columns = [
        *(rows.c[name] for name in keys),
        rows.c.week,
        rows.c.family,
        rows.c.outcome,
        *(rows.c[c.name] for c in spread_keys),
    ]
    stopped = rows.c.met_at.is_not(None)
    query = select(
        *key_columns,
        func.count().label("clocks"),
        func.count(case((stopped, 1))).label("stopped"),
        func.sum(case((stopped, rows.c.business_seconds))).label("business_sum"),
        func.sum(case((stopped, rows.c.calendar_seconds))).label("calendar_sum"),
        func.count(case((stopped, rows.c.calendar_seconds))).label("calendar_n"),
    ).group_by(*key_columns)
    sums = _split(connection, query, len(key_columns))
    if not with_spread:
        return sums, None
    merged: dict[tuple, list[float]] = {}
    spread: Counter = Counter()
    for key, numbers in sums:
        target = merged.setdefault(key[:width], [0.0] * len(numbers))
        for i, value in enumerate(numbers):
            target[i] += value
        family, outcome, tier, bucket = key[width - 2 :]
        spread[(tier, family, outcome, bucket)] += numbers[0]
    return (
        [(key, tuple(numbers)) for key, numbers in merged.items()],
        [(key, (clocks,)) for key, clocks in spread.items()],
    )


def _mttr_bucket():
    """The MTTR distribution's bucket of a stopped clock's business time; -1 if running."""
    seconds = SlaOutcome.business_seconds
    bucket = case(
        *[(seconds < limit, i) for i, (_, limit) in enumerate(MTTR_BUCKETS) if limit],
        else_=len(MTTR_BUCKETS) - 1,
    )
    return case((SlaOutcome.met_at.is_not(None), bucket), else_=-1)


def _clock_spread(connection: Connection, scope: _Scope) -> list[tuple[tuple, tuple]]:
    """Per (tier, family, outcome, MTTR bucket), the whole period: breaches by tier, MTTR."""
    rows = (
        select(
            _dimension("tier").label("tier"),
            _clock_family().label("family"),
            _clock_outcome(scope.as_of).label("outcome"),
            _mttr_bucket().label("bucket"),
        )
        .select_from(Item)
        .join(SlaOutcome, _counted_clocks())
        .where(scope.items())
        .subquery()
    )
    key_columns = [rows.c.tier, rows.c.family, rows.c.outcome, rows.c.bucket]
    return _split(connection, select(*key_columns, func.count()).group_by(*key_columns), 4)


def _paused_sums(connection: Connection, scope: _Scope, keys: dict) -> dict[tuple, dict]:
    """Paused seconds per (keys, reason) over restore (faults), resolve (tickets), provision."""
    pause_metric = or_(
        and_(Item.kind == "fault", SlaPausedTime.metric == "restore"),
        and_(Item.kind == "ticket", SlaPausedTime.metric == "resolve"),
        and_(Item.kind == "order", SlaPausedTime.metric == "provision"),
    )
    rows = (
        select(
            *[expr.label(name) for name, expr in keys.items()],
            SlaPausedTime.reason,
            SlaPausedTime.seconds,
        )
        .select_from(Item)
        .join(SlaOutcome, _counted_clocks())
        .join(
            SlaPausedTime,
            and_(
                SlaPausedTime.customer_id == SlaOutcome.customer_id,
                SlaPausedTime.item_kind == SlaOutcome.item_kind,
                SlaPausedTime.item_id == SlaOutcome.item_id,
                SlaPausedTime.metric == SlaOutcome.metric,
                SlaPausedTime.cycle == SlaOutcome.cycle,
            ),
        )
        .where(scope.items(), pause_metric)
        .subquery()
    )
    key_columns = [rows.c[name] for name in keys]
    query = select(*key_columns, rows.c.reason, func.sum(rows.c.seconds).label("seconds")).group_by(
        *key_columns, rows.c.reason
    )
    paused: dict[tuple, dict] = defaultdict(dict)
    for *key, reason, total in connection.execute(query):
        paused[(*key, None)][reason] = float(total)  # None: no week, see _rollup
    return paused


def _split(connection: Connection, query, width: int) -> list[tuple[tuple, tuple]]:
    """(key, numbers) per result row; plain tuples, as a grouping by customer has many."""
    return [(row[:width], tuple(float(v or 0) for v in row[width:])) for row in connection.execute(query)]


_ITEM_SUMS = ("items", "closed", "revisited", "satisfaction_sum", "satisfaction_n")


def _rollup(items: list, clocks: list, paused: dict, project) -> dict[tuple, Figures]:
    """Figures per ``project(key)`` of the fine-grained sums; keys start (dims..., week)."""
    item_sums: dict[tuple, list[float]] = {}
    for key, numbers in items:
        target = item_sums.setdefault(project(key), [0.0] * len(numbers))
        for i, value in enumerate(numbers):
            target[i] += value
    clock_sums: dict[tuple, Counter] = defaultdict(Counter)
    for key, (clocks_n, stopped, business_sum, calendar_sum, calendar_n) in clocks:
        family, outcome = _SQL_FAMILIES[key[-2]], key[-1]
        target = clock_sums[project(key[:-2])]  # drop family and outcome
        target[f"{family}_{outcome}"] += clocks_n
        if outcome == "breached":
            target["breaches"] += clocks_n
        if family in ("response", "repair"):
            name = "mtta" if family == "response" else "mttr"
            target[f"{name}_n"] += stopped
            target[f"{name}_business_sum"] += business_sum
            target[f"{name}_calendar_sum"] += calendar_sum
            target[f"{name}_calendar_n"] += calendar_n
    paused_sums: dict[tuple, Counter] = defaultdict(Counter)
    for key, reasons in paused.items():
        paused_sums[project(key)].update(reasons)
    return {
        key: _figures(
            Counter(dict(zip(_ITEM_SUMS, sums))), clock_sums.get(key, Counter()), paused_sums.get(key, {})
        )
        for key, sums in item_sums.items()
    }


def _figures(items: Counter, clocks: Counter, paused: dict[str, float]) -> Figures:
    counts: dict = {}
    for family in FAMILIES:
        met, breached = int(clocks[f"{family}_met"]), int(clocks[f"{family}_breached"])
        open_ = int(clocks[f"{family}_open"])
        counts |= {
            f"{family}_met": met,
            f"{family}_breached": breached,
            f"{family}_open": open_,
            f"{family}_met_pct": _ratio(met, met + breached, 100.0),
            f"{family}_measured": met + breached + open_ > 0,
        }
    # The revisit rate is over items, but it is measured only where a policy promises
    # a revisit: with no revisit clock in the group it is "not measured", not 0 %.
    revisit_measured = any(clocks[f"revisit_{outcome}"] for outcome in ("met", "breached", "open"))
    for name in ("mtta", "mttr"):
        counts[f"{name}_business_s"] = _ratio(clocks[f"{name}_business_sum"], clocks[f"{name}_n"])
        counts[f"{name}_calendar_s"] = _ratio(clocks[f"{name}_calendar_sum"], clocks[f"{name}_calendar_n"])
    return Figures(
        items=int(items["items"]),
        closed=int(items["closed"]),
        paused_s=dict(sorted(paused.items())),
        breaches=int(clocks["breaches"]),
        revisit_rate_pct=_ratio(items["revisited"], items["closed"], 100.0) if revisit_measured else None,
        revisit_measured=revisit_measured,
        avg_satisfaction=_ratio(items["satisfaction_sum"], items["satisfaction_n"]),
        **counts,
    )


def _breaches_by_tier(spread: list) -> dict[str, int]:
    """Breached clocks of any metric per tier (complete, whatever the breach list shows)."""
    by_tier: Counter = Counter()
    for (tier, _family, outcome, _bucket), (clocks,) in spread:
        if outcome == "breached":
            by_tier[tier] += int(clocks)
    return dict(sorted(by_tier.items()))


def _mttr_distribution(spread: list) -> list[tuple[str, int]]:
    """Restore/resolve clocks with a ``met_at``, counted by business time to restore."""
    counts: Counter = Counter()
    for (_tier, family, _outcome, bucket), (clocks,) in spread:
        if _SQL_FAMILIES[family] == "repair" and bucket != -1:
            counts[int(bucket)] += int(clocks)
    return [(name, counts[i]) for i, (name, _) in enumerate(MTTR_BUCKETS)]


def _breaches(connection: Connection, scope: _Scope, limit: int | None) -> list[Breach]:
    """The breached clocks of the items in scope, overdue ones included, with their steps.

    With a ``limit``, the first that many by deadline: at a million items the full
    list (hundreds of thousands of clocks and their steps) was most of the time.
    """
    breached = or_(SlaOutcome.state == "breached", _overdue(scope.as_of))
    clocks = (
        select(
            SlaOutcome.customer_id,
            SlaOutcome.item_kind,
            SlaOutcome.item_id,
            SlaOutcome.metric,
            SlaOutcome.cycle,
            _dimension("tier").label("tier"),
            _dimension("priority").label("priority"),
            SlaOutcome.deadline,
            SlaOutcome.met_at,
            (SlaOutcome.state == "pending").label("overdue"),
        )
        .select_from(Item)
        .join(SlaOutcome, _counted_clocks())
        .where(scope.items(), breached)
    )
    if limit is not None:
        clocks = clocks.order_by(
            SlaOutcome.deadline.asc().nulls_first(),
            SlaOutcome.customer_id,
            SlaOutcome.item_kind,
            SlaOutcome.item_id,
            SlaOutcome.metric,
            SlaOutcome.cycle,
        ).limit(limit)
    steps = _steps_of(connection, clocks.subquery())
    found = [
        Breach(**{**row._mapping, "overdue": bool(row.overdue)}, steps=tuple(steps.get(tuple(row[:5]), ())))
        for row in connection.execute(clocks)
    ]
    undated = datetime.min.replace(tzinfo=UTC)  # none in practice; first, like the oracle
    return sorted(
        found, key=lambda b: (b.deadline or undated, b.customer_id, b.item_kind, b.item_id, b.metric, b.cycle)
    )


def _steps_of(connection: Connection, clocks) -> dict[tuple, list[Step]]:
    query = (
        select(
            SlaStep.customer_id,
            SlaStep.item_kind,
            SlaStep.item_id,
            SlaStep.metric,
            SlaStep.cycle,
            SlaStep.event_type,
            SlaStep.occurred_at,
            SlaStep.step,
            SlaStep.role,
            SlaStep.threshold,
            SlaStep.actor,
            SlaStep.note,
        )
        .join(
            clocks,
            and_(
                clocks.c.customer_id == SlaStep.customer_id,
                clocks.c.item_kind == SlaStep.item_kind,
                clocks.c.item_id == SlaStep.item_id,
                clocks.c.metric == SlaStep.metric,
                clocks.c.cycle == SlaStep.cycle,
            ),
        )
        .order_by(SlaStep.occurred_at, SlaStep.event_id)
    )
    steps: dict[tuple, list[Step]] = defaultdict(list)
    for row in connection.execute(query):
        steps[tuple(row[:5])].append(Step(*row[5:]))
    return steps
