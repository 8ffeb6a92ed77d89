"""One settings object, built once at start-up from `BOTWARDEN_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOTWARDEN_", extra="ignore")

    env: str = Field(default="development", description="development, test or production")
    database_url: str = "sqlite:///./var/botwarden.db"
    data_dir: Path = Path("./var/data")
    host: str = "127.0.0.1"
    port: int = 8000

    # Secret used to sign approval tokens. The default is only for development; production
    # start-up refuses to run with it (fail closed).
    secret_key: SecretStr = SecretStr("dev-insecure-secret-change-me")

    token_ttl_hours: float = 12.0
    # argon2id cost of password hashes (argon2-cffi's defaults, RFC 9106's low-memory
    # profile). The test suite lowers them through the environment.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)
    password_hash_parallelism: int = Field(default=4, ge=1)
    step_up_minutes: float = 5.0
    approval_ttl_minutes: float = 5.0

    # API limits (domain.md, "API limits").
    rate_limit_user_per_minute: int = 120
    rate_limit_global_per_minute: int = 1200
    login_max_failures: int = 5
    login_window_minutes: float = 5.0
    totp_max_attempts: int = 5
    totp_window_minutes: float = 5.0

    run_workers: bool = True
    # Check every integration's keys and entitlement at start-up (in the background).
    integration_checks: bool = True
    # `botwarden serve` writes seeded synthetic MES and MNQ bars when the store has none,
    # so a fresh clone trades offline. Never in production.
    demo_data: bool = True
    # `botwarden serve` also creates the demo account (demo@botwarden.local) and its fleet
    # of bots on the embedded SQLite database (botwarden.demo). Never in production.
    demo_fleet: bool = True

    # Jobs, workers and self-healing loops (domain.md, "Jobs"). Durations in seconds.
    worker_concurrency: int = 4  # threads for short jobs in one worker process
    worker_runner_slots: int = 100  # long-lived RUNNER jobs one worker hosts besides them
    worker_heartbeat_seconds: float = 5.0
    worker_poll_seconds: float = 0.5
    worker_shutdown_grace_seconds: float = 20.0
    job_lease_seconds: float = 30.0
    job_retry_backoff_seconds: tuple[float, ...] = (30.0, 120.0, 480.0)
    job_retry_jitter: float = 0.2  # each delay is drawn within +-20% of its value
    job_heartbeat_timeout_seconds: dict[str, float] = {
        "BACKTEST": 1800.0, "SWEEP": 3600.0, "MATRIX": 3600.0, "EVOLVE": 2700.0,
        "RECONCILE": 300.0, "PROMOTION": 600.0, "RUNNER": 30.0,
    }
    timeout_worker_interval_seconds: float = 15.0
    supervisor_interval_seconds: float = 10.0
    # The post-trade risk monitor and kill detectors (domain.md: every bar and every 5 s).
    risk_monitor_interval_seconds: float = 5.0
    breaker_failure_threshold: int = 3
    breaker_window_seconds: float = 1800.0
    breaker_half_open_seconds: float = 900.0
    # Runners: the data provider they stream from ("replay" plays the local bar store; a
    # keyed vendor such as "databento" once configured) and the replay speed (60.0: one
    # 1-minute bar per second; None: as fast as the runner takes them).
    runner_provider: str = "replay"
    runner_replay_speed: float | None = Field(default=60.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = True

    databento_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("BOTWARDEN_DATABENTO_API_KEY", "DATABENTO_API_KEY"),
    )
    polygon_api_key: SecretStr | None = None
    unusual_whales_api_key: SecretStr | None = None
    tradovate_username: str | None = None
    tradovate_password: SecretStr | None = None
    # Tradovate API key (Settings > API Access) and the app it was issued to; `cid` is the
    # key's client id, `sec` its secret. demo: demo.tradovateapi.com, live: live.tradovateapi.com.
    tradovate_cid: str | None = None
    tradovate_sec: SecretStr | None = None
    tradovate_app_id: str = "Botwarden"
    tradovate_app_version: str = "1.0"
    tradovate_device_id: str | None = None
    tradovate_environment: Literal["demo", "live"] = "demo"
    tradovate_account: str | None = None  # account name to trade; default: the first active
    # Fills and order reports from Tradovate's WebSocket user sync (one socket a process),
    # REST when it is down; false: REST only.
    tradovate_user_sync: bool = True
    # Requests this process may send Tradovate an hour (its limit is 5,000 a user: processes
    # sharing a user divide it); reads stop at 80% of it, orders and cancels keep the rest.
    tradovate_requests_per_hour: int = Field(default=5000, ge=1)
    dask_scheduler: str | None = None
    # Processes for research jobs when no Dask scheduler is set: 0 = one per core,
    # 1 = in the job's own process.
    research_workers: int = Field(default=0, ge=0)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
