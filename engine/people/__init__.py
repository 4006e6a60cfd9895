"""People: users, their roles and API tokens (``users``), and signing in to the pages:
passwords, sessions, and the throttle on failed attempts (``sign_in``). It imports
``engine.storage``, and ``engine.audit`` for the sign-in stream; the commands ask it who
an actor is and which roles they hold (``Actor``).
"""

from engine.people import sign_in, users
from engine.people.users import ROLE_ID, Actor, Flags, candidate, identity
from engine.storage import CANDIDATE

__all__ = ["CANDIDATE", "ROLE_ID", "Actor", "Flags", "candidate", "identity", "sign_in", "users"]
