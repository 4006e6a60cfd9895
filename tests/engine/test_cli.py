"""The ``tradeflow`` command, run as a real process against a real SQLite file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TRADEFLOW = Path(sys.executable).with_name("tradeflow")


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    db_file = tmp_path / "cli.db"
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": f"sqlite:///{db_file}"}

    def tradeflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TRADEFLOW), *args], env=env, cwd=ROOT, text=True, capture_output=True, timeout=120
        )

    assert tradeflow("db", "upgrade").returncode == 0
    tradeflow.db_file = db_file  # type: ignore[attr-defined]
    return tradeflow


def test_users_add_prints_a_token_and_stores_only_its_hash(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        "users",
        "add",
        "li.wei",
        "--role",
        "documents_logistics",
        "--role",
        "risk_compliance",
        "--auditor",
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("tf_") and len(token) > 30
    with sqlite3.connect(run.db_file) as conn:
        stored = [r[0] for r in conn.execute("SELECT token_sha256 FROM api_token")]
        flags = conn.execute("SELECT is_auditor, is_admin FROM app_user").fetchone()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in run.db_file.read_bytes().decode("latin-1")
    assert flags == (1, 0)
    again = run("users", "add", "li.wei", "--integration")  # update: roles kept, new token
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] != token
    roles = run("roles", "list")
    assert roles.stdout.splitlines() == ["documents_logistics\tli.wei", "risk_compliance\tli.wei"]


def test_users_add_refuses_a_bad_role_plainly(run) -> None:  # type: ignore[no-untyped-def]
    result = run("users", "add", "bob", "--role", "Not A Role")
    assert result.returncode == 1
    assert "lower_snake_case" in result.stderr and "Traceback" not in result.stderr


def test_deploy_reports_every_problem_and_exits_1(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shipped = [str(p) for p in sorted((ROOT / "bpmn").iterdir())]
    shipped += [str(p) for p in sorted((ROOT / "forms").glob("*.form"))]
    ok = run("deploy", *shipped)
    assert ok.returncode == 0, ok.stderr
    assert "document_review v1 deployed" in ok.stdout
    assert "document_review v1 unchanged" in run("deploy", *shipped).stdout

    broken = tmp_path / "broken.bpmn"
    broken.write_text("<definitions><oops></definitions>")
    bad = run("deploy", str(broken))
    assert bad.returncode == 1
    assert "broken.bpmn" in bad.stderr and "not well-formed" in bad.stderr
    assert "Traceback" not in bad.stderr

    assert run("verify").returncode == 0
    processes = len(list((ROOT / "bpmn").glob("*.bpmn")))  # one definition_deployed each
    assert f"definitions: {processes} events, intact" in run("verify").stdout


def test_a_role_given_twice_is_added_once(run) -> None:  # type: ignore[no-untyped-def]
    result = run("users", "add", "ma.li", "--role", "finance", "--role", "finance")
    assert result.returncode == 0, result.stderr
    assert run("roles", "list").stdout.splitlines() == ["finance\tma.li"]


def test_messages_list_reports_what_was_not_delivered(run) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from engine.db import Database
    from engine.tradeflow import Tradeflow
    from tests.engine.conftest import fixture_files

    db = Database(f"sqlite:///{run.db_file}")
    flow = Tradeflow(db)
    flow.deploy(fixture_files(), actor="owner")
    flow.correlate(
        "payment_received", actor="bank", business_key="SO-1", variables={"amount_received": 1.0}
    )
    flow.correlate(
        "payment_received",
        actor="bank",
        business_key="SO-2",
        variables={"amount_received": 2.0},
        ttl=timedelta(microseconds=1),
    )
    db.dispose()
    result = run("messages", "list")
    assert result.returncode == 1  # something expired: an operator must look
    lines = result.stdout.splitlines()
    assert [line.split("\t")[1:4] for line in lines] == [
        ["buffered", "payment_received", "SO-1"],
        ["expired", "payment_received", "SO-2"],
    ]


def test_a_user_with_no_role_can_be_added(run) -> None:  # type: ignore[no-untyped-def]
    result = run("users", "add", "audrey", "--auditor")
    assert result.returncode == 0, result.stderr
    assert "roles (none)" in result.stdout
    assert run("users", "list").stdout.splitlines() == ["audrey\t-\tauditor"]


def test_revoking_a_user_stops_every_token(run) -> None:  # type: ignore[no-untyped-def]
    from engine import users
    from engine.db import Database

    first = run("users", "add", "temp", "--role", "finance").stdout.strip().splitlines()[-1]
    second = run("users", "add", "temp").stdout.strip().splitlines()[-1]
    result = run("users", "revoke", "temp")
    assert (result.returncode, result.stdout.strip()) == (0, "2 token(s) of temp revoked")
    db = Database(f"sqlite:///{run.db_file}")
    with db.reading() as session:
        assert users.bearer(session, first) is None
        assert users.bearer(session, second) is None
    db.dispose()
    missing = run("users", "revoke", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr


def test_demo_sets_up_people_and_orders_once(run) -> None:  # type: ignore[no-untyped-def]
    from cli.demo import ORDERS, PEOPLE
    from engine.db import Database
    from engine.tradeflow import Tradeflow

    result = run("demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for order in ORDERS:
        assert any(order.business_key in line for line in lines), order.business_key
    tokens = {line.split()[0]: line.split()[-1] for line in lines if "tf_" in line}
    assert sorted(tokens) == sorted(PEOPLE)

    flow = Tradeflow(Database(f"sqlite:///{run.db_file}"))
    inbox = {name: sorted(t.element_id for t in flow.inbox(name).tasks) for name in PEOPLE}
    assert inbox["chen.jie"] == ["approve_quotation", "assign_key_account"]  # the manager
    assert inbox["wang.fang"] == ["prepare_quotation"]
    assert inbox["zhou.min"] == ["review_contract", "review_documents"]
    assert inbox["zhao.lei"] == ["rework_goods"]
    assert inbox["sun.li"] == ["investigate_complaint"]
    assert "SO-2026-0087 " in result.stdout and "waiting" in result.stdout  # for the payment
    with flow.db.reading() as session:
        from engine import users

        assert users.bearer(session, tokens["wang.fang"]).roles == {"market_development"}  # type: ignore[union-attr]
    flow.db.dispose()

    again = run("demo")
    assert again.returncode == 1
    assert again.stderr.strip() == "Error: the demo is already set up in this database"
    assert run("demo", "--if-new").returncode == 0


def test_db_measures_makes_the_summaries_again(run) -> None:  # type: ignore[no-untyped-def]
    assert run("demo").returncode == 0
    with sqlite3.connect(run.db_file) as conn:
        kept = conn.execute("SELECT * FROM case_facts ORDER BY instance_id").fetchall()
        conn.execute("UPDATE case_facts SET grade = 'Z'")  # a summary gone wrong
    result = run("db", "measures")
    assert result.returncode == 0, result.stderr
    assert f"case facts of {len(kept)} instances replayed" in result.stdout
    with sqlite3.connect(run.db_file) as conn:
        assert conn.execute("SELECT * FROM case_facts ORDER BY instance_id").fetchall() == kept


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRADEFLOW_COMMAND_MAX_STEPS", "lots"),
        ("TRADEFLOW_COMMAND_MAX_SECONDS", "-1"),
        ("TRADEFLOW_MIN_TIMER_INTERVAL", "soon"),
    ],
)
def test_a_limit_set_wrong_is_named_plainly(tmp_path: Path, variable: str, value: str) -> None:
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", variable: value}
    result = subprocess.run(
        [str(TRADEFLOW), "db", "upgrade"], env=env, cwd=ROOT, text=True, capture_output=True
    )
    assert result.returncode == 1
    assert variable in result.stderr and "Traceback" not in result.stderr
