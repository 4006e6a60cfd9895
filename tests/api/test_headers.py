"""Security headers (api/headers.py): every answer of the API is data a browser neither
renders as a page nor frames, a diagram is a download, and the API's documentation page
runs only its own scripts. (The pages' policy: tests/web/test_pages.py; in a browser:
tests/web/test_xss.py.)"""

from __future__ import annotations

import base64
import hashlib
import re

from api.headers import attachment
from tests.api.conftest import V1, ApiClient

DATA = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def test_every_answer_of_the_api_is_data_for_a_browser(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    answers = {
        "json": deployed.get(f"{V1}/queues", "clerk"),
        "problem": deployed.get(f"{V1}/tasks/999999", "clerk"),
        "unauthenticated": deployed.get(f"{V1}/queues"),
        "not allowed": deployed.request("DELETE", f"{V1}/queues", "clerk"),
        "unknown path": deployed.get("/no/such/page"),
        "health": deployed.get(f"{V1}/health"),
        "openapi": deployed.get(f"{V1}/openapi.json"),
        "metrics": deployed.get("/metrics"),
        "diagram": deployed.get(f"{V1}/definitions/document_review/xml", "clerk"),
        "export": deployed.get(f"{V1}/audit/export", "auditor", query_string={"format": "xes"}),
        "trail": deployed.get(f"{V1}/instances/{iid}/audit", "clerk"),
        "swagger file": deployed.get(f"{V1}/docs/static/swagger-ui-bundle.js"),
    }
    for what, response in answers.items():
        response.get_data()  # a streamed body (the export) holds its reading open until read
        for name, value in DATA.items():
            assert response.headers.getlist(name) == [value], (what, name, response.headers)


def test_a_diagram_is_a_file_to_save_never_a_page(deployed: ApiClient) -> None:
    """An XML document may hold an XHTML script (extension elements allow any markup): a
    browser that opened it would run it on the API's origin."""
    latest = deployed.get(f"{V1}/definitions/document_review/xml", "clerk")
    assert latest.status_code == 200
    assert latest.headers["Content-Disposition"] == "attachment; filename=document_review-v1.bpmn"
    assert latest.mimetype == "application/xml"  # as documented, for the API's clients
    assert latest.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in latest.headers["Content-Security-Policy"]
    first = deployed.get(
        f"{V1}/definitions/document_review/xml", "clerk", query_string={"version": 1}
    )
    assert first.headers["Content-Disposition"].endswith("filename=document_review-v1.bpmn")


def test_a_download_name_is_safe_in_a_header_and_on_a_disk() -> None:
    assert attachment("order-v2.bpmn") == "attachment; filename=order-v2.bpmn"
    # a process key may be any XML name: the UTF-8 name beside an ASCII one (RFC 6266)
    assert attachment("订单-v1.bpmn") == (
        "attachment; filename=-v1.bpmn; filename*=UTF-8''%E8%AE%A2%E5%8D%95-v1.bpmn"
    )
    assert attachment("Café.bpmn") == (
        "attachment; filename=Cafe.bpmn; filename*=UTF-8''Caf%C3%A9.bpmn"
    )
    # quotes, separators, line breaks and paths never reach the header
    for hostile in ('a"; filename=evil.html', "x\r\nSet-Cookie: a=b", "../../etc/passwd", ""):
        header = attachment(hostile)
        name = header.removeprefix("attachment; filename=")
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", name), header


def test_the_api_documentation_runs_its_own_inline_script_only(client: ApiClient) -> None:
    page = client.get(f"{V1}/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    [script] = re.findall(r"<script>(.*?)</script>", page.get_data(as_text=True), re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"
