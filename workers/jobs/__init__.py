"""The registry of job types: one module each, one line here."""

from __future__ import annotations

from shared.jobtypes import JobType
from workers.jobs import character_generate, probe

REGISTRY: dict[str, JobType] = {
    spec.name: spec
    for spec in (
        character_generate.JOB,
        probe.JOB,
    )
}
