"""Process instances: start (employees), read (by role), cancel (owners, admins)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import owner_or_admin, reads_everything, require, starts_instances
from api.context import actor, flow, once
from api.openapi import Blueprint
from api.schemas import (
    INT_MAX,
    AuditPage,
    CancelIn,
    InstanceArgs,
    InstanceDetailOut,
    InstanceOut,
    InstancePage,
    StartIn,
    VerifyOut,
)
from api.views import check_can_read
from engine import audit
from engine.audit import verification
from engine.commands import reading
from engine.storage import Instance, InstanceStatus, TaskState

blp = Blueprint(
    "instances",
    __name__,
    url_prefix="/api/v1/instances",
    description="Running and finished process instances",
)


def _detail(instance: Instance) -> dict[str, Any]:
    open_tasks = [t for t in flow().tasks_of(instance.id) if t.state == TaskState.OPEN]
    return {
        **{
            k: getattr(instance, k)
            for k in (
                "id",
                "status",
                "business_key",
                "definition",
                "started_at",
                "started_by",
                "ended_at",
                "next_wakeup_at",
                "error",
            )
        },
        "variables": flow().variables(instance.id),
        "tasks": open_tasks,
    }


@blp.route("")
class Instances(MethodView):
    @blp.arguments(InstanceArgs, location="query")
    @blp.response(200, InstancePage)
    def get(self, args: dict[str, Any]) -> Any:
        """Instances the caller may read, newest first."""
        who = actor()
        query = reading.InstanceQuery(
            status=InstanceStatus(args["status"]) if "status" in args else None,
            definition=args.get("definition"),
            business_key=args.get("business_key"),
            limit=args["limit"],
            offset=args["offset"],
        )
        everything = reads_everything(who) or who.is_process_owner
        with flow().db.reading() as session:
            rows, total = reading.search(session, query, None if everything else who)
        return {"items": rows, "total": total}

    @require(starts_instances, "employees, integrations, process owners and admins")
    @blp.arguments(StartIn)
    @blp.response(201, InstanceDetailOut)
    @blp.problems(403, 404, 409)  # 404: no such definition; 409: business key taken
    def post(self, body: dict[str, Any]) -> Any:
        """Start an instance of a definition (the latest version unless given). With an
        ``Idempotency-Key`` header, a repeat of the same start under the same key (the
        caller's) gets the first answer and starts nothing; the same key with another
        request is refused (422)."""
        return flow().started(
            body["definition"],
            actor=actor().name,
            business_key=body.get("business_key"),
            variables=body["variables"],
            version=body.get("version"),
            once=once(201, InstanceDetailOut),
        )


@blp.route(f"/<int(max={INT_MAX}):instance_id>")
class InstanceItem(MethodView):
    @blp.response(200, InstanceDetailOut)
    @blp.problems(403)
    def get(self, instance_id: int) -> Any:
        """One instance with its variables and open tasks."""
        return _detail(check_can_read(instance_id))


@blp.route(f"/<int(max={INT_MAX}):instance_id>/cancel")
class InstanceCancel(MethodView):
    @require(owner_or_admin, "process owners and admins")
    @blp.arguments(CancelIn, required=False)
    @blp.response(200, InstanceOut)
    @blp.problems(403, 409)
    def post(self, body: dict[str, Any] | None, instance_id: int) -> Any:
        """Cancel a running instance and its open tasks."""
        flow().cancel(instance_id, actor=actor().name, reason=(body or {}).get("reason"))
        return flow().instance(instance_id)


@blp.route(f"/<int(max={INT_MAX}):instance_id>/audit")
class InstanceAudit(MethodView):
    @blp.response(200, AuditPage)
    @blp.problems(403)
    def get(self, instance_id: int) -> Any:
        """The instance's audit trail, in order."""
        check_can_read(instance_id)
        events = flow().history(instance_id)
        return {"items": events, "total": len(events)}


@blp.route(f"/<int(max={INT_MAX}):instance_id>/audit/verify")
class InstanceAuditVerify(MethodView):
    @blp.response(200, VerifyOut)
    @blp.problems(403)
    def get(self, instance_id: int) -> Any:
        """Recompute the instance's hash chain and hold its end against the head the
        instance row records; name the first event that breaks it, and every problem."""
        check_can_read(instance_id)
        result = flow().verify(audit.instance_stream(instance_id))
        return {
            "valid": result.ok,
            "first_bad_seq": result.broken_seq,
            "reason": result.reason,
            "events": result.events,
            "recorded_seq": result.recorded_seq,
            "problems": [{"seq": f.seq, "reason": f.reason} for f in result.findings],
            "checked": list(verification.CHECKS[:2]),
        }
