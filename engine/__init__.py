"""Tradeflow's process runtime: definitions, instances, role queues, messages, audit.

It never imports Flask: the API, the CLI, workers and tests all drive it with plain
arguments (who acts, what data, what time) and get domain errors back.
"""
