"""Every tunable in one place, with its unit in the name."""

REDIS_URL = "redis://127.0.0.1:6379/0"
USER_JOB_LIMIT = 10

# Magic links and sessions.
MAGIC_LINK_TTL_S = 15 * 60

# Progress events are kept for this long, then removed by the cleanup.
EVENT_RETENTION_S = 24 * 60 * 60

# A worker writes a heartbeat this often, kept for WORKER_HEARTBEAT_TTL_S: a worker whose key expired is
# dead, and its running jobs are recovered by the others. /readyz wants a worker seen within 30 s.
WORKER_HEARTBEAT_INTERVAL_S = 2.0
WORKER_HEARTBEAT_TTL_S = 8.0
WORKER_SEEN_WINDOW_S = 30.0

# The worker's maintenance loop (releases scheduled and retrying jobs when due).
MAINTENANCE_INTERVAL_S = 0.5

# Retry backoff when a job type does not say otherwise.
RETRY_MAX_ATTEMPTS = 3
RETRY_BACKOFF_BASE_S = 1.0
RETRY_BACKOFF_MAX_S = 300.0
RETRY_JITTER_RATIO = 0.25

# Listing pages.
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200

# Redis key prefixes.
WORKER_KEY_PREFIX = "questboard:worker:"
WORKER_LAST_SEEN_KEY = "questboard:worker-last-seen"  # unix seconds of the newest heartbeat
SOCKETIO_CHANNEL = "flask-socketio"

# Operators' job browser: how many explicit ids one bulk action takes (a filter selects any number).
BULK_IDS_MAX = 10_000

# Rollups for the console's 24 h charts (shared.rollups): minute buckets for the last hour, 15-minute
# buckets for the day; the maintenance loop recomputes the buckets of the last few minutes this often.
ROLLUP_FINE_BUCKET_S = 60
ROLLUP_COARSE_BUCKET_S = 15 * 60
ROLLUP_FINE_WINDOW_S = 60 * 60
ROLLUP_WINDOW_S = 24 * 60 * 60
ROLLUP_RECOMPUTE_S = 5 * 60
ROLLUP_INTERVAL_S = 30.0
