"""The web pages through the Flask test client: sign-in, sessions and CSRF, the inbox,
a task's page, an instance's page, the language. (Browsers: tests/web/test_browser.py.)"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from engine.people import users
from engine.storage import Database, TaskState
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.engine.conftest import fixture_files

PASSWORD = "correct horse battery"


@functools.cache
def hashed() -> str:
    """PASSWORD's argon2 hash, made once (each takes tens of milliseconds)."""
    return users.hash_password(PASSWORD)


@pytest.fixture
def flow(db: Database, clock: FakeClock) -> Tradeflow:
    tf = Tradeflow(db, clock)
    tf.deploy(fixture_files(), actor="owner")
    for name, roles in (("clerk", ["documents_logistics"]), ("checker", ["risk_compliance"]),
                        ("cashier", ["finance"])):  # fmt: skip
        tf.add_user(name, roles)
        with tf.db.transaction() as session:
            users.set_password(session, name, hashed(), clock.now(), locale="en")
    return tf


@pytest.fixture
def browser(flow: Tradeflow, tmp_path: Path) -> Iterator[FlaskClient]:
    app = create_app({"TRADEFLOW": flow, "SECRET_KEY": "test", "TESTING": True})
    yield app.test_client()


def csrf(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf[-_]token" (?:value|content)="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def sign_in(client: FlaskClient, name: str, password: str = PASSWORD) -> int:
    token = csrf(client)
    response = client.post("/login", data={"username": name, "password": password,
                                            "csrf_token": token})  # fmt: skip
    return response.status_code


def page_data(page: str, element_id: str) -> Any:
    """The JSON a page hands its scripts in <script type="application/json" id=…>."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>',
                      page, re.DOTALL)  # fmt: skip
    assert found, page[-800:]
    return json.loads(found.group(1))


def test_pages_want_a_signed_in_person(browser: FlaskClient) -> None:
    for path in ("/", "/tasks/1", "/instances/1"):
        response = browser.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_a_wrong_password_or_name_is_refused_alike(browser: FlaskClient) -> None:
    for name, password in (("clerk", "wrong password"), ("nobody", PASSWORD), ("clerk", "")):
        assert sign_in(browser, name, password) == 401
    assert browser.get("/").status_code == 302
    assert sign_in(browser, "clerk") == 302
    assert browser.get("/").status_code == 200


def test_signing_in_needs_the_csrf_token(browser: FlaskClient) -> None:
    response = browser.post("/login", data={"username": "clerk", "password": PASSWORD})
    assert response.status_code == 400
    assert browser.get("/").status_code == 302


def test_no_open_redirect_after_sign_in(browser: FlaskClient) -> None:
    token = csrf(browser)
    response = browser.post("/login?next=//evil.example/x", data={
        "username": "clerk", "password": PASSWORD, "csrf_token": token})  # fmt: skip
    assert response.headers["Location"] == "/"


def test_the_inbox_shows_the_roles_tasks_overdue_first(
    browser: FlaskClient, flow: Tradeflow, clock: FakeClock
) -> None:
    early = flow.start("document_review", actor="clerk", business_key="SO-1")
    clock.advance(days=3)  # SO-1's preparation (P1D) is now overdue
    later = flow.start("document_review", actor="clerk", business_key="SO-2")
    flow.start("payment_collection", actor="cashier", business_key="SO-3")  # not clerk's
    sign_in(browser, "clerk")
    page = browser.get("/").get_data(as_text=True)
    rows = re.findall(r'<tr class="([^"]*)" data-task="(\d+)"', page)
    tasks = {t.instance_id: t.id for t in flow.inbox("clerk").tasks}
    assert [int(task) for _, task in rows] == [tasks[early], tasks[later]]
    assert [cls for cls, _ in rows] == ["overdue", ""]
    assert "SO-3" not in page
    assert 'data-role="documents_logistics"' in page


def test_a_task_for_named_users_shows_them_by_name(browser: FlaskClient, flow: Tradeflow) -> None:
    """camunda:candidateUsers: the user sees the task in the inbox, the queue named as the
    user is named, not as the engine keeps it."""
    from tests.diagrams import diagram, seq

    body = ('<bpmn:startEvent id="s"/><bpmn:userTask id="t" camunda:candidateUsers="cashier"/>'
            '<bpmn:endEvent id="e"/>' + seq("s", "t") + seq("t", "e"))  # fmt: skip
    flow.deploy([diagram("for_one", body)], actor="owner")
    iid = flow.start("for_one", actor="clerk")
    sign_in(browser, "cashier")
    page = browser.get("/").get_data(as_text=True)
    [task] = flow.tasks_of(iid)
    assert f'data-task="{task.id}"' in page
    row = page[page.index(f'data-task="{task.id}"') :].split("</tr>")[0]
    assert "<td>cashier</td>" in row and "user:" not in row, row


def test_claim_and_give_back_from_the_inbox(browser: FlaskClient, flow: Tradeflow) -> None:
    iid = flow.start("document_review", actor="clerk")
    [task] = flow.tasks_of(iid)
    sign_in(browser, "clerk")
    token = csrf(browser, "/")
    assert browser.post(f"/tasks/{task.id}/claim").status_code == 400  # no token
    assert flow.tasks_of(iid)[0].assignee is None
    browser.post(f"/tasks/{task.id}/claim", data={"csrf_token": token})
    assert flow.tasks_of(iid)[0].assignee == "clerk"
    browser.post(f"/tasks/{task.id}/unclaim", data={"csrf_token": token})
    assert flow.tasks_of(iid)[0].assignee is None


def test_a_task_page_carries_its_form_and_an_outsider_gets_403(
    browser: FlaskClient, flow: Tradeflow
) -> None:
    iid = flow.start("document_review", actor="clerk", variables={"invoice_number": "INV-7"})
    [task] = flow.tasks_of(iid)
    sign_in(browser, "cashier")
    assert browser.get(f"/tasks/{task.id}").status_code == 403
    assert browser.get(f"/instances/{iid}").status_code == 403
    browser.post("/logout", data={"csrf_token": csrf(browser, "/")})
    sign_in(browser, "clerk")
    page = browser.get(f"/tasks/{task.id}").get_data(as_text=True)
    data = page_data(page, "task-data")
    assert "invoice_number" in [c.get("key") for c in data["form"]["components"]]  # its schema
    assert data["data"] == {"invoice_number": "INV-7"}  # the data it starts from
    assert '<script nonce="' in page and 'src="/static/pages/task.js"' in page


def test_the_page_scripts_use_the_api_with_the_session_and_its_csrf_token(
    browser: FlaskClient, flow: Tradeflow
) -> None:
    iid = flow.start("document_review", actor="clerk")
    [task] = flow.tasks_of(iid)
    sign_in(browser, "clerk")
    token = csrf(browser, f"/tasks/{task.id}")
    url = f"/api/v1/tasks/{task.id}/complete"
    assert browser.post(url, json={"data": {"invoice_number": "I-1"}}).status_code == 400
    refused = browser.post(url, json={"data": {}}, headers={"X-CSRFToken": token})
    assert refused.status_code == 422  # the form's errors, as the page shows them inline
    assert [e["field"] for e in refused.get_json()["errors"]] == ["invoice_number"]
    done = browser.post(url, json={"data": {"invoice_number": "I-1"}},
                        headers={"X-CSRFToken": token})  # fmt: skip
    assert done.status_code == 200
    assert flow.tasks_of(iid)[0].state == TaskState.COMPLETED
    assert flow.history(iid)[-2].actor == "clerk"


def test_an_instance_page_marks_the_diagram_and_shows_the_trail(
    browser: FlaskClient, flow: Tradeflow, clock: FakeClock
) -> None:
    iid = flow.start("document_review", actor="clerk")
    [task] = flow.tasks_of(iid)
    flow.complete(task.id, actor="clerk", data={"invoice_number": "INV-9"})
    clock.advance(days=4)  # the review (PT8H in working time) is overdue
    sign_in(browser, "checker")
    page = browser.get(f"/instances/{iid}").get_data(as_text=True)
    data = page_data(page, "instance-data")
    assert data["markers"]["done"] == ["documents_requested", "prepare_documents"]
    assert data["markers"]["overdue"] == ["review_documents"]
    assert "bpmn:definitions" in data["xml"]  # the diagram the instance runs
    assert "<code>invoice_number</code>: — → INV-9" in page  # the trail says what changed


def test_an_instance_page_marks_what_the_compacted_task_tree_no_longer_holds(
    browser: FlaskClient, flow: Tradeflow
) -> None:
    """Sent back three times: the first rounds' tasks are gone from the task tree
    (engine/execution/compaction.py), and the diagram still shows them done."""
    iid = flow.start("document_review", actor="clerk")
    for _ in range(3):
        [prepare] = [t for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]
        flow.complete(prepare.id, actor="clerk", data={"invoice_number": "INV-9"})
        [review] = [t for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]
        flow.complete(review.id, actor="checker", data={"documents_ok": False})
    sign_in(browser, "checker")
    page = browser.get(f"/instances/{iid}").get_data(as_text=True)
    markers = page_data(page, "instance-data")["markers"]
    assert markers["done"] == ["documents_ok_gateway", "documents_requested", "review_documents"]
    assert markers["active"] == ["prepare_documents"]


def test_the_language_switch(browser: FlaskClient, flow: Tradeflow) -> None:
    with flow.db.transaction() as session:
        users.set_password(session, "clerk", hashed(), flow.clock.now(), locale="zh")
    sign_in(browser, "clerk")
    assert "我的待办" in browser.get("/").get_data(as_text=True)  # the person's language
    browser.get("/lang/en", headers={"Referer": "http://localhost/"})
    assert "My inbox" in browser.get("/").get_data(as_text=True)
    assert "单证与物流组" in browser.get("/lang/zh", follow_redirects=True).get_data(True)


def test_the_audit_page_finds_instances_for_auditors_only(
    browser: FlaskClient, flow: Tradeflow, clock: FakeClock
) -> None:
    flow.add_user("inspector", [], users.Flags(auditor=True))
    with flow.db.transaction() as session:
        users.set_password(session, "inspector", hashed(), flow.clock.now(), locale="en")
    first = flow.start("document_review", actor="clerk", business_key="SO-2026-1")
    clock.advance(days=3)
    second = flow.start("document_review", actor="clerk", business_key="SO-2026-2")
    flow.start("payment_collection", actor="cashier", business_key="PC-9")
    sign_in(browser, "clerk")
    assert browser.get("/audit").status_code == 403  # an employee is no auditor
    browser.post("/logout", data={"csrf_token": csrf(browser, "/")})
    sign_in(browser, "inspector")

    def found(**query: str) -> list[int]:
        page = browser.get("/audit", query_string=query).get_data(as_text=True)
        return [int(i) for i in re.findall(r'data-instance="(\d+)"', page)]

    assert found(business_key="SO-2026-") == [second, first]  # newest first
    assert found(business_key="SO-2026-", to="2026-11-28") == [first]
    assert found(business_key="SO-2026-", **{"from": "2026-11-29"}) == [second]
    assert len(found(definition="payment_collection")) == 1
    assert found(business_key="SO_2026") == []  # _ is a character, not a wildcard
    flow.start("document_review", actor="clerk", business_key="X-1",
               variables={"customer_name": "Lyon Outillage SA"})  # fmt: skip
    assert len(found(customer="Lyon Outillage")) == 1  # anywhere in the order's data
    csv_text = browser.get(f"/instances/{first}/audit.csv").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("seq,at,actor,kind")
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]  # started, task created
    assert flow.history(first)[-1].hash in lines[-1]


def test_the_dashboard_shows_the_measures_and_the_waiting(
    browser: FlaskClient, flow: Tradeflow, clock: FakeClock
) -> None:
    flow.add_user("inspector", [], users.Flags(auditor=True))
    with flow.db.transaction() as session:
        users.set_password(session, "inspector", hashed(), flow.clock.now(), locale="en")
    iid = flow.start("document_review", actor="clerk", business_key="SO-1")
    clock.advance(hours=2)
    [task] = flow.tasks_of(iid)
    flow.complete(task.id, actor="clerk", data={"invoice_number": "INV-1"})
    review = next(t for t in flow.tasks_of(iid) if t.element_id == "review_documents")
    flow.complete(review.id, actor="checker", data={"documents_ok": True})
    sign_in(browser, "clerk")
    assert browser.get("/dashboard").status_code == 403
    browser.post("/logout", data={"csrf_token": csrf(browser, "/")})
    sign_in(browser, "inspector")
    page = browser.get("/dashboard", query_string={"definition": "document_review"}).get_data(True)
    assert re.search(r'id="kpi-document_first_pass_rate" href="[^"]+"><strong>100%</strong>', page)
    waited = re.search(
        r'data-element="prepare_documents"><td><a href="[^"]+">[^<]+</a></td><td>1</td>\s*'
        r"<td>([^<]+)<",
        page,
    )
    assert waited and waited.group(1).startswith("2.0 h")  # created -> claimed at completion
    assert page_data(page, "dashboard-data")["workload"]["documents_logistics"] == {
        "open": 0, "completed": 1, "overdue": 0}  # fmt: skip
    # each figure opens the instances behind it, with the dashboard's slice
    link = re.search(r'id="kpi-document_first_pass_rate" href="([^"]+)"', page)
    assert link and "definition=document_review" in link.group(1)
    behind = browser.get(html.unescape(link.group(1))).get_data(True)
    assert re.search(rf'data-instance="{iid}"><td><a href="/instances/{iid}">#{iid}</a></td>'
                     r"<td>SO-1</td>\s*<td>yes</td>", behind)  # fmt: skip
    step = browser.get("/dashboard/instances", query_string={"element": "prepare_documents"})
    assert f'data-instance="{iid}"' in step.get_data(True)
    # sliced: nothing of this history was done by another user, or in an earlier month
    for other in ({"user": "someone"}, {"from": "2026-01-01", "to": "2026-01-31"}):
        sliced = browser.get("/dashboard", query_string=other).get_data(True)
        assert 'data-element="prepare_documents"' not in sliced
    assert browser.get("/dashboard/instances", query_string={"measure": "nope"}).status_code == 404


def test_an_api_call_without_the_session_cookie_builds_no_cookie_signer(
    browser: FlaskClient, flow: Tradeflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = flow.add_user("auditor", [], users.Flags(auditor=True))
    sign_in(browser, "clerk")
    signers: list[str] = []
    interface = browser.application.session_interface
    build = type(interface).get_signing_serializer

    def counted(self: object, app: object) -> object:
        signers.append("built")
        return build(interface, app)  # type: ignore[arg-type]

    monkeypatch.setattr(type(interface), "get_signing_serializer", counted)
    bearer = browser.application.test_client()  # no cookie jar shared with the pages
    assert (
        bearer.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    assert signers == []
    assert browser.get("/api/v1/queues").status_code == 200  # the session still signs in
    assert signers


def test_data_reaches_the_page_scripts_as_json_that_closes_no_element(
    browser: FlaskClient, flow: Tradeflow
) -> None:
    """A value holding ``</script>`` once ended the page's script and began the sender's
    (issue 14: a start variable approved the manager's quotation)."""
    hostile = "</script><script>approve()</script><!-- ' & \" <b>"
    iid = flow.start("document_review", actor="clerk", variables={"invoice_number": hostile})
    [task] = flow.tasks_of(iid)
    sign_in(browser, "clerk")
    for path, block in ((f"/tasks/{task.id}", "task-data"), (f"/instances/{iid}", "instance-data")):
        page = browser.get(path).get_data(as_text=True)
        assert "<script>approve()" not in page and "<!-- '" not in page
        found = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>',
                          page, re.DOTALL)  # fmt: skip
        assert found and "<" not in found.group(1) and "&" not in found.group(1)
    assert page_data(browser.get(f"/tasks/{task.id}").get_data(True), "task-data")["data"] == {
        "invoice_number": hostile}  # fmt: skip


def test_a_page_runs_only_the_scripts_it_was_sent_with(
    browser: FlaskClient, flow: Tradeflow
) -> None:
    """Every script tag carries this response's nonce (or is JSON, which runs nothing), and
    the policy allows no other: no inline script, no handler in markup, no eval."""
    iid = flow.start("document_review", actor="clerk")
    [task] = flow.tasks_of(iid)
    sign_in(browser, "clerk")
    nonces = []
    for path in (f"/tasks/{task.id}", f"/instances/{iid}", "/", f"/tasks/{task.id}"):
        response = browser.get(path)
        policy = response.headers["Content-Security-Policy"]
        found = re.search(r"script-src 'nonce-([\w-]+)';", policy)
        assert found, policy
        nonces.append(found.group(1))
        for tag in re.findall(r"<script[^>]*>", response.get_data(as_text=True)):
            assert re.fullmatch(
                rf'<script nonce="{found.group(1)}" src="/static/[\w/.-]+">', tag
            ) or re.fullmatch(r'<script type="application/json" id="[\w-]+">', tag), tag
        assert "style-src 'self';" in policy and "'unsafe-eval'" not in policy
        for header, value in {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                              "Referrer-Policy": "same-origin"}.items():  # fmt: skip
            assert response.headers.getlist(header) == [value]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert len(set(nonces)) == len(nonces)  # one per response
    login = browser.application.test_client().get("/login")
    assert "script-src 'nonce-" in login.headers["Content-Security-Policy"]


def test_only_the_editors_may_style_inline(browser: FlaskClient, flow: Tradeflow) -> None:
    """bpmn-js, form-js and dmn-js style their editors inline; no other page needs to."""
    flow.add_user("designer", [], users.Flags(process_owner=True))
    with flow.db.transaction() as session:
        users.set_password(session, "designer", hashed(), flow.clock.now(), locale="en")
    sign_in(browser, "designer")
    form_key = flow.tasks_of(flow.start("document_review", actor="clerk"))[0].form_key
    for path in ("/definitions/document_review/edit", f"/forms/{form_key}/edit"):
        policy = browser.get(path).headers["Content-Security-Policy"]
        assert "style-src 'self' 'unsafe-inline';" in policy, path
        assert re.search(r"script-src 'nonce-[\w-]+';", policy), path  # scripts as strict
    for path in ("/", "/definitions", "/dashboard", "/audit"):
        assert "style-src 'self';" in browser.get(path).headers["Content-Security-Policy"]
