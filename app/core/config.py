"""Settings: one object, read from the environment (prefix ``FEEDBACK_``).

Every setting here is listed in the README with its default.
"""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.crypto import parse_keys
from app.core.db import IDLE_IN_TRANSACTION_TIMEOUT_SECONDS, STATEMENT_TIMEOUT_SECONDS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore")

    # Database. Unset: an embedded PostgreSQL under data_dir, started and stopped by the CLI.
    database_url: str | None = None
    data_dir: Path = Path(".closeloop")
    # Connections one process opens at most, both pools together (app/core/db.py).
    db_pool_size: int = Field(default=20, ge=2, le=400)
    # Set on every connection (seconds; 0 = none): the longest a statement may run, and the
    # longest a transaction may sit idle before PostgreSQL ends its session.
    db_statement_timeout_seconds: float = Field(default=STATEMENT_TIMEOUT_SECONDS, ge=0)
    db_idle_in_transaction_timeout_seconds: float = Field(
        default=IDLE_IN_TRANSACTION_TIMEOUT_SECONDS, ge=0
    )
    # `pgbouncer` when connections go through PgBouncer in transaction mode: prepared statements
    # are then not cached per connection (a server connection changes between transactions).
    database_pooler: Literal["none", "pgbouncer"] = "none"
    # Apply pending migrations when `serve` starts on an external database (always on embedded).
    migrate_on_start: bool = False

    # Public address of this service, used in links handed to customers.
    public_url: str = "http://127.0.0.1:8000"

    # Classification thresholds (SPEC §2): the highest score that still counts as each category.
    nps_detractor_max: int = Field(default=6, ge=0, le=10)
    nps_passive_max: int = Field(default=8, ge=0, le=10)
    csat_negative_max: int = Field(default=2, ge=1, le=5)
    csat_neutral_max: int = Field(default=3, ge=1, le=5)
    star_negative_max: int = Field(default=2, ge=1, le=5)
    star_neutral_max: int = Field(default=3, ge=1, le=5)
    ces_negative_max: int = Field(default=3, ge=1, le=7)
    ces_neutral_max: int = Field(default=4, ge=1, le=7)

    # Mask e-mail addresses, phone numbers and card numbers typed into comments before storing.
    redact_comments: bool = True

    # After a source's identity secret is replaced, the old one still verifies this long.
    identity_secret_grace_hours: float = Field(default=24, ge=0)

    # Rate limits, shared by every process (app/core/ratelimit.py); 0 = off. Keys that can only
    # ingest: items per minute per (key, client address). Every other key: requests per minute.
    ingest_rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_per_minute: int = Field(default=6000, ge=0)
    # Group commit of single-item ingest (app/feedback/group.py): concurrent items of one process
    # are written together, at most this many in one transaction, once the first has waited
    # this long (milliseconds), by up to `ingest_group_writers` transactions at once.
    ingest_group_max: int = Field(default=256, ge=1, le=1000)
    ingest_group_wait_ms: float = Field(default=2, ge=0, le=1000)
    ingest_group_writers: int = Field(default=2, ge=1, le=8)
    # CIDRs of the proxies whose X-Forwarded-For tells the client address (none by default).
    trusted_proxies: str = ""

    # A routing backtest stops after this many items or seconds, and says so.
    backtest_max_rows: int = Field(default=200_000, ge=1)
    backtest_max_seconds: float = Field(default=10, gt=0)

    # Cases: how often the SLA monitor looks for breaches, and how long a resolved case stays
    # quiet before it closes by itself.
    sla_check_interval_seconds: float = Field(default=30, gt=0)
    case_autoclose_days: float = Field(default=7, ge=0)

    # Background jobs (SLA monitor and auto-close, outbox retention) in `serve` too, not only
    # in `closeloop worker`; whichever processes run them, each runs in one at a time.
    jobs_in_process: bool = True
    # Delivered webhook messages, and their attempts, are deleted after this many days.
    outbox_retention_days: float = Field(default=30, gt=0)
    # On SIGTERM: how long in-flight requests and deliveries have to finish before the process
    # exits anyway.
    shutdown_grace_seconds: float = Field(default=20, ge=0)

    # The follow-up page (/f/{token}): a link works this long after the case was resolved, and
    # one client address may try links this many times a minute (0 = no limit).
    followup_ttl_days: float = Field(default=30, gt=0)
    followup_attempts_per_minute: int = Field(default=10, ge=0)

    # Privacy: feedback older than this many days loses its comment and customer contact (the
    # figures stay); unset keeps them.
    comment_retention_days: float | None = Field(default=None, gt=0)

    # Webhooks.
    dispatcher_in_process: bool = True
    webhook_timeout_seconds: float = Field(default=15, gt=0)
    # Seconds before each attempt: the first (0: at once), then after each failure.
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    webhook_secret_grace_hours: float = Field(default=24, ge=0)
    webhook_disable_after_hours: float = Field(default=120, gt=0)
    webhook_allow_http: bool = False
    # CIDRs webhooks may reach although private or loopback (tests: 127.0.0.0/8).
    webhook_allowed_networks: str = ""
    # Deliveries in flight at once, per dispatcher: to one endpoint, and in all.
    webhook_endpoint_concurrency: int = Field(default=16, ge=1, le=1000)
    webhook_concurrency: int = Field(default=256, ge=1, le=10_000)

    # Fernet key(s), comma-separated (the first encrypts, all decrypt): webhook and identity
    # secrets are encrypted at rest when set. Set it in production.
    secret_key: str | None = None

    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # One JSON line per request (method, path, status, duration; no personal data).
    access_log: bool = True

    @model_validator(mode="after")
    def _bands_in_order(self) -> Self:
        """Each metric's bands run low to high: a lower band's top above the next one's would
        make that band unreachable and the categories contradict the scores."""
        for low, high in (
            ("nps_detractor_max", "nps_passive_max"),
            ("csat_negative_max", "csat_neutral_max"),
            ("star_negative_max", "star_neutral_max"),
            ("ces_negative_max", "ces_neutral_max"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"FEEDBACK_{low.upper()} ({getattr(self, low)}) is above "
                    f"FEEDBACK_{high.upper()} ({getattr(self, high)}): the bands run low to high"
                )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
        parse_keys(value)
        return value or None

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        delays = [float(part) for part in value.split(",") if part.strip()]
        if not delays or any(d < 0 for d in delays):
            raise ValueError("a comma-separated list of seconds, at least one, none negative")
        return value

    @property
    def retry_delays(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]

    @field_validator("webhook_allowed_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        _parse_networks(value)
        return value

    def database_options(self) -> dict[str, Any]:
        """`Database.connect`'s keyword arguments."""
        return {
            "pool_size": self.db_pool_size,
            "statement_timeout": self.db_statement_timeout_seconds,
            "idle_in_transaction_timeout": self.db_idle_in_transaction_timeout_seconds,
            "statement_cache": self.database_pooler != "pgbouncer",
        }

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return _parse_networks(self.trusted_proxies)


def _parse_networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    parts = [part.strip() for part in value.split(",")]
    return [ipaddress.ip_network(part, strict=False) for part in parts if part]


@lru_cache
def get_settings() -> Settings:
    return Settings()
