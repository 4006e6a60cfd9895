"""Signing in and out: sessions that end on the server, revocation that reaches every
credential at once, the throttle on guessing passwords, and the cookie's flags."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import select

from api import create_app
from engine.audit import SIGN_IN_STREAM
from engine.people import users
from engine.people.sign_in import Throttle
from engine.storage import AuditEvent, SignInFailure
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.web.test_pages import PASSWORD, browser, csrf, flow, hashed, sign_in  # noqa: F401

V1 = "/api/v1"


def signed_in_as(client: FlaskClient) -> str | None:
    """Whom the inbox greets, or None when the session is gone (sent to sign in)."""
    response = client.get("/")
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
        return None
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return page.split('<span class="who">', 1)[1].split("<", 1)[0]


def copy_of(client: FlaskClient, app_client: FlaskClient) -> FlaskClient:
    """A second browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    app_client.set_cookie("session", cookie.value)
    return app_client


@pytest.fixture
def app_of(flow: Tradeflow) -> Any:  # noqa: F811
    return create_app({"TRADEFLOW": flow, "SECRET_KEY": "test", "TESTING": True})


# --- sessions end on the server -----------------------------------------------------------


def test_logging_out_ends_the_session_for_every_copy_of_its_cookie(
    browser: FlaskClient,  # noqa: F811
    app_of: Any,
) -> None:
    assert sign_in(browser, "clerk") == 302
    stolen = copy_of(browser, app_of.test_client())
    assert signed_in_as(stolen) == "clerk"
    browser.post("/logout", data={"csrf_token": csrf(browser, "/")})
    assert signed_in_as(browser) is None
    assert signed_in_as(stolen) is None  # the copy made before logout is dead too
    assert stolen.get(f"{V1}/queues").status_code == 401  # and so for the API


@pytest.mark.parametrize("how", ["revoke", "disable", "passwd"])
def test_revoking_disabling_or_a_new_password_ends_open_sessions_at_once(
    how: str,
    browser: FlaskClient,  # noqa: F811
    flow: Tradeflow,  # noqa: F811
) -> None:
    assert sign_in(browser, "clerk") == 302
    _, token = flow.add_user("clerk")
    bearer = {"Authorization": f"Bearer {token}"}
    assert browser.get(f"{V1}/queues", headers=bearer).status_code == 200
    with flow.db.transaction() as session:
        if how == "revoke":
            users.revoke(session, "clerk", flow.clock.now())
        elif how == "disable":
            users.disable(session, "clerk", flow.clock.now())
        else:
            new = users.hash_password("a new one!")
            users.set_password(session, "clerk", new, flow.clock.now())
    assert signed_in_as(browser) is None  # the open session: the very next request
    if how == "passwd":
        assert browser.get(f"{V1}/queues", headers=bearer).status_code == 200  # tokens stay
        assert sign_in(browser, "clerk") == 401  # the old password
        assert sign_in(browser, "clerk", "a new one!") == 302
        return
    assert browser.get(f"{V1}/queues", headers=bearer).status_code == 401  # tokens
    assert sign_in(browser, "clerk") == 401  # and the password


def test_a_disabled_user_comes_back_with_enable_but_not_their_old_sessions(
    browser: FlaskClient,  # noqa: F811
    flow: Tradeflow,  # noqa: F811
) -> None:
    assert sign_in(browser, "clerk") == 302
    before = browser.get_cookie("session")
    assert before is not None
    _, token = flow.add_user("clerk")
    with flow.db.transaction() as session:
        users.disable(session, "clerk", flow.clock.now())
    with flow.db.transaction() as session:
        users.enable(session, "clerk")
    bearer = {"Authorization": f"Bearer {token}"}
    assert browser.get(f"{V1}/queues", headers=bearer).status_code == 200
    browser.set_cookie("session", before.value)
    assert signed_in_as(browser) is None  # ended by disable, for good
    assert sign_in(browser, "clerk") == 302


def test_a_session_lasts_a_working_day(
    browser: FlaskClient,  # noqa: F811
    clock: FakeClock,
) -> None:
    assert sign_in(browser, "clerk") == 302
    clock.advance(hours=11, minutes=59)
    assert signed_in_as(browser) == "clerk"
    clock.advance(minutes=2)
    assert signed_in_as(browser) is None


# --- the throttle ------------------------------------------------------------------------


class Hashes:
    """Counts argon2 verifications (the library's, called through unchanged) and notes
    whether another writer could commit while each one ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, flow: Tradeflow) -> None:  # noqa: F811
        self.count = 0
        self.writer_waited: list[bool] = []
        verify = PasswordHasher.verify

        def counted(hasher: PasswordHasher, stored: str, password: str) -> Any:
            self.count += 1
            self.writer_waited.append(not _another_writer_commits(flow))
            return verify(hasher, stored, password)

        monkeypatch.setattr(PasswordHasher, "verify", counted)


def _another_writer_commits(flow: Tradeflow) -> bool:  # noqa: F811
    """Whether another writer could take SQLite's write lock right now: this process's
    writers' lock is free and the file's lock answers at once (no waiting, so a loaded
    machine can't make it look held). PostgreSQL has no such lock: a transaction open
    there holds only its rows."""
    if flow.db.is_postgres:
        return True
    writers = flow.db._writer
    if isinstance(writers, type(threading.Lock())) and writers.locked():
        return False
    path = flow.db.engine.url.database
    assert path
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # database is locked
        return False
    finally:
        probe.close()


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch, flow: Tradeflow) -> Iterator[Hashes]:  # noqa: F811
    yield Hashes(monkeypatch, flow)


def lockouts(flow: Tradeflow) -> list[AuditEvent]:  # noqa: F811
    with flow.db.reading() as session:
        return list(
            session.query(AuditEvent).filter(AuditEvent.stream == SIGN_IN_STREAM).order_by("seq")
        )


def test_passwords_are_hashed_outside_every_transaction(
    browser: FlaskClient,  # noqa: F811
    hashes: Hashes,
) -> None:
    assert sign_in(browser, "clerk", "wrong password") == 401
    assert sign_in(browser, "nobody", "wrong password") == 401
    assert sign_in(browser, "clerk") == 302
    assert hashes.count == 3
    assert hashes.writer_waited == [False, False, False]


def test_guessing_one_account_locks_it_for_a_while_and_says_so(
    browser: FlaskClient,  # noqa: F811
    flow: Tradeflow,  # noqa: F811
    clock: FakeClock,
    hashes: Hashes,
) -> None:
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # before signing in: the browser's
    limit = Throttle().account_limit
    for attempt in range(limit):
        assert sign_in(browser, "clerk", f"guess {attempt}") == 401
    assert hashes.count == limit
    response = browser.post(
        "/login",
        data={"username": "clerk", "password": PASSWORD, "csrf_token": csrf(browser)},
    )
    assert response.status_code == 429  # even the right password: the account is locked
    assert "Too many failed sign-ins. Try again in 15 minutes." in response.get_data(as_text=True)
    assert hashes.count == limit  # a refused attempt costs no hash
    [locked] = lockouts(flow)
    assert (locked.kind, locked.actor, locked.element_id) == (
        "sign_in_locked",
        "anonymous",  # whoever guessed, not the account's owner
        "account:clerk",
    )
    assert locked.data["failures"] == limit
    assert sign_in(browser, "checker") == 302  # others are not locked out
    browser.post("/logout", data={"csrf_token": csrf(browser, "/")})
    clock.advance(minutes=14)
    assert sign_in(browser, "clerk") == 429
    clock.advance(minutes=1, seconds=1)
    assert sign_in(browser, "clerk") == 302
    assert len(lockouts(flow)) == 1  # one lockout, one event


def test_a_success_forgives_the_account_its_failures(
    browser: FlaskClient,  # noqa: F811
) -> None:
    limit = Throttle().account_limit
    for _ in range(limit - 1):
        assert sign_in(browser, "clerk", "typo") == 401
    assert sign_in(browser, "clerk") == 302
    browser.post("/logout", data={"csrf_token": csrf(browser, "/")})
    for _ in range(limit - 1):
        assert sign_in(browser, "clerk", "typo") == 401
    assert sign_in(browser, "clerk") == 302


def test_guessing_many_accounts_from_one_address_locks_the_address(
    browser: FlaskClient,  # noqa: F811
    flow: Tradeflow,  # noqa: F811
    app_of: Any,
    hashes: Hashes,
) -> None:
    limit = Throttle().address_limit
    for n in range(limit):  # never the same name twice: no account lock gets in the way
        assert sign_in(browser, f"someone{n}", "guess") == 401
    assert sign_in(browser, "clerk") == 429  # from this address, nobody for now
    assert hashes.count == limit
    elsewhere = app_of.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert sign_in(elsewhere, "clerk") == 302  # another address is heard
    assert [e.element_id for e in lockouts(flow)] == ["address:127.0.0.1"]


def test_what_the_throttle_stores_stays_bounded(
    browser: FlaskClient,  # noqa: F811
    flow: Tradeflow,  # noqa: F811
    clock: FakeClock,
) -> None:
    """Anonymous visitors choose the names: one no account could have is not stored
    (whatever its length), a locked address adds no rows for the names it tries, and
    rows whose window and lockout have passed are dropped."""

    def stored() -> list[str]:
        with flow.db.reading() as session:
            return sorted(session.scalars(select(SignInFailure.key)))

    assert sign_in(browser, "x" * 300_000, "guess") == 401
    assert sign_in(browser, "名字 with spaces", "guess") == 401
    assert stored() == ["address:127.0.0.1"]
    limit = Throttle().address_limit
    for n in range(limit - 2):
        assert sign_in(browser, f"someone{n}", "guess") == 401
    assert sign_in(browser, "clerk") == 429  # the address is locked now
    before = stored()
    for n in range(40):
        assert sign_in(browser, f"another{n}", "guess") == 429
    assert stored() == before  # nothing more for the names a locked address tries
    clock.advance(minutes=31)  # past the window and the lockout
    assert sign_in(browser, "clerk") == 302
    # the stale rows went: the accounts tried, and the address's locked window (its row
    # now is this attempt's, a new window the success took back)
    assert stored() == ["address:127.0.0.1"]
    with flow.db.reading() as session:
        assert session.scalars(select(SignInFailure.failures)).all() == [0]


def test_failures_long_ago_do_not_count(
    browser: FlaskClient,  # noqa: F811
    clock: FakeClock,
) -> None:
    limit = Throttle().account_limit
    for _ in range(limit):
        assert sign_in(browser, "clerk", "typo") == 401
        clock.advance(minutes=4)  # five failures, but spread over 20 minutes
    assert sign_in(browser, "clerk") == 302


# --- the cookie -------------------------------------------------------------------------


def _cookie_header(client: FlaskClient, base_url: str = "http://localhost") -> str:
    """The Set-Cookie of a sign-in over ``base_url``'s scheme."""
    page = client.get("/login", base_url=base_url).get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/login",
        data={"username": "clerk", "password": PASSWORD, "csrf_token": token},
        base_url=base_url,
        headers={"Referer": f"{base_url}/login"},  # Flask-WTF wants it over HTTPS
    )
    assert response.status_code == 302
    [header] = [v for k, v in response.headers.items() if k == "Set-Cookie"]
    return header


def test_the_session_cookie_is_http_only_same_site_lax_and_secure_over_https(
    browser: FlaskClient,  # noqa: F811
    app_of: Any,
) -> None:
    plain = _cookie_header(browser)
    assert "HttpOnly" in plain and "SameSite=Lax" in plain  # Flask's default is no SameSite
    assert "Secure" not in plain  # over plain HTTP the browser would drop a Secure cookie
    assert "Secure" in _cookie_header(app_of.test_client(), "https://localhost")


def test_secure_cookies_can_be_required(flow: Tradeflow) -> None:  # noqa: F811
    config = {"TRADEFLOW": flow, "SECRET_KEY": "t", "TESTING": True}
    app = create_app({**config, "TRADEFLOW_SECURE_COOKIES": "always"})
    assert "Secure" in _cookie_header(app.test_client())
    with pytest.raises(ValueError, match="auto, always or never"):
        create_app({"TRADEFLOW": flow, "SECRET_KEY": "t", "TRADEFLOW_SECURE_COOKIES": "yes"})


def test_behind_a_proxy_the_forwarded_address_is_the_one_throttled(
    flow: Tradeflow,  # noqa: F811
) -> None:
    config = {"TRADEFLOW": flow, "SECRET_KEY": "t", "TESTING": True}
    app = create_app({**config, "TRADEFLOW_PROXIES": 1})
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
    assert sign_in(client, "clerk", "typo") == 401
    with flow.db.reading() as session:
        keys = {row.key for row in session.query(SignInFailure)}
    assert "address:203.0.113.7" in keys


def test_the_lockout_is_said_in_chinese_to_a_chinese_browser(app_of: Any) -> None:
    client = app_of.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh;q=0.9"
    for _ in range(Throttle().account_limit):
        assert sign_in(client, "clerk", "typo") == 401
    response = client.post(
        "/login", data={"username": "clerk", "password": "typo", "csrf_token": csrf(client)}
    )
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "登录失败次数过多" in page and "请 15 分钟后再试" in page
