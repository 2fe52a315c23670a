"""The flagship application's job types (characters, exports, imports, search, webhooks).

The composition root (questboard.app) registers ``JOBS`` beside the platform's own types; nothing in the
platform imports this package.
"""

from __future__ import annotations

from shared.jobtypes import JobType
from workers.flagship import batch_summary, character_generate, content_index, report_export, webhook_process

JOBS: tuple[JobType, ...] = (
    character_generate.JOB,
    report_export.JOB,
    webhook_process.JOB,
    content_index.JOB,
    batch_summary.JOB,
)
