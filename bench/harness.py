"""The benchmarks' one harness: timing, alternating rounds, paired ratios, result tables.

The house's rule for figures: report them as ratios to bare SpiffWorkflow doing the same
work in the same run, plus absolute figures. The machine is shared and its speed drifts
by half within minutes, so a figure measured alone compares the minutes, not the code.
Hence, here:

* sides take turns in rounds, the order alternating (A then B, then B then A), with the
  garbage collected before each side, so no side pays for another's garbage;
* a baseline compared with one piece of work runs half just before and half just after it
  (``bracketed``), so a drift during the work hits both alike;
* a ratio is the median of the rounds' own ratios (``paired``), each round's sides having
  run in the same minutes, and is shown with its spread (the lowest and the highest).

Everything in this module but the clocks is a pure function of its arguments
(tests/bench/test_harness.py).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent  # the repository the bench is in

# -- timing --------------------------------------------------------------------------


class Stopwatch:
    """Wall seconds (perf_counter) and this process's CPU seconds (process_time), added
    up over every block it times: ``with watch: ...``."""

    __slots__ = ("_cpu", "_wall", "cpu", "laps", "wall")

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.laps = 0
        self._wall = 0.0
        self._cpu = 0.0

    def __enter__(self) -> Stopwatch:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu
        self.laps += 1


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """``call()``'s result and the wall seconds it took."""
    began = time.perf_counter()
    result = call()
    return result, time.perf_counter() - began


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux /proc; 0 once gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all the machine's CPUs so far (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time that was busy between two machine_jiffies()."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1)


# -- rounds --------------------------------------------------------------------------


def alternating(items: Sequence[T], number: int) -> list[T]:
    """The order of round ``number`` (counted from 0): as given, then reversed, and so on
    (A B, B A, A B, ...), so that drift on the machine hits every side alike."""
    return list(items) if number % 2 == 0 else list(reversed(items))


def rounds(
    sides: Mapping[str, Callable[[], float]],
    count: int,
    after: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> dict[str, list[float]]:
    """``count`` rounds in which each side runs once, in alternating order, the garbage
    collected before each; each side's figures, one a round. ``after(number, figures)``
    is called at the end of each round (to show it as it comes, say)."""
    figures: dict[str, list[float]] = {name: [] for name in sides}
    for number in range(count):
        for name in alternating(list(sides), number):
            gc.collect()
            figures[name].append(sides[name]())
        if after is not None:
            after(number, figures)
    return figures


def bracketed(
    baseline: Callable[[int], float], count: int, work: Callable[[], T]
) -> tuple[T, float]:
    """``work()`` between two halves of ``count`` operations of ``baseline`` (which does
    that many and answers the seconds they took): half just before, half just after, so
    that drift during the work hits both alike. (work's result, baseline's rate a second.)
    """
    gc.collect()
    seconds = baseline(count // 2)
    gc.collect()
    result = work()
    gc.collect()
    seconds += baseline(count - count // 2)
    return result, count / seconds


def sample(
    calls: Mapping[str, Callable[[], object]], samples: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall seconds of each call, ``samples`` times after ``warmup`` untimed rounds, the
    calls taking turns (each round in alternating order)."""
    names = list(calls)
    for number in range(warmup):
        for name in alternating(names, number):
            calls[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for number in range(samples):
        for name in alternating(names, number):
            seconds[name].append(timed(calls[name])[1])
    return seconds


# -- figures -------------------------------------------------------------------------


def percentile(values: Iterable[float], share: float) -> float:
    """The value below which ``share`` (0 to 1) of ``values`` lie, linear between the
    nearest two (statistics.quantiles' inclusive method; numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= share <= 1:
        raise ValueError(f"share {share} is not between 0 and 1")
    position = share * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class Spread:
    """A median with the lowest and highest value it was taken from.

    Formatted with a float spec it reads ``median (low-high)``: ``f"{s:.2f}"``."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        found = list(values)
        if not found:
            raise ValueError("spread of no values")
        return cls(statistics.median(found), min(found), max(found), len(found))

    def __format__(self, spec: str) -> str:
        spec = spec or ".2f"
        if self.count == 1:
            return format(self.median, spec)
        return f"{self.median:{spec}} ({self.low:{spec}}-{self.high:{spec}})"


def paired_ratios(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    """Each round's ``top / bottom``: figures of the same round were taken in the same
    minutes, so the drift of a shared machine cancels out of their ratio."""
    if len(top) != len(bottom):
        raise ValueError(f"{len(top)} figures against {len(bottom)}: not paired by round")
    return [t / b for t, b in zip(top, bottom, strict=True)]


def paired(top: Sequence[float], bottom: Sequence[float]) -> Spread:
    """The median of the rounds' own ratios, with their spread: the figure that counts."""
    return Spread.of(paired_ratios(top, bottom))


def against_bare(
    label: str, ours: Sequence[float], bare: Sequence[float], unit: str = "completions/s"
) -> str:
    """The house's line for a rate: its ratio to bare SpiffWorkflow doing the same work
    in the same run (the median of the paired ratios, and their spread), then the
    absolute medians of both."""
    ratio = paired(ours, bare)
    rounds_ = f"{ratio.count} round{'s' if ratio.count != 1 else ''}"
    return (
        f"{label}: {ratio:.2f} of bare SpiffWorkflow; {statistics.median(ours):,.1f}"
        f" {unit}, bare {statistics.median(bare):,.1f} (medians of {rounds_})"
    )


# -- result tables -------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of a Table: its title (one line, or two: ``"HTTP ms\\np50"``), its width
    and how its values are formatted (a format spec, ``".1f"``; None shows as ``-``)."""

    title: str
    width: int
    spec: str = ""
    left: bool = False  # text, aligned left; figures are aligned right

    def cell(self, value: object) -> str:
        text = "-" if value is None else format(value, self.spec)
        return text.ljust(self.width) if self.left else text.rjust(self.width)

    def heading(self, line: int, lines: int) -> str:
        parts = self.title.split("\n")
        parts = [""] * (lines - len(parts)) + parts  # short titles sit on the last line
        text = parts[line]
        return text.ljust(self.width) if self.left else text.rjust(self.width)


class Table:
    """One way to print results: a header, then a row per result as it comes."""

    def __init__(self, *columns: Column, indent: str = "  ", out: TextIO | None = None) -> None:
        self.columns = columns
        self.indent = indent
        self.out = out

    def header(self) -> list[str]:
        lines = max(c.title.count("\n") + 1 for c in self.columns)
        return [
            (self.indent + " ".join(c.heading(n, lines) for c in self.columns)).rstrip()
            for n in range(lines)
        ]

    def row(self, *values: object, note: str = "") -> str:
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        cells = " ".join(c.cell(v) for c, v in zip(self.columns, values, strict=True))
        return (self.indent + cells + (f"  {note}" if note else "")).rstrip()

    def print_header(self) -> None:
        for line in self.header():
            print(line, file=self.out or sys.stdout)

    def print_row(self, *values: object, note: str = "") -> None:
        print(self.row(*values, note=note), file=self.out or sys.stdout, flush=True)


# -- the command line ----------------------------------------------------------------


def parse(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, quick: Mapping[str, Any]
) -> argparse.Namespace:
    """The arguments, with ``--quick``: small sizes (``quick``, dest -> value) in place
    of the defaults, flags given on the command line still winning. A quick run checks
    that the script works end to end; its figures are no measurement."""
    shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
    parser.add_argument(
        "--quick", action="store_true", help=f"a small run, to see it works ({shown})"
    )
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args
