"""What the autonomy demo must find in the store, in the order the story tells it."""

from __future__ import annotations

from botwarden.demo.autonomy.timeline import Expected

LOSS_BOT = "loss-bot"  # 429 storm, failover, failback; then the daily-loss kill
CRASH_BOT = "crash-bot"  # its worker is SIGKILLed mid-trading and another resumes it
PRIMARY = "replay"  # the loss bot's primary feed (the failover chain's first provider)
BACKUP = "replay-backup"
DATA_FEED = "data_feed"  # the registry's name for the feed's switches
FIRST_RUNNER_WORKER = "runner-worker-1"

EXPECTED: tuple[Expected, ...] = (
    # 1. The runner starts; its provider fails with 429s; it turns DEGRADED and fails over.
    Expected("runner_started", "the loss bot's RUNNER job is claimed by a worker",
             "job_run_events", "QUEUED->RUNNING", LOSS_BOT),
    Expected("provider_rate_limited", "the primary feed answers 429: DEGRADED",
             "integration_events", "RATE_LIMITED", PRIMARY, after="runner_started"),
    Expected("failover", "the feed fails over to the backup",
             "integration_events", "FAILOVER", DATA_FEED, after="provider_rate_limited"),
    Expected("runner_degraded", "the runner job turns DEGRADED",
             "job_run_events", "RUNNING->DEGRADED DATA_FEED_DEGRADED", LOSS_BOT,
             after="failover"),
    # 2. Backoff: the primary is left alone for the probe interval, probed, refused again.
    Expected("backoff_probe_refused", "the primary, probed again later, still refuses",
             "integration_telemetry", "REFUSED:verify", PRIMARY),
    # 3. Recovery: the primary is probed OK, the feed fails back, the job is RUNNING again.
    Expected("primary_recovered", "a probe finds the primary OK again",
             "integration_events", "RECOVERED", PRIMARY, after="failover"),
    Expected("failback", "the feed fails back to the primary",
             "integration_events", "FAILBACK", DATA_FEED, after="primary_recovered"),
    Expected("runner_recovered", "the runner job is RUNNING again",
             "job_run_events", "DEGRADED->RUNNING DATA_FEED_RECOVERED", LOSS_BOT,
             after="failback"),
    # 4. The daily loss is breached: the risk monitor kills the bot, which flattens itself.
    Expected("daily_loss_kill", "the risk monitor HARD-kills the bot: DAILY_LOSS_BREACH",
             "kill_events", "DAILY_LOSS_BREACH by risk_monitor", LOSS_BOT,
             after="runner_recovered"),
    Expected("kill_flatten_filled", "the kill's flatten order (KILL_FLATTEN) is filled",
             "fills", "KILL_FLATTEN FILL", LOSS_BOT, after="daily_loss_kill"),
    Expected("halted_flat", "the runner ends HALTED and flat",
             "bot_jobs", "HALTED_FLAT", LOSS_BOT, after="daily_loss_kill"),
    Expected("loss_bot_books_agree", "our position equals the paper broker's",
             "positions", "POSITION_AGREES", LOSS_BOT),
    # 5. A runner's worker is SIGKILLed mid-trading and the runner comes back, reconciled.
    Expected("crash_runner_started", "the crash bot's RUNNER job is claimed",
             "job_run_events", "QUEUED->RUNNING", CRASH_BOT),
    Expected("lease_expired", "the supervisor requeues the lost runner (lease expired)",
             "job_run_events", "RUNNING->QUEUED LEASE_EXPIRED", CRASH_BOT,
             after="crash_runner_started", also=("DEGRADED->QUEUED LEASE_EXPIRED",)),
    Expected("dead_worker_retired", "the supervisor marks the killed worker STOPPED",
             "workers", "RETIRED_SILENT", FIRST_RUNNER_WORKER),
    Expected("reclaimed", "another worker process claims the runner",
             "job_run_events", "RECLAIMED", CRASH_BOT, after="lease_expired"),
    Expected("reconciled_at_start", "the resumed runner reconciled at start, in agreement",
             "bot_jobs", "RECONCILED_AT_START", CRASH_BOT, after="reclaimed"),
    Expected("orders_once", "no client order id twice, at our side or the broker's",
             "orders", "ORDERS_ONCE", CRASH_BOT),
    Expected("fills_once", "no broker fill applied twice; none missing",
             "fills", "FILLS_ONCE", CRASH_BOT),
    Expected("crash_bot_books_agree", "our position equals the paper broker's",
             "positions", "POSITION_AGREES", CRASH_BOT),
)
