"""Response bodies dumped by compiled schemas (api/dumps.py) are marshmallow's, exactly,
and encoded by orjson into the JSON Flask's own provider gave."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields, post_dump

from api import schemas
from api.dumps import JsonProvider, compile_dump
from api.resources import analytics, instances, queues
from engine import audit
from engine.people import identity
from engine.queues import ClaimFilter, InboxQuery
from tests.api.conftest import V1, ApiClient


def same(schema: Schema, obj: Any) -> Any:
    """The compiled dump of ``obj``, asserted equal to marshmallow's, key order too."""
    compiled = compile_dump(schema)(obj)
    expected = schema.dump(obj)
    assert compiled == expected
    assert _keys(compiled) == _keys(expected)
    return compiled


def _keys(value: Any) -> Any:
    if isinstance(value, dict):
        return [(k, _keys(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_keys(v) for v in value]
    return None


def test_the_engines_objects_dump_as_marshmallow_dumps_them(deployed: ApiClient) -> None:
    """Each response schema of the task, instance, audit and queue views, on what the
    engine hands those views after a review that went back once."""
    client, flow = deployed, deployed.flow
    iid = client.start("document_review", "clerk", business_key="SO-1")
    prepare = client.task(iid, "prepare_documents")
    client.post(f"{V1}/tasks/{prepare}/claim", "clerk")
    with client.app.test_request_context():
        claimed = flow.tasks_of(iid)[0]
        claimed.business_key = "SO-1"  # as the views set it
        same(schemas.TaskOut(), claimed)
        done = flow.complete(prepare, actor="clerk", data={"invoice_number": "INV-1"})
        assert done.next_tasks  # the review
        same(schemas.CompletedOut(), done)
        review = done.next_tasks[0].id
        back = flow.complete(review, actor="checker", data={"documents_ok": False})
        same(schemas.CompletedOut(), back)
        with flow.db.reading() as session:
            page = queues.queues.inbox(
                session,
                identity(session, "clerk"),
                InboxQuery(
                    role=None, claim=ClaimFilter.ANY, business_key=None, instance_id=None,
                    overdue=None, sort="due", limit=50, offset=0, count=True,
                ),
                client.clock.now(),
            )  # fmt: skip
            same(schemas.TaskPage(), {"items": page.tasks, "next": "x", "total": page.total})
            same(schemas.TaskPage(), {"items": [], "next": None})  # no total: left out
            events = audit.search(session, audit.AuditQuery())[0]
            same(schemas.AuditPage(), {"items": events, "total": len(events)})
        instance = flow.instance(iid)
        same(schemas.InstanceOut(), instance)
        detail = instances._detail(instance)  # the view's own dict
        same(schemas.InstanceDetailOut(), detail)
        same(schemas.InstanceDetailOut(many=True), [detail, detail])
        same(schemas.QueuesOut(), {"items": [{"role": "finance", "open": 3, "claimed": 1}]})


@dataclass
class Row:
    id: int
    name: str | None
    at: datetime | None
    tags: list[str]


class Child(Schema):
    id = fields.Int()
    name = fields.Str(allow_none=True, data_key="label")


class Rules(Schema):
    """The rules Field.serialize follows that the compiled dump copies."""

    id = fields.Int()
    title = fields.Str(attribute="name")  # read from another name
    at = schemas.Utc(allow_none=True)
    tags = fields.List(fields.Str())
    absent = fields.Str()  # nothing by that name: left out
    fallback = fields.Str(dump_default="none given")  # nothing by that name: its default
    computed = fields.Method("_twice")
    child = fields.Nested(Child, allow_none=True)
    children = fields.List(fields.Nested(Child))
    many = fields.Nested(Child, many=True)
    only_id = fields.Nested(Child(only=("id",)))
    mapping = fields.Dict()

    def _twice(self, obj: Any) -> int:
        return 2 * (obj["id"] if isinstance(obj, dict) else obj.id)


def test_values_are_read_and_formatted_by_marshmallows_rules() -> None:
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    row = Row(7, "seven", when, ["a", "b"])
    kid = Row(8, None, None, [])
    schema = Rules()
    as_object = same(schema, row)  # attributes; the nested ones absent
    assert as_object == {
        "id": 7,
        "title": "seven",
        "at": "2026-12-01T09:30:00+00:00",
        "tags": ["a", "b"],
        "fallback": "none given",
        "computed": 14,
    }
    as_dict = same(
        schema,
        {
            "id": "9",  # formatted as marshmallow formats it: an int
            "name": 42,  # and a string
            "at": datetime(2026, 12, 1, 9, 30),  # naive: UTC (api/schemas.Utc)
            "tags": None,
            "child": kid,
            "children": [kid, {"id": 9, "name": "nine"}],
            "many": [kid],
            "only_id": kid,
            "mapping": {"x": [1]},
            "fallback": None,
        },
    )
    assert as_dict["id"] == 9 and as_dict["title"] == "42" and as_dict["fallback"] is None
    assert as_dict["children"] == [{"id": 8, "label": None}, {"id": 9, "label": "nine"}]
    assert as_dict["only_id"] == {"id": 8}
    same(schema, {"id": 1, "child": None, "children": None, "many": None})
    same(Rules(many=True), [row, {"id": 2}])
    assert compile_dump(Rules(many=True))(None) is None


class Hooked(Schema):
    id = fields.Int()

    @post_dump
    def _stamp(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {**data, "stamped": True}


class Plucked(Schema):
    child = fields.Pluck(Child, "id")


class Dotted(Schema):
    name = fields.Str(attribute="child.name")


@pytest.mark.parametrize(
    ("schema", "obj"),
    [
        (Hooked(), {"id": 1}),
        (Plucked(), {"child": {"id": 3, "name": "x"}}),
        (Dotted(), {"child": {"name": "inner"}}),
    ],
)
def test_what_it_cannot_follow_is_left_to_marshmallow(schema: Schema, obj: Any) -> None:
    dumped = same(schema, obj)
    assert dumped in ({"id": 1, "stamped": True}, {"child": 3}, {"name": "inner"})


def test_every_response_schema_compiles_to_its_own_dump() -> None:
    """No schema the API answers with falls back to marshmallow's dump unnoticed: each
    compiles (a fallback is marshmallow's bound dump itself)."""
    found = [
        cls
        for module in (schemas, analytics)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Schema) and cls.__module__ == module.__name__
        and (cls.__name__.endswith(("Out", "Page")))
    ]  # fmt: skip
    assert len(found) > 15
    for cls in found:
        schema = cls()
        assert compile_dump(schema) != schema.dump, cls.__name__


class Colour(StrEnum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: float


def test_json_answers_carry_what_flasks_own_json_did() -> None:
    """orjson (api/dumps.JsonProvider) encodes the data Flask's provider did: Flask's own
    rules for dates, decimals, dataclasses; keys sorted; an integer past 64 bits too."""
    app = Flask(__name__)
    ours, flasks = JsonProvider(app), DefaultJSONProvider(app)
    value = {
        "when": datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        "day": date(2026, 12, 1),
        "amount": Decimal("12.50"),
        "id": UUID(int=7),
        "point": Point(1, 2.5),
        "colour": Colour.RED,
        "text": '报关单 "quoted" \\ \n\t\x01',
        "big": 2**70,
        "z": [1, None, True, 0.1, 1e16, -0.0],
        "a": {"nested": {"b": 1, "a": 2}},
    }
    with app.app_context():
        encoded = ours.dumps(value)
        assert json.loads(encoded) == json.loads(flasks.dumps(value))
        assert list(json.loads(encoded)) == sorted(str(k) for k in value)  # keys sorted
        response = ours.response(value)
        assert response.mimetype == "application/json"
        assert json.loads(response.get_data()) == json.loads(flasks.response(value).get_data())
        assert json.loads(ours.dumps({3: "x"})) == json.loads(flasks.dumps({3: "x"})) == {"3": "x"}
        assert json.loads(ours.dumps({"x": float("nan")})) == {"x": None}  # valid JSON
        app.debug = True  # indented, as Flask does it in debug
        assert ours.response(value).get_data(as_text=True) == flasks.response(value).get_data(
            as_text=True
        )


class Counted(Schema):
    """A dump hook that sees the whole collection: marshmallow calls it once for many."""

    id = fields.Int()

    @post_dump(pass_collection=True)
    def _count(self, data: Any, many: bool, **_: Any) -> Any:
        return {"count": len(data), "items": data} if many else data


class Holder(Schema):
    hooked = fields.Nested(Hooked)
    hooked_many = fields.Nested(Hooked, many=True)
    counted_many = fields.Nested(Counted, many=True)
    listed = fields.List(fields.Nested(Hooked))


def test_a_nested_schema_with_dump_hooks_is_dumped_by_marshmallow_as_a_whole() -> None:
    rows = [{"id": 1}, {"id": 2}]
    dumped = same(
        Holder(),
        {"hooked": {"id": 3}, "hooked_many": rows, "counted_many": rows, "listed": rows},
    )
    assert dumped["counted_many"] == {"count": 2, "items": [{"id": 1}, {"id": 2}]}
    assert dumped["hooked_many"] == [{"id": 1, "stamped": True}, {"id": 2, "stamped": True}]
