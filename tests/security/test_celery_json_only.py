"""Workers never unpickle: a pickled message for a real task is refused, the same message as JSON runs.

The pickled message carries a payload that would create a file if it were ever unpickled, so "refused"
means "never deserialized", not just "the job did not run".
"""

from __future__ import annotations

import pickle

import redis
from kombu import Producer

from questboard.app import job_types
from questboard.testing import wait_for
from shared.jobs import JobService
from shared.publisher import NullPublisher
from workers.celery_app import make_celery
from workers.maintenance import BROKER_EPOCH_KEY

PROBE = "diagnostics.probe"


class Trap:
    """Unpickling this creates ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class NoDispatch:
    def send(self, job_id: str, job_type: str, queue: str) -> None:
        return None


def queued_job_without_message(settings, person) -> str:
    jobs = JobService(settings.resolved_database_url, job_types(), NullPublisher(), NoDispatch())
    job, _ = jobs.submit(person.user, PROBE, {})
    return job["id"]


def publish(settings, job_id: str, serializer: str, **kwargs: object) -> None:
    """The message ``send_task`` would send for the job (Celery protocol 2), in the given serializer."""
    app = make_celery(settings)
    message = app.amqp.as_task_v2(job_id, PROBE, args=[job_id], kwargs=kwargs)
    queue = app.amqp.queues["default"]
    with app.connection_for_write() as connection:
        Producer(connection).publish(
            message.body,
            serializer=serializer,
            headers=message.headers,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            **message.properties,
        )


def job_row(settings, person, job_id: str) -> dict:
    jobs = JobService(settings.resolved_database_url, job_types(), NullPublisher(), NoDispatch())
    return jobs.get(person.user, job_id)


def test_celery_is_configured_for_json_only(settings):
    conf = make_celery(settings).conf
    assert list(conf.accept_content) == ["json"] and conf.task_serializer == "json"
    assert conf.result_serializer == "json" and conf.event_serializer == "json"
    assert list(conf.result_accept_content or conf.accept_content) == ["json"]


def test_a_pickled_message_is_refused_and_the_same_message_as_json_runs(
    start_worker, settings, alice, tmp_path
):
    worker = start_worker(queues="default", concurrency=1)
    broker = redis.Redis.from_url(settings.redis_url)
    wait_for(lambda: broker.exists(BROKER_EPOCH_KEY), 10, what="the worker's first maintenance pass")
    job_id = queued_job_without_message(settings, alice)
    marker = tmp_path / "unpickled-by-the-worker"
    live = tmp_path / "the-trap-works"
    pickle.loads(pickle.dumps(Trap(str(live)))).close()  # what unpickling it anywhere would do
    assert live.exists()

    publish(settings, job_id, "pickle", trap=Trap(str(marker)))

    refused = wait_for(
        lambda: "Refusing to deserialize untrusted content of type pickle" in worker.output(),
        20,
        what="the worker to refuse the pickled message",
    )
    assert refused and not marker.exists()
    assert "application/x-python-serialize" in worker.output()
    wait_for(lambda: broker.llen("default") == 0, 5, what="the refused message to leave the queue")
    job = job_row(settings, alice, job_id)
    assert (job["status"], job["attempts"]) == ("queued", 0)  # it never ran

    publish(settings, job_id, "json")

    wait_for(
        lambda: job_row(settings, alice, job_id)["status"] == "succeeded", 30, what="the JSON message to run"
    )
    assert not marker.exists() and worker.alive()
