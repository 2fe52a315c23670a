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

# A message a worker took from Redis (kombu's unacked hash) whose job is still queued and which no live
# worker noted as reserved is given back to its queue once it is this old: its taker died before noting it.
UNACKED_RESTORE_GRACE_S = 3.0
# At most this many unacked messages are looked at per maintenance pass.
UNACKED_RESTORE_BATCH = 1000
# A queued job unchanged for this long whose message is nowhere in Redis (its taker died in the instant
# between taking and recording it) is sent again; the check reads every queue list, so it runs only while
# the backlog is at most LOST_SWEEP_MAX_BACKLOG messages (and once after a worker was found dead).
LOST_SWEEP_GRACE_S = 3.0
LOST_SWEEP_INTERVAL_S = 5.0
LOST_SWEEP_MAX_BACKLOG = 5000

# A worker's main process looks this often for pool processes that died and were not yet replaced.
POOL_WATCH_INTERVAL_S = 0.2

# Dependency outages. Every Redis client of the web and the workers gives up on a command after
# REDIS_SOCKET_TIMEOUT_S (and on connecting after REDIS_CONNECT_TIMEOUT_S): a frozen Redis never hangs a
# request. PostgreSQL connections give up connecting after DB_CONNECT_TIMEOUT_S; a web request's
# statement that has not answered after DB_WEB_STATEMENT_DEADLINE_S has its connection shut down (a link
# that stops moving bytes gives no error by itself), and a request waits at most DB_POOL_TIMEOUT_S for a
# pooled connection. A submit that meets such an outage answers 503 with Retry-After DEPENDENCY_RETRY_AFTER_S.
REDIS_SOCKET_TIMEOUT_S = 1.5
REDIS_CONNECT_TIMEOUT_S = 1.5
DB_CONNECT_TIMEOUT_S = 3
DB_WEB_STATEMENT_DEADLINE_S = 5.0
DB_POOL_TIMEOUT_S = 5.0
DEPENDENCY_RETRY_AFTER_S = 5

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
