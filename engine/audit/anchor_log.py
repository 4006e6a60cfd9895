"""The anchor record, and an anchor file read back (engine/audit/anchors.py writes them).

An anchor record is one line of JSON (sorted keys, no spaces)::

    {"anchor": 3, "at": "2026-11-27T10:00:00.000000Z", "digest": "<sha256 of the listing>",
     "full": false, "gone": [], "heads": {"instance:7": [12, "<hash>"], ...},
     "prev": "<the digest of anchor 2>", "streams": 412, "tradeflow_anchor": 1}

The listing is one line per stream, ``stream TAB seq TAB hash LF``, sorted by stream (by
code point), UTF-8; ``digest`` is its SHA-256 and ``prev`` the previous anchor's digest, so
anchors chain too. A ``full`` record lists every head; the others list only the heads that
moved since the anchor before, and the streams ``gone`` since: the listing is the one
before with those applied. The heads listed last are kept in the database
(``audit_anchored``) for that; if they do not add up to the last digest, the anchor is a
full one again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.audit.verification import Pin
from engine.errors import AnchorFailed

FORMAT = 1
_HASH = re.compile(r"[0-9a-f]{64}")

Heads = Mapping[str, tuple[int, str]]


def listing(heads: Heads) -> bytes:
    """The canonical listing: ``stream TAB seq TAB hash LF`` per stream, sorted."""
    return "".join(f"{s}\t{heads[s][0]}\t{heads[s][1]}\n" for s in sorted(heads)).encode()


def digest(heads: Heads) -> str:
    return hashlib.sha256(listing(heads)).hexdigest()


@dataclass(frozen=True)
class Record:
    """One anchor, as written."""

    number: int
    at: str
    digest: str
    prev: str | None
    streams: int
    full: bool
    heads: dict[str, tuple[int, str]]
    gone: list[str] = field(default_factory=list)

    def line(self) -> bytes:
        body = {
            "tradeflow_anchor": FORMAT,
            "anchor": self.number,
            "at": self.at,
            "digest": self.digest,
            "prev": self.prev,
            "streams": self.streams,
            "full": self.full,
            "heads": {s: [seq, h] for s, (seq, h) in sorted(self.heads.items())},
            "gone": self.gone,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def parse(cls, text: str | bytes) -> Record:
        """A record from its line; ValueError saying what is wrong with it."""
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("tradeflow_anchor") != FORMAT:
            raise ValueError(f"not a tradeflow anchor record of format {FORMAT}")
        heads: dict[str, tuple[int, str]] = {}
        raw = body.get("heads")
        if not isinstance(raw, dict):
            raise ValueError("'heads' is not an object")
        for stream, head in raw.items():
            if not (
                isinstance(head, list)
                and len(head) == 2
                and type(head[0]) is int
                and head[0] > 0
                and isinstance(head[1], str)
                and _HASH.fullmatch(head[1])
            ):
                raise ValueError(f"the head of {stream} is not [seq, sha256]")
            heads[stream] = (head[0], head[1])
        number, at, digest_, prev = (body.get(k) for k in ("anchor", "at", "digest", "prev"))
        gone, streams, full = body.get("gone", []), body.get("streams"), body.get("full")
        if type(number) is not int or not isinstance(at, str) or type(streams) is not int:
            raise ValueError("'anchor', 'at' or 'streams' is missing or of the wrong type")
        if not isinstance(digest_, str) or not _HASH.fullmatch(digest_):
            raise ValueError("'digest' is not a sha256")
        if prev is not None and not (isinstance(prev, str) and _HASH.fullmatch(prev)):
            raise ValueError("'prev' is neither null nor a sha256")
        if not isinstance(full, bool) or not isinstance(gone, list):
            raise ValueError("'full' or 'gone' is of the wrong type")
        if not all(isinstance(s, str) for s in gone):
            raise ValueError("'gone' lists something other than stream names")
        return cls(number, at, digest_, prev, streams, full, heads, list(gone))


def last_record(path: Path) -> Record | None:
    """The last complete, readable record of a file, read from its end."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        tail = b""
        position = end
        while position > 0:
            step = min(1 << 20, position)
            position -= step
            f.seek(position)
            tail = f.read(step) + tail
            lines = tail.split(b"\n")
            # lines[0] may be cut by the read's start, lines[-1] by a crash (or is empty)
            for line in reversed(lines[1:-1] if position > 0 else lines[:-1]):
                if line.strip():
                    try:
                        return Record.parse(line)
                    except ValueError:
                        return None  # not ours to read past: the anchor is a full one
        return None


@dataclass
class AnchorLog:
    """An anchor file read back: the events it pins, and what is wrong with it."""

    path: str
    anchors: int = 0
    first: Record | None = None
    last: Record | None = None
    pins: dict[str, dict[int, Pin]] = field(default_factory=dict)
    pinned: int = 0
    problems: list[str] = field(default_factory=list)
    # (stream, seq, anchor, other anchor): one event anchored with two hashes
    conflicts: list[tuple[str, int, int, int]] = field(default_factory=list)


def read_log(path: str | Path) -> AnchorLog:
    """Replay an anchor file: each record's listing (the one before with its heads and
    gone streams applied) must add up to its digest, and each must follow the one before
    (``prev``); every head any record lists is a pin for verify."""
    log = AnchorLog(str(path))
    listing_now: dict[str, tuple[int, str]] = {}
    replayable = False  # a full record came, and everything since added up
    prev: Record | None = None
    try:
        handle = open(path, "rb")  # noqa: SIM115 - read line by line below
    except OSError as exc:
        raise AnchorFailed(f"cannot read the anchor file {path}: {exc}") from exc
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                log.problems.append(f"line {number}: cut short (a write that did not finish)")
                continue
            try:
                record = Record.parse(raw)
            except ValueError as exc:
                log.problems.append(f"line {number}: not an anchor record: {exc}")
                continue
            log.anchors += 1
            log.first = log.first or record
            log.last = record
            if prev is not None and record.prev != prev.digest:
                log.problems.append(
                    f"anchor {record.number} (line {number}) does not follow anchor "
                    f"{prev.number}: its prev is not that one's digest (anchors missing?)"
                )
            prev = record
            if record.full:
                listing_now, replayable = dict(record.heads), True
            elif replayable:
                listing_now.update(record.heads)
                for stream in record.gone:
                    listing_now.pop(stream, None)
            if replayable and digest(listing_now) != record.digest:
                log.problems.append(
                    f"anchor {record.number} (line {number}): its listing does not add up to "
                    "its digest (a record before it is missing or altered)"
                )
                replayable = False
            for stream, (seq, hash_) in record.heads.items():
                pins = log.pins.setdefault(stream, {})
                held = pins.get(seq)
                if held is None:
                    pins[seq] = Pin(hash_, record.number)
                    log.pinned += 1
                elif held.hash != hash_:
                    log.conflicts.append((stream, seq, held.anchor, record.number))
    if log.first is not None and not log.first.full:
        log.problems.append(
            f"the file starts with anchor {log.first.number}, which lists only what moved "
            "since the one before: its digests cannot be checked before the next full one"
        )
    return log
