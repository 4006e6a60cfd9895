"""Security headers (api/headers.py): every answer of the API is data a browser neither
renders as a page nor frames, and the API's documentation page
runs only its own scripts. (The pages' policy: tests/web/test_pages.py; in a browser:
tests/web/test_xss.py.)"""

from __future__ import annotations

import base64
import hashlib
import re

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
        for name, value in DATA.items():
            assert response.headers.getlist(name) == [value], (what, name, response.headers)


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
