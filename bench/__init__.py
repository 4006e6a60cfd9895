"""Tradeflow's benchmarks: each module a script, run from the repository's root as
``python -m bench.NAME`` (``make bench`` runs the usual set, ``make soak`` the soak);
``--quick`` makes any of them a small run that only shows it still works.

Shared by the scripts: harness.py (timing, alternating rounds, paired ratios to bare
SpiffWorkflow, result tables), bare.py (the completions workload and bare SpiffWorkflow
doing it), served.py (``tradeflow`` of a tree run as an operator would, its server, and
HTTP clients), stores.py (a SQLite file or a PostgreSQL database of the bench's own).

They are measurements, not tests: nothing here runs under pytest (tests/bench tests the
harness's arithmetic only).
"""
