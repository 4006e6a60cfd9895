"""Time arithmetic done by the database, as plain numbers: reading a million timestamps
as datetime objects costs more than the measures that use them (bench/analytics.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class epoch(FunctionElement[float]):  # used like an SQL function
    """Seconds since 1970-01-01 UTC of a stored timestamp (NULL stays NULL)."""

    type = Float()
    inherit_cache = True
    name = "epoch"


# SQLite keeps UTC timestamps as text; julianday() reads them (to some tens of
# microseconds: callers round to milliseconds).
@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    (moment,) = list(element.clauses)
    return f"((julianday({compiler.process(moment, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: Any, **kw: Any) -> str:
    (moment,) = list(element.clauses)
    # date_part answers a double; EXTRACT a numeric, which arrives as a Decimal
    return f"date_part('epoch', {compiler.process(moment, **kw)})"
