"""The job state machine: the one owner of a job's status, attempts, events and concurrency slots.

- ``table``: the named moves, the statuses each may start from and where it ends (the one table);
- ``statements``: one prepared statement per move, its sources read from the table;
- ``tx``: one transaction's writes (the event, attempt and slot rows) and its after-commit ``Effects``;
- ``steps``: the moves as steps of a transaction (several may share one commit);
- ``machine``: ``Machine``, one named method per move, and the one place effects are carried out.

No other module writes the ``jobs``, ``job_attempts``, ``job_events`` or ``job_slots`` tables' state.
"""

from shared.jobstate.machine import Machine
from shared.jobstate.table import MOVES, TRANSITIONS, Move, can_transition, sources_of
from shared.jobstate.tx import Effects, Row, Tx, event_row

__all__ = [
    "MOVES",
    "TRANSITIONS",
    "Effects",
    "Machine",
    "Move",
    "Row",
    "Tx",
    "can_transition",
    "event_row",
    "sources_of",
]
