"""The API's request and response shapes (marshmallow; flask-smorest documents them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask_smorest.fields import Upload
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from engine.clock import as_utc
from engine.storage import HumanTask, InstanceStatus, TaskState

INT_MAX = 2**31 - 1
"""The largest id, version or offset the API takes: the database's integer (PostgreSQL's
``integer``). Larger ones name nothing, and the database would refuse to compare them."""


class Utc(fields.DateTime):
    """Datetimes leave as ISO 8601 in UTC with their offset (SQLite hands back naive)."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else as_utc(value).isoformat()


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
UNSTORABLE = "must not contain NUL characters or unpaired surrogates"


def storable(value: Any) -> bool:
    """No string in ``value`` (keys and nested values too) has a NUL character, which
    PostgreSQL's text and jsonb refuse, or an unpaired surrogate, which is not UTF-8."""
    pending = [value]
    while pending:  # no recursion: JSON may nest as deep as the decoder went
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return False
        elif isinstance(item, Mapping):
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list | tuple):
            pending += item
    return True


class _Body(Schema):
    """What a caller sends: only text the database can keep, else 422 naming the field."""

    @pre_load
    def _storable(self, data: Any, **_: Any) -> Any:
        if isinstance(data, Mapping):
            bad = [name for name in self.load_fields if name in data and not storable(data[name])]
            if bad:
                raise ValidationError({name: [UNSTORABLE] for name in bad})
        return data


class _In(_Body):
    class Meta:
        unknown = EXCLUDE  # query strings carry extras (cache busters, tracing)


class CheckOut(Schema):
    errors = fields.List(fields.Dict(), metadata={"description": "always empty here"})


class DefinitionOut(Schema):
    id = fields.Int()
    key = fields.Str()
    version = fields.Int()
    name = fields.Str(allow_none=True)
    deployed_at = Utc()


class UploadIn(_In):
    files = fields.List(
        Upload(),
        metadata={"description": ".bpmn, .dmn and .form files (any multipart field names)"},
    )


class DeployedOut(Schema):
    id = fields.Int(attribute="definition_id")
    key = fields.Str()
    version = fields.Int()
    name = fields.Str(allow_none=True)
    created = fields.Bool()


class FormDeployedOut(Schema):
    key = fields.Str()
    version = fields.Int()
    created = fields.Bool()


class DeploymentOut(Schema):
    deployment_id = fields.Int(allow_none=True)
    definitions = fields.List(fields.Nested(DeployedOut))
    forms = fields.List(fields.Nested(FormDeployedOut))
    decisions = fields.List(
        fields.Nested(FormDeployedOut),
        metadata={"description": "decision versions: tasks bound to latest take a new one"},
    )
    warnings = fields.List(
        fields.Str(),
        metadata={"description": "deployed anyway: e.g. a version drops a milestone element"},
    )


class VersionArgs(_In):
    version = fields.Int(validate=validate.Range(min=1, max=INT_MAX))


class StartIn(_Body):
    definition = fields.Str(required=True, validate=validate.Length(min=1, max=255))
    version = fields.Int(validate=validate.Range(min=1, max=INT_MAX))
    business_key = fields.Str(validate=validate.Length(min=1, max=255))
    variables = fields.Dict(keys=fields.Str(), load_default=dict)


class TaskOut(Schema):
    id = fields.Int()
    instance_id = fields.Int()
    business_key = fields.Str(allow_none=True)  # set on the row by the view
    element_id = fields.Str()
    name = fields.Str(allow_none=True)
    roles = fields.List(fields.Str(), attribute="roles_only")
    candidate_users = fields.List(
        fields.Str(),
        metadata={"description": "users the diagram names (its assignee, candidate users)"},
    )
    assignee = fields.Str(allow_none=True)
    state = fields.Method("_state")
    created_at = Utc()
    due_at = Utc(allow_none=True)
    overdue = fields.Bool(
        allow_none=True,
        metadata={"description": "open and past its due time (an SLA breach), as read"},
    )
    breached_at = Utc(
        allow_none=True,
        metadata={"description": "when the breach was recorded (sla_breached, escalateTo)"},
    )
    priority = fields.Int()
    form_id = fields.Str(attribute="form_key", allow_none=True)

    def _state(self, task: HumanTask) -> str:
        if task.state == TaskState.OPEN and task.assignee:
            return "claimed"
        return str(task.state.value)


class CompletedOut(TaskOut):
    next_tasks = fields.List(
        fields.Nested(TaskOut),
        metadata={"description": "the instance's open tasks once the engine has moved on"},
    )


class TaskDetailOut(TaskOut):
    form = fields.Dict(allow_none=True)
    data = fields.Dict()


class InstanceOut(Schema):
    id = fields.Int()
    status = fields.Str()
    business_key = fields.Str(allow_none=True)
    definition = fields.Method("_definition")
    started_at = Utc()
    started_by = fields.Str()
    ended_at = Utc(allow_none=True)
    next_wakeup_at = Utc(allow_none=True)
    error = fields.Str(allow_none=True)

    def _definition(self, instance: Any) -> dict[str, Any]:
        found = instance["definition"] if isinstance(instance, dict) else instance.definition
        return {"key": found.key, "version": found.version}


class InstanceDetailOut(InstanceOut):
    variables = fields.Dict()
    tasks = fields.List(fields.Nested(TaskOut))


class InstanceArgs(_In):
    status = fields.Str(validate=validate.OneOf([s.value for s in InstanceStatus]))
    definition = fields.Str()
    business_key = fields.Str()
    limit = fields.Int(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Int(load_default=0, validate=validate.Range(min=0, max=INT_MAX))


class InstancePage(Schema):
    items = fields.List(fields.Nested(InstanceOut))
    total = fields.Int()


class CancelIn(_Body):
    reason = fields.Str(validate=validate.Length(max=1000))


class InboxArgs(_In):
    role = fields.Str()
    state = fields.Str(validate=validate.OneOf(["open", "claimed", "unclaimed"]))
    assignee = fields.Str(validate=validate.OneOf(["me"]))
    overdue = fields.Bool()
    instance_id = fields.Int(validate=validate.Range(min=0, max=INT_MAX))
    business_key = fields.Str()
    sort = fields.Str(load_default="due", validate=validate.OneOf(["due", "priority", "created"]))
    limit = fields.Int(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.Str()
    with_total = fields.Bool(
        load_default=False, metadata={"description": "also count every match (slower)"}
    )


class TaskPage(Schema):
    items = fields.List(fields.Nested(TaskOut))
    next = fields.Str(allow_none=True)
    total = fields.Int(metadata={"description": "only with ?with_total=true"})


class DelegateIn(_Body):
    user = fields.Str(required=True, validate=validate.Length(min=1, max=128))


class CompleteIn(_Body):
    data = fields.Dict(keys=fields.Str(), load_default=dict)


class QueueOut(Schema):
    role = fields.Str()
    open = fields.Int(metadata={"description": "tasks not yet done, the claimed among them"})
    claimed = fields.Int(metadata={"description": "open tasks someone has claimed"})
    overdue = fields.Int(metadata={"description": "open tasks past their due time"})


class QueuesOut(Schema):
    items = fields.List(fields.Nested(QueueOut))


class MessageIn(_Body):
    name = fields.Str(required=True, validate=validate.Length(min=1, max=255))
    business_key = fields.Str(validate=validate.Length(min=1, max=255))
    correlation = fields.Dict(keys=fields.Str())
    variables = fields.Dict(keys=fields.Str(), load_default=dict)
    ttl_seconds = fields.Int(validate=validate.Range(min=1, max=366 * 86400))


class MessageOut(Schema):
    message_id = fields.Int(allow_none=True)
    delivered_to = fields.List(fields.Int())
    kept = fields.Bool()


class AuditEventOut(Schema):
    seq = fields.Int()
    stream = fields.Str()
    instance_id = fields.Int(allow_none=True)
    at = Utc()
    actor = fields.Str()
    kind = fields.Str()
    element_id = fields.Str(allow_none=True)
    element_name = fields.Str(allow_none=True)
    role = fields.Str(allow_none=True)
    data = fields.Dict()
    prev_hash = fields.Str()
    hash = fields.Str()


class AuditPage(Schema):
    items = fields.List(fields.Nested(AuditEventOut))
    total = fields.Int()


class AuditArgs(_In):
    since = fields.AwareDateTime(default_timezone=None)
    until = fields.AwareDateTime(default_timezone=None)
    actor = fields.Str()
    kind = fields.Str()
    definition = fields.Str()
    limit = fields.Int(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Int(load_default=0, validate=validate.Range(min=0, max=INT_MAX))


class VerifyProblem(Schema):
    seq = fields.Int(
        allow_none=True,
        metadata={"description": "the event where it shows; null: the stream as a whole"},
    )
    reason = fields.Str()


class VerifyOut(Schema):
    valid = fields.Bool()
    first_bad_seq = fields.Int(allow_none=True)
    reason = fields.Str(allow_none=True)
    events = fields.Int()
    recorded_seq = fields.Int(
        allow_none=True,
        metadata={"description": "the chain's last seq as the instance row records it"},
    )
    problems = fields.List(
        fields.Nested(VerifyProblem),
        metadata={"description": "everything found wrong, the first as first_bad_seq/reason"},
    )
    checked = fields.List(
        fields.Str(),
        metadata={
            "description": "what was checked; events anchored outside the database are "
            "checked by `tradeflow verify --anchors`, which holds the anchor file"
        },
    )


class ExportArgs(_In):
    format = fields.Str(
        required=True,
        validate=validate.OneOf(["csv", "xes"]),
        metadata={"description": "csv: one row per event; xes: IEEE 1849, a trace per instance"},
    )
    definition = fields.Str(metadata={"description": "a process key: its instances only"})
    since = fields.AwareDateTime(default_timezone=None)
    until = fields.AwareDateTime(default_timezone=None)
