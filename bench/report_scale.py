"""The compliance report on PostgreSQL at one million closed items, against 10,000, in one run.

Fills two fresh databases on a throwaway PostgreSQL server (handlers/local/postgres_server.py)
with the derived rows the sink would have written for a month of closed items
(items, sla_outcomes ~3.3 per item, sla_paused_time, revisits, sla_steps of
breached clocks, customers), generated directly rather than through the SLA
engine: ~5,000 customers over every tier, kind, priority, region and account
manager; met/breached mix by tier and metric; business and calendar seconds by
calendar.  Rows go in through COPY (one stream per table), then ANALYZE.

Then times ``handlers.reports.queries.compliance_report`` for the month at
each grouping, in both databases, and ``SELECT count(*) FROM sla_outcomes`` as
the floor of reading the biggest table once.  The 1M/10k ratio is the figure to
compare across machines (100x the rows).

    .venv/bin/python bench/report_scale.py --items 1000000

``--explain`` also prints EXPLAIN (ANALYZE, BUFFERS) of every statement the
report sends, at the largest size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import handlers.reports.queries as report_module  # noqa: E402
from bench.event_mix import TIER_WEIGHTS, TIERS  # noqa: E402
from handlers.local.postgres_server import LocalPostgres, create_database  # noqa: E402
from handlers.reports.commands import DEFAULT_BREACHES  # noqa: E402
from schemas.reporting_db import open_engine, upgrade  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")
PERIOD = (datetime(2026, 11, 1, tzinfo=ZONE), datetime(2026, 12, 1, tzinfo=ZONE))
AS_OF = datetime(2026, 12, 15, tzinfo=UTC)
GROUPINGS = [(), ("tier",), ("customer",), ("account_manager", "priority")]
EPOCH = int(PERIOD[0].timestamp()) // 60  # instants are whole minutes from here on
AS_OF_MINUTE = int(AS_OF.timestamp()) // 60 - EPOCH

REGIONS = [
    "广东/广州",
    "广东/深圳",
    "广东/佛山",
    "广东/东莞",
    "北京",
    "上海",
    "浙江/杭州",
    "江苏/南京",
    "四川/成都",
    "湖北/武汉",
    "福建/厦门",
    "陕西/西安",
]
MANAGERS = [(f"AM-{n:03d}", f"客户经理{n:03d}") for n in range(60)]
INDUSTRIES = ["finance", "government", "education", "health", "retail", "manufacturing"]
TIER_SCALE = {"diamond": 1, "platinum": 1.5, "gold": 2, "vip": 3, "business": 4, "public": 6}
BREACH_SCALE = {"diamond": 0.5, "platinum": 0.6, "gold": 0.8, "vip": 1, "business": 1.2, "public": 1.5}
ALWAYS_ON = {"diamond", "platinum", "gold"}  # 24x7; the others run on cn-business hours
PRIORITY_SCALE = {"P1": 1, "P2": 2, "P3": 3, "P4": 6, "extra_urgent": 1, "urgent": 2.5, "normal": 5}
# kind -> [(metric, target minutes at scale 1, breach probability at scale 1)], in clock order
METRICS = {
    "fault": [("response", 5, 0.07), ("restore", 120, 0.05), ("resolve", 240, 0.04), ("revisit", 1440, 0.03)],
    "ticket": [("response", 15, 0.07), ("resolve", 240, 0.04), ("revisit", 1440, 0.03)],
    "order": [("provision", 2880, 0.03), ("acceptance", 1440, 0.02), ("revisit", 1440, 0.03)],
}
PAUSES = {
    ("fault", "restore"): (0.08, "pending_third_party"),
    ("ticket", "resolve"): (0.25, "pending_customer"),
    ("order", "provision"): (0.10, "pending_customer"),
}
SUBTYPES = {
    "fault": ["critical", "major", "minor", "warning"],
    "ticket": ["complaint", "service_request", "inquiry"],
    "order": ["leased_line", "mpls_vpn", "dedicated_internet"],
}
LADDER = ["account_manager", "department_head", "branch_leader", "executive"]
COLUMNS = {
    "customers": "customer_id name tier industry region account_manager_id account_manager_name "
    "profile updated_at",
    "items": "customer_id kind item_id state closed opened_at updated_at closed_at last_event_at "
    "priority subtype tier tier_assumed region account_manager_id account_manager_name "
    "policy reopen_count revisit_count last_satisfaction attributes milestones",
    "sla_outcomes": "customer_id item_kind item_id metric cycle policy_id policy_version "
    "calendar_id priority target_seconds started_at deadline state paused "
    "pause_reason met_at breached_at cancelled_at business_seconds "
    "calendar_seconds paused_seconds evaluated_at",
    "sla_paused_time": "customer_id item_kind item_id metric cycle reason seconds",
    "revisits": "event_id customer_id item_kind item_id occurred_at satisfaction comment actor",
    "sla_steps": "event_id event_type customer_id item_kind item_id metric cycle occurred_at "
    "step role threshold deadline policy actor note",
}

_stamps: dict[int, str] = {}


def ts(minute: int | None) -> str:
    """COPY text of the instant ``minute`` minutes after the period start (\\N for None)."""
    if minute is None:
        return "\\N"
    found = _stamps.get(minute)
    if found is None:
        found = _stamps[minute] = datetime.fromtimestamp((EPOCH + minute) * 60, UTC).isoformat(" ")
    return found


def line(*values) -> str:
    return (
        "\t".join("\\N" if v is None else "t" if v is True else "f" if v is False else str(v) for v in values)
        + "\n"
    )


def customers(count: int, rng: random.Random) -> list[tuple]:
    """(id, tier, region, manager, assumed): 1 % without a profile (public, assumed)."""
    rows = []
    for n in range(count):
        if rng.random() < 0.01:
            rows.append((f"C-{n:05d}", "public", None, (None, None), True))
            continue
        rows.append(
            (
                f"C-{n:05d}",
                rng.choices(TIERS, TIER_WEIGHTS)[0],
                rng.choice(REGIONS) if rng.random() > 0.05 else None,
                rng.choice(MANAGERS) if rng.random() > 0.03 else (None, None),
                False,
            )
        )
    return rows


def customer_lines(rows: list[tuple], rng: random.Random):
    for cid, tier, region, (am_id, am_name), assumed in rows:
        if not assumed:
            profile = (
                f'{{"name": "客户{cid}", "tier": "{tier}", "account_manager": '
                f'{{"id": "{am_id}", "name": "{am_name}"}}}}'
            )
            yield line(
                cid,
                f"客户{cid}",
                tier,
                rng.choice(INDUSTRIES),
                region,
                am_id,
                am_name,
                profile,
                ts(-60 * 24 * 30),
            )


def item_lines(count: int, people: list[tuple], rng: random.Random):
    """Yield (table, COPY line) for ``count`` closed items opened in the month."""
    month = 60 * 24 * 30
    step_id = 0
    weights = [rng.paretovariate(1.2) for _ in people]  # a few customers raise most items
    picks = rng.choices(people, weights, k=count)
    for n in range(count):
        cid, tier, region, (am_id, am_name), assumed = picks[n]
        kind = rng.choices(("fault", "ticket", "order"), (35, 40, 25))[0]
        item_id = f"{kind[0].upper()}-{n:08d}"
        priority = rng.choice(
            ("extra_urgent", "urgent", "normal") if kind == "order" else ("P1", "P2", "P3", "P4")
        )
        always_on = tier in ALWAYS_ON
        calendar, policy = ("24x7" if always_on else "cn-business"), tier
        opened = rng.randrange(month - 60)
        cancelled = kind == "order" and rng.random() < 0.02
        reopened = kind != "order" and rng.random() < 0.03
        key = (cid, kind, item_id)
        stop, closed, first_met, provisioned, called = opened, opened, None, opened, True
        for metric, base, breach_p in METRICS[kind]:
            if cancelled and metric != "provision":
                continue  # a cancelled order never reaches acceptance or its revisit
            cycles = 2 if reopened and metric in ("restore", "resolve") else 1
            for cycle in range(1, cycles + 1):
                target = int(base * TIER_SCALE[tier] * PRIORITY_SCALE[priority])
                started = {"revisit": closed, "acceptance": provisioned}.get(metric, opened)
                if cycle == 2:
                    started = closed  # reopened after the first closure
                # business hours stretch a target over 1.5-3.5x its length in calendar time
                stretch = 1.0 if always_on else rng.uniform(1.5, 3.5)
                deadline = started + int(target * stretch)
                paused_min = 0
                pause = PAUSES.get((kind, metric))
                if pause and rng.random() < pause[0]:
                    paused_min = rng.randint(10, 1440)
                    yield "sla_paused_time", line(*key, metric, cycle, pause[1], paused_min * 60.0)
                deadline += paused_min
                met, breached_at, cancelled_at = None, None, None
                if cancelled:
                    state, cancelled_at = "cancelled", started + rng.randint(60, 2880)
                    business, calendar_s = 0.0, None
                elif metric == "revisit" and rng.random() < 0.04:
                    state, breached_at = "breached", deadline  # no follow-up call was made
                    called = False
                    business, calendar_s = float(target * 60), None
                else:
                    late = rng.random() < breach_p * BREACH_SCALE[tier]
                    spent = target * (rng.uniform(1.02, 2.0) if late else rng.uniform(0.05, 0.95))
                    met = started + max(1, int(spent * stretch)) + paused_min
                    state, breached_at = ("breached", deadline) if late else ("met", None)
                    business, calendar_s = round(spent * 60.0, 1), (met - started) * 60.0
                yield (
                    "sla_outcomes",
                    line(
                        *key,
                        metric,
                        cycle,
                        policy,
                        1,
                        calendar,
                        priority,
                        target * 60.0,
                        ts(started),
                        ts(deadline),
                        state,
                        False,
                        None,
                        ts(met),
                        ts(breached_at),
                        ts(cancelled_at),
                        business,
                        calendar_s,
                        paused_min * 60.0,
                        ts(AS_OF_MINUTE),
                    ),
                )
                if breached_at is not None:
                    for row in _steps(step_id, key, metric, cycle, started, deadline, policy, rng):
                        step_id += 1
                        yield "sla_steps", row
                if metric == "provision":
                    provisioned = met or cancelled_at
                if metric != "revisit":
                    stop = max(stop, met or cancelled_at)
                    closed = stop + rng.randint(5, 240)
                    first_met = first_met or met
        last, calls, satisfaction = closed, 0, None
        if called and not cancelled:
            for k in range(2 if rng.random() < 0.05 else 1):
                last = closed + rng.randint(30, 2880) + k * 1440
                satisfaction = rng.choices((1, 2, 3, 4, 5), (2, 4, 10, 35, 49))[0]
                calls += 1
                yield "revisits", line(f"RV-{n:09d}-{k}", *key, ts(last), satisfaction, None, "bench")
        attributes = (
            f'{{"priority": "{priority}", "severity": "{priority}"}}'
            if kind != "order"
            else f'{{"urgency": "{priority}", "product": "leased_line"}}'
        )
        yield (
            "items",
            line(
                *key,
                "cancelled" if cancelled else "completed" if kind == "order" else "closed",
                True,
                ts(opened),
                ts(last),
                ts(closed),
                ts(last),
                priority,
                rng.choice(SUBTYPES[kind]),
                tier,
                assumed,
                region,
                am_id,
                am_name,
                f"{policy} v1",
                1 if reopened else 0,
                calls,
                satisfaction,
                attributes,
                f'{{"first_met": "{ts(first_met)}"}}',
            ),
        )


def _steps(
    first_id: int,
    key: tuple,
    metric: str,
    cycle: int,
    started: int,
    deadline: int,
    policy: str,
    rng: random.Random,
):
    """Warning, breach, one or two escalation steps, sometimes an acknowledgement."""
    steps = [
        ("sla.warning_reached", started + (deadline - started) * 3 // 4, None, None, "0.75"),
        ("sla.breached", deadline, None, None, None),
        ("sla.escalation_due", deadline, 1, LADDER[0], None),
    ]
    if rng.random() < 0.4:
        steps.append(("sla.escalation_due", deadline + 60, 2, LADDER[1], None))
    if rng.random() < 0.5:
        steps.append(("sla.escalation_acknowledged", deadline + rng.randint(1, 120), None, LADDER[0], None))
    for n, (event_type, at, step, role, threshold) in enumerate(steps):
        ack = event_type == "sla.escalation_acknowledged"
        yield line(
            f"ST-{first_id + n:010d}",
            event_type,
            *key,
            metric,
            cycle,
            ts(at),
            step,
            role,
            threshold,
            ts(deadline),
            f"{policy} v1",
            "AM" if ack else "sla-timers",
            "on it" if ack else None,
        )


def load(url: str, count: int, seed: int = 11) -> dict[str, int]:
    """Create the schema and COPY ``count`` items' rows in; one COPY stream per table."""
    engine = open_engine(url)
    upgrade(engine)
    rng = random.Random(seed)
    people = customers(5000 if count >= 50_000 else max(50, count // 20), rng)
    connections = {table: engine.raw_connection() for table in COLUMNS}
    counts: dict[str, int] = defaultdict(int)
    try:
        cursors = {table: conn.driver_connection.cursor() for table, conn in connections.items()}
        copies = {
            table: cursors[table].copy(f"COPY {table} ({', '.join(COLUMNS[table].split())}) FROM STDIN")
            for table in COLUMNS
        }
        streams = {table: copy.__enter__() for table, copy in copies.items()}
        buffers: dict[str, list[str]] = defaultdict(list)
        for row in customer_lines(people, rng):
            buffers["customers"].append(row)
        for table, row in item_lines(count, people, rng):
            buffer = buffers[table]
            buffer.append(row)
            if len(buffer) >= 5000:
                streams[table].write("".join(buffer))
                counts[table] += len(buffer)
                buffer.clear()
        for table, buffer in buffers.items():
            streams[table].write("".join(buffer))
            counts[table] += len(buffer)
        for copy in copies.values():
            copy.__exit__(None, None, None)
        for conn in connections.values():
            conn.commit()
    finally:
        for conn in connections.values():
            conn.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return dict(counts)


def time_report(
    engine, group_by: tuple[str, ...], repeats: int, breach_limit: int | None = DEFAULT_BREACHES
) -> tuple[float, list[float], object]:
    """Median seconds of ``repeats`` reports for the month, each time, and the last report.

    By default the breach list is as ``keydesk report`` shows it (the first
    ``DEFAULT_BREACHES``); ``breach_limit=None`` is the export of every breach.
    """
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = report_module.compliance_report(
            engine,
            period_start=PERIOD[0],
            period_end=PERIOD[1],
            as_of=AS_OF,
            group_by=group_by,
            zone=ZONE,
            breach_limit=breach_limit,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


def phases(engine, group_by: tuple[str, ...]) -> dict[str, float]:
    """Seconds per part of one report (the module's own functions, timed in place)."""
    spent: dict[str, float] = defaultdict(float)
    originals = {}
    for name in ("_item_sums", "_clock_sums", "_clock_spread", "_paused_sums", "_breaches"):
        original = originals[name] = getattr(report_module, name)

        def timed(*args, _original=original, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - started

        setattr(report_module, name, timed)
    try:
        time_report(engine, group_by, 1)
    finally:
        for name, original in originals.items():
            setattr(report_module, name, original)
    return dict(spent)


def explain(engine, group_by: tuple[str, ...]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement one report sends."""
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        time_report(engine, group_by, 1)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()
        for n, (statement, parameters) in enumerate(sent):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"\n-- statement {n + 1} of {len(sent)}: {statement[:200]!r} ...\n{plan}")
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--baseline-items", type=int, default=10_000)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="report runs per grouping at --baseline-items (median; default 3)",
    )
    parser.add_argument(
        "--large-repeats", type=int, default=1, help="report runs per grouping at --items (median; default 1)"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of the report's statements at --items"
    )
    args = parser.parse_args()
    server = LocalPostgres()
    server_url = server.start()
    try:
        urls, figures = {}, defaultdict(dict)
        for label, count in (("baseline", args.baseline_items), ("large", args.items)):
            urls[label] = create_database(server_url, f"report_{label}")
            started = time.perf_counter()
            counts = load(urls[label], count)
            print(
                f"loaded {count:,} items in {time.perf_counter() - started:.0f} s: "
                + ", ".join(f"{t} {n:,}" for t, n in counts.items()),
                flush=True,
            )
        for label in ("baseline", "large"):
            engine = open_engine(urls[label])
            with engine.connect() as conn:
                size = conn.execute(
                    text("SELECT pg_size_pretty(pg_database_size(current_database()))")
                ).scalar_one()
                started = time.perf_counter()
                outcomes = conn.execute(text("SELECT count(*) FROM sla_outcomes")).scalar_one()
                floor = time.perf_counter() - started
            print(
                f"{label}: database {size}; SELECT count(*) FROM sla_outcomes = {outcomes:,} "
                f"in {floor:.3f} s",
                flush=True,
            )
            figures[label]["floor"] = floor
            for group_by in GROUPINGS:
                repeats = args.repeats if label == "baseline" else args.large_repeats
                median, times, result = time_report(engine, group_by, repeats)
                figures[label][group_by] = median
                print(
                    f"  group_by={','.join(group_by) or '()':<26} {median:8.3f} s  "
                    f"[{', '.join(f'{t:.2f}' for t in times)}]  {len(result.groups):,} groups, "
                    f"{result.total.items:,} items, {len(result.breaches):,} breaches",
                    flush=True,
                )
            repeats = args.repeats if label == "baseline" else args.large_repeats
            median, times, result = time_report(engine, (), repeats, breach_limit=None)
            figures[label]["export"] = median
            print(
                f"  {'every breach listed, ()':<36} {median:8.3f} s  "
                f"[{', '.join(f'{t:.2f}' for t in times)}]  {len(result.breaches):,} breaches",
                flush=True,
            )
            if label == "large":
                parts = phases(engine, ())
                print(
                    "  parts of one report, group_by=(): "
                    + ", ".join(f"{name.strip('_')} {seconds:.2f} s" for name, seconds in parts.items()),
                    flush=True,
                )
                if args.explain:
                    explain(engine, ())
            engine.dispose()
        print(f"\nratio {args.items:,} / {args.baseline_items:,} items:")
        for group_by in GROUPINGS:
            large, base = figures["large"][group_by], figures["baseline"][group_by]
            print(
                f"  group_by={','.join(group_by) or '()':<26} {base:.3f} s -> {large:.3f} s "
                f"= x{large / base:.0f}"
            )
        large, base = figures["large"]["export"], figures["baseline"]["export"]
        print(f"  every breach listed, ()      {base:.3f} s -> {large:.3f} s = x{large / base:.0f}")
        print(f"  count(*) floor at {args.items:,}: {figures['large']['floor']:.3f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
