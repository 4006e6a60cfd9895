"""Messages from outside (the bank feed, the ERP): correlate, deliver or keep.

A message is correlated by name plus business key and/or variable values. If exactly
one running instance waits for it, it is delivered in that instance's unit of work.
If none waits yet but a deployed process can catch it, it is kept until its expiry and
delivered when an instance reaches the catch event. A name no process catches, or a
message that matches several instances, is refused at once.

A message may only say what it is for: each catch event declares the variables it takes
(its ``messageVariables`` property); a message carrying others is refused, naming them,
and null is never a correlation value (it would match every instance without that
variable). The trail records the sender as the one who delivered it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import MESSAGES_STREAM, AuditTrail, EventKind
from engine.commands.instances import MAX_BUSINESS_KEY
from engine.errors import MessageInvalid, MessageUndeliverable
from engine.execution import variables
from engine.modeling import check_names
from engine.runtime import Runtime, delivery
from engine.storage import (
    Definition,
    Instance,
    InstanceStatus,
    Message,
    MessageStatus,
    MessageSubscription,
)

DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=366)


@dataclass(frozen=True)
class Correlation:
    message_id: int | None
    instance_id: int | None  # None: kept until an instance waits for it
    buffered: bool


def correlate(
    runtime: Runtime,
    name: str,
    *,
    actor: str,
    business_key: str | None = None,
    correlation: dict[str, Any] | None = None,
    variables_: dict[str, Any] | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> Correlation:
    """Deliver a message to the one instance waiting for it, or keep it for later."""
    correlation = dict(correlation or {})
    payload = dict(variables_ or {})
    if not name:
        raise MessageInvalid("a message needs a name")
    if business_key is None and not correlation:
        raise MessageInvalid("correlate by business key or by correlation values (or both)")
    if business_key is not None and not 0 < len(business_key) <= MAX_BUSINESS_KEY:
        raise MessageInvalid(f"a business key has 1 to {MAX_BUSINESS_KEY} characters")
    nulls = sorted(k for k, v in correlation.items() if v is None)
    if nulls:
        why = "null never correlates: it would match every instance without the variable"
        raise MessageInvalid(
            f"correlation values may not be null: {', '.join(nulls)}",
            errors={"correlation": {k: [why] for k in nulls}},
        )
    if not timedelta(0) < ttl <= MAX_TTL:
        raise MessageInvalid(f"ttl must be positive and at most {MAX_TTL.days} days")
    check_names(payload, MessageInvalid)
    now = runtime.clock.now()
    # One unit: a message that cannot be delivered leaves nothing behind.
    with runtime.unit("correlate") as unit:
        session = unit.session
        catchers = [i for i, names in session.execute(_CATCHERS) if name in names]
        if not catchers:
            raise MessageUndeliverable(f"no deployed process catches message '{name}'", name=name)
        _check_declared(runtime, session, name, catchers, payload)
        message = Message(
            name=name,
            business_key=business_key,
            correlation=correlation,
            payload=payload,
            status=MessageStatus.BUFFERED,
            sender=actor,
            received_at=now,
            expires_at=now + ttl,
        )
        session.add(message)
        session.flush()
        target = _find_waiting(runtime, session, message)
        if target is None:
            trail = AuditTrail(session)
            trail.append(
                MESSAGES_STREAM,
                EventKind.MESSAGE_BUFFERED,
                at=now,
                actor=actor,
                element_id=name,
                data={
                    "message_id": message.id,
                    "business_key": business_key,
                    "correlation": correlation,
                    "expires_at": message.expires_at,
                },
            )
            trail.write()
            return Correlation(message.id, None, True)
        with unit.command(target, actor) as work:
            if not delivery.deliver(work, message):
                raise MessageUndeliverable(f"instance {target} stopped waiting for '{name}'")
    return Correlation(message.id, target, False)


_CATCHERS = select(Definition.id, Definition.messages)


def _check_declared(
    runtime: Runtime, session: Session, name: str, catchers: list[int], payload: dict[str, Any]
) -> None:
    """Refuse variables no catch event of ``name`` takes, in any deployed version: a
    payment message may not rewrite the invoice's amount."""
    accepted: set[str] = set()
    for definition_id in catchers:
        declared = runtime.definitions.get(session, definition_id).message_variables
        accepted |= declared.get(name, frozenset())
    undeclared = sorted(set(payload) - accepted)
    if undeclared:
        takes = ", ".join(sorted(accepted)) or "no variables"
        why = f"no catch event of '{name}' takes it (their messageVariables: {takes})"
        raise MessageInvalid(
            f"message '{name}' may not set {', '.join(undeclared)}: its catch events take {takes}",
            errors={"variables": {k: [why] for k in undeclared}},
        )


def _find_waiting(runtime: Runtime, session: Session, message: Message) -> int | None:
    query = (
        select(Instance)
        .join(MessageSubscription, MessageSubscription.instance_id == Instance.id)
        .where(MessageSubscription.name == message.name, Instance.status == InstanceStatus.RUNNING)
    )
    if message.business_key is not None:
        query = query.where(MessageSubscription.business_key == message.business_key)
    candidates = session.scalars(query.distinct()).all()
    matched = [
        i.id
        for i in candidates
        if not message.correlation
        or delivery.matches(message, i, variables(runtime.load(session, i)))
    ]
    if len(matched) > 1:
        raise MessageUndeliverable(
            f"message '{message.name}' matches {len(matched)} instances; correlate more narrowly",
            instances=matched,
        )
    return matched[0] if matched else None


def expire(runtime: Runtime) -> list[Message]:
    """Mark kept messages past their expiry; they are reported, never silently dropped."""
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        expired = session.scalars(
            select(Message).where(
                Message.status == MessageStatus.BUFFERED, Message.expires_at <= now
            )
        ).all()
        trail = AuditTrail(session)
        for message in expired:
            message.status = MessageStatus.EXPIRED
            trail.append(
                MESSAGES_STREAM,
                EventKind.MESSAGE_EXPIRED,
                at=now,
                actor="system",
                element_id=message.name,
                data={"message_id": message.id},
            )
        trail.write()
        return list(expired)


def undelivered(runtime: Runtime) -> list[Message]:
    """Kept and expired messages: what an operator should look at."""
    with runtime.db.reading() as session:
        return list(
            session.scalars(
                select(Message)
                .where(Message.status != MessageStatus.DELIVERED)
                .order_by(Message.received_at)
            )
        )
