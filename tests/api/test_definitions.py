"""/api/v1/definitions: deploy (process owners, admins), list, versions, the XML."""

from __future__ import annotations

from tests.api.conftest import V1, ApiClient, multipart, ok, problem
from tests.engine.conftest import fixture_files, read

KEYS = ["credit_check", "document_review", "order_fulfilment", "payment_collection"]
FORMS = ["issue_invoice", "prepare_documents", "review_documents", "write_off"]


def renamed_review() -> tuple[str, bytes]:
    """document_review with a new process name: a new version when deployed."""
    name, content = read("document_review.bpmn")
    old = b'<bpmn:process id="document_review" name="Shipping documents"'
    assert old in content
    return name, content.replace(old, b'<bpmn:process id="document_review" name="Shipping v2"')


def test_deploy_answers_201_with_definitions_and_forms(client: ApiClient) -> None:
    assert ok(client.get(f"{V1}/definitions", "clerk")) == []
    body = client.deploy(fixture_files())
    assert isinstance(body["deployment_id"], int)
    assert [d["key"] for d in body["definitions"]] == KEYS
    for item in body["definitions"]:
        assert item.keys() >= {"id", "key", "version", "name", "created"}
        assert (item["version"], item["created"]) == (1, True)
        assert isinstance(item["id"], int)
    names = {d["key"]: d["name"] for d in body["definitions"]}
    assert names["document_review"] == "Shipping documents"
    assert names["payment_collection"] == "Payment collection"
    assert sorted(f["key"] for f in body["forms"]) == FORMS
    assert all((f["version"], f["created"]) == (1, True) for f in body["forms"])
    # nothing that runs otherwise than in Camunda 7 (constructs.py): the calls say they
    # pass every variable
    assert body["warnings"] == []

    events = ok(client.get(f"{V1}/audit", "auditor", query_string={"kind": "definition_deployed"}))
    assert sorted(e["element_id"] for e in events["items"]) == KEYS
    assert {e["actor"] for e in events["items"]} == {"owner"}


def test_a_version_that_drops_a_milestone_element_deploys_with_a_warning(
    deployed: ApiClient,
) -> None:
    name, content = read("document_review.bpmn")
    assert b'id="review_documents"' in content
    dropped = content
    for attribute in (b"id", b"sourceRef", b"targetRef", b"bpmnElement"):  # not its form
        old = attribute + b'="review_documents'
        dropped = dropped.replace(old, attribute + b'="check_documents')
    body = deployed.deploy([(name, dropped)], status=201)
    assert [(d["key"], d["version"]) for d in body["definitions"]] == [("document_review", 2)]
    warning, caller = body["warnings"]
    assert "'review_documents' marks a milestone" in warning and "reviewed_at" in warning
    assert caller.startswith("process 'order_fulfilment' calls 'document_review' and goes on")


def test_an_identical_redeploy_stores_nothing(deployed: ApiClient) -> None:
    with deployed.unchanged():
        # admins deploy too; nothing new is 200, not 201
        body = deployed.deploy(fixture_files(), user="admin", status=200)
    assert body["deployment_id"] is None
    assert [(d["key"], d["version"], d["created"]) for d in body["definitions"]] == [
        (key, 1, False) for key in KEYS
    ]
    assert not any(f["created"] for f in body["forms"])


def test_versions_listing_and_xml(deployed: ApiClient) -> None:
    body = deployed.deploy([renamed_review()], user="admin")
    assert [(d["key"], d["version"], d["name"]) for d in body["definitions"]] == [
        ("document_review", 2, "Shipping v2")
    ]

    latest = ok(deployed.get(f"{V1}/definitions", "clerk"))  # every user may read
    assert [d["key"] for d in latest] == KEYS
    review = next(d for d in latest if d["key"] == "document_review")
    assert (review["version"], review["name"]) == (2, "Shipping v2")
    assert review["deployed_at"].endswith("+00:00")
    assert {d["version"] for d in latest if d["key"] != "document_review"} == {1}

    versions = ok(deployed.get(f"{V1}/definitions/document_review", "sales"))
    assert [(v["version"], v["name"]) for v in versions] == [
        (2, "Shipping v2"),
        (1, "Shipping documents"),
    ]
    assert versions[0]["id"] == body["definitions"][0]["id"]

    xml = deployed.get(f"{V1}/definitions/document_review/xml", "cashier")
    assert (xml.status_code, xml.mimetype) == (200, "application/xml")
    assert xml.get_data() == renamed_review()[1]
    first = deployed.get(
        f"{V1}/definitions/document_review/xml", "cashier", query_string={"version": 1}
    )
    assert (first.status_code, first.mimetype) == (200, "application/xml")
    assert first.get_data() == read("document_review.bpmn")[1]


def test_lint_problems_answer_422_with_every_error(deployed: ApiClient) -> None:
    name, content = read("payment_collection.bpmn")
    for old, new in [
        (b"<bpmn:flowNodeRef>write_off</bpmn:flowNodeRef>", b""),  # routed to no role
        (b'camunda:formRef="issue_invoice"', b'camunda:formRef="missing_form"'),
        (b"amount_received &gt;= invoice_amount", b"amount_received.real &gt;= 0"),
        (b">P30D<", b">__import__('time').sleep(9)<"),
    ]:
        assert old in content
        content = content.replace(old, new)
    with deployed.unchanged():
        response = deployed.post(
            f"{V1}/definitions",
            "owner",
            data=multipart([(name, content)]),
            content_type="multipart/form-data",
        )
        body = problem(response, 422, "diagram-invalid")
    errors = body["errors"]
    assert len(errors) >= 4
    assert all({"element", "message"} <= e.keys() and e["message"] for e in errors)
    assert {e["element"] for e in errors} >= {
        "write_off",
        "issue_invoice",
        "paid_in_full",
        "payment_overdue",
    }
    assert {e["file"] for e in errors} == {"payment_collection.bpmn"}

    with deployed.unchanged():
        response = deployed.post(
            f"{V1}/definitions",
            "owner",
            data=multipart([("notes.txt", b"hello"), ("broken.bpmn", b"<definitions")]),
            content_type="multipart/form-data",
        )
        errors = problem(response, 422, "diagram-invalid")["errors"]
    assert {e["file"] for e in errors} == {"notes.txt", "broken.bpmn"}


def test_only_process_owners_and_admins_deploy(client: ApiClient) -> None:
    for user in ("clerk", "checker", "auditor", "bank", "boss"):
        with client.unchanged():
            response = client.post(
                f"{V1}/definitions",
                user,
                data=multipart(fixture_files()),
                content_type="multipart/form-data",
            )
            problem(response, 403, "forbidden")
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions", data=multipart(fixture_files()), content_type="multipart/form-data"
        )
        problem(response, 401)
    assert ok(client.get(f"{V1}/definitions", "owner")) == []


def test_a_deploy_without_files_is_400(client: ApiClient) -> None:
    with client.unchanged():
        problem(client.post(f"{V1}/definitions", "owner", json={"files": []}), 400)
        problem(
            client.post(
                f"{V1}/definitions",
                "owner",
                data={"note": "no file here"},
                content_type="multipart/form-data",
            ),
            400,
        )


def test_unknown_definitions_are_404_and_bad_versions_422(deployed: ApiClient) -> None:
    problem(deployed.get(f"{V1}/definitions/no_such_process", "clerk"), 404, "not-found")
    problem(deployed.get(f"{V1}/definitions/no_such_process/xml", "clerk"), 404, "not-found")
    missing = deployed.get(
        f"{V1}/definitions/document_review/xml", "clerk", query_string={"version": 9}
    )
    assert "version 9" in problem(missing, 404, "not-found")["detail"]
    for bad in ("0", "-1", "two"):
        response = deployed.get(
            f"{V1}/definitions/document_review/xml", "clerk", query_string={"version": bad}
        )
        assert [e["field"] for e in problem(response, 422)["errors"]] == ["version"]


def test_other_methods_are_405(client: ApiClient) -> None:
    for method, url in [
        ("DELETE", "/definitions/document_review"),
        ("PUT", "/definitions"),
        ("POST", "/definitions/document_review/xml"),
    ]:
        with client.unchanged():
            response = client.request(method, V1 + url, "owner")
            problem(response, 405)
        assert "GET" in response.headers["Allow"]


def test_check_lints_like_a_deployment_and_stores_nothing(client: ApiClient) -> None:
    from tests.api.conftest import multipart

    good = fixture_files()
    name, content = read("document_review.bpmn")
    bad = (name, content.replace(b'camunda:formRef="prepare_documents"', b'camunda:formRef="nope"'))
    broken = [bad if n == name else (n, c) for n, c in good]
    for files, status in ((good, 200), (broken, 422)):
        with client.unchanged():
            response = client.post(
                f"{V1}/definitions/check",
                "owner",
                data=multipart(files),
                content_type="multipart/form-data",
            )
        if status == 200:
            assert ok(response) == {"errors": []}
        else:
            body = problem(response, 422, "diagram-invalid")
            assert [(e["file"], e["element"]) for e in body["errors"]] == [
                ("document_review.bpmn", "prepare_documents")
            ]
