"""The worker: claims jobs under a lease, runs their handlers, keeps the leases alive from
its own heartbeat thread, and on shutdown lets short jobs finish and releases the rest.

One dispatcher thread does the routine database work: in each transaction it commits the
jobs that finished since the last one and claims as many new ones as there are free slots
(group commit: a busy worker spends about one transaction per batch, not two per job).
Short jobs run on a fixed set of threads (`worker_concurrency`); long-lived jobs (runners)
each get a thread of their own, up to `worker_runner_slots`, so runners that never end
cannot take the capacity short jobs need. All threads are daemons: a handler that ignores
`should_stop` cannot keep a stopping process alive, and its writes are fenced anyway."""

from __future__ import annotations

import os
import queue
import random
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from botwarden.clock import Clock, utcnow
from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.domain.job_machine import LONG_LIVED, JobReason
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.logging import get_logger
from botwarden.store import jobs as job_store
from botwarden.store.db import make_engine, write_transaction
from botwarden.workers.context import JobContext, LeaseLost
from botwarden.workers.presence import beat_worker, mark_worker, register_worker
from botwarden.workers.recovery import LostAttempt, plan_after_loss, run_halt_hooks
from botwarden.workers.registry import HandlerRegistry, handlers

log = get_logger("botwarden.workers")


# A fleet's runners get their bars at the same moment, and a runner waiting for a pooled
# connection is a runner late with its bar: the pool holds one per runner slot, up to this
# many (and as many again in overflow). 500 paper runners on 2 worker processes kept their
# bars on time on PostgreSQL with it (bench/runner_capacity_bench.py); with 8 + 20 they did
# not (bar lag p99 3 s). The server must allow workers x (threads + 4 + 2 x 32) connections.
RUNNER_POOL_CAP = 32


def worker_engine(settings: Settings, concurrency: int, runner_slots: int = 0) -> Engine:
    """An engine sized for a worker's threads: its short-job threads and runner slots
    (RUNNER_POOL_CAP). No ping before each checkout: it would add a round trip to every
    transaction, and a dropped connection fails one write, which the loops survive, then
    the pool replaces it."""
    if settings.is_sqlite:
        return make_engine(settings.database_url, background_checkpoint=True)
    runners = min(runner_slots, RUNNER_POOL_CAP)
    return make_engine(settings.database_url, pool_size=concurrency + 4 + runners,
                       max_overflow=runners + 8, pool_pre_ping=False)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        registry: HandlerRegistry | None = None,
        types: Iterable[JobType] | None = None,
        concurrency: int | None = None,
        runner_slots: int | None = None,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or handlers
        wanted = frozenset(types) if types is not None else self.registry.types
        unknown = wanted - self.registry.types
        if unknown:
            raise ValueError(f"no handler registered for {', '.join(sorted(unknown))}")
        self.short_types = wanted - LONG_LIVED
        self.long_types = wanted & LONG_LIVED
        self.concurrency = concurrency or settings.worker_concurrency
        self.runner_slots = (runner_slots if runner_slots is not None
                             else settings.worker_runner_slots)
        self.clock = clock
        self._rng = rng or random.Random()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._owns_engine = engine is None
        self.engine = engine or worker_engine(settings, self.concurrency,
                                              self.runner_slots if self.long_types else 0)
        self._lock = threading.Lock()
        self._held: dict[str, JobContext] = {}  # claimed and not yet written off
        self._finished: list[job_store.Completion] = []  # waiting for the dispatcher
        self._claiming = threading.Event()
        self._wake = threading.Event()
        self._halt = threading.Event()  # ends the dispatcher and heartbeat threads
        self._queue: queue.SimpleQueue[JobContext | None] = queue.SimpleQueue()
        self._loops: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        with write_transaction(self.engine) as conn:
            register_worker(conn, worker_id=self.id, hostname=socket.gethostname(),
                            pid=os.getpid(), job_types=self.short_types | self.long_types,
                            now=self.clock())
        self._claiming.set()
        for n in range(self.concurrency):
            self._spawn(self._serve_queue, f"job-{n}")
        self._loops = [self._spawn(self._heartbeat_loop, "heartbeat"),
                       self._spawn(self._dispatch_loop, "dispatcher")]
        log.info("worker_started", worker_id=self.id,
                 types=sorted(self.short_types | self.long_types))

    def stop(self, grace: float | None = None) -> int:
        """Graceful stop: runners are asked to stop and are released for another worker;
        short jobs get `grace` seconds to finish and are released after that. Returns the
        number of handlers still busy (they no longer own anything)."""
        grace = self.settings.worker_shutdown_grace_seconds if grace is None else grace
        self._claiming.clear()
        self._wake.set()
        with write_transaction(self.engine) as conn:
            mark_worker(conn, self.id, "STOPPING", self.clock())
        for ctx in self._contexts():
            if ctx.job_type in LONG_LIVED:
                ctx.request_shutdown()
        deadline = time.monotonic() + grace
        while self._contexts() and time.monotonic() < deadline:
            time.sleep(0.05)
        for ctx in self._contexts():
            if not ctx.finished:
                self._release(ctx)  # and then tell the handler to stop
        self._halt.set()
        self._wake.set()
        for _ in range(self.concurrency):
            self._queue.put(None)
        for thread in self._loops:  # the dispatcher writes what finished meanwhile
            thread.join(timeout=10)
        with write_transaction(self.engine) as conn:
            mark_worker(conn, self.id, "STOPPED", self.clock())
        busy = sum(not c.finished for c in self._contexts())
        log.info("worker_stopped", worker_id=self.id, busy_handlers=busy)
        if self._owns_engine:
            self.engine.dispose()
        return busy

    def run_available(self) -> int:
        """Claim and run, in this thread, every job runnable now; returns how many ran.
        For tests and tools: no heartbeat thread, no worker row."""
        ran = 0
        while True:
            with write_transaction(self.engine) as conn:
                claimed = self._claim(conn, self.short_types | self.long_types,
                                      self.concurrency)
            if not claimed:
                return ran
            for ctx in claimed:
                self._execute(ctx)
            self._flush(self._take_finished())
            ran += len(claimed)

    # --- the dispatcher --------------------------------------------------------------------

    def _contexts(self) -> list[JobContext]:
        with self._lock:
            return list(self._held.values())

    def _free_slots(self) -> tuple[int, int]:
        if not self._claiming.is_set():
            return 0, 0
        with self._lock:
            running = [c for c in self._held.values() if not c.finished]
        long_busy = sum(c.job_type in LONG_LIVED for c in running)
        short_free = self.concurrency - (len(running) - long_busy) if self.short_types else 0
        long_free = self.runner_slots - long_busy if self.long_types else 0
        return short_free, long_free

    def _claim(self, conn: Connection, types: frozenset[JobType],
               limit: int) -> list[JobContext]:
        if not limit or not types:
            return []
        claimed = job_store.claim_jobs(conn, owner=self.id, types=types, limit=limit,
                                       lease_seconds=self.settings.job_lease_seconds,
                                       now=self.clock())
        contexts = [JobContext(job, self.settings, self.clock, self.id, self.engine)
                    for job in claimed]
        with self._lock:
            self._held.update((c.job_id, c) for c in contexts)
        return contexts

    def _take_finished(self) -> list[job_store.Completion]:
        with self._lock:
            done, self._finished = self._finished, []
        return done

    def _flush(self, done: list[job_store.Completion]) -> None:
        if not done:
            return
        with write_transaction(self.engine) as conn:
            accepted = job_store.complete_jobs(conn, done, actor=self.id, now=self.clock())
        self._settle(done, accepted)

    def _settle(self, done: list[job_store.Completion], accepted: set[str]) -> None:
        for completion in done:
            ctx = self._forget(completion.job.id)
            if completion.job.id not in accepted and ctx is not None:
                ctx.lose_lease()
                log.info("job_fenced", worker_id=self.id, job_id=ctx.job_id,
                         status=JobStatus.COMPLETED.value)

    def _forget(self, job_id: str) -> JobContext | None:
        with self._lock:
            ctx = self._held.pop(job_id, None)
        self._wake.set()
        return ctx

    def _dispatch_loop(self) -> None:
        poll = self.settings.worker_poll_seconds
        next_long_claim = 0.0
        while True:
            self._wake.clear()
            done = self._take_finished()
            if self._halt.is_set() and not done:
                return
            short_free, long_free = self._free_slots()
            if long_free and time.monotonic() < next_long_claim:
                long_free = 0  # runners start rarely: look for them once per poll interval
            elif long_free:
                next_long_claim = time.monotonic() + poll
            if not done and not short_free and not long_free:
                self._wake.wait(poll)
                continue
            try:
                with write_transaction(self.engine) as conn:
                    accepted = job_store.complete_jobs(conn, done, actor=self.id,
                                                       now=self.clock())
                    short = self._claim(conn, self.short_types, short_free)
                    long = self._claim(conn, self.long_types, long_free)
            except SQLAlchemyError as exc:
                log.warning("dispatch_failed", worker_id=self.id, error=repr(exc))
                with self._lock:  # the outcomes are written on the next round
                    self._finished[:0] = done
                self._wake.wait(poll)
                continue
            self._settle(done, accepted)
            for ctx in short:
                self._queue.put(ctx)
            for ctx in long:
                self._spawn(self._execute, f"runner-{ctx.job_id}", ctx)
            if len(short) + len(long) < short_free + long_free and not done:
                self._wake.wait(poll)  # the queue looked empty

    # --- running ---------------------------------------------------------------------------

    def _spawn(self, target: Any, name: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def _serve_queue(self) -> None:
        while (ctx := self._queue.get()) is not None:
            self._execute(ctx)

    def _execute(self, ctx: JobContext) -> None:
        structlog.contextvars.bind_contextvars(job_id=ctx.job_id, trace_id=ctx.job.trace_id)
        try:
            self._run_handler(ctx)
        except Exception as exc:  # noqa: BLE001 - a worker thread must survive anything
            # The outcome could not be written: the lease lapses, and the supervisor
            # treats the attempt as lost.
            log.error("job_outcome_unwritten", error=repr(exc))
            self._forget(ctx.job_id)
        finally:
            ctx.finished = True
            self._wake.set()
            structlog.contextvars.unbind_contextvars("job_id", "trace_id")

    def _run_handler(self, ctx: JobContext) -> None:
        handler = self.registry.get(ctx.job_type)
        try:
            if handler is None:
                raise DomainError(JobReason.NO_HANDLER.value, f"no handler for {ctx.job_type}")
            result = handler(ctx)
            if result is not None and not isinstance(result, dict):
                raise TypeError(f"a handler returns a dict or None, not {type(result)}")
        except LeaseLost:
            log.info("job_lease_lost", worker_id=self.id)
            self._forget(ctx.job_id)
        except DomainError as exc:  # a refusal: retrying would only be refused again
            self._write(ctx, JobStatus.FAILED, reason_code=exc.code, reason=exc.message)
        except Exception as exc:  # noqa: BLE001 - any handler crash is a lost attempt
            log.warning("job_handler_error", error=repr(exc), attempt=ctx.attempt)
            self._after_error(ctx, repr(exc))
        else:
            if ctx.shutting_down and ctx.job_type in LONG_LIVED:
                self._release(ctx)
            elif ctx.lease_lost:
                log.info("job_fenced", worker_id=self.id, status=JobStatus.COMPLETED.value)
                self._forget(ctx.job_id)
            else:  # the dispatcher commits it with its next transaction
                with self._lock:
                    self._finished.append(job_store.Completion(ctx.job, ctx.status,
                                                               result or {}))

    def _write(self, ctx: JobContext, target: JobStatus, **fields: Any) -> bool:
        """A status change of one held job, in its own transaction."""
        accepted = False
        if not ctx.lease_lost:
            with write_transaction(self.engine) as conn:
                accepted = job_store.transition_leased(
                    conn, ctx.job.lease, ctx.status, target, actor=self.id, now=self.clock(),
                    trace_id=ctx.job.trace_id, **fields)
        if not accepted:
            ctx.lose_lease()
            log.info("job_fenced", worker_id=self.id, status=target.value)
        self._forget(ctx.job_id)
        return accepted

    def _after_error(self, ctx: JobContext, why: str) -> None:
        job = ctx.job
        now = self.clock()
        plan = None
        with write_transaction(self.engine) as conn:
            if job_store.holds_lease(conn, job.lease):  # and keeps it locked until commit
                plan = plan_after_loss(
                    conn, LostAttempt(job.id, job.job_type, job.bot_id, job.attempts,
                                      job.max_attempts, job.started_at, job.trace_id),
                    reason_code=JobReason.HANDLER_ERROR, why=why, now=now,
                    settings=self.settings, draw=self._rng.random(), actor=self.id)
                job_store.transition_leased(
                    conn, job.lease, ctx.status, plan.target, actor=self.id, now=now,
                    trace_id=job.trace_id, reason_code=plan.reason_code, reason=plan.reason,
                    run_after=plan.run_after)
        self._forget(ctx.job_id)
        if plan is None:
            ctx.lose_lease()
            log.info("job_fenced", worker_id=self.id, status="after_error")
        elif plan.killed_bot_id:
            run_halt_hooks(self.engine, [plan.killed_bot_id], job.trace_id)

    def _release(self, ctx: JobContext) -> None:
        """Hand an unfinished job back to the queue at once, without spending an attempt."""
        try:
            if self._write(ctx, JobStatus.QUEUED, reason_code=JobReason.WORKER_SHUTDOWN.value,
                           reason=f"released by {self.id} at shutdown", refund_attempt=True):
                log.info("job_released", worker_id=self.id, job_id=ctx.job_id)
        except SQLAlchemyError as exc:
            log.warning("job_release_failed", job_id=ctx.job_id, error=repr(exc))
        ctx.lose_lease()

    # --- heartbeat -------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        while not self._halt.wait(self.settings.worker_heartbeat_seconds):
            try:
                self.beat_once()
            except SQLAlchemyError as exc:
                log.warning("heartbeat_failed", worker_id=self.id, error=repr(exc))

    def beat_once(self) -> None:
        """Renew every held lease with its handler's last beat, and the worker's own row.
        A job missing from the renewal was taken away: its handler is told to stop."""
        contexts = self._contexts()
        now = self.clock()
        with write_transaction(self.engine) as conn:
            still_held = job_store.renew_leases(conn, [c.take_beat() for c in contexts],
                                                now=now,
                                                lease_seconds=self.settings.job_lease_seconds)
            beat_worker(conn, self.id, now)
        for ctx in contexts:
            if ctx.job_id not in still_held and not ctx.lease_lost:
                with self._lock:
                    ours = ctx.job_id in self._held
                if ours:
                    ctx.lose_lease()
                    log.warning("job_lease_lost", worker_id=self.id, job_id=ctx.job_id)
