"""How the job service hands a committed job to the broker, without knowing the broker."""

from __future__ import annotations

from typing import Protocol


class Dispatcher(Protocol):
    def send(self, job_id: str, job_type: str, queue: str) -> None:
        """Put one message for the job on its queue. Called only after the job row is committed."""


class NoDispatch:
    """A dispatcher for processes that must not send (dispatch is then left to the reconciler)."""

    def send(self, job_id: str, job_type: str, queue: str) -> None:
        return None
