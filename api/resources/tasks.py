"""The caller's inbox and the work on tasks."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.context import actor, flow, once
from api.openapi import Blueprint
from api.schemas import (
    INT_MAX,
    CompletedOut,
    CompleteIn,
    DelegateIn,
    InboxArgs,
    TaskDetailOut,
    TaskOut,
    TaskPage,
)
from api.views import (
    check_can_see_task,
    decode_cursor,
    encode_cursor,
    latest_form,
)
from engine import queues
from engine.commands import tasks
from engine.queues import ClaimFilter, InboxQuery

blp = Blueprint(
    "tasks", __name__, url_prefix="/api/v1/tasks", description="Inboxes, claims and completions"
)


@blp.route("")
class Inbox(MethodView):
    @blp.arguments(InboxArgs, location="query")
    @blp.response(200, TaskPage)
    @blp.problems(400)  # a cursor this API did not give out
    def get(self, args: dict[str, Any]) -> Any:
        """Open tasks of the caller's roles, unassigned or assigned to the caller."""
        claim = ClaimFilter.ANY
        if args.get("assignee") == "me" or args.get("state") == "claimed":
            claim = ClaimFilter.CLAIMED  # in the caller's inbox, claimed means by the caller
        elif args.get("state") in ("open", "unclaimed"):
            claim = ClaimFilter.UNCLAIMED
        offset = decode_cursor(args.get("cursor"))
        query = InboxQuery(
            role=args.get("role"),
            claim=claim,
            business_key=args.get("business_key"),
            instance_id=args.get("instance_id"),
            overdue=args.get("overdue"),
            sort=args["sort"],
            limit=args["limit"],
            offset=offset,
            count=args["with_total"],
        )
        with flow().db.reading() as session:
            found = queues.inbox(session, actor(), query, flow().clock.now())
        body: dict[str, Any] = {
            "items": found.tasks,
            "next": encode_cursor(offset + args["limit"]) if found.more else None,
        }
        if found.total is not None:
            body["total"] = found.total
        return body


@blp.route(f"/<int(max={INT_MAX}):task_id>")
class TaskItem(MethodView):
    @blp.response(200, TaskDetailOut)
    @blp.problems(403)
    def get(self, task_id: int) -> Any:
        """A task with its form and the data it starts from."""
        task = flow().task(task_id)
        check_can_see_task(task)
        task.form = latest_form(task.form_key)  # type: ignore[attr-defined]
        task.data = tasks.starting_data(flow().runtime, task_id)  # type: ignore[attr-defined]
        return task


@blp.route(f"/<int(max={INT_MAX}):task_id>/claim")
class Claim(MethodView):
    @blp.response(200, TaskOut)
    @blp.problems(403, 409)
    def post(self, task_id: int) -> Any:
        """Take the task: it leaves the others' inboxes."""
        return flow().claim(task_id, actor=actor().name)


@blp.route(f"/<int(max={INT_MAX}):task_id>/unclaim")
class Unclaim(MethodView):
    @blp.response(200, TaskOut)
    @blp.problems(403, 409)
    def post(self, task_id: int) -> Any:
        """Give the task back to its queues."""
        return flow().unclaim(task_id, actor=actor().name)


@blp.route(f"/<int(max={INT_MAX}):task_id>/delegate")
class Delegate(MethodView):
    @blp.arguments(DelegateIn)
    @blp.response(200, TaskOut)
    @blp.problems(403, 409)
    def post(self, body: dict[str, Any], task_id: int) -> Any:
        """Hand the task to a user who holds one of its roles (422 alike for a name that
        names nobody and for a user outside the task's roles)."""
        return flow().delegate(task_id, actor=actor().name, to=body["user"])


@blp.route(f"/<int(max={INT_MAX}):task_id>/complete")
class Complete(MethodView):
    @blp.arguments(CompleteIn)
    @blp.response(200, CompletedOut)
    @blp.problems(403, 409)
    def post(self, body: dict[str, Any], task_id: int) -> Any:
        """Complete the task with the form's data (claims it first if unclaimed). With an
        ``Idempotency-Key`` header, a repeat under the same key (the caller's) gets the
        first answer and changes nothing; the same key with another request is refused
        (422)."""
        return flow().complete(
            task_id, actor=actor().name, data=body["data"], once=once(200, CompletedOut)
        )
