"""Tradeflow's process runtime: definitions, instances, role queues, messages, audit.

It never imports Flask: the API, the CLI, workers and tests all drive it with plain
arguments (who acts, what data, what time) and get domain errors back, through the
facade in ``tradeflow.py``. Its rooms are packages, each listing its surface in
``__all__``: ``commands`` (what people and systems do to instances), ``runtime`` (the
unit of work), ``queues``, ``timers``, ``modeling``, ``audit``, ``reporting``, ``people``
and ``storage``. ``errors.py`` and ``clock.py`` are shared by all of them.
"""
