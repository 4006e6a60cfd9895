"""Users, roles and tokens: only a hash is kept, and a token names exactly one user."""

from __future__ import annotations

import pytest

from engine import users
from engine.errors import Invalid, UserNotFound
from engine.tradeflow import Tradeflow


def test_a_token_identifies_its_user_and_nothing_else(flow: Tradeflow) -> None:
    _, token = flow.add_user("zhao.min", ["risk_compliance"], users.Flags(auditor=True))
    with flow.db.reading() as session:
        found = users.bearer(session, token)
        assert found is not None and found.name == "zhao.min"
        assert users.bearer(session, token + "x") is None
        assert users.bearer(session, "") is None
        actor = users.identity(session, "zhao.min")
    assert actor.roles == {"risk_compliance"} and actor.is_auditor and not actor.is_admin


def test_bad_names_are_refused(flow: Tradeflow) -> None:
    with pytest.raises(Invalid):
        flow.add_user("no spaces please", ["finance"])
    with pytest.raises(Invalid):
        flow.add_user("ok.name", ["Bad Role"])
    with flow.db.reading() as session, pytest.raises(UserNotFound):
        users.identity(session, "ghost")
