"""A commit's effects are carried out one by one: one that fails does not cost the others theirs."""

from __future__ import annotations

from typing import Any

from shared.jobstate import Machine
from shared.jobstate.tx import Effects
from shared.publisher import NullPublisher
from tests.unit.test_job_service import RecordingDispatcher


def test_a_failing_send_gate_costs_no_other_job_its_send_or_wake(sqlite_url: str) -> None:
    """The send gate (fair share's read) failing for one job of a commit used to skip every later send,
    wake and after-final hook of that commit: other jobs sat queued with no message. Now the others go
    out, and the job whose gate failed is sent at once (a broker error would flag it for resending)."""
    dispatcher = RecordingDispatcher()

    def gate(machine: Machine, row: Any) -> bool:
        if row["id"] == "a":
            raise RuntimeError("the gate's read failed")
        return machine.send(row)

    machine = Machine(sqlite_url, NullPublisher(), dispatcher, gate=gate)
    woken: list[str] = []
    finals: list[list[str]] = []
    machine.wake = woken.append  # type: ignore[method-assign]
    machine.after_final(finals.append)
    effects = Effects()
    effects.send.extend(
        [{"id": "a", "type": "t", "queue": "default"}, {"id": "b", "type": "t", "queue": "low"}]
    )
    effects.wake.append("key-1")
    effects.final.append("c")
    machine.follow_up(effects)
    assert dispatcher.sent == [("a", "t", "default"), ("b", "t", "low")]
    assert woken == ["key-1"]
    assert finals == [["c"]]
