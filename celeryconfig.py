"""Celery settings for every Questboard process. JSON only; a job's message is just its id.

The job row in the database is the source of truth; the broker only says "run job <id>".
"""

from kombu import Queue

from shared.settings import get_settings

_settings = get_settings()

broker_url = _settings.redis_url
broker_connection_retry_on_startup = True

# Security: never unpickle anything from the broker.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
event_serializer = "json"

# Results live in the jobs table, not in a result backend.
task_ignore_result = True
result_backend = None

# A job is acknowledged only after it ran, one at a time per process, and redelivered if the process
# running it dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Events for Flower.
worker_send_task_events = True
task_send_sent_event = True

task_queues = [Queue(name, routing_key=name) for name in ("critical", "high", "default", "low")]
task_default_queue = "default"

worker_hijack_root_logger = False
worker_redirect_stdouts = False
broker_transport_options = {
    # Seconds before an unacknowledged message is given to another worker. Delayed jobs never sit in
    # the broker (they wait in the database), so only running jobs are exposed to this.
    "visibility_timeout": 3600,
}
