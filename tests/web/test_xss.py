"""No stored or reflected XSS, in a real browser (issue 14).

Every string a person or a diagram can put on a page carries a payload that breaks out of
a script, an element or an attribute (tests/web/hostile.py): variables, business keys,
customer names, element, lane, flow and task names, CDATA and XHTML extension elements in
the diagram, form labels, descriptions, options, markdown, HTML and image components, a
decision table's names and cells, file names, audit data, the server's refusals and query
parameters echoed back. Each page is opened as the person who sees it, with what makes
its sinks work (a dropdown opened, a form refused, an element selected), and the page
fixture (tests/web/conftest.py) fails the test if a payload ran or a dialog opened. The
browser ignores the Content-Security-Policy here, so escaping alone must hold; the policy
is the second line, proved on its own at the end (and tests/web/test_browser.py shows the
pages working under it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.web import hostile
from tests.web.conftest import CHROMIUM, Seen, serve, shot, sign_in, until
from tests.web.hostile import payload

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """The demo, the hostile diagram, form and decisions, and orders full of payloads."""
    ids: dict[str, int] = {}
    with serve(tmp_path_factory.mktemp("xss"), lambda flow: ids.update(hostile.plant(flow))) as url:
        yield url, ids


@pytest.fixture
def csp_bypassed() -> bool:
    """Escaping alone must hold: a payload that gets through runs (and is seen)."""
    return True


@pytest.fixture(scope="module")
def site(planted: tuple[str, dict[str, int]]) -> str:
    return planted[0]


@pytest.fixture(scope="module")
def ids(planted: tuple[str, dict[str, int]]) -> dict[str, int]:
    return planted[1]


def english(p: Any, site: str) -> None:
    p.goto(site + "/lang/en")


def shown(p: Any, selector: str, where: str) -> None:
    """The payload planted as ``where`` is on the page as text (so it was planted, and
    reached this sink)."""
    texts = p.locator(selector).all_text_contents()
    planted = re.compile(rf"__xss=\\?'{re.escape(where)}\\?'")  # a dict's repr: \'
    assert any(planted.search(text) for text in texts), (selector, texts)


def _without_patterns(route: Any) -> None:
    response = route.fetch()
    route.fulfill(response=response, body=response.text().replace('"pattern":', '"unchecked":'))


def test_sign_in_echoes_a_name_and_follows_no_script(page: Any, site: str) -> None:
    p = page
    p.goto(site + "/login?" + urlencode({"next": payload("next")}))
    p.fill("input[name=username]", payload("username"))
    p.fill("input[name=password]", "wrong")
    p.click("button[type=submit]")
    p.locator(".flash.error").wait_for()
    assert p.input_value("input[name=username]") == payload("username")  # echoed, as text
    p.goto(site + "/login?" + urlencode({"next": "javascript:window.__xss='next-url'"}))
    p.fill("input[name=username]", "wang.fang")
    p.fill("input[name=password]", "tradeflow-demo")
    p.click("button[type=submit]")
    p.wait_for_url(site + "/")


def test_the_employees_inbox_and_task_form(
    page: Any, site: str, ids: dict[str, int], tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "wang.fang")
    english(p, site)
    row = f"tr[data-task='{ids['enter']}']"
    shown(p, f"{row} td:nth-child(1)", "task-name")
    shown(p, f"{row} td:nth-child(2)", "business-key")
    # the browser checks the form's pattern as the server does: this page's copy of the
    # form has none, as a client that checks less would, so the server's refusal shows
    p.route(f"{site}/tasks/{ids['enter']}", _without_patterns)
    p.click(f"{row} td:nth-child(1) a")
    p.wait_for_selector("#form input")
    shown(p, "h1", "task-name")
    shown(p, ".fjs-form-field-label", "form-label")
    shown(p, ".fjs-form-field-description", "form-description")
    shown(p, ".fjs-form-field-text", "customer")  # the markdown's {{customer_name}}
    assert p.get_attribute("#form img[alt*=image-alt]", "alt") == payload("image-alt")
    assert p.input_value("[id$='-customer_name_field']") == payload("customer")  # its data
    p.click("[id$='-grade_field-display']")  # the options show when the list opens
    shown(p, ".fjs-dropdownlist-item", "option-label")
    p.keyboard.press("Escape")
    # the server refuses what the browser let through, and the page shows why
    p.fill("[id$='-reference_field']", hostile.PASSES_THE_BROWSER)
    p.click("button:has-text('Submit')")
    error = p.locator(".fjs-form-field-error", has_text="Does not match")
    error.wait_for()
    shown(p, ".fjs-form-field-error", "server-error")
    shot(p, tmp_path, "xss-task-form")
    p.fill("[id$='-reference_field']", payload("server-error"))  # what both accept
    p.click("button:has-text('Submit')")
    p.wait_for_url("**/?done=*")
    # a refusal as a message on the next page: the manager's task is not hers to claim
    p.evaluate(
        """([action, token]) => {
          const form = Object.assign(document.createElement("form"), {method: "post", action});
          form.append(Object.assign(document.createElement("input"),
                                    {type: "hidden", name: "csrf_token", value: token}));
          document.body.append(form);
          form.submit();
        }""",
        [f"/tasks/{ids['review']}/claim", p.get_attribute("meta[name=csrf-token]", "content")],
    )
    p.locator(".flash.error", has_text="holds none of the roles").wait_for()
    shown(p, ".flash.error", "role")


def test_a_start_variable_cannot_approve_the_managers_quotation(
    page: Any, site: str, ids: dict[str, int], seen: Seen
) -> None:
    """Issue 14's attack: the employee's script in a variable the manager's form starts
    from would, on the manager's page, complete the task as the manager. The shipped
    approval's form starts from nothing and a start may not set its fields (hostile.plant
    checks that refusal); where a diagram does let a form start from a variable, the
    script arrives as text and runs nowhere."""
    p = page
    sign_in(p, site, "chen.jie")
    p.goto(f"{site}/tasks/{ids['approve']}")
    p.wait_for_selector("#form textarea")
    assert p.input_value("#form textarea") == ""  # the approval's comment starts empty
    p.goto(f"{site}/tasks/{ids['attacked']}")
    p.wait_for_load_state("networkidle")
    p.wait_for_selector("[id$='-customer_name_field']")
    task = p.request.get(f"{site}/api/v1/tasks/{ids['attacked']}").json()
    assert (task["state"], task["assignee"]) == ("open", None), task  # not completed
    assert seen.xss == []
    assert p.input_value("[id$='-customer_name_field']") == hostile.APPROVE  # there, as text


def test_the_managers_task_and_instance_pages(
    page: Any, site: str, ids: dict[str, int], tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "chen.jie")
    english(p, site)
    row = f"tr[data-task='{ids['review']}']"
    shown(p, f"{row} td:nth-child(1)", "task-name-2")
    shown(p, f"{row} td:nth-child(3)", "role")
    p.click(f"{row} td:nth-child(1) a")
    p.wait_for_selector("#form input")
    assert p.input_value("[id$='-customer_name_field']") == payload("customer-changed")
    p.click("a:has-text('The whole order')")
    p.wait_for_selector(".djs-element[data-element-id=enter]")
    shown(p, "h1", "process-name")
    shown(p, "h1", "business-key")
    shown(p, ".djs-element[data-element-id=enter] text", "task-name")  # drawn as SVG text
    shown(p, ".djs-element[data-element-id=lane_sales] text", "lane-name")
    shown(p, ".columns li", "role")  # the open task's queues
    shown(p, "table.data td", "variable")
    shown(p, "table.data td", "nested-variable")
    shown(p, ".timeline li", "customer-changed")  # the trail: before → after
    shown(p, ".timeline li", "task-name")
    p.click("#verify")
    p.locator("#verified", has_text="Intact").wait_for()
    shot(p, tmp_path, "xss-instance")


def test_the_dashboard_and_the_audit_search(
    page: Any, site: str, ids: dict[str, int], tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "chen.jie")
    english(p, site)
    echoed = {"user": payload("dashboard-user"), "from": payload("dashboard-from")}
    p.goto(site + "/dashboard?" + urlencode(echoed))
    assert p.input_value("input[name=user]") == echoed["user"]
    p.goto(site + "/dashboard")
    until(p, "window.Chart && Chart.getChart('waiting')")
    labels = p.evaluate("Chart.getChart('waiting').data.labels")
    assert payload("task-name") in labels  # a step's name, drawn on the canvas
    shown(p, "#steps td", "task-name")
    shot(p, tmp_path, "xss-dashboard")
    p.goto(site + "/dashboard/instances?" + urlencode({"element": payload("element")}))
    shown(p, "h1", "element")
    query = {"business_key": payload("audit-key"), "customer": payload("audit-customer")}
    p.goto(site + "/audit?" + urlencode(query))
    assert p.input_value("input[name=business_key]") == query["business_key"]
    assert p.input_value("input[name=customer]") == query["customer"]
    p.goto(site + "/audit?" + urlencode({"business_key": payload("business-key")}))
    shown(p, "tr[data-instance] td", "business-key")  # found by its hostile key
    p.goto(site + "/audit?" + urlencode({"customer": "window.__xss='customer'"}))
    assert p.locator(f"tr[data-instance='{ids['probe']}']").count() == 1


def test_the_process_owners_pages(
    page: Any, site: str, ids: dict[str, int], tmp_path: Path
) -> None:
    p = page
    sign_in(p, site, "process.owner")
    english(p, site)
    p.goto(site + "/definitions")
    shown(p, "tr[data-definition=xss_probe] td", "process-name")
    shown(p, "tr[data-form] code", "form-key")
    shown(p, "tr[data-decision] code", "dmn-file")
    # the modeler: names on the canvas and in the properties panel, the server's check
    p.click("tr[data-definition=xss_probe] a:has-text('Edit')")
    p.click(".djs-element[data-element-id=enter]")
    shown(p, "#properties .bio-properties-panel-header-label", "task-name")
    p.click("#properties .bio-properties-panel-group-header-title:text-is('Documentation')")
    documentation = p.locator("#properties [data-group-id=group-documentation] textarea")
    assert "window.__xss='cdata'" in documentation.input_value()
    p.click("#properties >> text=Extension properties")
    p.click("#properties .bio-properties-panel-collapsible-entry-header:has-text('sla')")
    p.fill("[id$='enter-extensionProperty-0-value']", payload("sla"))
    p.click("button#check")
    p.locator("#problems li").first.wait_for()
    shown(p, "#problems li", "sla")  # the server's refusal quotes the value back
    shown(p, ".tradeflow-error-overlay", "sla")
    p.click("button#deploy")
    p.locator("#outcome", has_text="Unprocessable").wait_for()
    shown(p, "#outcome", "sla")
    shot(p, tmp_path, "xss-modeler")
    # the form editor: the same form, its components in the editor and the panel
    p.goto(site + "/definitions")
    p.click("tr[data-form]:has-text('form-key') a:has-text('Edit')")
    p.wait_for_selector("#editor .fjs-form-field")
    shown(p, "h1 code", "form-key")
    shown(p, "#editor .fjs-form-field-label", "form-label")
    p.click("#editor [data-id='customer_name_field']", force=True)
    p.click("#properties .bio-properties-panel-group-header-title:text-is('General')")
    shown(p, "#properties .bio-properties-panel-entry", "form-label")
    p.click("button#check")
    p.locator("#outcome", has_text="No problems").wait_for()
    shot(p, tmp_path, "xss-form-editor")
    # the decision table editor: names, labels, cells, and its diagram (DRD)
    p.goto(site + "/definitions")
    p.click("tr[data-decision]:has-text('dmn-file') a:has-text('Edit')")
    p.wait_for_selector("#editor .tjs-table")
    shown(p, "#editor .tjs-table", "input-label")
    shown(p, "#editor .tjs-table", "output-value")
    shown(p, "#editor .decision-table-name", "decision-name")
    p.click("#editor .tjs-table td.output-cell", force=True)
    p.click("button#check")
    p.locator("#outcome", has_text="No problems").wait_for()
    shot(p, tmp_path, "xss-decision-editor")
    p.click("#editor .view-drd-button")
    p.wait_for_selector("#editor .djs-element[data-element-id=xss_probe_decision]")
    shown(p, "#editor .djs-element[data-element-id=xss_probe_decision] text", "decision-name")


@pytest.mark.parametrize("csp_bypassed", [False])
def test_a_diagram_downloads_as_a_file_and_never_runs_as_a_page(
    page: Any, site: str, seen: Seen, tmp_path: Path
) -> None:
    """GET /api/v1/definitions/{key}/xml opened in the browser: the diagram's XHTML script
    (an extension element) would run in an XML document. It is saved, not shown; and a
    browser made to show it anyway (the download header stripped) still runs nothing:
    the policy on every API response sandboxes it."""
    p = page
    sign_in(p, site, "wang.fang")
    url = site + "/api/v1/definitions/xss_probe/xml"
    with p.expect_download() as download:
        try:
            p.goto(url)
        except Exception as exc:  # a download aborts the navigation
            assert "ERR_ABORTED" in str(exc) or "Download is starting" in str(exc), exc
    assert download.value.suggested_filename == "xss_probe-v1.bpmn"
    saved = tmp_path / "diagram.bpmn"
    download.value.save_as(saved)
    assert "window.__xss='xhtml-script'" in saved.read_text()

    def shown_anyway(route: Any) -> None:
        answer = route.fetch()
        headers = {k: v for k, v in answer.headers.items() if k != "content-disposition"}
        route.fulfill(response=answer, headers=headers)

    p.route(url, shown_anyway)
    p.goto(url)
    assert p.evaluate("document.contentType") == "application/xml"  # rendered as XML
    p.wait_for_timeout(300)
    assert seen.xss == []
    p.unroute(url)

    # the same XML with none of the headers: the payload is live (the test proves something)
    def bare(route: Any) -> None:
        answer = route.fetch()
        route.fulfill(status=200, content_type="application/xml", body=answer.body())

    p.route(url, bare)
    p.goto(url)
    p.wait_for_timeout(300)
    assert "xhtml-script" in seen.xss
    seen.xss.clear()


@pytest.mark.parametrize("csp_bypassed", [False])
def test_the_policy_blocks_a_script_that_slipped_in(
    page: Any, site: str, ids: dict[str, int], seen: Seen
) -> None:
    """If markup ever got through unescaped, the Content-Security-Policy runs none of it:
    neither an inline script without the page's nonce nor an inline event handler."""
    p = page
    sign_in(p, site, "chen.jie")
    p.goto(f"{site}/tasks/{ids['approve']}")
    p.wait_for_selector("#form textarea")
    try:
        p.add_script_tag(content="window.__xss='inline-script'")
    except Exception as exc:  # Playwright may report the refusal itself
        assert "Content Security Policy" in str(exc), exc
    p.evaluate(
        "document.body.insertAdjacentHTML('beforeend',"
        " `<img src=x onerror=\"window.__xss='inline-handler'\">`)"
    )
    p.wait_for_timeout(300)
    assert seen.xss == []
    assert any(v.startswith("script-src-elem") for v in seen.violations), seen.violations
    assert any(v.startswith("script-src-attr") for v in seen.violations), seen.violations
    seen.violations.clear()  # expected here: the policy did its work
    # and the nonce is this response's alone
    first = p.request.get(f"{site}/tasks/{ids['approve']}").headers["content-security-policy"]
    second = p.request.get(f"{site}/tasks/{ids['approve']}").headers["content-security-policy"]
    assert "'nonce-" in first and first != second


@pytest.mark.parametrize("csp_bypassed", [False])
def test_the_api_documentation_still_renders(page: Any, site: str) -> None:
    p = page
    p.goto(site + "/api/v1/docs")
    p.wait_for_selector(".opblock")
    assert p.locator(".opblock").count() > 20


def test_a_trail_downloads_as_csv(page: Any, site: str, ids: dict[str, int]) -> None:
    p = page
    sign_in(p, site, "chen.jie")
    p.goto(f"{site}/instances/{ids['probe']}")
    with p.expect_download() as download:
        p.click("a:has-text('CSV')")
    assert download.value.suggested_filename == f"instance-{ids['probe']}-audit.csv"
