"""The parts of instances' saved states: large variables kept apart, each once under its
content's hash (engine/execution/serialization.py says what goes apart and how a state
refers to it). A save inserts only the parts its instance had not stored and deletes
those its state no longer refers to."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import Connection, Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.storage.models import StatePart
from engine.storage.prepared import Prepared

_P: Table = StatePart.__table__  # type: ignore[assignment]
_PARTS_OF = Prepared(select(_P.c.key, _P.c.body).where(_P.c.instance_id == bindparam("id")))


def parts_of(conn: Connection, instance_id: int) -> dict[str, str]:
    """The instance's stored parts: key -> JSON."""
    return {key: body for key, body in _PARTS_OF.run(conn, {"id": instance_id})}


def write_parts(
    conn: Connection, instance_id: int, new: Mapping[str, str], gone: Collection[str]
) -> None:
    """Insert the ``new`` parts (one stored already, by a save this process did not see,
    is the same content: kept as it is) and delete the ``gone`` ones."""
    if new:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(_P).on_conflict_do_nothing()
        rows = [{"instance_id": instance_id, "key": k, "body": v} for k, v in new.items()]
        conn.execute(statement, rows)
    if gone:
        conn.execute(delete(_P).where(_P.c.instance_id == instance_id, _P.c.key.in_(gone)))
