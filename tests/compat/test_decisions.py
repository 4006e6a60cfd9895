"""A business rule task takes its decision as Camunda 7 binds it: ``latest`` (the default)
is the newest deployed version when the task runs, so a decision table edited and
deployed on its own changes the next decisions; ``deployment`` keeps the table deployed
with the process. Driven through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import V1, ApiClient, multipart, ok, problem
from tests.compat.test_refused import DMN_HEAD, bpmn
from tests.diagrams import seq, user


def grading(threshold: int, top: str = "A") -> tuple[str, bytes]:
    """The decision `grade`: `top` from ``threshold`` up, else "C"."""
    rules = "".join(
        f'<rule id="r{n}"><inputEntry id="r{n}i"><text>{cell}</text></inputEntry>'
        f'<outputEntry id="r{n}o"><text>"{out}"</text></outputEntry></rule>'
        for n, (cell, out) in enumerate(((f"&gt;= {threshold}", top), ("-", "C")))
    )
    body = (
        '<decision id="grade" name="grade"><decisionTable id="grade_table" hitPolicy="FIRST">'
        '<input id="i"><inputExpression id="ie" typeRef="number"><text>score</text>'
        '</inputExpression></input><output id="o" name="grade" typeRef="string"/>'
        f"{rules}</decisionTable></decision>"
    )
    return "grade.dmn", (DMN_HEAD + body + "</definitions>").encode()


def graded_process(binding: str = "") -> tuple[str, bytes]:
    """Wait at `before`, grade, wait at `after`."""
    bound = f' camunda:decisionRefBinding="{binding}"' if binding else ""
    return bpmn(
        '<bpmn:startEvent id="s"/>' + user("before")
        + f'<bpmn:businessRuleTask id="rate" camunda:decisionRef="grade"{bound}/>'
        + user("after") + '<bpmn:endEvent id="e"/>'
        + seq("s", "before") + seq("before", "rate") + seq("rate", "after") + seq("after", "e")
    )  # fmt: skip


def graded(client: ApiClient, instance_id: int) -> Any:
    client.complete(client.task(instance_id, "before"), "cashier")
    body = ok(client.get(f"{V1}/instances/{instance_id}", "admin"))
    return body["variables"]["grade"]


def test_a_table_deployed_alone_decides_the_next_decisions(client: ApiClient) -> None:
    first = client.deploy([graded_process(), grading(700)])
    assert [(d["key"], d["version"], d["created"]) for d in first["decisions"]] == [
        ("grade", 1, True)
    ]
    waiting = client.start("compat", "clerk", variables={"score": 650})
    assert graded(client, client.start("compat", "clerk", variables={"score": 650})) == "C"

    edited = client.deploy([grading(600)])  # the table's editor deploys the file alone
    assert edited["deployment_id"] is not None and edited["definitions"] == []
    assert [(d["key"], d["version"], d["created"]) for d in edited["decisions"]] == [
        ("grade", 2, True)
    ]
    # a new instance, and one that was waiting before the edit, both take version 2
    assert graded(client, client.start("compat", "clerk", variables={"score": 650})) == "A"
    assert graded(client, waiting) == "A"
    trail = ok(client.get(f"{V1}/audit", "auditor", query_string={"kind": "decision_deployed"}))
    assert [(e["data"]["key"], e["data"]["version"], e["actor"]) for e in trail["items"]] == [
        ("grade", 1, "owner"),
        ("grade", 2, "owner"),
    ]


def test_the_same_table_again_is_no_new_version(client: ApiClient) -> None:
    client.deploy([graded_process(), grading(700)])
    again = client.deploy([grading(700)], status=200)
    assert again["deployment_id"] is None
    assert [(d["version"], d["created"]) for d in again["decisions"]] == [(1, False)]


@pytest.mark.parametrize(("binding", "grade"), [("deployment", "C"), ("latest", "A")])
def test_a_deployment_binding_keeps_the_table_deployed_with_the_process(
    client: ApiClient, binding: str, grade: str
) -> None:
    client.deploy([graded_process(binding), grading(700)])
    client.deploy([grading(600)])
    assert graded(client, client.start("compat", "clerk", variables={"score": 650})) == grade


def test_a_deployment_binding_without_its_table_in_the_deployment_is_refused(
    client: ApiClient,
) -> None:
    client.deploy([grading(700)])
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions", "owner", data=multipart([graded_process("deployment")]),
            content_type="multipart/form-data",
        )  # fmt: skip
        [error] = problem(response, 422, "diagram-invalid")["errors"]
    assert error["element"] == "rate"
    assert "deploy its .dmn file with the process, or bind to latest" in error["message"]


def test_the_upgrade_numbers_the_decisions_already_deployed(client: ApiClient) -> None:
    """Migration 0012 numbers each decision of the .dmn files deployed before it, in the
    order they were deployed, as deploy would have; 0013 marks them legacy."""
    from alembic import command
    from sqlalchemy import select

    from engine.storage import Decision, upgrade
    from engine.storage.schema import alembic_config

    client.deploy([graded_process(), grading(700)])
    commented = grading(600)[1].replace(b"<decision ", b"<!-- edited --><decision ")
    client.deploy([("grade.dmn", commented)])
    client.deploy([grading(500, top="B")])
    db = client.flow.db
    with db.reading() as session:
        before = session.execute(
            select(Decision.key, Decision.version, Decision.resource_id, Decision.sha256)
        ).all()
    assert [(k, v) for k, v, _, _ in before] == [("grade", 1), ("grade", 2), ("grade", 3)]
    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011")
    upgrade(db)
    with db.reading() as session:
        after = session.execute(
            select(Decision.key, Decision.version, Decision.resource_id, Decision.sha256)
        ).all()
    assert after == before
    with db.reading() as session:  # 0013: deployed before, they are read as they were
        assert set(session.scalars(select(Decision.legacy))) == {True}
    # deployed again unchanged, the newest becomes a version read as decisions are now
    body = client.deploy([grading(500, top="B")])
    assert [(d["key"], d["version"]) for d in body["decisions"]] == [("grade", 4)]
    assert client.deploy([grading(500, top="B")], status=200)["deployment_id"] is None


def test_a_table_deployed_alone_must_build_as_it_will_run(client: ApiClient) -> None:
    """Bound to latest, a table deployed on its own decides at once: one that can't run
    (a FEEL function in a cell) is refused, not left to fail each task."""
    client.deploy([graded_process(), grading(700)])
    name, content = grading(600)
    broken = content.replace(b"&gt;= 600", b"&gt;= count(600, 700)")
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions", "owner", data=multipart([(name, broken)]),
            content_type="multipart/form-data",
        )  # fmt: skip
        errors = problem(response, 422, "diagram-invalid")["errors"]
    assert [(e["file"], e["element"]) for e in errors] == [("grade.dmn", "r0")], errors
    assert "the FEEL function 'count()' doesn't run here" in errors[0]["message"]


def test_a_decision_deployed_before_decides_as_it_did_then(client: ApiClient) -> None:
    """Decisions deployed before decisions were read as DMN defines them are marked
    legacy (migration 0013): their UNIQUE answers the first match, as it did; a table
    deployed since fails on two matches, as Camunda's does."""
    from sqlalchemy import update

    from engine.storage import Decision

    overlapping = grading(700)[1].replace(b'hitPolicy="FIRST"', b'hitPolicy="UNIQUE"')
    client.deploy([graded_process(), ("grade.dmn", overlapping)])
    instance = client.start("compat", "clerk", variables={"score": 800})
    response = client.post(f"{V1}/tasks/{client.task(instance, 'before')}/complete", "cashier",
                           json={"data": {}})  # fmt: skip
    assert (
        "rules 1, 2 all match, and hit policy UNIQUE allows one" in problem(response, 422)["detail"]
    )
    with client.flow.db.transaction() as session:
        session.execute(update(Decision).values(legacy=True))
    client.flow.runtime.decisions.clear()
    assert graded(client, instance) == "A"
    # deployed again, unchanged: a new version, read as decisions are read now
    body = client.deploy([("grade.dmn", overlapping)])
    assert [(d["key"], d["version"], d["created"]) for d in body["decisions"]] == [
        ("grade", 2, True)
    ]
    again = client.start("compat", "clerk", variables={"score": 800})
    response = client.post(f"{V1}/tasks/{client.task(again, 'before')}/complete", "cashier",
                           json={"data": {}})  # fmt: skip
    assert "hit policy UNIQUE allows one" in problem(response, 422)["detail"]
