"""Statements compiled once and run straight through the driver (``Prepared``), several
at once in one round trip (``run_together``), and the driver's connection under a
SQLAlchemy one (``driver_of``): the unit of work's hot path (store.py, writes.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy
from sqlalchemy import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any]

# The SQLAlchemy versions whose private compiler members ``_compiled_internals`` reads
# were checked against (tests/engine/storage/test_prepared.py compares every prepared
# statement's rows and writes with SQLAlchemy's own): another version must be checked
# again before it runs here.
SQLALCHEMY_CHECKED = ("2.1.9",)


def check_sqlalchemy() -> None:
    """Refuse a SQLAlchemy whose private members ``_compiled_internals`` reads were not
    checked (at import of this module, and again as each statement is compiled)."""
    if sqlalchemy.__version__ not in SQLALCHEMY_CHECKED:
        raise RuntimeError(
            f"SQLAlchemy {sqlalchemy.__version__}: Prepared reads private members checked "
            f"against {', '.join(SQLALCHEMY_CHECKED)} only"
        )


check_sqlalchemy()


def _compiled_internals(
    compiled: SQLCompiler, dialect: Dialect
) -> tuple[Mapping[str, Any], tuple[str, ...], tuple[Processor | None, ...]]:
    """The three things ``Prepared`` needs that SQLAlchemy keeps private, read here and
    nowhere else: the compiled statement's bind processors (its type conversions on the
    way in), its result keys, and each result column's conversion on the way out."""
    check_sqlalchemy()
    entries = compiled._result_columns
    return (
        compiled._bind_processors,
        tuple(e.keyname for e in entries),
        tuple(e.type._cached_result_processor(dialect, None) for e in entries),
    )


@dataclass(frozen=True)
class _Plan:
    """A statement as one dialect's driver takes it."""

    sql: str
    # bind name -> the caller's key and SQLAlchemy's conversion for it; a value of the
    # statement's own (a LIMIT, a separator) is converted once, here
    binds: tuple[tuple[str, str | None, Processor | None, Any], ...]
    positional: bool
    columns: tuple[str, ...]  # result keys
    results: tuple[Processor | None, ...] | None  # None: every value as the driver gives it


class Prepared:
    """A Core statement compiled once per dialect and run straight through the driver.

    SQLAlchemy's execute costs tens of microseconds of Python per statement (cache key,
    parameter processing, result set-up), several times the SQL itself on the hot path,
    where every command runs the same few statements (docs/performance.md).
    Here the statement is compiled once, with the same type conversions on the way in and
    out as SQLAlchemy applies (its own processors), so what is stored and read back is the
    same, byte for byte (tests/engine/storage/test_prepared.py). No expanding (IN) parameters.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def plan(self, dialect: Dialect) -> _Plan:
        found = self._plans.get(dialect.name)
        if found is None:
            found = self._plans[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Plan:
        compiled = cast(SQLCompiler, self.statement.compile(dialect=dialect))
        callers = {bind.key for bind in compiled.binds.values() if bind.required}
        if compiled.literal_execute_params or compiled.post_compile_params:
            # a value rendered at execution (PostgreSQL's string_agg separator) is rendered
            # in now; the caller's parameters stay placeholders (the values are stand-ins)
            statement = self.statement.params(dict.fromkeys(callers))
            compiled = cast(
                SQLCompiler,
                statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}),
            )
        processors, columns, results = _compiled_internals(compiled, dialect)
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        if any(bind.expanding for bind in by_name.values()):
            raise ValueError("Prepared takes no expanding (IN) parameters")
        if compiled.positional:
            names = list(compiled.positiontup or ())
        else:  # those the text uses: a value rendered in is no parameter any more
            names = [n for n in sorted(by_name) if f"%({n})s" in compiled.string]
        binds: list[tuple[str, str | None, Processor | None, Any]] = []
        for name in names:
            bind = by_name[name]
            convert = processors.get(name)
            if convert is not None and not callable(convert):
                raise ValueError("Prepared takes no tuple parameters")
            if bind.key in callers:
                binds.append((name, bind.key, convert, None))
            else:
                value = convert(bind.value) if convert is not None else bind.value
                binds.append((name, None, None, value))
        return _Plan(
            sql=compiled.string,
            binds=tuple(binds),
            positional=compiled.positional,
            columns=columns,
            results=results if any(results) else None,
        )

    @staticmethod
    def _params(plan: _Plan, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = [
            (value if key is None else convert(params[key]) if convert else params[key])
            for _, key, convert, value in plan.binds
        ]
        if plan.positional:
            return values
        return {name: value for (name, *_), value in zip(plan.binds, values, strict=True)}

    @staticmethod
    def _row(plan: _Plan, row: Sequence[Any]) -> tuple[Any, ...]:
        if plan.results is None:
            return tuple(row)
        return tuple(p(v) if p else v for p, v in zip(plan.results, row, strict=True))

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute on the transaction's connection; the rows, converted (none for a
        statement that returns none)."""
        return self.run_on(driver_of(conn), conn.dialect, params)

    def run_on(
        self, driver: Any, dialect: Dialect, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        plan = self.plan(dialect)
        cursor = driver.cursor()
        try:
            cursor.execute(plan.sql, self._params(plan, params))
            if not plan.columns:  # known when compiled: psycopg builds a description anew
                return []
            return [self._row(plan, row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row as {column: value}, or None."""
        rows = self.run(conn, params)
        return self.record(conn.dialect, rows[0]) if rows else None

    def record(self, dialect: Dialect, row: tuple[Any, ...]) -> dict[str, Any]:
        """A row this statement returned, as {column: value}."""
        return dict(zip(self.plan(dialect).columns, row, strict=True))

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set: the driver's executemany, or for one set (the
        usual case) a plain execute, which costs less."""
        if len(rows) == 1:
            self.run(conn, rows[0])
            return
        plan = self.plan(conn.dialect)
        cursor = driver_of(conn).cursor()
        try:
            cursor.executemany(plan.sql, [self._params(plan, row) for row in rows])
        finally:
            cursor.close()


def run_together(
    conn: Connection, statements: Sequence[tuple[Prepared, Mapping[str, Any]]]
) -> list[list[tuple[Any, ...]]]:
    """Run the statements in order, each one's rows returned (converted as ``run``). On
    PostgreSQL they go in one round trip (psycopg's pipeline), the server still running
    each after the one before, so a statement sees what a lock taken just before it
    guarded; elsewhere one after another."""
    if conn.dialect.name != "postgresql":
        return [prepared.run(conn, params) for prepared, params in statements]
    driver = driver_of(conn)
    cursors = []
    with driver.pipeline():
        for prepared, params in statements:
            plan = prepared.plan(conn.dialect)
            cursor = driver.cursor()
            cursor.execute(plan.sql, Prepared._params(plan, params))
            cursors.append((plan, cursor))
    found = []
    for plan, cursor in cursors:
        try:
            rows = cursor.fetchall() if plan.columns else []
            found.append([Prepared._row(plan, row) for row in rows])
        finally:
            cursor.close()
    return found


def driver_of(conn: Connection) -> Any:
    """The driver's own connection under a Connection (sqlite3's, psycopg's)."""
    driver = conn.connection.driver_connection
    assert driver is not None  # a live connection in a transaction
    return driver
