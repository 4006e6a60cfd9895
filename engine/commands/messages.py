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

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.audit import MESSAGES_STREAM, AuditTrail, EventKind
from engine.clock import as_utc
from engine.commands.instances import MAX_BUSINESS_KEY
from engine.errors import MessageInvalid, MessageUndeliverable
from engine.execution import KEY_MAX, correlation_key, variables
from engine.modeling import EARLIER_MESSAGES, check_names
from engine.runtime import Runtime, delivery
from engine.storage import (
    Definition,
    Instance,
    InstanceStatus,
    Message,
    MessageStatus,
    MessageSubscription,
    faults,
    locks,
    subscriptions,
)

log = logging.getLogger("tradeflow.messages")

DEFAULT_TTL = timedelta(days=7)
MAX_KEY = 255
MAX_TTL = timedelta(days=366)
MATCHES_NAMED = 10  # instances a message matches, named in its refusal


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
    idempotency_key: str | None = None,
) -> Correlation:
    """Deliver a message to the one instance waiting for it, or keep it for later.
    ``idempotency_key``: the sender's own key for this message; a repeat with the same
    key answers as the first did (as the message now stands) and changes nothing."""
    correlation = dict(correlation or {})
    payload = dict(variables_ or {})
    if not name:
        raise MessageInvalid("a message needs a name")
    if business_key is None and not correlation:
        raise MessageInvalid("correlate by business key or by correlation values (or both)")
    if business_key is not None and not 0 < len(business_key) <= MAX_BUSINESS_KEY:
        raise MessageInvalid(f"a business key has 1 to {MAX_BUSINESS_KEY} characters")
    _check_correlation(correlation)
    if not timedelta(0) < ttl <= MAX_TTL:
        raise MessageInvalid(f"ttl must be positive and at most {MAX_TTL.days} days")
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()
        if not 0 < len(idempotency_key) <= MAX_KEY:
            why = f"1 to {MAX_KEY} characters"
            raise MessageInvalid(f"an idempotency key has {why}", errors={"Idempotency-Key": [why]})
    check_names(payload, MessageInvalid)
    sent = _Sent(name, actor, business_key, correlation, payload, idempotency_key)
    try:
        return _correlate(runtime, sent, ttl)
    except IntegrityError as exc:
        if idempotency_key is None or not faults.violates(exc, "ux_message_sender_key"):
            raise
        # the same key sent twice at once: the other one committed first
        return _correlate(runtime, sent, ttl)


def _check_correlation(correlation: dict[str, Any]) -> None:
    """Refuse correlation values correlation can't compare, naming them: null (it would
    match every instance without the variable), lists and objects, and over-long names."""
    nulls = sorted(k for k, v in correlation.items() if v is None)
    if nulls:
        why = "null never correlates: it would match every instance without the variable"
        raise MessageInvalid(
            f"correlation values may not be null: {', '.join(nulls)}",
            errors={"correlation": {k: [why] for k in nulls}},
        )
    odd = sorted(
        k for k, v in correlation.items() if correlation_key(v) is None or len(k) > KEY_MAX
    )
    if odd:
        why = (
            "a correlation value is a string, a finite number or a boolean, under a name of "
            f"at most {KEY_MAX} characters"
        )
        raise MessageInvalid(
            f"correlation values that can't be compared: {', '.join(odd)}",
            errors={"correlation": {k: [why] for k in odd}},
        )


@dataclass(frozen=True)
class _Sent:
    name: str
    actor: str
    business_key: str | None
    correlation: dict[str, Any]
    payload: dict[str, Any]
    idempotency_key: str | None


def _repeat(first: Message, sent: _Sent) -> Correlation:
    # as JSON, sorted: true is not 1 (Python's == would say it is)
    same = _canonical(first.name, first.business_key, first.correlation, first.payload) == (
        _canonical(sent.name, sent.business_key, sent.correlation, sent.payload)
    )
    if not same:
        raise MessageInvalid(
            f"idempotency key '{sent.idempotency_key}' was sent before with another message "
            f"(message {first.id})",
            errors={"Idempotency-Key": ["used before for another message"]},
        )
    if first.status == MessageStatus.EXPIRED:
        raise MessageUndeliverable(
            f"message {first.id} (idempotency key '{sent.idempotency_key}') expired kept, "
            "delivered to no instance; send it again under a new key",
            name=first.name,
        )
    delivered = first.status == MessageStatus.DELIVERED
    return Correlation(first.id, first.instance_id if delivered else None, not delivered)


def _canonical(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def _correlate(runtime: Runtime, sent: _Sent, ttl: timedelta) -> Correlation:
    name, actor, business_key = sent.name, sent.actor, sent.business_key
    correlation, payload = sent.correlation, sent.payload
    now = runtime.clock.now()
    # One unit: a message that cannot be delivered leaves nothing behind.
    kept = 0
    with runtime.unit("correlate") as unit:
        session = unit.session
        if sent.idempotency_key is not None:
            first = session.scalars(
                select(Message).where(
                    Message.sender == actor, Message.idempotency_key == sent.idempotency_key
                )
            ).first()
            if first is not None:
                return _repeat(first, sent)
        if business_key is not None:
            # a start with this key, committing beside this, is waited for: else its
            # instance would be neither seen waiting nor found running (starts take it)
            locks.queue_writers(session, f"business-key:{business_key}")
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
            idempotency_key=sent.idempotency_key,
        )
        session.add(message)
        session.flush()
        target = _find_waiting(runtime, session, message)
        if target is not None:
            with unit.command(target, actor) as work:
                # found by its committed keys: its own variables, now it is locked (a
                # command beside this one may have changed them: then it is kept)
                if not delivery.matches(message, work.instance, variables(work.workflow)):
                    target = None
                elif not delivery.deliver(work, message):
                    raise MessageUndeliverable(f"instance {target} stopped waiting for '{name}'")
            if target is not None:
                return Correlation(message.id, target, False)
        else:
            _refuse_unwanted(runtime, session, sent, catchers)
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
        kept = message.id
    if not runtime.db.writers_overlap:
        return Correlation(kept, None, True)  # one writer at a time: nothing ran beside it
    try:
        target = _look_again(runtime, kept)
    except Exception:  # the message is stored and answered kept; the sweep looks again
        log.exception("message %s: the second look failed", kept)
        target = None
    return Correlation(kept, target, target is None)


def _refuse_unwanted(runtime: Runtime, session: Session, sent: _Sent, catchers: list[int]) -> None:
    """A message no running instance can take now or later is refused, not kept: the
    next instance with that business key (the order's balance invoice) would take it for
    its own. A catch may take messages from before its instance started
    (``acceptsEarlierMessages``): then it is kept for the instance to come."""
    name, business_key = sent.name, sent.business_key
    if any(name in runtime.definitions.get(session, d).takes_earlier for d in catchers):
        return
    query = select(Instance.id, Instance.status).where(Instance.definition_id.in_(catchers))
    if business_key is not None:
        query = query.where(Instance.business_key == business_key)
    if session.execute(query.where(Instance.status == InstanceStatus.RUNNING).limit(1)).first():
        return  # one that will come to wait (or, by its values, to match)
    found = session.execute(query.order_by(Instance.id.desc()).limit(1)).all()
    if business_key is None:
        raise MessageUndeliverable(
            f"message '{name}': no instance of a process that catches it is running, and "
            "its catch events take no message from before their instance started",
            name=name,
        )
    if not found:
        raise MessageUndeliverable(
            f"message '{name}': no instance with business key '{business_key}' is running; "
            "its catch events take no message from before their instance started "
            f"(a catch event's {EARLIER_MESSAGES} property says otherwise)",
            name=name,
        )
    last, status = found[0]
    raise MessageUndeliverable(
        f"message '{name}': instance {last} with business key '{business_key}' is "
        f"{status.value}; a message for it is not kept for another instance",
        name=name,
        instance=last,
    )


def _look_again(runtime: Runtime, message_id: int) -> int | None:
    """Once a kept message has committed: an instance that came to wait for it in a
    transaction running beside this one (PostgreSQL) could not be seen, nor could it see
    the message. Whichever of the two commits last finds the other (here, or as that
    instance's unit ends: runtime/unit.py); the message's row lock and its status make
    sure only one hands it over. Answers the instance it went to, if any."""
    with runtime.unit("correlate") as unit:
        session = unit.session
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != MessageStatus.BUFFERED:
            return message.instance_id if message is not None else None
        if as_utc(message.expires_at) <= runtime.clock.now():
            return None
        try:
            target = _find_waiting(runtime, session, message)
        except MessageUndeliverable:
            return None  # several wait now: it stays kept, as answered
        if target is None:
            return None
        delivered = False
        with unit.command(target, message.sender) as work:
            # matched on a copy read without the lock: the instance's own, now
            if delivery.matches(message, work.instance, variables(work.workflow)):
                delivered = delivery.deliver(work, message)
    return target if delivered else None


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
    """The one running instance waiting for the message, found through the index of
    subscriptions and their correlation keys (no workflow is loaded), among those that
    may take it (``delivery.arrived_for``); None if none; refused if several."""
    keys = {name: correlation_key(value) for name, value in message.correlation.items()}
    if any(key is None for key in keys.values()):
        return None  # kept from before values were checked: it can match nothing
    early = [
        d
        for d, names in session.execute(_CATCHERS)
        if message.name in names
        and message.name in runtime.definitions.get(session, d).takes_earlier
    ]
    matched = subscriptions.waiting_for(
        session.connection(),
        message.name,
        message.business_key,
        {name: key for name, key in keys.items() if key is not None},
        since=message.received_at,
        early=early,
        limit=MATCHES_NAMED,
    )
    if len(matched) > 1:
        many = f"{len(matched)}" if len(matched) < MATCHES_NAMED else f"at least {len(matched)}"
        raise MessageUndeliverable(
            f"message '{message.name}' matches {many} instances; correlate more narrowly",
            instances=matched,
        )
    return matched[0] if matched else None


@dataclass
class Sweep:
    """What ``hand_over_kept`` did, and where the next sweep goes on from."""

    handed: list[int]  # the instances messages went to
    after: int  # the last message id looked at; 0: the next sweep starts from the first


def hand_over_kept(runtime: Runtime, after: int = 0, limit: int = 100) -> Sweep:
    """The backstop of the two looks (correlate's, and the unit's after an instance came
    to wait): kept messages, not expired, that a running instance waits for by name and
    business key, each handed over on its own (one that fails is logged and passed),
    ``limit`` at a time from the message id ``after``."""
    with runtime.db.reading() as session:
        candidates = session.scalars(
            select(Message.id)
            .join(MessageSubscription, MessageSubscription.name == Message.name)
            .join(Instance, Instance.id == MessageSubscription.instance_id)
            .where(
                Message.id > after,
                Message.status == MessageStatus.BUFFERED,
                Message.expires_at > runtime.clock.now(),
                Instance.status == InstanceStatus.RUNNING,
                (Message.business_key.is_(None))
                | (Message.business_key == MessageSubscription.business_key),
            )
            .distinct()
            .order_by(Message.id)
            .limit(limit)
        ).all()
    # which waiting instance may take each (one that ran when it came: _find_waiting)
    # is the second look's to say
    last = candidates[-1] if len(candidates) == limit else 0
    handed = []
    for message_id in candidates:
        try:
            target = _look_again(runtime, message_id)
        except Exception:
            log.exception("message %s could not be handed over; the sweep goes on", message_id)
            continue
        if target is not None:
            handed.append(target)
    return Sweep(handed, last)


def expire(runtime: Runtime) -> list[Message]:
    """Mark kept messages past their expiry; they are reported, never silently dropped."""
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        # locked: one being handed over right now is skipped (its status is what that
        # unit makes it), else this update by key would overwrite "delivered"
        expired = session.scalars(
            select(Message)
            .where(Message.status == MessageStatus.BUFFERED, Message.expires_at <= now)
            .with_for_update(skip_locked=True)
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
