"""A user task's assignment as Camunda 7 writes it, through the HTTP API: an assignee
(literal or ``${initiator}``), candidate users, candidate groups and priority as
expressions, due dates; and what each refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.conftest import V1, ApiClient, multipart, ok, problem
from tests.compat.test_refused import bpmn
from tests.diagrams import seq


def one_task(attributes: str, start: str = "") -> tuple[str, bytes]:
    return bpmn(
        f'<bpmn:startEvent id="s" {start}/><bpmn:userTask id="t" {attributes}/>'
        '<bpmn:endEvent id="e"/>' + seq("s", "t") + seq("t", "e")
    )


def task_of(client: ApiClient, instance: int) -> dict[str, Any]:
    return dict(ok(client.get(f"{V1}/tasks/{client.task(instance, 't')}", "admin")))


def inbox(client: ApiClient, user: str) -> list[int]:
    return [t["id"] for t in ok(client.get(f"{V1}/tasks", user))["items"]]


def start_refused(client: ApiClient, **variables: Any) -> str:
    with client.unchanged():
        response = client.post(
            f"{V1}/instances", "clerk", json={"definition": "compat", "variables": variables}
        )
        return str(problem(response, 422)["detail"])


def test_an_assignee_has_the_task_claimed_and_may_do_it_outside_the_group(
    client: ApiClient,
) -> None:
    client.deploy([one_task('camunda:candidateGroups="finance" camunda:assignee="boss"')])
    instance = client.start("compat", "clerk")
    task = task_of(client, instance)
    assert (task["assignee"], task["roles"], task["candidate_users"]) == ("boss", ["finance"],
                                                                          ["boss"])  # fmt: skip
    assert task["id"] in inbox(client, "boss")
    assert task["id"] not in inbox(client, "cashier")  # claimed by another
    refused = client.post(f"{V1}/tasks/{task['id']}/complete", "clerk", json={"data": {}})
    problem(refused, 403)
    client.complete(task["id"], "boss")
    assert client.kinds(instance)[-1] == "instance_completed"


def test_the_initiator_is_put_in_a_variable_and_can_be_the_assignee(client: ApiClient) -> None:
    client.deploy([one_task('camunda:assignee="${starter}"', 'camunda:initiator="starter"')])
    instance = client.start("compat", "sales")
    variables = ok(client.get(f"{V1}/instances/{instance}", "admin"))["variables"]
    assert variables["starter"] == "sales"
    task = task_of(client, instance)
    assert (task["assignee"], task["roles"]) == ("sales", [])
    client.complete(task["id"], "sales")


def test_candidate_users_may_claim_as_a_roles_holders_may(client: ApiClient) -> None:
    client.deploy([one_task('camunda:candidateUsers="sales, boss"')])
    instance = client.start("compat", "clerk")
    task = task_of(client, instance)
    assert (task["assignee"], task["roles"]) == (None, [])
    assert task["candidate_users"] == ["sales", "boss"]
    assert task["id"] in inbox(client, "sales") and task["id"] in inbox(client, "boss")
    assert task["id"] not in inbox(client, "cashier")
    ok(client.get(f"{V1}/instances/{instance}", "boss"))  # a candidate reads its instance
    problem(client.get(f"{V1}/instances/{instance}", "cashier"), 403)
    problem(client.post(f"{V1}/tasks/{task['id']}/claim", "cashier"), 403)
    ok(client.post(f"{V1}/tasks/{task['id']}/claim", "sales"))
    assert task["id"] not in inbox(client, "boss")
    queues = ok(client.get(f"{V1}/queues", "admin"))
    assert all(not q["role"].startswith("user:") for q in queues["items"]), queues


def test_candidate_users_from_an_expression_and_a_delegation_to_one(client: ApiClient) -> None:
    client.deploy([one_task('camunda:candidateGroups="finance" '
                            'camunda:candidateUsers="${reviewers}"')])  # fmt: skip
    instance = client.start("compat", "clerk", variables={"reviewers": ["boss"]})
    task = task_of(client, instance)
    assert task["candidate_users"] == ["boss"]
    delegated = client.post(f"{V1}/tasks/{task['id']}/delegate", "cashier", json={"user": "boss"})
    assert ok(delegated)["assignee"] == "boss"
    handed = client.post(f"{V1}/tasks/{task['id']}/delegate", "boss", json={"user": "sales"})
    problem(handed, 422)  # sales holds no role of the task and is no candidate


@pytest.mark.parametrize(
    ("team", "roles"),
    [("finance", ["finance"]), ("finance, manager", ["finance", "manager"]),
     (["manager"], ["manager"])],
)  # fmt: skip
def test_candidate_groups_from_an_expression_are_role_ids(
    client: ApiClient, team: Any, roles: list[str]
) -> None:
    client.deploy([one_task('camunda:candidateGroups="${team}"')])
    instance = client.start("compat", "clerk", variables={"team": team})
    assert task_of(client, instance)["roles"] == roles


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"team": "Finance Team"}, "candidateGroups gave 'Finance Team', which is no role id"),
        ({"team": 7}, "camunda:candidateGroups must be role ids"),
        ({}, "camunda:candidateGroups: "),
        ({"team": []}, "gave no role, and no user is named: nobody could take the task"),
    ],
)  # fmt: skip
def test_candidate_groups_that_are_no_role_ids_fail_the_start(
    client: ApiClient, variables: dict[str, Any], said: str
) -> None:
    client.deploy([one_task('camunda:candidateGroups="${team}"')])
    detail = start_refused(client, **variables)
    assert "element 't'" in detail and said in detail, detail


def test_priority_and_due_date_from_expressions(client: ApiClient) -> None:
    client.deploy([one_task('camunda:candidateGroups="finance" camunda:priority="${rank}" '
                            'camunda:dueDate="${due}"')])  # fmt: skip
    now = client.clock.now()
    cases = [
        ("2030-05-01T09:30:00+08:00", datetime(2030, 5, 1, 1, 30, tzinfo=UTC)),
        ("2030-05-01T09:30:00", datetime(2030, 5, 1, 9, 30, tzinfo=UTC)),
        ("2030-05-01", datetime(2030, 5, 1, tzinfo=UTC)),
        ("P2D", now + timedelta(days=2)),
        (None, None),
    ]
    for due, expected in cases:
        instance = client.start("compat", "clerk", variables={"rank": 90, "due": due})
        task = task_of(client, instance)
        assert task["priority"] == 90
        found = datetime.fromisoformat(task["due_at"]) if task["due_at"] else None
        assert found == expected, (due, task["due_at"])
    assert "a priority is a whole number 0..100" in start_refused(client, rank=101, due=None)
    assert "a priority is a whole number 0..100" in start_refused(client, rank="high", due=None)
    assert "which is no ISO 8601 date, time or duration" in start_refused(
        client, rank=1, due="next week"
    )


def test_literal_assignment_and_mixed_text_at_deploy(client: ApiClient) -> None:
    client.deploy([one_task('camunda:candidateGroups="finance" camunda:dueDate="2031-01-01"')])
    instance = client.start("compat", "clerk")
    assert task_of(client, instance)["due_at"].startswith("2031-01-01T00:00:00")
    mixed = one_task('camunda:candidateGroups="finance" camunda:assignee="team-${lead}"')
    with client.unchanged():
        response = client.post(f"{V1}/definitions", "owner", data=multipart([mixed]),
                               content_type="multipart/form-data")  # fmt: skip
        [error] = problem(response, 422, "diagram-invalid")["errors"]
    assert error["element"] == "t"
    assert "camunda:assignee 'team-${lead}' mixes text and an expression" in error["message"]


def test_a_task_nobody_can_take_is_still_refused(client: ApiClient) -> None:
    with client.unchanged():
        response = client.post(f"{V1}/definitions", "owner",
                               data=multipart([one_task('camunda:priority="${rank}"')]),
                               content_type="multipart/form-data")  # fmt: skip
        [error] = problem(response, 422, "diagram-invalid")["errors"]
    assert "user task is routed to no role" in error["message"]


@pytest.mark.parametrize(
    ("attribute", "value", "said"),
    [
        ("assignee", "<b>boss</b>", "camunda:assignee gave '<b>boss</b>', which is no user's name"),
        ("assignee", 7, "camunda:assignee must be a user's name, not int"),
        ("candidateUsers", "boss, two words", "gave 'two words', which is no user's name"),
        ("candidateUsers", [f"user{n}" for n in range(100)],
         "names more users than a task can hold"),
    ],
)  # fmt: skip
def test_names_that_can_be_no_users_fail_the_start(
    client: ApiClient, attribute: str, value: Any, said: str
) -> None:
    client.deploy([one_task(f'camunda:candidateGroups="finance" camunda:{attribute}="${{who}}"')])
    detail = start_refused(client, who=value)
    assert "element 't'" in detail and said in detail, detail
