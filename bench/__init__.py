"""Tradeflow's benchmarks: each module a script, run from the repository's root as
``python -m bench.NAME`` (``make bench`` runs the usual set, ``make soak`` the soak).

They are measurements, not tests: nothing here runs under pytest.
"""
