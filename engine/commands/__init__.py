"""Commands: what people and systems do to instances, each run in a unit of work. Start,
cancel, wake and fail an instance (``instances``); claim, unclaim, delegate and complete
a task (``tasks``); correlate a message (``messages``); and beside them, reading
instances and searching them (``reading``). It imports the runtime, the queues,
modeling, people, audit and storage; nothing below imports it: the facade
(``engine.tradeflow``) and the scheduler drive it.
"""

from engine.commands import instances, messages, reading, tasks
from engine.commands.reading import InstanceQuery

__all__ = ["InstanceQuery", "instances", "messages", "reading", "tasks"]
