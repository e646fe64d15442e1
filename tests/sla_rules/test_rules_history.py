"""A replacement of the rules may change the future, never the past (sla_rules/rules_history.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from sla_rules import DEFAULT_RULES_PATH, parse_rules
from sla_rules.rules_history import frozen_versions, history_problems, rules_summary

SHIPPED = DEFAULT_RULES_PATH.read_text()
CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=CST)  # diamond v1 in force, contract-C-0001 v2 not yet

NEW_DIAMOND = """
[[policies]]
id = "diamond"
version = 2
effective_from = {when}
calendar = "24x7"
description = "钻石 diamond, 2027: P1 restore 90 min"
[policies.targets.fault]
P1 = {{ response = "5m",  restore = "90m", resolve = "4h",  revisit = "1d" }}
"""


def rules(text: str):
    parsed, problems = parse_rules(text, "t")
    assert parsed is not None, problems
    return parsed


def problems_of(new_text: str, now: dt.datetime = NOW, old_text: str = SHIPPED) -> list[str]:
    return [f"{p.location}: {p.reason}" for p in history_problems(rules(old_text), rules(new_text), now)]


def with_policy(text: str, block: str) -> str:
    """``text`` with ``block`` inserted before the rules (policies must precede them)."""
    marker = "# ------------------------------------------------------------------- rules"
    assert text.count(marker) == 1
    return text.replace(marker, block + "\n" + marker)


def once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_the_same_document_rewrites_nothing():
    assert problems_of(SHIPPED) == []


def test_a_new_version_effective_in_the_future_is_taken():
    assert problems_of(with_policy(SHIPPED, NEW_DIAMOND.format(when="2027-01-01"))) == []


@pytest.mark.parametrize("when", ["2026-11-01", "2026-12-01T12:00:00+08:00", "2026-12-01T11:59:59+08:00"])
def test_a_new_version_effective_now_or_before_is_refused_naming_it(when):
    found = problems_of(with_policy(SHIPPED, NEW_DIAMOND.format(when=when)))
    assert len(found) == 1
    assert found[0].startswith("policies(id=diamond).version=2:")
    assert "must take effect in the future" in found[0]


def test_changing_a_version_in_force_is_refused_naming_the_policy():
    changed = once(
        SHIPPED,
        'P1 = { response = "5m",  restore = "2h",  resolve = "4h",  revisit = "1d" }',
        'P1 = { response = "5m",  restore = "3h",  resolve = "4h",  revisit = "1d" }',
    )
    found = problems_of(changed)
    assert len(found) == 1 and found[0].startswith("policies(id=diamond).version=1:")
    assert "cannot change" in found[0] and "add version 2" in found[0]


def test_dropping_a_version_in_force_is_refused():
    start = SHIPPED.index('[[policies]]\nid = "contract-C-0001"\nversion = 1')
    end = SHIPPED.index('[[policies]]\nid = "contract-C-0001"\nversion = 2')
    found = problems_of(SHIPPED[:start] + SHIPPED[end:])
    assert any(p.startswith("policies(id=contract-C-0001).version=1:") and "dropped" in p for p in found)


def test_a_future_version_may_change_or_go_until_it_takes_effect():
    future_change = once(
        SHIPPED, 'P1 = { response = "5m",  restore = "1h"', 'P1 = { response = "5m",  restore = "45m"'
    )
    assert problems_of(future_change) == []
    start = SHIPPED.index('[[policies]]\nid = "contract-C-0001"\nversion = 2')
    end = SHIPPED.index("# ------------------------------------------------------------------- rules")
    assert problems_of(SHIPPED[:start] + SHIPPED[end:]) == []
    # once its effective_from is reached (at that very instant) it is history too
    at_effect = dt.datetime(2027, 1, 1, tzinfo=CST)
    assert frozen_versions(rules(SHIPPED), at_effect).keys() >= {("contract-C-0001", 2)}
    found = problems_of(future_change, now=at_effect)
    assert len(found) == 1 and found[0].startswith("policies(id=contract-C-0001).version=2:")


def test_the_calendar_of_a_version_in_force_keeps_its_past_days_and_hours():
    later_holiday = once(SHIPPED, "  2027-01-01,\n  2027-05-01", "  2027-01-01, 2027-02-08,\n  2027-05-01")
    assert problems_of(later_holiday) == []
    past_holiday = once(SHIPPED, "  2027-01-01,\n  2027-05-01", "  2026-11-30, 2027-01-01,\n  2027-05-01")
    found = problems_of(past_holiday)
    assert len(found) == 1 and found[0].startswith("calendars.cn-business.holidays:")
    assert "2026-11-30" in found[0]
    today_holiday = once(SHIPPED, "  2027-01-01,\n  2027-05-01", "  2026-12-01, 2027-01-01,\n  2027-05-01")
    assert len(problems_of(today_holiday)) == 1  # today is partly past


def test_the_hours_of_a_calendar_in_force_cannot_change():
    start = SHIPPED.index("[calendars.cn-business]")
    section = SHIPPED[start : SHIPPED.index("holidays = [", start)]
    assert section.count("18:00") >= 1
    changed = SHIPPED[:start] + section.replace("18:00", "17:30") + SHIPPED[start + len(section) :]
    found = problems_of(changed)
    assert len(found) == 1 and found[0].startswith("calendars.cn-business:") and "hours" in found[0]


NEW_CONTRACT = """
[[policies]]
id = "contract-C-GOV-001"
version = 1
effective_from = {when}
calendar = "24x7"
description = "SLA contract of C-GOV-001"
[policies.targets.fault]
P1 = {{ response = "3m",  restore = "1h",  resolve = "2h",  revisit = "1d" }}
"""
CONTRACT_RULE = """[[rules]]
name = "contract C-GOV-001 faults"
customer_id = ["C-GOV-001"]
kind = ["fault"]
policy = "contract-C-GOV-001"

"""


def test_a_new_rule_for_a_policy_only_in_the_future_may_go_first():
    document = with_policy(SHIPPED, NEW_CONTRACT.format(when="2027-01-01"))
    first_rule = document.index('[[rules]]\nname = "contract C-0001 faults"')
    document = document[:first_rule] + CONTRACT_RULE + document[first_rule:]
    assert problems_of(document) == []
    backdated = once(
        document,
        'effective_from = 2027-01-01\ncalendar = "24x7"\ndescription = "SLA contract of C-GOV',
        'effective_from = 2026-06-01\ncalendar = "24x7"\ndescription = "SLA contract of C-GOV',
    )
    found = problems_of(backdated)
    assert any(p.startswith("policies(id=contract-C-GOV-001).version=1:") for p in found)
    assert any(p.startswith("rules:") and "contract C-GOV-001 faults" in p for p in found)


def test_the_rules_sending_items_to_policies_in_force_keep_their_order():
    gold = '[[rules]]\nname = "黄金 gold"\ntier = ["gold"]\npolicy = "gold"\n\n'
    vip = '[[rules]]\nname = "贵宾 VIP"\ntier = ["vip"]\npolicy = "vip"\n\n'
    swapped = once(SHIPPED, gold + vip, vip + gold)
    found = problems_of(swapped)
    assert len(found) == 1 and found[0].startswith("rules:") and "贵宾 VIP" in found[0]


def test_the_summary_names_each_version_and_whether_it_is_history():
    summary = rules_summary(rules(SHIPPED), NOW)
    contract = next(p for p in summary["policies"] if p["id"] == "contract-C-0001")
    assert [(v["version"], v["effective_from"], v["frozen"]) for v in contract["versions"]] == [
        (1, "2025-12-31T16:00:00Z", True),
        (2, "2026-12-31T16:00:00Z", False),
    ]
    assert {c["id"] for c in summary["calendars"]} == {"24x7", "cn-business"}
    assert summary["rules"][-1]["policy"] == "public"


def test_a_problem_says_its_field_path_and_line_apart():
    _, problems = parse_rules(SHIPPED.replace('calendar = "24x7"', 'calendar = "25x8"', 1), "t")
    assert problems[0].located() == {
        "path": "policies[0](id=diamond).calendar",
        "line": SHIPPED.splitlines().index('id = "diamond"'),  # the [[policies]] line above it, 1-based
        "column": None,
        "reason": problems[0].reason,
    }
    _, syntax = parse_rules("schema = 1\nversion = = 2\n", "t")
    assert (syntax[0].located()["line"], syntax[0].located()["path"]) == (2, "")
    assert syntax[0].located()["column"] is not None
    _, at_end = parse_rules("schema = 1\n[broken", "t")
    assert at_end[0].located()["path"] == ""
