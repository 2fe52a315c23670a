"""Every tunable in one place, with its unit in the name."""

REDIS_URL = "redis://127.0.0.1:6379/0"
USER_JOB_LIMIT = 10

# Magic links and sessions.
MAGIC_LINK_TTL_S = 15 * 60
# A browser session (a row of user_sessions) ends this long after sign-in, however active it is ...
SESSION_LIFETIME_S = 14 * 24 * 60 * 60
# ... or after this long without a request.
SESSION_IDLE_TIMEOUT_S = 3 * 24 * 60 * 60
# A session's / an API token's "last seen" is written at most this often (not once per request).
SESSION_TOUCH_INTERVAL_S = 60
TOKEN_TOUCH_INTERVAL_S = 60
# Each web process re-checks the session or token of its open Socket.IO connections this often and
# disconnects those whose access ended (sign-out elsewhere, `questboard users revoke`, a token revoke).
LIVE_RECHECK_INTERVAL_S = 3.0
# An Engine.IO connection (websocket or polling) that has not joined /jobs with a valid session or token
# this long after it opened is closed by the server: anonymous sockets cost nothing, and cannot pile up.
LIVE_AUTH_TIMEOUT_S = 5.0

# The web server (shared.webserver): gunicorn's gevent worker, WEB_CONCURRENCY processes (default: one
# per core, os.cpu_count(); they share Socket.IO through Redis, and a long-polling client's requests reach
# the process that holds its session through web.eio_relay, so no sticky proxy is needed on one host),
# each holding up to WEB_WORKER_CONNECTIONS open connections. A client that has not sent a whole request
# head (request line and headers) WEB_HEADER_TIMEOUT_S after connecting, or after its previous response on
# a kept-alive connection, is disconnected. A stopping process gives its open requests
# WEB_GRACEFUL_TIMEOUT_S to finish.
WEB_WORKER_CONNECTIONS = 10_000
WEB_HEADER_TIMEOUT_S = 5
WEB_GRACEFUL_TIMEOUT_S = 10

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
# A live-update PUBLISH that failed twice (Redis frozen or cut) pauses publishing for this long: the
# updates are notifications (the database has the state), and waiting out a timeout per message would
# hold a worker's committer, and each submit, for seconds.
PUBLISH_PAUSE_AFTER_FAILURE_S = 2.0
DB_WEB_STATEMENT_DEADLINE_S = 5.0
DB_POOL_TIMEOUT_S = 5.0
# A worker's maintenance loop probes the database each pass; no answer within this long: it stops taking
# messages until a probe answers (workers.dbwatch).
DB_PROBE_TIMEOUT_S = 2.0
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

# `questboard up` supervises its roles (questboard.supervisor): a role that exits is started again after a
# backoff that doubles from INITIAL to MAX and falls back to INITIAL once the role has run RESET_AFTER; a
# role that exits GIVE_UP_EXITS times within GIVE_UP_WINDOW is given up on (the others keep running).
SUPERVISOR_BACKOFF_INITIAL_S = 0.5
SUPERVISOR_BACKOFF_MAX_S = 30.0
SUPERVISOR_BACKOFF_RESET_AFTER_S = 30.0
SUPERVISOR_GIVE_UP_EXITS = 5
SUPERVISOR_GIVE_UP_WINDOW_S = 60.0
SUPERVISOR_POLL_INTERVAL_S = 0.2
# Seconds a stopping role may take (a warm worker shutdown finishes its running jobs), then SIGKILL.
SUPERVISOR_STOP_TIMEOUT_S = 60.0
# Seconds the leftovers of a dead role's process group get to vanish after their SIGKILL.
SUPERVISOR_REAP_WAIT_S = 1.0
# The roles' state, written to Redis for /readyz and /admin: refreshed this often and on every change,
# kept for TTL (an `up` that was killed disappears from the console after it).
SUPERVISOR_KEY_PREFIX = "questboard:supervisor:"
SUPERVISOR_PUBLISH_INTERVAL_S = 2.0
SUPERVISOR_STATE_TTL_S = 10.0
SUPERVISOR_STATE_SOCKET_TIMEOUT_S = 1.0
SUPERVISOR_STATE_RETRY_S = 0.25  # after a failed write (Redis restarting)
# Which process holds RedBeat's leader lock (written by beat when it takes the lock): `questboard up`
# releases the lock of a beat that died, so the one it starts again does not wait for it to expire.
BEAT_LOCK_HOLDER_PREFIX = "questboard:beat-lock-holder:"
BEAT_LOCK_HOLDER_TTL_S = 30 * 24 * 60 * 60

# The HTTP edge (contract §9): what one request may carry. A larger body is a 413; a JSON document nested
# deeper, or with a longer number, is a 400, refused before it is parsed.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
JSON_MAX_DEPTH = 64
JSON_MAX_NUMBER_CHARS = 100
# Strict-Transport-Security max-age, sent only when the request or QUESTBOARD_BASE_URL is https.
HSTS_MAX_AGE_S = 365 * 24 * 60 * 60

# The offline LLM provider writes a background one sentence at a time and pauses this long (ms) after each,
# so a character takes about 3 s as with a real model and its progress bar visibly moves.
OFFLINE_PACE_MS = 300

# Isolation and limits (docs/operations.md, "Isolation and limits").
# Jobs a user may have waiting (scheduled, queued, blocked, retrying), batch-import rows included.
USER_QUEUED_LIMIT = 1000
# delay_seconds and run_at reach at most this far ahead (seconds).
MAX_SCHEDULE_AHEAD_S = 366 * 24 * 3600
# A job type's time limit when it does not declare one (seconds per attempt).
JOB_TIME_LIMIT_S = 300
# Celery's soft limit raises in the body at the time limit; the hard limit ends the pool process this
# many seconds later if the body did not stop (a C call ignores the soft one).
TIME_LIMIT_HARD_GRACE_S = 1.5
# The maintenance loop ends a body still running this long past its hard limit (a pool without Celery's
# time limits, or a missed kill).
TIME_LIMIT_ENFORCE_GRACE_S = 1.5

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

# Job states (shared.jobstate). A job's message (and a move's) is cut to this many characters.
MESSAGE_MAX_CHARS = 2000
# A claim that loses the race for its key's last slot (PostgreSQL) is run again this many times, then
# the job waits blocked for a free slot.
SLOT_RACE_RETRIES = 2
# How many times a transaction of the state machine that the database rolled back to settle a deadlock
# (or a serialization failure) is run again before its error reaches the caller (shared.db.rolled_back).
ROLLED_BACK_RETRIES = 3
# The maintenance loop releases at most this many due scheduled/retrying jobs per pass.
RELEASE_BATCH = 200
# ... and sends at most this many jobs whose dispatch failed per pass.
SEND_PENDING_BATCH = 500
# A running job's progress reports are written (and published) at most this often (seconds); held
# reports that could not be written for GIVE_UP_AFTER_S are given up (the job's next move writes its state).
PROGRESS_WRITE_EVERY_S = 0.25
PROGRESS_GIVE_UP_AFTER_S = 60.0
# A report held between writes reads whether a cancel was asked once this long (seconds) has passed since
# the job's claim, write or last read said (shared.progressbuffer): a cancel reaches the body this late.
CANCEL_CHECK_EVERY_S = 0.1
# A cancel the body did not honour at a progress point within this long (seconds) is enforced by ending
# its pool process.
CANCEL_GRACE_S = 1.5
# A thread-pool worker that must end a body which ignores its cancel or time limit exits with this code
# (EX_TEMPFAIL) after recording the job; `questboard up` starts it again at once, not as a crash.
WORKER_RECYCLE_EXIT_CODE = 75
# A running job of a worker without a heartbeat is recovered once it has not changed for this long (s).
ORPHAN_GRACE_S = 3.0
# The reaper (cleanup.stale_jobs) fails a running job silent this long (seconds) by default.
STALE_RUNNING_S = 6 * 3600
# The cleanups delete in batches of this many rows; an export file of no known job is left alone this
# long (seconds): its job may still be committing.
CLEANUP_BATCH_ROWS = 500
ORPHAN_EXPORT_FILE_GRACE_S = 3600
# What a refused 11th job is told to wait before trying again (seconds).
LIMIT_RETRY_AFTER_S = 5

# Workflows (shared.workflows): at most this many steps in one workflow (a batch import of 500 rows needs
# 501), and how often every worker's maintenance loop settles workflows whose after-commit hook was lost.
WORKFLOW_MAX_STEPS = 1000
WORKFLOW_SWEEP_INTERVAL_S = 2.0
# How many running workflows one sweep looks at (successive sweeps walk on through the rest).
WORKFLOW_SWEEP_BATCH = 500
# A batch import runs its rows in this many chains (each row after the one this many rows before it):
# at most this many of its rows count against the owner's active-job limit at once.
IMPORT_PARALLEL_ROWS = 3
# Debounce (shared.debounce): debounce_seconds of a submit, and the longest debounce_key (characters).
DEBOUNCE_MIN_S = 1
DEBOUNCE_MAX_S = 24 * 60 * 60
DEBOUNCE_KEY_MAX_CHARS = 200

# Fair share within a queue (shared.fairshare; QUESTBOARD_FAIR_SHARE=0 turns it off). A queue has at most
# its in-flight bound of jobs sent to the broker and not started; the others wait in the database and are
# sent in turns. The bound is QUESTBOARD_FAIR_SHARE_IN_FLIGHT when set, else FAIR_SHARE_PER_PROCESS jobs per
# job of the queue running now (under a backlog, one per busy pool process: the bound grows with the pools),
# and never below FAIR_SHARE_MIN_IN_FLIGHT jobs (above USER_JOB_LIMIT: a person within the limit is not held
# for fair share while the queue has no other backlog).
FAIR_SHARE_PER_PROCESS = 2
FAIR_SHARE_MIN_IN_FLIGHT = 12
# Held jobs are sent in batches of at least half the bound (fewer statements per job).
FAIR_SHARE_REFILL_DIVISOR = 2
# A process whose refill found nothing held in a queue skips the check at that queue's starts for this
# long (seconds): the per-start read costs nothing while nobody waits.
FAIR_SHARE_QUIET_S = 0.25
# "Recent starts" are those of the last FAIR_SHARE_WINDOW_S seconds, counted up to FAIR_SHARE_RECENT_CAP
# per user (users past the cap take turns by how many jobs they already have sent).
FAIR_SHARE_WINDOW_S = 60.0
FAIR_SHARE_RECENT_CAP = 50
# At most this many waiting users are weighed per refill (the lowest user ids past it wait a refill).
FAIR_SHARE_MAX_USERS = 200

# Group commit (shared.jobstate.committer): a worker process's job threads hand their moves to one
# committer thread, which runs what is waiting in ONE transaction, waiting at most
# GROUP_COMMIT_INTERVAL_S for more while several job threads are busy (or none once
# GROUP_COMMIT_MAX_STEPS wait). QUESTBOARD_GROUP_COMMIT=0 turns it off (every move its own commit).
GROUP_COMMIT_INTERVAL_S = 0.002
GROUP_COMMIT_MAX_STEPS = 64
# A pooled PostgreSQL connection that sat idle this long is pinged before use (a fresh one is not).
DB_PING_IDLE_S = 5.0
