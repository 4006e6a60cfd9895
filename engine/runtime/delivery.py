"""Handing a message to an instance inside its unit of work: the one waiting for it now
(messages.correlate), or one that comes to wait for a message kept earlier (as the
unit settles)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import or_, select

from engine.audit import EventKind
from engine.clock import as_utc
from engine.execution import Frontier, correlation_key, variables
from engine.modeling import messages_of
from engine.runtime import stepping
from engine.runtime.work import Work
from engine.storage import Instance, InstanceRow, Message, MessageStatus


def matches(message: Message, instance: Instance | InstanceRow, data: dict[str, Any]) -> bool:
    """Whether the message is for this instance: its business key, and each correlation
    value equal (as ``correlation_key`` compares) to the variable of that name."""
    if message.business_key is not None and instance.business_key != message.business_key:
        return False
    for name, value in message.correlation.items():
        key = correlation_key(value)
        if key is None or name not in data or correlation_key(data[name]) != key:
            return False
    return True


def arrived_for(message: Message, started_at: datetime, takes_earlier: frozenset[str]) -> bool:
    """Whether a kept message may go to an instance started at ``started_at``: one that
    arrived while it ran, or any if its catch takes earlier ones (modeling/events.py)."""
    return message.name in takes_earlier or as_utc(message.received_at) >= as_utc(started_at)


def deliver(work: Work, message: Message) -> bool:
    """Send the message into the workflow; merge its variables into the catching task."""
    waiting = [
        t
        for t in work.workflow.get_tasks(state=SpiffState.WAITING)
        if any(d.name == message.name for d in messages_of(t.task_spec))
    ]
    if not waiting:
        return False
    definition = next(d for d in messages_of(waiting[0].task_spec) if d.name == message.name)
    # only what this process's catch events take: a message kept since an older or newer
    # version declared more may still carry more (noted in the trail, not taken)
    takes = work.definition.message_variables.get(message.name, frozenset())
    payload = {k: v for k, v in message.payload.items() if k in takes}
    dropped = sorted(set(message.payload) - takes)
    event = BpmnEvent(definition, {"payload": payload, "result_var": message.name})

    def step() -> None:
        work.workflow.send_event(event)
        for task in waiting:
            if not task.has_state(SpiffState.WAITING):
                task.data.update(payload)

    stepping.run(work, step)
    message.status = MessageStatus.DELIVERED
    message.instance_id = work.instance.id
    message.delivered_at = work.now
    work.audit(
        EventKind.MESSAGE_RECEIVED,
        actor=message.sender,  # who said it, not whose command happened to hand it over
        element_id=waiting[0].task_spec.bpmn_id,
        element_name=message.name,
        data={
            "message_id": message.id,
            "name": message.name,
            "sender": message.sender,
            "variables": payload,
            **({"dropped": dropped} if dropped else {}),
        },
    )
    return True


def deliver_kept(work: Work, frontier: Frontier) -> bool:
    """Called as a unit of work settles: hand over kept messages the instance now awaits."""
    waiting = {d.name for t in frontier.waiting for d in messages_of(t.task_spec)}
    if not waiting:
        return False
    business_key = work.instance.business_key
    kept = work.session.scalars(
        select(Message)
        .where(
            Message.status == MessageStatus.BUFFERED,
            Message.name.in_(waiting),
            or_(Message.business_key.is_(None), Message.business_key == business_key),
        )
        .order_by(Message.received_at, Message.id)
    ).all()
    data = variables(work.workflow, frontier)
    started_at, early = work.instance.started_at, work.definition.takes_earlier
    for message in kept:
        if as_utc(message.expires_at) <= work.now or not matches(message, work.instance, data):
            continue
        if not arrived_for(message, started_at, early):
            continue
        # locked, and still kept: another unit handing it over holds it (skipped, not
        # waited for: it may be waiting for this instance's lock) or took it already
        taken = work.session.scalars(
            select(Message)
            .where(Message.id == message.id, Message.status == MessageStatus.BUFFERED)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).first()
        if taken is not None and deliver(work, taken):
            return True
    return False
