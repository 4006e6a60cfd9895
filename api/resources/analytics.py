"""Process analytics: where orders wait (process owners, auditors, admins)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from api.auth import oversees, require
from api.context import flow
from api.openapi import Blueprint
from api.schemas import _In
from engine.reporting import analytics

blp = Blueprint(
    "analytics",
    __name__,
    url_prefix="/api/v1/analytics",
    description="Waiting and working time per step, rework and missed time limits",
)


class ElementArgs(_In):
    definition = fields.Str(metadata={"description": "a process key"})
    since = fields.AwareDateTime(default_timezone=None, metadata={"description": "created from"})
    until = fields.AwareDateTime(default_timezone=None, metadata={"description": "...before"})
    role = fields.Str(metadata={"description": "tasks of this role queue (task measures)"})
    user = fields.Str(
        metadata={"description": "tasks assigned to or done by this user; orders they took"}
    )
    grade = fields.Str(metadata={"description": "the customer's grade (A-D)"})


class ElementOut(Schema):
    element_id = fields.Str()
    name = fields.Str(allow_none=True)
    count = fields.Int(metadata={"description": "tasks created at this step"})
    completed = fields.Int()
    wait_p50 = fields.Float(allow_none=True, metadata={"description": "seconds, created → claimed"})
    wait_p90 = fields.Float(allow_none=True)
    work_p50 = fields.Float(allow_none=True, metadata={"description": "seconds, claimed → done"})
    work_p90 = fields.Float(allow_none=True)
    reworked = fields.Int(metadata={"description": "repeats within one instance: rework loops"})
    overdue = fields.Int(metadata={"description": "past their time limit"})
    on_time_rate = fields.Float(
        allow_none=True, metadata={"description": "completed within their time limit"}
    )


class ElementPage(Schema):
    items = fields.List(fields.Nested(ElementOut))


class KpiOut(Schema):
    on_time_rate = fields.Float(allow_none=True, metadata={"description": "time limits met"})
    inquiry_response_p50 = fields.Float(allow_none=True, metadata={"description": "seconds"})
    inquiry_response_p90 = fields.Float(allow_none=True)
    document_first_pass_rate = fields.Float(allow_none=True)
    quotation_turnaround_p50 = fields.Float(allow_none=True, metadata={"description": "seconds"})
    quotation_turnaround_p90 = fields.Float(allow_none=True)
    contract_to_shipped_p50 = fields.Float(allow_none=True, metadata={"description": "seconds"})
    contract_to_shipped_p90 = fields.Float(allow_none=True)
    shipped_to_paid_p50 = fields.Float(allow_none=True, metadata={"description": "seconds"})
    shipped_to_paid_p90 = fields.Float(allow_none=True)
    contract_to_paid_p50 = fields.Float(allow_none=True, metadata={"description": "seconds"})
    contract_to_paid_p90 = fields.Float(allow_none=True)
    fulfilment_rate = fields.Float(
        allow_none=True, metadata={"description": "shipped by the promised delivery date"}
    )
    overdue_collection_rate = fields.Float(allow_none=True)
    bad_debt_rate = fields.Float(allow_none=True)
    complaint_rate = fields.Float(allow_none=True)
    satisfaction_mean = fields.Float(allow_none=True, metadata={"description": "1 to 5"})
    new_customers_by_grade = fields.Dict(keys=fields.Str(), values=fields.Int(), allow_none=True)
    workload = fields.Dict(
        keys=fields.Str(), values=fields.Dict(keys=fields.Str(), values=fields.Int())
    )


kpis_blp = Blueprint(
    "kpis", __name__, url_prefix="/api/v1/kpis", description="The department's measures"
)


@kpis_blp.route("")
class Kpis(MethodView):
    @require(oversees, "process owners, auditors and admins")
    @kpis_blp.arguments(ElementArgs, location="query")
    @kpis_blp.response(200, KpiOut)
    @kpis_blp.problems(403)
    def get(self, args: dict[str, Any]) -> Any:
        """On-time rate, inquiry response time, first-pass rate of documents, workload."""
        with flow().db.reading() as session:
            return analytics.kpis(
                session, analytics.ElementQuery(**args), flow().clock.now(), _zone()
            )


class BehindArgs(ElementArgs):
    measure = fields.Str(
        required=True,
        validate=validate.OneOf(sorted(analytics.MEASURES)),
        metadata={"description": "an order measure (a KPI's name without _p50/_p90)"},
    )


class SampleOut(Schema):
    instance_id = fields.Int()
    business_key = fields.Str(allow_none=True)
    value = fields.Raw(metadata={"description": "the case's part: seconds, yes/no, a score"})


class SamplePage(Schema):
    items = fields.List(fields.Nested(SampleOut))


@kpis_blp.route("/instances")
class Behind(MethodView):
    @require(oversees, "process owners, auditors and admins")
    @kpis_blp.arguments(BehindArgs, location="query")
    @kpis_blp.response(200, SamplePage)
    @kpis_blp.problems(403)
    def get(self, args: dict[str, Any]) -> Any:
        """The instances behind an order measure, each with its own value."""
        measure = args.pop("measure")
        with flow().db.reading() as session:
            items = analytics.behind(session, measure, analytics.ElementQuery(**args), _zone())
        return {"items": items}


def _zone() -> Any:
    return flow().runtime.calendar.timezone  # promised dates are the office's dates


@blp.route("/elements")
class Elements(MethodView):
    @require(oversees, "process owners, auditors and admins")
    @blp.arguments(ElementArgs, location="query")
    @blp.response(200, ElementPage)
    @blp.problems(403)
    def get(self, args: dict[str, Any]) -> Any:
        """Per step: how long tasks waited and were worked on (p50, p90), rework, overdue."""
        with flow().db.reading() as session:
            items = analytics.elements(session, analytics.ElementQuery(**args), flow().clock.now())
        return {"items": items}


@blp.route("/elements/<element_id>/instances")
class ElementBehind(MethodView):
    @require(oversees, "process owners, auditors and admins")
    @blp.arguments(ElementArgs, location="query")
    @blp.response(200, SamplePage)
    @blp.problems(403)
    def get(self, args: dict[str, Any], element_id: str) -> Any:
        """The instances with tasks at this step; value: how many of them ran late."""
        with flow().db.reading() as session:
            items = analytics.behind_element(
                session, element_id, analytics.ElementQuery(**args), flow().clock.now()
            )
        return {"items": items}
