"""In a real browser: Debian's Chromium driven by Playwright, against a real `tradeflow
serve` with the demo set up (tests/web/conftest.py). Each test saves a screenshot in the
test's directory (and under var/screenshots/ for people to look at)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.conftest import CHROMIUM, shot, sign_in, until

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def test_an_employee_completes_a_task_through_its_form(
    page: object, site: str, tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "wang.fang")  # market development; the demo's people read Chinese
    assert "我的待办" in p.content()  # type: ignore[attr-defined]
    p.click("text=English")  # type: ignore[attr-defined]
    assert p.is_visible("h1:has-text('My inbox')")  # type: ignore[attr-defined]
    shot(p, tmp_path, "employee-inbox")
    p.click("a:has-text('Prepare quotation')")  # type: ignore[attr-defined]
    p.wait_for_selector("#form input")  # type: ignore[attr-defined]

    def field(key: str, suffix: str = "") -> object:
        return p.locator(f"[id$='-{key}_field{suffix}']")  # type: ignore[attr-defined]

    # the quotation, but with a margin the form refuses (over 100 %)
    for key, value in {
        "customer_name": "Lyon Outillage SA",
        "product": "Cordless drill CD-18",
        "quantity": "500",
        "unit_price": "24.5",
        "margin_percent": "140",
        "validity_days": "30",
    }.items():
        field(key).fill(value)  # type: ignore[attr-defined]
    for key, option in {
        "customer_grade": "B",
        "currency": "USD",
        "incoterms": "FOB",
        "payment_terms": "T/T in advance",
    }.items():
        field(key, "-display").click()  # type: ignore[attr-defined]
        p.locator(".fjs-dropdownlist-item", has_text=option).first.click()  # type: ignore[attr-defined]
    date = field("ship_date", "-date")
    date.fill("01/15/2027")  # type: ignore[attr-defined]
    date.press("Enter")  # type: ignore[attr-defined]
    p.click("button:has-text('Submit')")  # type: ignore[attr-defined]
    error = p.locator(".fjs-form-field-error")  # type: ignore[attr-defined]
    error.first.wait_for()
    shot(p, tmp_path, "employee-field-error")
    assert "100" in error.first.inner_text()  # the limit, shown at the field
    assert p.url.endswith("/tasks/" + p.url.rsplit("/", 1)[-1])  # type: ignore[attr-defined]
    field("margin_percent").fill("14")  # type: ignore[attr-defined]
    p.click("button:has-text('Submit')")  # type: ignore[attr-defined]
    p.wait_for_url("**/?done=*")  # type: ignore[attr-defined]
    shot(p, tmp_path, "employee-after")
    assert "Send quotation" in p.content()  # type: ignore[attr-defined]  # the next step


def test_an_instance_page_shows_the_diagram_with_its_marks(
    page: object, site: str, tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "zhou.min")  # risk and compliance: a contract waits for review
    p.click("text=English")  # type: ignore[attr-defined]
    p.click("a:has-text('SO-2026-0117')")  # type: ignore[attr-defined]
    p.wait_for_selector(".djs-element.done")  # type: ignore[attr-defined]
    assert p.locator(".djs-element.active").count() >= 1  # type: ignore[attr-defined]
    assert "History" in p.content()  # type: ignore[attr-defined]
    shot(p, tmp_path, "instance")


def test_an_auditor_finds_a_trail_verifies_it_and_downloads_it(
    page: object, site: str, tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "chen.jie")  # the manager is also the demo's auditor
    p.click("text=English")  # type: ignore[attr-defined]
    p.click("header a:has-text('Audit')")  # type: ignore[attr-defined]
    p.fill("input[name=business_key]", "SO-2026-01")  # type: ignore[attr-defined]
    p.click("button:has-text('Find')")  # type: ignore[attr-defined]
    rows = p.locator("tr[data-instance]")  # type: ignore[attr-defined]
    assert rows.count() == 2  # SO-2026-0117 and SO-2026-0109  # type: ignore[attr-defined]
    shot(p, tmp_path, "auditor-search")
    rows.first.locator("a").first.click()
    p.wait_for_selector(".djs-element")  # type: ignore[attr-defined]  # the page's scripts ran
    p.click("button:has-text('Check the history is intact')")  # type: ignore[attr-defined]
    verdict = p.locator("#verified")  # type: ignore[attr-defined]
    verdict.wait_for()
    assert "Intact" in verdict.inner_text()
    assert "History" in p.content()  # type: ignore[attr-defined]
    shot(p, tmp_path, "auditor-verified")
    with p.expect_download() as download:  # type: ignore[attr-defined]
        p.click("a:has-text('Download (CSV)')")  # type: ignore[attr-defined]
    saved = tmp_path / "trail.csv"
    download.value.save_as(saved)
    assert saved.read_text().startswith("seq,at,actor,kind")


def test_a_process_owner_edits_a_diagram_checks_it_and_deploys_it(
    page: object, site: str, tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "process.owner")
    p.click("text=English")  # type: ignore[attr-defined]
    p.click("header a:has-text('Processes')")  # type: ignore[attr-defined]
    p.click("tr[data-definition=document_review] a:has-text('Edit')")  # type: ignore[attr-defined]
    p.click(".djs-element[data-element-id=prepare_documents]")  # type: ignore[attr-defined]
    p.click("#properties >> text=Extension properties")  # type: ignore[attr-defined]
    p.click("#properties .bio-properties-panel-collapsible-entry-header:has-text('sla')")  # type: ignore[attr-defined]
    sla = p.locator("[id$='prepare_documents-extensionProperty-0-value']")  # type: ignore[attr-defined]
    assert sla.input_value() == "P1D"
    sla.fill("soon")  # not a duration: the server's check must say so, on that task
    p.click("button#check")  # type: ignore[attr-defined]
    p.locator("#problems li").first.wait_for()  # type: ignore[attr-defined]
    assert "prepare_documents: sla 'soon' refused" in p.inner_text("#problems")  # type: ignore[attr-defined]
    marked = ".djs-element.error[data-element-id=prepare_documents]"
    assert p.locator(marked).count() == 1  # type: ignore[attr-defined]
    shot(p, tmp_path, "owner-check-error")
    sla.fill("P2D")  # the task is still selected, its properties still open
    p.click("button#deploy")  # type: ignore[attr-defined]
    outcome = p.locator("#outcome")  # type: ignore[attr-defined]
    outcome.wait_for()
    p.locator("#outcome", has_text="version").wait_for()  # type: ignore[attr-defined]
    assert "Deployed as version 2" in outcome.inner_text()
    assert p.locator(".djs-element.error").count() == 0  # type: ignore[attr-defined]
    shot(p, tmp_path, "owner-deployed")
    p.click("header a:has-text('Processes')")  # type: ignore[attr-defined]
    assert "v2, v1" in p.inner_text("tr[data-definition=document_review]")  # type: ignore[attr-defined]


def test_a_process_owner_edits_a_form_and_a_decision_table(
    page: object, site: str, tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "process.owner")
    p.click("text=English")  # type: ignore[attr-defined]
    p.click("header a:has-text('Processes')")  # type: ignore[attr-defined]
    p.click("tr[data-form=write_off] a:has-text('Edit')")  # type: ignore[attr-defined]
    p.click("#editor [data-id='fx_rate_field']", force=True)  # type: ignore[attr-defined]
    p.click("#properties .bio-properties-panel-group-header-title:text-is('Validation')")  # type: ignore[attr-defined]
    limit = p.locator("#properties #bio-properties-panel-max")  # type: ignore[attr-defined]
    limit.fill("20")  # no currency trades above 20 CNY
    p.click("button#deploy")  # type: ignore[attr-defined]
    p.locator("#outcome", has_text="version").wait_for()  # type: ignore[attr-defined]
    assert "Deployed as version 2" in p.inner_text("#outcome")  # type: ignore[attr-defined]
    shot(p, tmp_path, "owner-form")
    p.click("header a:has-text('Processes')")  # type: ignore[attr-defined]
    assert "v2" in p.inner_text("tr[data-form=write_off]")  # type: ignore[attr-defined]
    p.click("tr[data-decision='payment_terms.dmn'] a:has-text('Edit')")  # type: ignore[attr-defined]
    p.wait_for_selector("#editor .tjs-table")  # type: ignore[attr-defined]
    p.click("button#check")  # type: ignore[attr-defined]
    p.locator("#outcome").wait_for(state="visible")  # type: ignore[attr-defined]
    assert "No problems" in p.inner_text("#outcome")  # type: ignore[attr-defined]
    shot(p, tmp_path, "owner-decision")


def test_the_dashboard_draws_its_chart(page: object, site: str, tmp_path: Path) -> None:
    p = page
    sign_in(p, site, "chen.jie")
    p.click("text=English")  # type: ignore[attr-defined]
    p.click("header a:has-text('Dashboard')")  # type: ignore[attr-defined]
    # the canvas is in the page before charts.js has loaded and drawn on it
    until(p, "window.Chart && Chart.getChart('workload')")
    drawn = p.evaluate("Chart.getChart('workload').data.labels.length")  # type: ignore[attr-defined]
    assert drawn >= 3  # the demo's roles with work
    assert p.locator("#steps tr[data-element]").count() >= 5  # type: ignore[attr-defined]
    waiting = p.evaluate("Chart.getChart('waiting').data.labels.length")  # type: ignore[attr-defined]
    assert waiting == p.locator("#steps tr[data-element]").count()  # type: ignore[attr-defined]
    shot(p, tmp_path, "dashboard")
    p.click("#steps tr[data-element] a >> nth=0")  # type: ignore[attr-defined]
    p.wait_for_selector("#behind")  # type: ignore[attr-defined]
    assert p.locator("#behind tr[data-instance]").count() >= 1  # type: ignore[attr-defined]
