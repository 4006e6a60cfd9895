"""GET /audit/export: every instance's events as CSV, or as XES (IEEE 1849) that a
process-mining tool reads back (pm4py here), for auditors and admins."""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import Any

import pm4py
import pytest
from lxml import etree
from werkzeug.test import EnvironBuilder, TestResponse

from api.resources import audit as audit_resource
from engine.audit.trail import canonical_data
from engine.clock import as_utc
from tests.api.conftest import V1, ApiClient, problem

# pm4py suggests an optional faster reader; the one it ships is enough here
pytestmark = pytest.mark.filterwarnings("ignore:Install the optional requirement:UserWarning")

EXPORT = f"{V1}/audit/export"
XES = "{http://www.xes-standard.org/}"


def review(api: ApiClient, key: str, clerk: str = "clerk") -> int:
    """A document_review run to completion: prepared, sent back, prepared again by
    ``clerk``, accepted; a minute between steps."""
    iid = api.start("document_review", clerk, business_key=key)
    steps = [
        ("prepare_documents", clerk, {"invoice_number": "INV-1", "packing_list_ready": True}),
        ("review_documents", "checker", {"documents_ok": False, "review_comment": "B/L missing"}),
        ("prepare_documents", clerk, {"invoice_number": "INV-1", "bill_of_lading_number": "B1"}),
        ("review_documents", "checker", {"documents_ok": True}),
    ]
    for element, user, data in steps:
        api.clock.advance(minutes=1)
        api.complete(api.task(iid, element), user, **data)
    assert api.kinds(iid)[-1] == "instance_completed"
    return iid


@pytest.fixture
def reviewed(deployed: ApiClient) -> tuple[ApiClient, dict[str, int]]:
    """Two completed reviews, SO-1 (clerk) and then, an hour later, SO-2 (clerk2)."""
    first = review(deployed, "SO-1")
    deployed.clock.advance(hours=1)
    second = review(deployed, "SO-2", "clerk2")
    return deployed, {"SO-1": first, "SO-2": second}


def download(api: ApiClient, user: str = "auditor", **query: Any) -> TestResponse:
    response = api.get(EXPORT, user, query_string=query)
    assert response.status_code == 200, (response.status_code, response.get_data(True))
    return response


def rows(api: ApiClient, user: str = "auditor", **query: Any) -> list[dict[str, str]]:
    response = download(api, user, format="csv", **query)
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(True), newline="")))


def read_xes(api: ApiClient, tmp_path: Path, user: str = "auditor", **query: Any) -> Any:
    """The export as pm4py reads it from a file: a DataFrame, an event a row."""
    response = download(api, user, format="xes", **query)
    assert response.mimetype == "application/xml"
    path = tmp_path / "export.xes"
    path.write_bytes(response.get_data())
    return pm4py.read_xes(str(path))


def test_csv_has_every_instance_event_in_order(
    reviewed: tuple[ApiClient, dict[str, int]],
) -> None:
    api, instances = reviewed
    response = download(api, "admin", format="csv")
    disposition = response.headers["Content-Disposition"]
    assert disposition == "attachment; filename=tradeflow-audit.csv"
    text = response.get_data(True)
    assert text.splitlines()[0] == (
        "instance_id,business_key,definition,version,seq,at,actor,kind,element_id,"
        "element_name,role,data,prev_hash,hash"
    )
    exported = list(csv.DictReader(io.StringIO(text, newline="")))
    expected = []
    for key, iid in instances.items():
        for event in api.flow.history(iid):
            expected.append(
                {
                    "instance_id": str(iid),
                    "business_key": key,
                    "definition": "document_review",
                    "version": "1",
                    "seq": str(event.seq),
                    "at": as_utc(event.at).isoformat(),
                    "actor": event.actor,
                    "kind": event.kind,
                    "element_id": event.element_id or "",
                    "element_name": event.element_name or "",
                    "role": event.role or "",
                    "data": canonical_data(event.data),
                    "prev_hash": event.prev_hash,
                    "hash": event.hash,
                }
            )
    assert exported == expected
    assert len(exported) == 2 * 14
    assert exported[0]["at"] == "2026-11-27T09:00:00+00:00"
    # the chain reads straight off the file
    for _, trail in itertools.groupby(exported, key=lambda r: r["instance_id"]):
        events = list(trail)
        assert events[0]["prev_hash"] == "0" * 64
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))


def test_xes_reads_back_in_pm4py_a_trace_per_instance(
    reviewed: tuple[ApiClient, dict[str, int]], tmp_path: Path
) -> None:
    api, instances = reviewed
    response = download(api, format="xes")
    disposition = response.headers["Content-Disposition"]
    assert disposition == "attachment; filename=tradeflow-audit.xes"
    log = read_xes(api, tmp_path)
    assert sorted(log["case:concept:name"].unique()) == ["SO-1", "SO-2"]
    legacy = pm4py.read_xes(str(tmp_path / "export.xes"), return_legacy_log_object=True)
    assert [t.attributes["concept:name"] for t in legacy] == ["SO-1", "SO-2"]
    assert legacy[0].attributes["definition"] == "document_review"
    assert legacy[0].attributes["version"] == 1
    assert legacy.attributes["concept:name"] == "Tradeflow audit trail"
    assert [c for c in legacy.classifiers] == [
        "Activity",
        "Activity and transition",
        "Resource",
    ]

    for key, iid in instances.items():
        history = api.flow.history(iid)
        trace = log[log["case:concept:name"] == key]
        # every event is an activity here (no unclaims, no SLA breaches): one for each
        assert list(trace["seq"]) == [e.seq for e in history]
        done = trace[trace["lifecycle:transition"] == "complete"]
        tasks = done[done["kind"] == "task_completed"]
        completed = [e for e in history if e.kind == "task_completed"]
        assert list(tasks["concept:name"]) == [e.element_name for e in completed]
        assert list(tasks["concept:name"]) == [
            "Prepare shipping documents",
            "Review documents",
            "Prepare shipping documents",
            "Review documents",
        ]
        assert list(tasks["org:resource"]) == [e.actor for e in completed]
        assert list(tasks["org:role"]) == [e.role for e in completed]
        assert done["concept:name"].iloc[0] == "Instance started"
        assert done["concept:name"].iloc[-1] == "Instance completed"
        stamps = list(trace["time:timestamp"])
        assert stamps == sorted(stamps)
        assert stamps[0] == as_utc(history[0].at)
        assert list(tasks["time:timestamp"]) == sorted(set(tasks["time:timestamp"]))
        others = [t for t in trace["lifecycle:transition"] if t != "complete"]
        assert others == ["schedule", "assign"] * 4
    assert list(log[log["case:concept:name"] == "SO-2"]["org:resource"])[3] == "clerk2"


def test_filters_narrow_the_export(
    reviewed: tuple[ApiClient, dict[str, int]], tmp_path: Path
) -> None:
    api, instances = reviewed
    everything = rows(api)
    assert rows(api, definition="document_review") == everything
    assert rows(api, definition="payment_collection") == []
    assert rows(api, definition="no_such_process") == []

    # SO-2 started an hour after SO-1 ended: since/until split the two
    second_start = as_utc(api.flow.history(instances["SO-2"])[0].at)
    since = rows(api, since=second_start.isoformat())
    until = rows(api, until=second_start.isoformat())
    assert {r["business_key"] for r in since} == {"SO-2"}
    assert {r["business_key"] for r in until} == {"SO-1"}
    assert until + since == everything
    # the same instant in another offset is the same filter
    assert rows(api, since="2026-11-27T11:04:00+01:00") == since

    log = read_xes(api, tmp_path, since=second_start.isoformat())
    assert list(log["case:concept:name"].unique()) == ["SO-2"]
    response = download(api, format="xes", definition="payment_collection")
    root = etree.fromstring(response.get_data())
    assert root.findall(f"{XES}trace") == []  # a valid log with no trace


def test_the_xes_document_is_the_standards_shape(deployed: ApiClient) -> None:
    # text that must be escaped, and a control character XML 1.0 cannot carry
    key = 'PO <7> & "quoted" \x01'
    iid = deployed.start("document_review", "clerk", business_key=key)
    response = download(deployed, format="xes")
    root = etree.fromstring(response.get_data())
    assert root.tag == f"{XES}log"
    assert root.get("xes.version") == "1849-2016"
    assert [(e.get("prefix"), e.get("uri")) for e in root.findall(f"{XES}extension")] == [
        ("concept", "http://www.xes-standard.org/concept.xesext"),
        ("time", "http://www.xes-standard.org/time.xesext"),
        ("org", "http://www.xes-standard.org/org.xesext"),
        ("lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
    ]
    assert [g.get("scope") for g in root.findall(f"{XES}global")] == ["trace", "event"]
    [trace] = root.findall(f"{XES}trace")
    name = trace.find(f"{XES}string[@key='concept:name']")
    assert name is not None and name.get("value") == 'PO <7> & "quoted" \ufffd'
    events = trace.findall(f"{XES}event")
    assert len(events) == len(deployed.flow.history(iid)) == 2  # started, task created
    stamp = events[0].find(f"{XES}date[@key='time:timestamp']")
    assert stamp is not None and stamp.get("value") == "2026-11-27T09:00:00+00:00"

    # an instance without a business key is named by its id
    other = deployed.start("document_review", "clerk")
    root = etree.fromstring(download(deployed, format="xes").get_data())
    names = [t.find(f"{XES}string[@key='concept:name']") for t in root.findall(f"{XES}trace")]
    assert [n.get("value") for n in names if n is not None][1] == str(other)


@pytest.mark.parametrize("query", [{}, {"format": "json"}, {"format": "CSV"}])
def test_a_format_other_than_csv_or_xes_is_refused(
    deployed: ApiClient, query: dict[str, str]
) -> None:
    with deployed.unchanged():
        body = problem(deployed.get(EXPORT, "auditor", query_string=query), 422)
        assert [e["field"] for e in body["errors"]] == ["format"]


def test_a_bad_time_is_refused(deployed: ApiClient) -> None:
    for since in ("yesterday", "2026-11-27T09:00:00"):  # unparsable; no offset
        query = {"format": "csv", "since": since}
        problem(deployed.get(EXPORT, "auditor", query_string=query), 422)


def test_only_auditors_and_admins_may_export(deployed: ApiClient) -> None:
    deployed.start("document_review", "clerk")
    with deployed.unchanged():
        for user in ("clerk", "owner", "bank"):
            problem(deployed.get(EXPORT, user, query_string={"format": "csv"}), 403, "forbidden")
        problem(deployed.get(EXPORT, query_string={"format": "csv"}), 401)
        for user in ("auditor", "admin"):
            assert len(rows(deployed, user)) == 2


def test_the_export_is_handed_to_the_server_in_one_piece(
    reviewed: tuple[ApiClient, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One piece, built before the answer starts: granian sends it from threads of its
    own, so a client that never reads holds no request thread and no read transaction
    (streamed in pieces, it held the worker's only thread as long as it liked). Past
    its bound in memory, an export is refused, saying how to narrow it."""
    api, _ = reviewed
    environ = EnvironBuilder(
        path=EXPORT, query_string={"format": "csv"}, headers=api.headers("auditor")
    ).get_environ()
    started: list[str] = []
    pieces = list(api.app.wsgi_app(environ, lambda status, headers: started.append(status)))
    assert started == ["200 OK"] and len(pieces) == 1
    assert pieces[0] == download(api, format="csv").get_data()
    monkeypatch.setattr(audit_resource, "EXPORT_MAX_BYTES", 1000)
    refused = problem(api.get(EXPORT, "auditor", query_string={"format": "csv"}), 422)
    assert "narrow it by definition, since or until" in refused["detail"]
