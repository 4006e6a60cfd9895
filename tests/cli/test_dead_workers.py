"""A worker that died leaves no gauge behind: its live-summed samples are dropped when
the next worker starts (granian respawns one; prometheus_client keeps a dead process's
values until told)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.server import forget_dead_workers


def test_the_gauges_of_a_dead_worker_are_dropped(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(gone.stdout)
    for pid in (dead, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
    assert forget_dead_workers(str(tmp_path)) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"gauge_livesum_{os.getpid()}.db"]
