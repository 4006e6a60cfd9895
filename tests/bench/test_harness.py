"""bench/harness.py's pure parts: alternation, paired ratios, spreads, percentiles, the
table and --quick. Nothing here is timed: benchmarks never run as tests."""

from __future__ import annotations

import argparse
import io
import statistics
from collections.abc import Callable

import pytest

from bench.harness import (
    Column,
    Spread,
    Table,
    against_bare,
    alternating,
    bracketed,
    paired,
    paired_ratios,
    parse,
    percentile,
    rounds,
    sample,
)


def test_rounds_alternate_the_order_of_the_sides() -> None:
    assert [alternating("AB", n) for n in range(4)] == [
        ["A", "B"],
        ["B", "A"],
        ["A", "B"],
        ["B", "A"],
    ]
    assert alternating(["A", "B", "C"], 1) == ["C", "B", "A"]


def test_rounds_run_every_side_once_a_round_in_alternating_order() -> None:
    ran: list[str] = []
    seen: list[int] = []

    def runner(name: str, value: float) -> Callable[[], float]:
        def run() -> float:
            ran.append(name)
            return value + len([r for r in ran if r == name])

        return run

    figures = rounds(
        {"bare": runner("bare", 10), "ours": runner("ours", 20)},
        3,
        after=lambda number, _: seen.append(number),
    )
    assert ran == ["bare", "ours", "ours", "bare", "bare", "ours"]
    assert figures == {"bare": [11, 12, 13], "ours": [21, 22, 23]}
    assert seen == [0, 1, 2]


def test_a_baseline_brackets_the_work_half_before_half_after() -> None:
    calls: list[str] = []

    def baseline(count: int) -> float:
        calls.append(f"bare {count}")
        return count / 100  # 100 a second

    def work() -> str:
        calls.append("work")
        return "done"

    result, rate = bracketed(baseline, 7, work)
    assert calls == ["bare 3", "work", "bare 4"]
    assert result == "done"
    assert rate == pytest.approx(100)


def test_samples_take_turns_after_the_warm_up() -> None:
    calls: list[str] = []
    seconds = sample({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2, 1)
    assert calls == ["a", "b", "a", "b", "b", "a"]
    assert {k: len(v) for k, v in seconds.items()} == {"a": 2, "b": 2}


def test_paired_ratios_are_taken_round_by_round() -> None:
    ours, bare = [50.0, 90.0, 60.0], [100.0, 100.0, 120.0]
    assert paired_ratios(ours, bare) == [0.5, 0.9, 0.5]
    ratio = paired(ours, bare)
    assert ratio == Spread(median=0.5, low=0.5, high=0.9, count=3)
    # not the ratio of the medians, which mixes minutes the machine ran at other speeds
    assert statistics.median(ours) / statistics.median(bare) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="not paired"):
        paired_ratios([1.0], [1.0, 2.0])


def test_a_spread_shows_its_median_and_range() -> None:
    spread = Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (spread.median, spread.low, spread.high, spread.count) == (2.5, 1.0, 10.0, 4)
    assert f"{spread:.1f}" == "2.5 (1.0-10.0)"
    assert f"{Spread.of([0.625])}" == "0.62"  # one figure: no range
    with pytest.raises(ValueError):
        Spread.of([])


def test_percentiles_interpolate_between_the_nearest_values() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(
        statistics.quantiles(values, n=100, method="inclusive")[98]
    )
    assert percentile([4.0], 0.99) == 4.0
    assert percentile([2.0, 1.0], 0) == 1.0
    assert percentile([2.0, 1.0], 1) == 2.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_the_line_against_bare_gives_the_paired_ratio_and_the_absolute_figures() -> None:
    line = against_bare("Tradeflow", [500.0, 700.0, 600.0], [1000.0, 1000.0, 1200.0])
    assert line == (
        "Tradeflow: 0.50 (0.50-0.70) of bare SpiffWorkflow; 600.0 completions/s,"
        " bare 1,000.0 (medians of 3 rounds)"
    )


def test_a_table_prints_its_header_and_rows_in_columns() -> None:
    out = io.StringIO()
    table = Table(
        Column("store", 6, left=True),
        Column("HTTP ms\np50", 7, ".1f"),
        Column("count", 6, ",d"),
        out=out,
    )
    table.print_header()
    table.print_row("sqlite", 1.234, 12345)
    table.print_row("pg", None, 7, note="MISSED")
    assert out.getvalue().splitlines() == [
        "         HTTP ms",
        "  store      p50  count",
        "  sqlite     1.2 12,345",
        "  pg           -      7  MISSED",
    ]
    with pytest.raises(ValueError):
        table.row("too few")


def test_quick_sets_small_defaults_that_flags_still_override() -> None:
    def parser() -> argparse.ArgumentParser:
        found = argparse.ArgumentParser()
        found.add_argument("--rounds", type=int, default=5)
        found.add_argument("--completions", type=int, default=200)
        return found

    quick = {"rounds": 2, "completions": 20}
    assert vars(parse(parser(), [], quick)) == {"rounds": 5, "completions": 200, "quick": False}
    assert vars(parse(parser(), ["--quick"], quick)) == {
        "rounds": 2,
        "completions": 20,
        "quick": True,
    }
    assert parse(parser(), ["--quick", "--rounds", "3"], quick).rounds == 3
