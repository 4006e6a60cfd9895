"""What waiting instances wait for: message subscriptions by name (and business key),
the correlation keys of their variables, and whether a kept message is there for them.

A message correlated by values finds its instance through ``subscription_key`` rows:
one per variable of a waiting instance that correlation can compare (a string, number
or boolean; ``correlation_key``), written as the unit of work that saves the instance
settles, so they say what its committed state says. Nothing loads a workflow to find
out whom a message is for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select

from engine.storage.models import (
    Instance,
    InstanceStatus,
    Message,
    MessageStatus,
    MessageSubscription,
    SubscriptionKey,
)
from engine.storage.prepared import Prepared

_S: Table = MessageSubscription.__table__  # type: ignore[assignment]
_K: Table = SubscriptionKey.__table__  # type: ignore[assignment]
_I: Table = Instance.__table__  # type: ignore[assignment]
_M: Table = Message.__table__  # type: ignore[assignment]

_SUBSCRIPTIONS = Prepared(select(_S.c.name).where(_S.c.instance_id == bindparam("instance_id")))
_DROP_SUBSCRIPTIONS = delete(_S).where(_S.c.instance_id == bindparam("instance_id"))
_KEYS = Prepared(select(_K.c.name, _K.c.value).where(_K.c.instance_id == bindparam("instance_id")))
_DROP_KEYS = delete(_K).where(_K.c.instance_id == bindparam("instance_id"))


def replace_subscriptions(
    conn: Connection,
    instance_id: int,
    business_key: str | None,
    names: list[str],
    keys: Mapping[str, str],
) -> list[str]:
    """Keep the instance's message subscriptions equal to ``names`` and, while it waits
    for any, its correlation keys equal to ``keys``; answers the names it did not wait
    for before."""
    params = {"instance_id": instance_id}
    stored = sorted(name for (name,) in _SUBSCRIPTIONS.run(conn, params))
    if names:
        _replace_keys(conn, instance_id, keys)
    elif stored:
        conn.execute(_DROP_KEYS, params)
    if stored == names:
        return []
    conn.execute(_DROP_SUBSCRIPTIONS, params)
    if names:
        conn.execute(
            insert(_S),
            [{"instance_id": instance_id, "name": n, "business_key": business_key} for n in names],
        )
    return sorted(set(names) - set(stored))


def _replace_keys(conn: Connection, instance_id: int, keys: Mapping[str, str]) -> None:
    """Write only the keys that changed: a waiting instance's variables mostly don't."""
    stored = dict(_KEYS.run(conn, {"instance_id": instance_id}))
    if stored == keys:
        return
    gone = [n for n, v in stored.items() if keys.get(n) != v]
    if gone:
        conn.execute(delete(_K).where(_K.c.instance_id == instance_id, _K.c.name.in_(gone)))
    new = [
        {"instance_id": instance_id, "name": n, "value": v}
        for n, v in keys.items()
        if stored.get(n) != v
    ]
    if new:
        conn.execute(insert(_K), new)


COUNT_CAP = 1000  # rows counted per correlation key when choosing which one leads


def waiting_for(
    conn: Connection,
    name: str,
    business_key: str | None,
    keys: Mapping[str, str],
    *,
    since: datetime,
    early: Sequence[int],
    limit: int,
) -> list[int]:
    """Running instances subscribed to message ``name`` (with ``business_key``, if
    given) whose correlation keys hold each of ``keys``, started by ``since`` (when the
    message came) unless their definition is one of ``early`` (a catch that takes
    earlier messages): their ids, at most ``limit``, in order.

    With keys, the rarest of them leads: its instances are read first (materialized),
    and each other key is checked on those alone, as a scalar subquery by the primary
    key (instance, name), which PostgreSQL does not turn into a join: a planner whose
    statistics are stale (the migration's backfill, a fresh table) would otherwise
    start from a key every instance holds, the currency, say."""
    query = select(_I.c.id)
    pairs = sorted(keys.items())
    if pairs:
        counts = _counts(conn, pairs)
        if min(counts) == 0:
            return []
        (lead_name, lead_value), *rest = [p for _, p in sorted(zip(counts, pairs, strict=True))]
        lead = (
            select(_K.c.instance_id)
            .where(_K.c.name == lead_name, _K.c.value == lead_value)
            .cte("lead")
            .prefix_with("MATERIALIZED")
        )
        query = select(_I.c.id).select_from(lead).join(_I, _I.c.id == lead.c.instance_id)
        for key, value in rest:
            held = (
                select(_K.c.value)
                .where(_K.c.instance_id == _I.c.id, _K.c.name == key)
                .scalar_subquery()
            )
            query = query.where(held == value)
    subscribed = select(_S.c.instance_id).where(_S.c.instance_id == _I.c.id, _S.c.name == name)
    if business_key is not None:  # the instance's own, indexed: it leads without keys
        subscribed = subscribed.where(_S.c.business_key == business_key)
        query = query.where(_I.c.business_key == business_key)
    started = _I.c.started_at <= since
    query = query.where(
        subscribed.exists(),
        _I.c.status == InstanceStatus.RUNNING,
        or_(started, _I.c.definition_id.in_(early)) if early else started,
    )
    return list(conn.scalars(query.order_by(_I.c.id).limit(limit)))


def _counts(conn: Connection, pairs: Sequence[tuple[str, str]]) -> list[int]:
    """How many rows hold each (name, value), counted up to COUNT_CAP, in one statement."""
    capped = [
        select(func.count())
        .select_from(
            select(_K.c.instance_id)
            .where(_K.c.name == key, _K.c.value == value)
            .limit(COUNT_CAP)
            .subquery()
        )
        .scalar_subquery()
        for key, value in pairs
    ]
    return [int(n) for n in conn.execute(select(*capped)).one()]


_KEPT_FOR = Prepared(
    select(_M.c.id)
    .where(
        _M.c.status == MessageStatus.BUFFERED,
        _M.c.name == bindparam("name"),
        or_(_M.c.business_key.is_(None), _M.c.business_key == bindparam("business_key")),
        _M.c.expires_at > bindparam("now"),
    )
    .limit(1)
)


def kept_for(conn: Connection, names: list[str], business_key: str | None, now: datetime) -> bool:
    """Whether a message not expired is kept under one of ``names`` that an instance with
    this business key could take (its correlation values are the delivery's to check)."""
    params = {"business_key": business_key, "now": now}
    return any(_KEPT_FOR.run(conn, {**params, "name": n}) for n in names)
