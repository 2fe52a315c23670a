"""Typed settings, read from the environment only (12-factor). An empty variable counts as unset."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import defaults

CHECKOUT = Path(__file__).resolve().parent.parent


def default_instance_dir() -> Path:
    """``instance/`` of the checkout Questboard runs from, so every command finds the same one from any
    directory; ``./instance`` when it is installed as a package (no checkout around it)."""
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "shared" / "settings.py").is_file():
        return CHECKOUT / "instance"
    return Path.cwd() / "instance"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", populate_by_name=True)

    instance_dir: Path = Field(
        default_factory=default_instance_dir,
        validation_alias=AliasChoices("QUESTBOARD_INSTANCE_DIR", "instance_dir"),
    )
    redis_url: str = Field(defaults.REDIS_URL, validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL", "database_url"))
    secret_key: str | None = Field(None, validation_alias=AliasChoices("SECRET_KEY", "secret_key"))
    user_job_limit: int = Field(
        defaults.USER_JOB_LIMIT,
        ge=1,
        validation_alias=AliasChoices("QUESTBOARD_USER_JOB_LIMIT", "user_job_limit"),
    )
    # Jobs one user may have waiting (scheduled, queued, blocked, retrying), batch-import rows included.
    user_queued_limit: int = Field(
        defaults.USER_QUEUED_LIMIT,
        ge=1,
        validation_alias=AliasChoices("QUESTBOARD_USER_QUEUED_LIMIT", "user_queued_limit"),
    )
    # Per-installation time limits, ``type:seconds[,type:seconds…]`` (shared.timelimits).
    time_limits: str | None = Field(
        None, validation_alias=AliasChoices("QUESTBOARD_TIME_LIMITS", "time_limits")
    )
    # Worker processes per pool: thread-pool worker processes per queue group in `questboard up`, and the
    # processes of a prefork (process) pool.
    job_concurrency: int = Field(2, ge=1, validation_alias=AliasChoices("JOB_CONCURRENCY", "job_concurrency"))
    # Threads in each thread-pool worker process (docs/operations.md, "Pools").
    job_threads: int = Field(8, ge=1, validation_alias=AliasChoices("JOB_THREADS", "job_threads"))
    flower_basic_auth: str | None = Field(
        None, validation_alias=AliasChoices("FLOWER_BASIC_AUTH", "flower_basic_auth")
    )
    base_url: str = Field(
        "http://127.0.0.1:5000", validation_alias=AliasChoices("QUESTBOARD_BASE_URL", "base_url")
    )
    # Where operators reach Flower; the console links to it.
    flower_url: str = Field(
        "http://127.0.0.1:5555", validation_alias=AliasChoices("QUESTBOARD_FLOWER_URL", "flower_url")
    )
    llm_provider: str = Field(
        "offline", validation_alias=AliasChoices("QUESTBOARD_LLM_PROVIDER", "llm_provider")
    )
    llm_url: str | None = Field(None, validation_alias=AliasChoices("QUESTBOARD_LLM_URL", "llm_url"))
    llm_api_key: str | None = Field(
        None, validation_alias=AliasChoices("QUESTBOARD_LLM_API_KEY", "llm_api_key")
    )
    llm_model: str | None = Field(None, validation_alias=AliasChoices("QUESTBOARD_LLM_MODEL", "llm_model"))
    smtp_url: str | None = Field(None, validation_alias=AliasChoices("SMTP_URL", "smtp_url"))
    webhook_secrets: str | None = Field(
        None, validation_alias=AliasChoices("QUESTBOARD_WEBHOOK_SECRETS", "webhook_secrets")
    )
    debug: bool = Field(False, validation_alias=AliasChoices("QUESTBOARD_DEBUG", "debug"))
    # Extra job-type modules (comma-separated), for an application's own types and test-only ones.
    job_modules: str | None = Field(
        None, validation_alias=AliasChoices("QUESTBOARD_JOB_MODULES", "job_modules")
    )
    # Seconds before Redis hands an unacknowledged message to another worker (see celeryconfig).
    visibility_timeout_s: int = Field(
        300, ge=1, validation_alias=AliasChoices("QUESTBOARD_VISIBILITY_TIMEOUT_S", "visibility_timeout_s")
    )
    # Seconds between the maintenance loop's refreshes of the console's chart rollups (shared.rollups).
    rollup_interval_s: float = Field(
        defaults.ROLLUP_INTERVAL_S,
        ge=1,
        validation_alias=AliasChoices("QUESTBOARD_ROLLUP_INTERVAL_S", "rollup_interval_s"),
    )
    # LLM calls of the network providers, across every worker: at most this many per period ("none": no
    # limit). A character whose call would go over it waits queued, without spending an attempt.
    llm_rate_limit: str | None = Field(
        "20 per minute", validation_alias=AliasChoices("QUESTBOARD_LLM_RATE_LIMIT", "llm_rate_limit")
    )
    # Seconds to wait for the LLM endpoint to connect and between streamed bytes.
    llm_timeout_s: float = Field(
        60.0, gt=0, validation_alias=AliasChoices("QUESTBOARD_LLM_TIMEOUT_S", "llm_timeout_s")
    )
    # The offline provider's pause after each sentence it writes, in milliseconds (about 3 s a character at
    # the default, like a real model; 0 in tests and benchmarks). Cancel is checked between sentences.
    offline_pace_ms: int = Field(
        defaults.OFFLINE_PACE_MS,
        ge=0,
        le=60_000,
        validation_alias=AliasChoices("QUESTBOARD_OFFLINE_PACE_MS", "offline_pace_ms"),
    )
    # Fair share within a queue (shared.fairshare): users take turns; 0/false sends every job at once (FIFO).
    fair_share: bool = Field(True, validation_alias=AliasChoices("QUESTBOARD_FAIR_SHARE", "fair_share"))
    # Jobs per queue sent to the broker and not yet started (0: 2 per running job, at least the minimum).
    fair_share_in_flight: int = Field(
        0, ge=0, validation_alias=AliasChoices("QUESTBOARD_FAIR_SHARE_IN_FLIGHT", "fair_share_in_flight")
    )
    mail_from: str = Field(
        "Questboard <no-reply@questboard.local>",
        validation_alias=AliasChoices("QUESTBOARD_MAIL_FROM", "mail_from"),
    )
    # Finished jobs (and their export files) are deleted after this many days.
    job_retention_days: int = Field(
        30, ge=1, validation_alias=AliasChoices("QUESTBOARD_JOB_RETENTION_DAYS", "job_retention_days")
    )
    # Also trace Python allocations per job (tracemalloc) for the job logs; costs speed.
    trace_memory: bool = Field(
        False, validation_alias=AliasChoices("QUESTBOARD_TRACE_MEMORY", "trace_memory")
    )
    # Reverse proxies in front of the web that set X-Forwarded-For/-Proto/-Host (0: none; the headers are
    # then ignored, so a client cannot choose the address its sign-in limits are counted under).
    trusted_proxies: int = Field(
        0, ge=0, le=5, validation_alias=AliasChoices("QUESTBOARD_TRUSTED_PROXIES", "trusted_proxies")
    )
    # Cookies are marked Secure when the site is served over https.
    secure_cookies: bool | None = Field(
        None, validation_alias=AliasChoices("QUESTBOARD_SECURE_COOKIES", "secure_cookies")
    )

    @field_validator("time_limits")
    @classmethod
    def _check_time_limits(cls, value: str | None) -> str | None:
        from shared.timelimits import parse_time_limits

        parse_time_limits(value)  # TimeLimitsError (a ValueError) names the bad item
        return value

    @field_validator("llm_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "none", "off"):
            return None
        from shared.ratelimits import parse_limit

        try:
            amount = parse_limit(value).amount
        except ValueError:
            amount = 0
        if amount < 1:
            raise ValueError(
                "QUESTBOARD_LLM_RATE_LIMIT must read like '20 per minute' or '3 per 10 seconds' "
                f"(or 'none'), not {value!r}"
            )
        return value.strip()

    @property
    def resolved_database_url(self) -> str:
        """DATABASE_URL, or a SQLite file in the instance folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_dir / 'questboard.sqlite3'}"

    def ensure_instance_dir(self) -> Path:
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        return self.instance_dir

    def resolved_secret_key(self) -> str:
        """SECRET_KEY, or one generated once and kept (mode 0600) in the instance folder."""
        if self.secret_key:
            return self.secret_key
        path = self.ensure_instance_dir() / "secret_key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made earlier, or by a sibling process just now
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip()


def exports_dir(instance_dir: Path) -> Path:
    """Where export files are written under the instance folder (the retention cleanup empties it)."""
    return instance_dir / "exports"


def usable_basic_auth(auth: str | None) -> bool:
    """``user:password[,user:password…]``, every part given: Flower takes ``admin:`` as "no password"."""
    entries = [entry.partition(":") for entry in (auth or "").split(",")]
    return all(user.strip() and password for user, _, password in entries)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
