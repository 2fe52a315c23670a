from shared.jobstate import TRANSITIONS, can_transition, sources_of
from shared.states import ACTIVE, FINISHED, Status


def test_every_status_has_a_rule():
    assert set(TRANSITIONS) == set(Status)


def test_finished_jobs_only_move_when_an_operator_retries_a_failed_one():
    assert TRANSITIONS[Status.SUCCEEDED] == frozenset()
    assert TRANSITIONS[Status.CANCELED] == frozenset()
    assert TRANSITIONS[Status.FAILED] == {Status.QUEUED}


def test_a_job_can_only_start_from_queued():
    assert sources_of(Status.RUNNING) == {Status.QUEUED}


def test_not_started_jobs_can_be_canceled():
    for status in (Status.SCHEDULED, Status.QUEUED, Status.BLOCKED, Status.RETRYING, Status.RUNNING):
        assert can_transition(status, Status.CANCELED)
    assert not can_transition(Status.SUCCEEDED, Status.CANCELED)


def test_active_and_finished_partition_the_statuses():
    assert ACTIVE | FINISHED == set(Status)
    assert not ACTIVE & FINISHED
