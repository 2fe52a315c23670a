"""What users ask of workflows: create one, look it up, cancel it; and what a running step asks
(``ctx.add_steps``). Steps are jobs of the caller, checked by the same rules as ``JobService.submit``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shared import defaults, hooks, submitrules
from shared.db import get_sessionmaker, write_gate
from shared.errors import Conflict, InvalidRequest, JobCanceled, LimitReached, NotFound, PermanentError
from shared.jobs import (
    COUNT_ACTIVE,
    SUBMIT_GUARD,
    JobService,
    validation_fields,
)
from shared.models import Job, User, Workflow, new_id, utcnow
from shared.serialize import iso, job_to_dict
from shared.states import Status
from shared.workflows.plan import StepSpec, WorkflowSpec, graph_errors, levels
from shared.workflows.settle import FINAL, RUNNING, STEPS, Settler

INSERT_STEP = insert(STEPS)


class Workflows:
    def __init__(self, database_url: str, jobs: JobService) -> None:
        self._url = database_url
        self._sessions = get_sessionmaker(database_url)
        self.jobs = jobs
        self.settler = Settler(database_url, jobs.publisher, jobs.dispatcher)

    # ----- reading -------------------------------------------------------------------------------

    def get(self, user: User, workflow_id: str) -> dict[str, Any]:
        """The workflow object (contract §8); NotFound unless ``user`` owns it or is an admin."""
        with self._sessions() as session:
            return self._to_dict(session, self._visible(session, user, workflow_id))

    @staticmethod
    def _visible(session: Session, user: User, workflow_id: str) -> Workflow:
        workflow = session.get(Workflow, workflow_id)
        if workflow is None or (workflow.user_id != user.id and not user.is_admin):
            raise NotFound("No such workflow.")
        return workflow

    @staticmethod
    def _to_dict(session: Session, workflow: Workflow) -> dict[str, Any]:
        rows = session.execute(
            select(STEPS.c.key, STEPS.c.after, Job.id, Job.type, Job.status)
            .join(Job, Job.id == STEPS.c.job_id)
            .where(STEPS.c.workflow_id == workflow.id)
            .order_by(STEPS.c.position)
        ).all()
        return {
            "id": workflow.id,
            "name": workflow.name,
            "status": workflow.status,
            "created_at": iso(workflow.created_at),
            "finished_at": iso(workflow.finished_at),
            "steps": [
                {"key": r.key, "job_id": r.id, "type": r.type, "status": r.status, "after": list(r.after)}
                for r in rows
            ],
        }

    # ----- creating ------------------------------------------------------------------------------

    def create(self, user: User, spec: WorkflowSpec, *, system: bool = False) -> dict[str, Any]:
        """Every step, committed in one transaction (or nothing, with 422/429); roots are sent at once.

        ``system``: a workflow the server builds for the user (a batch import), whose steps may be of
        internal types; the user's limits hold as for any workflow."""
        now = utcnow()
        workflow_id = new_id()
        jobs, steps, cost = self._rows(user, spec.steps, workflow_id, now, existing=(), system=system)
        ready = sum(1 for j in jobs if j["status"] == Status.QUEUED.value)
        with write_gate(self._url), self._sessions() as session:
            conn = session.connection()
            conn.execute(SUBMIT_GUARD, {"b_user": user.id})  # serialises this user's submits (JobService)
            active = conn.execute(COUNT_ACTIVE, {"b_user": user.id}).scalar_one()
            if active + ready > self.jobs.user_job_limit:
                raise LimitReached(
                    f"You have {active} active jobs and this workflow starts {ready} at once; the limit "
                    f"is {self.jobs.user_job_limit} (steps waiting on others do not count). Wait for some "
                    "to finish or cancel some, then try again.",
                    retry_after_s=defaults.LIMIT_RETRY_AFTER_S,
                )
            waiting = conn.execute(submitrules.COUNT_WAITING, {"b_user": user.id}).scalar_one()
            if waiting + cost > self.jobs.user_queued_limit:
                raise LimitReached(
                    submitrules.queued_limit_message(waiting, cost, self.jobs.user_queued_limit),
                    retry_after_s=defaults.LIMIT_RETRY_AFTER_S,
                )
            session.add(
                Workflow(id=workflow_id, user_id=user.id, name=spec.name, status=RUNNING, created_at=now)
            )
            session.flush()
            self._insert(conn, jobs, steps)
            session.commit()
        created = self.get(user, workflow_id)  # as committed: a fast worker may start a root at once
        self._announce(jobs)
        return created

    def add_steps(self, job_id: str, steps: Sequence[StepSpec | dict[str, Any]]) -> list[dict[str, Any]]:
        """Steps a running step adds to its own workflow; keys it added before (a retried attempt) are
        kept as they are. Returns the workflow's steps with those keys."""
        specs = [s if isinstance(s, StepSpec) else StepSpec.model_validate(s) for s in steps]
        now = utcnow()
        with self._sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.workflow_id is None or job.status != Status.RUNNING.value:
                raise PermanentError(f"job {job_id} is not a running step of a workflow")
            if job.cancel_requested:  # the workflow (or this step) is being canceled: add nothing
                raise JobCanceled("cancel requested")
            user = session.get(User, job.user_id)
            known = dict(
                session.execute(
                    select(STEPS.c.key, STEPS.c.added_by).where(STEPS.c.workflow_id == job.workflow_id)
                ).all()
            )
            workflow_id = job.workflow_id
        assert user is not None  # the job's owner (a user's jobs go with it)
        new = [s for s in specs if known.get(s.key, "") != job_id]
        try:
            jobs, rows, cost = self._rows(user, new, workflow_id, now, existing=known, added_by=job_id)
        except InvalidRequest as exc:  # a body's mistake: no attempt will fix it
            raise PermanentError(f"{exc.message} {exc.fields}") from exc
        if len(known) + len(jobs) > defaults.WORKFLOW_MAX_STEPS:
            raise PermanentError(
                f"a workflow has at most {defaults.WORKFLOW_MAX_STEPS} steps: it has {len(known)} and "
                f"this call adds {len(jobs)}"
            )
        if jobs:
            with write_gate(self._url), self._sessions() as session:
                conn = session.connection()
                conn.execute(SUBMIT_GUARD, {"b_user": user.id})  # serialises this user's submits
                waiting = conn.execute(submitrules.COUNT_WAITING, {"b_user": user.id}).scalar_one()
                if waiting + cost > self.jobs.user_queued_limit:  # not the active limit: see the docs
                    raise PermanentError(
                        submitrules.queued_limit_message(waiting, cost, self.jobs.user_queued_limit)
                    )
                self._insert(conn, jobs, rows)
                session.commit()
            self._announce(jobs)
            self.settler.settle_workflow(workflow_id)  # dependencies on finished steps release at once
        wanted = {s.key for s in specs}
        steps_now = self.get(user, workflow_id)["steps"]
        return [s for s in steps_now if s["key"] in wanted]

    def _rows(
        self,
        user: User,
        steps: Sequence[StepSpec],
        workflow_id: str,
        now: datetime,
        existing: Collection[str],
        added_by: str | None = None,
        system: bool = False,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """Job and step rows for ``steps`` (validated as a submit of ``user`` is), and their waiting cost;
        InvalidRequest naming every wrong field of every step."""
        fields = graph_errors(steps, existing)
        jobs: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        cost = 0
        base = len(existing)
        for i, step in enumerate(steps):
            try:
                spec = submitrules.job_type_for(self.jobs.registry, step.type, user, system)
                model = spec.validate_params(step.params or {})
                queue = submitrules.queue_for(spec, step.queue, user, system)
            except InvalidRequest as exc:
                place = "queue" if "queue" in (exc.fields or {}) else "type"
                fields[f"steps.{i}.{place}"] = (exc.fields or {}).get(place, exc.message)
                continue
            except ValidationError as exc:
                fields.update(validation_fields(exc, f"steps.{i}.params."))
                continue
            cost += submitrules.waiting_cost(spec, model)
            key = spec.concurrency.key(model, user.id) if spec.concurrency else None
            blocked = bool(step.after)
            job_id = new_id()
            jobs.append(
                {
                    "id": job_id,
                    "user_id": user.id,
                    "type": spec.name,
                    "status": (Status.BLOCKED if blocked else Status.QUEUED).value,
                    "message": f"Waiting for {', '.join(step.after)}" if blocked else "Queued",
                    "queue": queue,
                    "max_attempts": spec.retry.max_attempts,
                    "params": model.model_dump(mode="json"),
                    # A step waiting on others holds its concurrency key on the step row (see WorkflowStep).
                    "concurrency_key": None if blocked else key,
                    "concurrency_limit": spec.concurrency.limit if spec.concurrency else None,
                    "workflow_id": workflow_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            rows.append(
                {
                    "job_id": job_id,
                    "workflow_id": workflow_id,
                    "key": step.key,
                    "position": base + i,
                    "after": list(step.after),
                    "on_failure": step.on_failure.value,
                    "released_at": None if blocked else now,
                    "held_concurrency_key": key if blocked else None,
                    "added_by": added_by,
                }
            )
        if fields:
            raise InvalidRequest("Invalid workflow; nothing was created.", fields)
        return jobs, rows, cost

    def _insert(self, conn: Any, jobs: list[dict[str, Any]], steps: list[dict[str, Any]]) -> None:
        """The steps' jobs (the state machine's ``submit``: queued roots, blocked waiting steps) and rows."""
        self.jobs.machine.submit(conn, *jobs)
        conn.execute(INSERT_STEP, steps)

    def _announce(self, jobs: list[dict[str, Any]]) -> None:
        """After commit: the before-enqueue hooks, the roots' messages, every step's first update."""
        with self._sessions() as session:
            rows = session.scalars(select(Job).where(Job.id.in_([j["id"] for j in jobs]))).all()
            for data in map(job_to_dict, rows):
                hooks.run_before_enqueue(data)
                if data["status"] == Status.QUEUED.value:
                    self.jobs.send(data)
                self.jobs.publisher.job_update(data, rows[0].user_id)

    # ----- canceling -----------------------------------------------------------------------------

    def cancel(self, user: User, workflow_id: str) -> dict[str, Any]:
        """Cancel every unfinished step, waiting ones first (so no cancel releases a dependent); 409 once
        the workflow finished."""
        with self._sessions() as session:
            workflow = self._visible(session, user, workflow_id)
            if workflow.status != RUNNING:
                raise Conflict(f"The workflow has already finished ({workflow.status}).")
            steps = self._to_dict(session, workflow)["steps"]
        depth = levels({s["key"]: s["after"] for s in steps})
        open_steps = [s for s in steps if s["status"] not in FINAL]
        # Waiting steps first, the last to run first: no cancel can release a step still to be canceled.
        open_steps.sort(key=lambda s: (s["status"] != Status.BLOCKED.value, -depth[s["key"]]))
        for step in open_steps:
            try:
                self.jobs.cancel(user, step["job_id"])
            except Conflict:
                continue  # it finished meanwhile
        self.settler.settle_workflow(workflow_id)
        return self.get(user, workflow_id)
