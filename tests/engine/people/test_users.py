"""Users, roles and tokens: only a hash is kept, and a token names exactly one user."""

from __future__ import annotations

import threading

import pytest

from engine.errors import Invalid, UserNotFound
from engine.people import users
from engine.tradeflow import Tradeflow


def test_a_token_identifies_its_user_and_nothing_else(flow: Tradeflow) -> None:
    _, token = flow.add_user("zhao.min", ["risk_compliance"], users.Flags(auditor=True))
    found = users.bearer(flow.db, token)
    assert found is not None and found.name == "zhao.min"
    assert users.bearer(flow.db, token + "x") is None
    assert users.bearer(flow.db, "") is None
    with flow.db.reading() as session:
        actor = users.identity(session, "zhao.min")
    assert actor.roles == {"risk_compliance"} and actor.is_auditor and not actor.is_admin


def test_bad_names_are_refused(flow: Tradeflow) -> None:
    with pytest.raises(Invalid):
        flow.add_user("no spaces please", ["finance"])
    with pytest.raises(Invalid):
        flow.add_user("ok.name", ["Bad Role"])
    with flow.db.reading() as session, pytest.raises(UserNotFound):
        users.identity(session, "ghost")


def test_the_api_lookup_through_the_driver_agrees_with_the_one_in_a_session(
    flow: Tradeflow,
) -> None:
    """The API looks tokens up with users.bearer(db, ...), straight through the driver:
    the same user, roles and flags as a user's identity read in a transaction, and a
    revoked token is refused at once."""
    _, token = flow.add_user("wu.lei", ["finance", "risk_compliance"], users.Flags(admin=True))
    _, bare = flow.add_user("he.jing", [])
    with flow.db.reading() as session:
        assert users.bearer(flow.db, token) == users.identity(session, "wu.lei")
        assert users.bearer(flow.db, bare) == users.identity(session, "he.jing")
    found = users.bearer(flow.db, token)
    assert found is not None and found.roles == {"finance", "risk_compliance"}
    assert found.is_admin is True and found.is_auditor is False
    nobody = users.bearer(flow.db, bare)
    assert nobody is not None and nobody.roles == frozenset()
    assert users.bearer(flow.db, token + "x") is None
    with flow.db.transaction() as session:
        users.revoke(session, "wu.lei", flow.clock.now())
    assert users.bearer(flow.db, token) is None


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_lookup_keeps_one_connection_per_thread_and_replaces_a_broken_one(
    flow: Tradeflow,
) -> None:
    """PostgreSQL only: SQLite's lookups read on the units' own connection, from the pool
    (tests/engine/storage/test_db.py)."""
    _, token = flow.add_user("wu.lei", ["finance"])
    assert users.bearer(flow.db, token) is not None
    [kept] = flow.db._lookups_kept
    assert users.bearer(flow.db, token) is not None
    assert flow.db._lookups_kept == [kept]  # the same one again, no pool round
    # no transaction is left open on it between requests
    assert kept.driver_connection.info.transaction_status.name == "IDLE"

    elsewhere: list[object] = []
    thread = threading.Thread(target=lambda: elsewhere.append(users.bearer(flow.db, token)))
    thread.start()
    thread.join()
    assert elsewhere[0] is not None and len(flow.db._lookups_kept) == 2

    kept.driver_connection.close()  # as a database restart leaves it
    assert users.bearer(flow.db, token) is not None  # on a new connection
    assert kept not in flow.db._lookups_kept and len(flow.db._lookups_kept) == 2
    flow.db.dispose()
    assert flow.db._lookups_kept == []
