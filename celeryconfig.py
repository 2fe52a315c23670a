"""Celery settings for every Questboard process. JSON only; a job's message is just its id.

The job row in the database is the source of truth; the broker only says "run job <id>".
"""

from datetime import timedelta

from celery.schedules import crontab
from kombu import Queue

from shared import defaults, redisurl
from shared.jobtypes import BROKER_QUEUES
from shared.settings import get_settings

_settings = get_settings()

# A sentinel:// REDIS_URL becomes kombu's sentinel transport and RedBeat's sentinel options (shared.redisurl).
broker_url, _broker_extra = redisurl.kombu_broker(_settings.redis_url)
redbeat_redis_url, _redbeat_extra = redisurl.redbeat(_settings.redis_url)  # beside the queues
redbeat_redis_options = {"health_check_interval": 30, **_redbeat_extra}
broker_connection_retry_on_startup = True

# Security: never unpickle anything from the broker.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
event_serializer = "json"

# Results live in the jobs table, not in a result backend.
task_ignore_result = True
result_expires = None  # no result backend: keeps beat from scheduling celery.backend_cleanup
result_backend = None

# A job is acknowledged only after it ran, one at a time per process, and redelivered if the process
# running it dies.
task_acks_late = True
task_reject_on_worker_lost = True
# A task that raises (a failed job: FAILURE in Flower) or ends with Retry/Ignore (RETRY/REVOKED) is still
# acknowledged: its outcome is already committed to the job row (workers.outcomes), so it is never
# redelivered. Only a lost worker process requeues (task_reject_on_worker_lost). (Celery's default; the
# newer name of task_acks_on_failure_or_timeout's failure half.)
task_acks_on_failure = True
worker_prefetch_multiplier = 1

# Task events (received/started/succeeded: three PUBLISHes per task in the worker's consumer loop) are off
# unless someone watches: Flower, which `questboard up` runs, switches them on in every worker it sees
# (its `enable_events` option, on by default) and keeps them on while it runs. Off by default costs
# nothing when Flower runs and saves ~14 % of a worker's CPU when it does not (BENCHMARKS.md, P1).
worker_send_task_events = False
# No task-sent event from the web: one PUBLISH less per submit (BENCHMARKS.md, P2); Flower still sees
# every task from the worker's received/started/succeeded events.
task_send_sent_event = False

# The four public queues and their ".process" twins, which carry the jobs of "process" types (only prefork
# workers consume them; shared.jobtypes.broker_queue).
task_queues = [Queue(name, routing_key=name) for name in BROKER_QUEUES]
task_default_queue = "default"
# A submit during a broker outage gives up quickly: the job is committed and flagged, and the workers'
# maintenance loop sends it once Redis answers again (see shared.jobstate.Machine.send).
task_publish_retry_policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

worker_hijack_root_logger = False
worker_redirect_stdouts = False
broker_transport_options = {
    # Seconds before an unacknowledged message is given to another worker. Delayed jobs never sit in the
    # broker (they wait in the database), and a redelivered message whose job still runs is skipped by the
    # atomic claim; jobs of dead workers are recovered by the maintenance loop within seconds, not by this.
    "visibility_timeout": _settings.visibility_timeout_s,
    # A frozen or unreachable Redis fails a command instead of hanging it (a submit never waits forever).
    "socket_timeout": defaults.REDIS_SOCKET_TIMEOUT_S,
    "socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT_S,
    **_broker_extra,
}

# Recurring tasks. Beat runs them through `questboard beat` (RedBeat: the schedule and a leader lock live in
# Redis, so a second beat only stands by). Each entry sends `questboard.recurring` with a job type, which
# submits a job of that type owned by the system user: every run is a row in the job list.
# Times are UTC (Celery's default timezone). ``catch_up`` (workers.catchup) says what happens to runs missed
# while beat was down: "once" (one run at start-up, however many were missed) or "skip" (none; the next run
# is at the next regular time). Cleanups catch up once: what they remove only grows while they wait.
beat_schedule = {
    "cleanup-magic-links": {
        "task": "questboard.recurring",
        "schedule": crontab(minute=5),  # hourly
        "args": ["cleanup.magic_links"],
        "options": {"queue": "high", "catch_up": "once"},
    },
    "cleanup-events": {
        "task": "questboard.recurring",
        "schedule": crontab(minute=15, hour=3),  # daily
        "args": ["cleanup.events"],
        "options": {"queue": "high", "catch_up": "once"},
    },
    "cleanup-stale-jobs": {
        "task": "questboard.recurring",
        "schedule": timedelta(minutes=10),
        "args": ["cleanup.stale_jobs"],
        "options": {"queue": "high", "catch_up": "once"},
    },
    "cleanup-retention": {
        "task": "questboard.recurring",
        "schedule": crontab(minute=30, hour=3),  # daily
        "args": ["cleanup.retention"],
        "options": {"queue": "high", "catch_up": "once"},
    },
}

# Beat wakes at least this often (seconds): it notices entries added or paused in Redis this fast.
beat_max_loop_interval = 30
# The leader lock expires this long (seconds) after a beat dies; a standby beat then takes over.
redbeat_lock_timeout = 90
