"""Workflows (contract §8): jobs of one user that run in dependency order and never hang.

- ``plan``: the request's shape and graph rules (duplicate keys, unknown ``after`` keys, cycles: 422).
- ``service.Workflows``: create, get, cancel, and ``add_steps`` for a running step (``ctx.add_steps``).
- ``settle.Settler``: releases and cancels steps (the state machine's ``release_step`` and
  ``cancel_waiting`` moves) and closes the workflow. ``settle(job_ids)`` is the after-final hook the
  composition root registers with the job service's and the worker's machines (every job that ends
  there); ``sweep()`` runs in every worker's maintenance loop, so a lost call never leaves a workflow
  hanging.

A step waiting on others is a job in ``blocked`` whose step row has no ``released_at``; the per-user
active-job limit does not count blocked steps.
"""

from shared.workflows.plan import OnFailure, StepSpec, WorkflowSpec
from shared.workflows.settle import Settler, decide

# ``shared.workflows.service`` (built on ``shared.jobs``) is imported by its users, not here.
__all__ = ["OnFailure", "Settler", "StepSpec", "WorkflowSpec", "decide"]
