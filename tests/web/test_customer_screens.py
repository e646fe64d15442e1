"""Screens 2-4 in a real browser: the hotline console, the customer's one-stop page, an item's page.

Over the desk in memory of ``customer_desk_fixture`` (the worker's fold, the
sink's writer): the government customer C-GOV-001 has an old critical fault,
F-OLD, never acknowledged and escalated by the timers' steps, and a closed
one, F-DONE, not revisited yet.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from playwright.async_api import expect

from handlers.web.next_steps import local_time
from tests.web.conftest import PHONE, scrolls_sideways, serious_accessibility_problems
from tests.web.customer_desk_fixture import ZONE, signed_in

GOV = "/customers/C-GOV-001"


def card(page, kind: str, item_id: str):
    return page.locator(f"article#{kind}-{item_id}")


async def tab_to(page, text: str) -> None:
    """Press Tab until the element reading ``text`` has the focus (the keyboard alone gets there)."""
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent") == text:
            return
    pytest.fail(f"the tab order never reached {text!r}")


async def csrf_of(page) -> str:
    return await page.locator("input[name=csrf_token]").first.get_attribute("value")


class TestHotlineConsole:
    async def test_a_circuit_id_leads_straight_to_its_customer_with_that_circuit_picked(
        self, browser, screens
    ):
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.get_by_role("link", name="一点受理").click()
        await page.get_by_label("客户名称、编号、电路编号或电话").fill("gz-dia-0042")
        await page.get_by_label("客户名称、编号、电路编号或电话").press("Enter")
        await page.wait_for_url(f"{base}{GOV}?circuit=GZ-DIA-0042")
        assert await page.get_by_role("heading", name="省政府办公厅").is_visible()
        await page.get_by_role("link", name="故障申告").click()
        assert await page.get_by_label("互联网专线 · GZ-DIA-0042 · 越秀区东风中路").is_checked()
        assert not await page.get_by_label("MPLS VPN · GZ-MPLS-0001").is_checked()

    async def test_a_search_finding_several_customers_lists_each_with_a_link(self, browser, screens):
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang", language="en")
        await page.goto(f"{base}/console?q=C-")
        results = page.locator("ul.results > li")
        assert await results.count() == 2
        await page.get_by_role("link", name="招商银行广州分行").click()
        await page.wait_for_url(f"{base}/customers/C-BANK-001")

    async def test_a_search_finding_nobody_says_so(self, browser, screens):
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}/console?q=13999999999")
        assert await page.get_by_text("没有匹配的客户。").is_visible()

    async def test_a_fault_is_logged_from_the_keyboard_alone_and_shown_with_its_clocks(
        self, browser, screens
    ):
        """Autofocus, Enter submits, the tab order reaches the form: no mouse from search to fault."""
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}/console")
        # Type only once the browser has applied autofocus: a key pressed before lands nowhere.
        await expect(page.locator("#q")).to_be_focused()
        await page.keyboard.type("GZ-MPLS-0001")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{base}{GOV}?circuit=GZ-MPLS-0001")
        await tab_to(page, "故障申告")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{base}{GOV}/faults/new?circuit=GZ-MPLS-0001")
        await expect(page.locator("[autofocus]")).to_be_focused()  # the summary has the focus
        await page.keyboard.type("省政府专网中断")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{base}{GOV}?step=*")
        (fault_id,) = [i for i in desk.views["C-GOV-001"]["open"]["fault"] if i != "F-OLD"]
        logged = card(page, "fault", fault_id)
        assert "省政府专网中断" in await logged.inner_text()
        assert "GZ-MPLS-0001" in await logged.inner_text()
        assert await logged.get_by_role("progressbar", name="响应").count() == 1
        assert await logged.get_by_role("progressbar", name="恢复").count() == 1
        assert "已完成：故障申告" in await logged.inner_text()

    async def test_a_fault_without_a_summary_is_refused_naming_the_field(self, browser, screens):
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}{GOV}/faults/new")
        answer = await page.request.post(
            f"{base}{GOV}/faults",
            form={"csrf_token": await csrf_of(page), "severity": "major", "service_pick": "0"},
        )
        assert answer.status == 422
        assert "请检查此项：故障现象" in await answer.text()
        assert list(desk.views["C-GOV-001"]["open"]["fault"]) == ["F-OLD"]


class TestOpeningATicketAndPlacingAnOrder:
    """The forms beside the fault's: the API's POST /api/tickets and /api/orders, by the same function."""

    async def test_a_ticket_is_opened_from_the_keyboard_alone_and_shown_with_its_clocks(
        self, browser, screens
    ):
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}{GOV}")
        await tab_to(page, "新建工单")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{base}{GOV}/tickets/new")
        await expect(page.locator("[autofocus]")).to_be_focused()  # the subject has the focus
        await page.keyboard.type("营业厅网速慢投诉")
        await page.keyboard.press("Shift+Tab")  # back to the priority
        await page.keyboard.press("ArrowDown")  # P1 -> P2
        assert await page.get_by_label("优先级").input_value() == "P2"
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{base}{GOV}?step=*")
        (ticket_id,) = desk.views["C-GOV-001"]["open"]["ticket"]
        opened = desk.views["C-GOV-001"]["open"]["ticket"][ticket_id]
        assert (opened["attributes"]["kind"], opened["attributes"]["priority"]) == ("complaint", "P2")
        assert opened["history"][0]["actor"] == "hotline-zhang"
        shown = card(page, "ticket", ticket_id)
        assert "营业厅网速慢投诉" in await shown.inner_text()
        assert "已完成：工单创建" in await shown.inner_text()
        assert await shown.get_by_role("progressbar").count() >= 1

    async def test_an_order_is_placed_without_javascript_for_a_site_of_the_customers_services(
        self, browser, screens
    ):
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang", language="en", java_script_enabled=False)
        await page.goto(f"{base}{GOV}")
        await page.get_by_role("link", name="Place an order").click()
        await page.wait_for_url(f"{base}{GOV}/orders/new")
        await page.get_by_label("Product").fill("leased_line")
        await page.get_by_label("Urgency").select_option("urgent")
        await page.get_by_label("Bandwidth (optional)").fill("100M")
        await page.get_by_label("越秀区东风中路").check()
        await page.get_by_label("Another site's address").fill("天河区体育西路 1 号")
        await page.get_by_role("button", name="Place the order").click()
        await page.wait_for_url(f"{base}{GOV}?step=*")
        (order_id,) = desk.views["C-GOV-001"]["open"]["order"]
        placed = desk.views["C-GOV-001"]["open"]["order"][order_id]["attributes"]
        assert (placed["product"], placed["urgency"], placed["bandwidth"]) == (
            "leased_line",
            "urgent",
            "100M",
        )
        assert placed["sites"] == [{"address": "越秀区东风中路"}, {"address": "天河区体育西路 1 号"}]
        shown = card(page, "order", order_id)
        assert "leased_line" in await shown.inner_text()
        assert "Done: Order received" in await shown.inner_text()

    async def test_with_htmx_a_blank_subject_is_told_next_to_it_in_place(self, browser, screens):
        """Spaces pass the browser's ``required``; the API's body refuses the subject, named next to it."""
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang", viewport=PHONE)
        await page.goto(f"{base}{GOV}/tickets/new")
        await page.evaluate("window.notReloaded = true")
        await page.get_by_label("主题").fill("   ")
        await page.get_by_label("详细说明").fill("客户来电")
        await page.get_by_role("button", name="提交工单").click()
        told = page.locator("#ticket-subject-problem")
        await told.wait_for()
        assert await told.inner_text() == "请检查此项：主题"
        assert await page.evaluate("window.notReloaded === true")
        subject = page.get_by_label("主题")
        assert await subject.get_attribute("aria-invalid") == "true"
        assert await subject.get_attribute("aria-describedby") == "ticket-subject-problem"
        assert await page.get_by_label("详细说明").input_value() == "客户来电"  # kept
        assert desk.views["C-GOV-001"]["open"].get("ticket", {}) == {}
        assert await serious_accessibility_problems(page) == []
        assert not await scrolls_sideways(page)

    async def test_without_javascript_a_refused_field_is_a_422_page_naming_it_next_to_it(
        self, browser, screens
    ):
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang", language="en")
        await page.goto(f"{base}{GOV}/orders/new")
        answer = await page.request.post(
            f"{base}{GOV}/orders", form={"csrf_token": await csrf_of(page), "product": "leased_line"}
        )
        assert answer.status == 422
        text = await answer.text()
        assert (
            '<p class="field-problem" id="order-urgency-problem" role="alert">Check this field: Urgency</p>'
            in text
        )
        assert desk.views["C-GOV-001"]["open"].get("order", {}) == {}

    @pytest.mark.parametrize("collection", ["tickets", "orders"])
    async def test_a_role_not_allowed_sees_no_form_and_a_forged_post_is_refused(
        self, browser, screens, collection
    ):
        """Another's account manager: a 403 page and no form, a forged post refused; their own: the links."""
        base, desk = screens
        page = await signed_in(browser, base, "am-zhao")
        own = await page.goto(f"{base}/customers/C-BANK-001")
        assert own.status == 200
        assert await page.get_by_role("link", name="新建工单").count() == 1
        csrf = await csrf_of(page)  # their session's own token: the forgery is only of the customer
        answer = await page.goto(f"{base}{GOV}/{collection}/new")
        assert answer.status == 403
        assert await page.locator("main form, main button").count() == 0
        forged = await page.request.post(
            f"{base}{GOV}/{collection}",
            form={
                "csrf_token": csrf,
                "kind": "complaint",
                "priority": "P1",
                "subject": "伪造",
                "product": "leased_line",
                "urgency": "normal",
            },
        )
        assert forged.status == 403
        assert not desk.views["C-GOV-001"]["open"].get("ticket") and not desk.views["C-GOV-001"]["open"].get(
            "order"
        )
        reader = await signed_in(browser, base, "reports-wu")
        assert (await reader.goto(f"{base}{GOV}/{collection}/new")).status == 403
        assert await reader.locator("main form").count() == 0


class TestCustomerPage:
    async def test_the_page_shows_the_profile_people_clocks_and_local_times(self, browser, screens):
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}{GOV}")
        text = await page.locator("main").inner_text()
        for expected in (
            "钻石",
            "李敏",
            "13900000001",
            "部门负责人: 陈主任",
            "王工 (信息中心主任)",
            "GZ-DIA-0042",
        ):
            assert expected in text, expected
        old = card(page, "fault", "F-OLD")
        response = old.locator(".clock.tone-breached").filter(has_text="响应")
        assert "已超时" in await response.inner_text()
        opened = desk.views["C-GOV-001"]["open"]["fault"]["F-OLD"]["opened_at"]
        assert f"创建于 {local_time(opened, ZONE)}" in await old.inner_text()  # Beijing time, stored in UTC
        assert datetime.fromisoformat(opened).utcoffset().total_seconds() == 0
        figures = page.locator("section", has=page.get_by_role("heading", name="本月达标情况"))
        assert "超时" in await figures.inner_text()

    async def test_acknowledging_a_fault_meets_its_response_clock_in_place(self, browser, screens):
        """With htmx the card alone is replaced: the page is not reloaded."""
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}{GOV}")
        await page.evaluate("window.notReloaded = true")
        old = card(page, "fault", "F-OLD")
        await old.get_by_role("button", name="受理确认", exact=True).click()
        await old.get_by_text("已完成：已受理").wait_for()
        assert await page.evaluate("window.notReloaded === true")
        assert page.url == f"{base}{GOV}"
        assert await old.locator(".state").inner_text() == "已受理"
        assert await old.get_by_role("button", name="受理确认", exact=True).count() == 0
        assert await old.get_by_role("button", name="派单").count() == 1

    async def test_without_javascript_a_step_is_a_form_post_and_the_page_says_what_became_of_it(
        self, browser, screens
    ):
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang", java_script_enabled=False)
        await page.goto(f"{base}{GOV}")
        old = card(page, "fault", "F-OLD")
        await old.get_by_label("维修班组").fill("广州传输一班")
        await old.get_by_role("button", name="派单").click()
        await page.wait_for_url(f"{base}{GOV}?step=*")
        old = card(page, "fault", "F-OLD")
        assert await old.locator(".state").inner_text() == "已派单"
        assert "已完成：已派单" in await old.inner_text()

    async def test_a_step_the_items_state_refuses_is_told_with_the_lifecycles_reason(self, browser, screens):
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang", java_script_enabled=False)
        await page.goto(f"{base}{GOV}")
        done = card(page, "fault", "F-DONE")
        assert (
            await done.get_by_role("button", name="受理确认", exact=True).count() == 0
        )  # closed: not offered
        answer = await page.request.post(
            f"{base}{GOV}/items/fault/F-DONE/steps/ack", form={"csrf_token": await csrf_of(page)}
        )
        assert answer.status == 200 and "step=" in answer.url
        assert "工单当前状态不允许此操作：" in await answer.text()
        assert "not allowed in state closed" in await answer.text()

    async def test_a_revisit_is_recorded_on_a_closed_fault_with_its_satisfaction(self, browser, screens):
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}{GOV}")
        done = card(page, "fault", "F-DONE")
        assert "尚未回访" in await done.inner_text()
        await done.get_by_label("满意度（1-5）").fill("4")
        await done.get_by_role("button", name="记录回访").click()
        await done.get_by_text("已回访：满意度 4/5").wait_for()
        assert await done.get_by_role("button", name="记录回访").count() == 0

    async def test_the_hotline_sees_no_acknowledge_button_and_a_forged_acknowledgement_is_refused(
        self, browser, screens
    ):
        base, desk = screens
        assert any(
            r["event_type"] == "sla.escalation_due"
            for r in desk.views["C-GOV-001"]["open"]["fault"]["F-OLD"]["sla_log"]
        )
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}{GOV}")
        assert await page.get_by_role("button", name="确认升级").count() == 0
        forged = await page.request.post(
            f"{base}{GOV}/items/fault/F-OLD/acknowledge",
            form={"csrf_token": await csrf_of(page), "metric": "response", "cycle": "1"},
        )
        assert forged.status == 403
        assert "无权访问" in await forged.text()
        log = desk.views["C-GOV-001"]["open"]["fault"]["F-OLD"]["sla_log"]
        assert not any(r["event_type"] == "sla.escalation_acknowledged" for r in log)

    async def test_a_manager_acknowledges_an_escalation_with_a_note_and_the_ladder_shows_it(
        self, browser, screens
    ):
        base, desk = screens
        page = await signed_in(browser, base, "manager-chen")
        await page.goto(f"{base}{GOV}")
        old = card(page, "fault", "F-OLD")
        buttons = old.get_by_role("button", name="确认升级")
        before = await buttons.count()
        assert before >= 1
        await old.locator("input[name=note]").first.fill("已派单处理")
        await buttons.first.click()
        await old.get_by_text("已完成：升级已确认").wait_for()
        assert await buttons.count() == before - 1
        await old.get_by_role("link", name="故障 F-OLD").click()
        ladder = page.locator("section", has=page.get_by_role("heading", name="升级阶梯"))
        assert "升级已确认" in await ladder.inner_text()
        assert "操作人 manager-chen: 已派单处理" in await ladder.inner_text()

    async def test_a_cross_site_step_without_the_forms_token_is_refused(self, browser, screens):
        base, desk = screens
        page = await signed_in(browser, base, "hotline-zhang")
        await page.goto(f"{base}{GOV}")
        forged = await page.request.post(
            f"{base}{GOV}/items/fault/F-OLD/steps/ack", form={"csrf_token": "guessed"}
        )
        assert forged.status == 403
        assert desk.views["C-GOV-001"]["open"]["fault"]["F-OLD"]["state"] == "reported"

    @pytest.mark.parametrize(("language", "title"), [("zh_CN", "无权访问"), ("en", "You may not open this")])
    async def test_an_account_manager_opening_another_ones_customer_gets_a_403_page_in_their_language(
        self, browser, screens, language, title
    ):
        base, _ = screens
        page = await signed_in(browser, base, "am-zhao", language=language)
        answer = await page.goto(f"{base}{GOV}")
        assert answer.status == 403
        assert answer.headers["content-type"].startswith("text/html")
        assert await page.get_by_role("heading", name=f"{title} (403)").is_visible()
        assert (await page.goto(f"{base}/customers/C-BANK-001")).status == 200

    async def test_an_account_manager_works_their_own_customer(self, browser, screens):
        base, _ = screens
        page = await signed_in(browser, base, "am-li")
        assert (await page.goto(f"{base}{GOV}")).status == 200
        old = card(page, "fault", "F-OLD")
        assert await old.get_by_role("button", name="受理确认", exact=True).count() == 1
        assert await old.get_by_role("button", name="确认升级").count() >= 1  # the customer's own AM

    async def test_a_report_reader_sees_no_action_buttons(self, browser, screens):
        """A report reader may not read customers at all (the API's roles): a 403 page, no button."""
        base, _ = screens
        page = await signed_in(browser, base, "reports-wu")
        for path in (GOV, f"{GOV}/items/fault/F-OLD", "/console"):
            answer = await page.goto(f"{base}{path}")
            assert answer.status == 403, path
            assert await page.locator("main button, main form").count() == 0, path
        assert await page.get_by_role("link", name="一点受理").count() == 0


class TestItemPage:
    async def test_the_item_page_has_its_history_every_clock_explained_and_the_ladder(self, browser, screens):
        base, _ = screens
        page = await signed_in(browser, base, "manager-chen", language="en")
        await page.goto(f"{base}{GOV}/items/fault/F-OLD")
        history = page.locator("section", has=page.get_by_role("heading", name="History"))
        assert "Fault reported" in await history.inner_text()
        assert "by hotline-zhang (hotline)" in await history.inner_text()
        clocks = page.locator(
            "section", has=page.get_by_role("heading", name="Clocks and how each deadline was derived")
        )
        text = await clocks.inner_text()
        for expected in (
            "Policy matched",
            "Response",
            "Restore",
            "Calendar",
            "Target",
            "Deadline",
            "Escalate to",
        ):
            assert expected in text, expected
        await page.get_by_text("The engine's whole explanation").click()
        assert (
            "SLA explanation for F-OLD of customer C-GOV-001"
            in await page.locator("pre.explanation").inner_text()
        )
        ladder = page.locator("section", has=page.get_by_role("heading", name="Escalation ladder"))
        assert "Breached" in await ladder.inner_text() and "Escalated" in await ladder.inner_text()
        assert "Department head" in await ladder.inner_text()

    async def test_an_unknown_item_is_a_404_page(self, browser, screens):
        base, _ = screens
        page = await signed_in(browser, base, "hotline-zhang")
        answer = await page.goto(f"{base}{GOV}/items/fault/F-NONE")
        assert answer.status == 404
        assert await page.get_by_role("heading", name="未找到 (404)").is_visible()


SCREENS = [
    ("hotline-zhang", "/console"),
    ("hotline-zhang", "/console?q=C-"),
    ("hotline-zhang", f"{GOV}/faults/new"),
    ("hotline-zhang", f"{GOV}/tickets/new"),
    ("hotline-zhang", f"{GOV}/orders/new"),
    ("manager-chen", f"{GOV}/orders/new"),
    ("manager-chen", GOV),
    ("manager-chen", f"{GOV}/items/fault/F-OLD"),
    ("manager-chen", f"{GOV}/items/fault/F-DONE"),
    ("am-zhao", GOV),  # the 403 page
]


@pytest.mark.parametrize("language", ["zh_CN", "en"])
@pytest.mark.parametrize(("username", "path"), SCREENS)
async def test_every_screen_is_accessible_and_fits_a_phone(browser, screens, username, path, language):
    base, _ = screens
    page = await signed_in(browser, base, username, language=language, viewport=PHONE)
    await page.goto(f"{base}{path}")
    assert await serious_accessibility_problems(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not await scrolls_sideways(page)
