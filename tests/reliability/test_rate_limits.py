"""Per-type rate limits across worker processes: waiting jobs use no attempt and hold back no other type."""

from __future__ import annotations

from datetime import timedelta

from questboard.testing import wait_for


def test_rate_limited_type_never_exceeds_its_window_and_others_are_not_held_back(stack):
    stack.start_worker(concurrency=2, name="rl-a")
    stack.start_worker(concurrency=2, name="rl-b")
    ids = [stack.submit("test.limited", {"seconds": 0.05}) for _ in range(30)]
    wait_for(lambda: any("Rate-limited" in j.message for j in stack.jobs(ids)), 15, what="a rate-limited job")
    waiting = [j for j in stack.jobs(ids) if "Rate-limited" in j.message]
    assert all(j.status == "queued" and j.attempts == 0 for j in waiting)
    unlimited = stack.submit("diagnostics.probe")
    probe = stack.wait_status(unlimited, "succeeded", 10)
    assert sum(j.status == "succeeded" for j in stack.jobs(ids)) < 30  # it did not wait for them

    def all_succeeded():
        jobs = stack.jobs(ids)
        return jobs if all(j.status == "succeeded" for j in jobs) else None

    done = wait_for(all_succeeded, 60, what="all 30 limited jobs")
    assert all(j.attempts == 1 for j in done)
    starts = sorted(j.started_at for j in done)
    for i, first in enumerate(starts):
        in_window = [s for s in starts[i:] if s - first < timedelta(seconds=5)]
        assert len(in_window) <= 10, f"{len(in_window)} starts within 5 s from {first}"
    assert probe.finished_at < starts[-1]
