"""The ``tradeflow`` command for tests: run in this process where it ends by itself.

Starting the command as a process costs an interpreter and the engine's imports each time;
most tests call it for setup (migrate, add a user, deploy) several times over. Click's test
runner calls the same ``main`` with the same arguments and environment and captures what a
process would print, a traceback included. ``serve`` and ``worker`` run until stopped, so
they always get a process of their own (a test that expects them to refuse their settings
must not hang the suite if they didn't)."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

TRADEFLOW = str(Path(sys.executable).with_name("tradeflow"))
ROOT = Path(__file__).resolve().parent.parent
_LONG_RUNNING = frozenset({"serve", "worker"})


@dataclass(frozen=True)
class Ran:
    """What the command answered, shaped like ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def tradeflow(*args: str, env: Mapping[str, str], timeout: float = 120) -> Ran:
    """Run ``tradeflow ARGS`` with exactly ``env`` as its environment."""
    if args and args[0] in _LONG_RUNNING:
        done = subprocess.run(
            [TRADEFLOW, *args],
            env=dict(env),
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        return Ran(done.returncode, done.stdout, done.stderr)
    from cli import main

    # the runner overlays its mapping on os.environ; None removes a variable
    overlay: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    overlay.update(env)
    result = CliRunner().invoke(main, list(args), env=overlay, prog_name="tradeflow")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, result.stdout, stderr)
