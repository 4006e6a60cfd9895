"""The ``tradeflow`` command against a real SQLite file: in this process for the commands
that end by themselves (``tests/command.py``), as a real process for the rest and for the
plain messages a wrong setting gets."""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.storage import Database
from tests import command
from tests.command import Ran
from tests.conftest import ROOT

TRADEFLOW = Path(sys.executable).with_name("tradeflow")


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    db_file = tmp_path / "cli.db"
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": f"sqlite:///{db_file}"}

    def tradeflow(*args: str, **more_env: str) -> Ran:
        return command.tradeflow(*args, env={**env, **more_env})

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
    assert "decision customer_grade v1 deployed" in ok.stdout
    again = run("deploy", *shipped).stdout
    assert (
        "document_review v1 unchanged" in again and "decision customer_grade v1 unchanged" in again
    )

    broken = tmp_path / "broken.bpmn"
    broken.write_text("<definitions><oops></definitions>")
    bad = run("deploy", str(broken))
    assert bad.returncode == 1
    assert "broken.bpmn" in bad.stderr and "not well-formed" in bad.stderr
    assert "Traceback" not in bad.stderr

    assert run("verify").returncode == 0
    # one definition_deployed per process, one decision_deployed per decision
    deployed = len(list((ROOT / "bpmn").glob("*.bpmn"))) + len(list((ROOT / "bpmn").glob("*.dmn")))
    assert f"definitions: {deployed} events, intact" in run("verify").stdout


def test_deploy_warns_of_a_version_that_drops_a_milestone_element(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.diagrams import diagram, seq, user

    def process(*steps: str) -> str:
        chain = ["start", *steps, "end"]
        body = '<bpmn:startEvent id="start"/><bpmn:endEvent id="end"/>'
        body += "".join(user(s) for s in steps) + "".join(
            seq(a, b) for a, b in itertools.pairwise(chain)
        )
        name, xml = diagram("quoting", body)
        path = tmp_path / name
        path.write_bytes(xml)
        return str(path)

    first = run("deploy", process("prepare_quotation", "sign_contract"))
    assert first.returncode == 0 and "warning" not in first.stderr
    second = run("deploy", process("prepare_quotation"))
    assert second.returncode == 0, second.stderr  # deployed all the same
    assert "quoting v2 deployed" in second.stdout
    assert "warning: process 'quoting': element 'sign_contract' marks a milestone" in second.stderr
    assert "signed_at" in second.stderr


def test_a_role_given_twice_is_added_once(run) -> None:  # type: ignore[no-untyped-def]
    result = run("users", "add", "ma.li", "--role", "finance", "--role", "finance")
    assert result.returncode == 0, result.stderr
    assert run("roles", "list").stdout.splitlines() == ["finance\tma.li"]


def test_messages_list_reports_what_was_not_delivered(run) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from engine.storage import Database
    from engine.tradeflow import Tradeflow
    from tests.engine.conftest import fixture_files

    db = Database(f"sqlite:///{run.db_file}")
    flow = Tradeflow(db)
    flow.deploy(fixture_files(), actor="owner")
    for key in ("SO-1", "SO-2"):  # each waits for its invoice first: the payments are kept
        flow.start("payment_collection", actor="cashier", business_key=key)
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
    from engine.people import users
    from engine.storage import Database

    first = run("users", "add", "temp", "--role", "finance").stdout.strip().splitlines()[-1]
    second = run("users", "add", "temp").stdout.strip().splitlines()[-1]
    result = run("users", "revoke", "temp")
    assert (result.returncode, result.stdout.strip()) == (
        0,
        "2 token(s) of temp revoked; sessions ended; password cleared",
    )
    db = Database(f"sqlite:///{run.db_file}")
    assert users.bearer(db, first) is None
    assert users.bearer(db, second) is None
    db.dispose()
    missing = run("users", "revoke", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr


def test_disabling_a_user_stops_their_tokens_until_enabled(run) -> None:  # type: ignore[no-untyped-def]
    from engine.people import users
    from engine.storage import Database

    token = run("users", "add", "temp", "--role", "finance").stdout.strip().splitlines()[-1]
    assert run("users", "disable", "temp").stdout.strip() == "temp disabled"
    assert "temp\tfinance\tdisabled" in run("users", "list").stdout
    db = Database(f"sqlite:///{run.db_file}")
    assert users.bearer(db, token) is None
    assert run("users", "enable", "temp").stdout.strip() == "temp enabled"
    assert users.bearer(db, token) is not None
    db.dispose()
    missing = run("users", "disable", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr


def test_demo_sets_up_people_and_orders_once(run) -> None:  # type: ignore[no-untyped-def]
    from cli.demo import ORDERS, PEOPLE
    from engine.storage import Database
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
    from engine.people import users

    assert users.bearer(flow.db, tokens["wang.fang"]).roles == {"market_development"}  # type: ignore[union-attr]
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


def _reviewed_in(db_file: Path) -> tuple[Database, int]:
    from engine.tradeflow import Tradeflow
    from tests.engine.audit.test_audit import _reviewed
    from tests.engine.conftest import Scenario, fixture_files

    db = Database(f"sqlite:///{db_file}")
    flow = Tradeflow(db)
    flow.deploy(fixture_files(), actor="owner")
    for name, roles in (("clerk", ["documents_logistics"]), ("checker", ["risk_compliance"])):
        flow.add_user(name, roles)
    return db, _reviewed(Scenario(flow))


def test_verify_reports_the_newest_events_deleted_and_says_what_it_checked(run) -> None:  # type: ignore[no-untyped-def]
    from tests.engine.audit.test_audit import as_owner

    db, iid = _reviewed_in(run.db_file)
    intact = run("verify")
    assert intact.returncode == 0, intact.stdout
    lines = intact.stdout.splitlines()
    assert f"instance:{iid}: 14 events, intact" in lines
    # 14 of the instance, 5 deployments: 4 processes and a decision
    assert lines[-3].startswith("checked 2 stream(s), 19 events: every event's link")
    assert lines[-2:] == [
        "anchors: none configured (TRADEFLOW_AUDIT_ANCHOR), not checked",
        "result: intact",
    ]
    as_owner(db, ("DELETE FROM audit_event WHERE instance_id = :i AND seq > 12", {"i": iid}))
    db.dispose()
    cut = run("verify")
    assert cut.returncode == 1
    assert (
        f"instance:{iid}: broken at seq 13: events 13 to 14 missing: the instance row records "
        "the head at seq 14 (the newest were deleted)"
    ) in cut.stdout.splitlines()
    assert cut.stdout.splitlines()[-1] == "result: 1 problem(s)"
    one = run("verify", f"instance:{iid}")
    assert one.returncode == 1 and "checked 1 stream(s), 12 events" in one.stdout


def test_an_anchor_outside_the_database_catches_a_rewrite_of_chain_and_head(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    from tests.engine.audit.test_audit import as_owner, rewrite

    db, iid = _reviewed_in(run.db_file)
    anchors = tmp_path / "anchors" / "trail.jsonl"
    anchors.parent.mkdir()
    setting = {"TRADEFLOW_AUDIT_ANCHOR": str(anchors)}
    assert run("verify", **setting).stdout.splitlines()[-2] == (
        f"anchors: none written yet ({anchors} does not exist), not checked"
    )
    written = run("audit", "anchor", **setting)
    assert written.returncode == 0, written.stderr
    assert written.stdout.startswith(f"anchor 1 written to {anchors}: 2 streams, digest ")
    assert stat.S_IMODE(anchors.stat().st_mode) == 0o600
    checked = run("verify", **setting)
    assert checked.returncode == 0, checked.stdout
    assert f"anchors: 1 read from {anchors} (anchor 1 to 1" in checked.stdout
    assert "anchors: 2 anchored events found as anchored." in checked.stdout

    _, head = rewrite(db, f"instance:{iid}", 6, actor="mallory")
    as_owner(db, ("UPDATE instance SET audit_hash = :h WHERE id = :i", {"h": head, "i": iid}))
    db.dispose()
    assert run("verify", "--no-anchors", **setting).returncode == 0  # the heads hide it
    for caught in (run("verify", **setting), run("verify", "--anchors", str(anchors))):
        assert caught.returncode == 1
        assert any(
            line.startswith(f"instance:{iid}: broken at seq 14: not the event anchor 1 pinned")
            for line in caught.stdout.splitlines()
        ), caught.stdout
    again = run("audit", "anchor", **setting)  # written, but it says what it saw
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"warning: instance:{iid}: seq 14 anchored with another hash than it has now"
    )


def test_anchor_settings_are_checked_before_anything_runs(run) -> None:  # type: ignore[no-untyped-def]
    unset = run("audit", "anchor")
    assert unset.returncode == 1
    assert unset.stderr.strip() == "Error: TRADEFLOW_AUDIT_ANCHOR is not set: pass --to"
    wrong = {"TRADEFLOW_AUDIT_ANCHOR": "x.jsonl", "TRADEFLOW_AUDIT_ANCHOR_EVERY": "hourly"}
    for args in (("worker",), ("serve", "--port", "1")):
        refused = run(*args, **wrong)
        assert refused.returncode == 1
        assert "TRADEFLOW_AUDIT_ANCHOR_EVERY: 'hourly' is not a number of minutes" in refused.stderr
    nowhere = run("audit", "anchor", "--to", "/no/such/dir/a.jsonl")
    assert nowhere.returncode == 1 and "cannot open the anchor file" in nowhere.stderr


def test_verify_says_when_anchors_stopped_coming(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from engine.audit import anchors
    from tests.conftest import FakeClock

    db, _ = _reviewed_in(run.db_file)
    path = tmp_path / "anchors.jsonl"
    three_hours_ago = FakeClock(datetime.now(UTC) - timedelta(hours=3))
    anchors.anchor(db, three_hours_ago, anchors.FileTarget(path))
    db.dispose()
    setting = {"TRADEFLOW_AUDIT_ANCHOR": str(path)}
    assert run("verify", **setting, TRADEFLOW_AUDIT_ANCHOR_EVERY="120").returncode == 0
    stale = run("verify", **setting)  # hourly: two missed
    assert stale.returncode == 1
    assert (
        "more than twice TRADEFLOW_AUDIT_ANCHOR_EVERY (60 min) ago: anchoring stopped, or is "
        "being held back"
    ) in stale.stdout


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
