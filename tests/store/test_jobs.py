"""The job repository on both databases: claims, fencing, the event trail, cancel."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.errors import DomainError, NotFound
from botwarden.domain.job_machine import HELD, TRANSITIONS
from botwarden.domain.jobs import NEEDS_REASON, TERMINAL, JobStatus, JobType
from botwarden.store import jobs as js
from botwarden.store.db import write_transaction
from botwarden.workers.scheduler import BUILTIN
from botwarden.workers.tasks import LoopContext, ScheduledTask
from tests.workers.helpers import FakeClock, make_account

LEASE = 60.0


def new_jobs(engine: Engine, account_id: str, clock: FakeClock, n: int, **kw: object) -> list[str]:
    with write_transaction(engine) as conn:
        return [js.create_job(conn, account_id=account_id, job_type=kw.pop("job_type",
                                                                        JobType.BACKTEST),
                              actor="test", now=clock(), **kw) for _ in range(n)]


def claim(engine: Engine, clock: FakeClock, limit: int = 10, owner: str = "w1",
          types: tuple[JobType, ...] = (JobType.BACKTEST,)) -> list[js.ClaimedJob]:
    with write_transaction(engine) as conn:
        return js.claim_jobs(conn, owner=owner, types=types, limit=limit, lease_seconds=LEASE,
                             now=clock())


def assert_trail_intact(engine: Engine, job_ids: list[str]) -> None:
    """The event rows of each job chain from creation to its current status, by allowed
    steps, and the row's columns agree with its status."""
    with engine.connect() as conn:
        for job_id in job_ids:
            job = js.get_job(conn, job_id)
            assert job is not None
            trail = js.job_events(conn, job_id)
            assert trail[0].from_status is None
            for prev, nxt in zip(trail, trail[1:], strict=False):
                assert nxt.from_status == prev.to_status
                assert JobStatus(nxt.to_status) in TRANSITIONS[JobStatus(prev.to_status)]
            assert trail[-1].to_status == job.status
            status = JobStatus(job.status)
            assert (status in TERMINAL) == (job.completed_at is not None)
            assert status not in NEEDS_REASON or job.status_reason_code
            held = job.lease_token is not None
            assert held == (status in HELD) == (job.lease_expires_at is not None)
            claims = sum(1 for e in trail if e.to_status == "RUNNING" and e.from_status == "QUEUED")
            assert claims == job.attempts <= job.max_attempts


def test_claim_takes_runnable_jobs_by_priority(engine: Engine) -> None:
    clock, account = FakeClock(), make_account(engine)
    low = new_jobs(engine, account, clock, 2)
    high = new_jobs(engine, account, clock, 1, priority=5)
    new_jobs(engine, account, clock, 1, run_after=clock() + timedelta(minutes=1))
    new_jobs(engine, account, clock, 1, job_type=JobType.SWEEP)
    got = claim(engine, clock, limit=2)
    assert {j.id for j in got} == {high[0], low[0]}
    assert len({j.lease.token for j in got}) == 1 and all(j.attempts == 1 for j in got)
    assert [j.id for j in claim(engine, clock)] == [low[1]]  # the delayed one is not due yet
    clock.advance(minutes=1)
    assert len(claim(engine, clock)) == 1
    assert len(claim(engine, clock, types=(JobType.SWEEP,))) == 1
    assert claim(engine, clock) == []


def test_concurrent_claimers_never_share_a_job(engine: Engine) -> None:
    clock, account = FakeClock(), make_account(engine)
    ids = new_jobs(engine, account, clock, 200)
    seen: dict[str, list[str]] = {}

    def drain(owner: str) -> None:
        mine = seen.setdefault(owner, [])
        while batch := claim(engine, clock, limit=3, owner=owner):
            for job in batch:
                mine.append(job.id)
                with write_transaction(engine) as conn:
                    assert js.transition_leased(conn, job.lease, JobStatus.RUNNING,
                                                JobStatus.COMPLETED, actor=owner, now=clock())

    threads = [threading.Thread(target=drain, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(job_id for mine in seen.values() for job_id in mine)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    assert_trail_intact(engine, ids)


def _expire(engine: Engine, settings: Settings, clock: FakeClock) -> dict[str, object]:
    supervisor = next(t for t in BUILTIN if t.name == "supervisor")
    return supervisor.run(LoopContext(engine, settings, clock, "supervisor", None))


def test_a_stale_token_is_refused_everywhere(engine: Engine, settings: Settings) -> None:
    settings = settings.model_copy(update={"job_lease_seconds": LEASE,
                                           "job_retry_backoff_seconds": (0.0,)})
    clock, account = FakeClock(), make_account(engine)
    [job_id] = new_jobs(engine, account, clock, 1)
    [old] = claim(engine, clock, owner="paused")
    clock.advance(seconds=LEASE + 1)
    assert _expire(engine, settings, clock)["requeued"] == 1
    [new] = claim(engine, clock, owner="fresh")
    assert new.lease.token != old.lease.token
    with write_transaction(engine) as conn:
        assert not js.heartbeat(conn, old.lease, now=clock(), lease_seconds=LEASE, progress=0.5)
        for target in (JobStatus.DEGRADED, JobStatus.COMPLETED, JobStatus.QUEUED):
            assert not js.transition_leased(conn, old.lease, JobStatus.RUNNING, target,
                                            actor="paused", now=clock(),
                                            reason_code="LATE", result={"from": "paused"})
        assert js.heartbeat(conn, new.lease, now=clock(), lease_seconds=LEASE, progress=0.5)
        assert js.transition_leased(conn, new.lease, JobStatus.RUNNING, JobStatus.COMPLETED,
                                    actor="fresh", now=clock(), result={"from": "fresh"})
    with engine.connect() as conn:
        row = js.get_job(conn, job_id)
        actors = [e.actor for e in js.job_events(conn, job_id)]
    assert row is not None and row.result == {"from": "fresh"} and row.progress == 1.0
    assert "paused" not in actors[2:]
    assert_trail_intact(engine, [job_id])


def test_cancel(engine: Engine) -> None:
    clock, account = FakeClock(), make_account(engine)
    queued, running, done = new_jobs(engine, account, clock, 3)
    holder = next(j for j in claim(engine, clock, limit=3) if j.id == running)
    with write_transaction(engine) as conn:
        for job_id in (queued, running):
            row = js.cancel_job(conn, job_id, account_id=account, actor="user:1", now=clock())
            assert row.status == "CANCELED" and row.status_reason_code == "CANCELED_BY_USER"
        assert not js.heartbeat(conn, holder.lease, now=clock(), lease_seconds=LEASE)
    with write_transaction(engine) as conn:
        js.cancel_job(conn, done, account_id=account, actor="user:1", now=clock())
    with pytest.raises(DomainError) as raised, write_transaction(engine) as conn:
        js.cancel_job(conn, done, account_id=account, actor="user:1", now=clock())
    assert raised.value.code == "JOB_TERMINAL" and raised.value.status == 409
    stranger = make_account(engine)
    with pytest.raises(NotFound), write_transaction(engine) as conn:
        js.cancel_job(conn, queued, account_id=stranger, actor="x", now=clock())
    assert_trail_intact(engine, [queued, running, done])


def test_the_trail_keeps_its_order_when_a_later_step_read_an_earlier_clock(
    engine: Engine,
) -> None:
    """Each process reads `now` before its statement sees the job: a step committed by
    another process in between may carry a later time than the step that follows it."""
    clock, account = FakeClock(), make_account(engine)
    [job_id] = new_jobs(engine, account, clock, 1)
    lagging = FakeClock(clock() - timedelta(seconds=5))
    [first] = claim(engine, lagging)
    with engine.connect() as conn:
        row = js.get_job(conn, job_id)
    with write_transaction(engine) as conn:
        assert js.transition_observed(conn, row, JobStatus.QUEUED, actor="supervisor",
                                      now=clock(), reason_code="LEASE_EXPIRED",
                                      reason="lease expired")
    [second] = claim(engine, lagging, owner="w2")
    with write_transaction(engine) as conn:
        js.cancel_job(conn, job_id, account_id=account, actor="user:1",
                      now=lagging() - timedelta(seconds=1))
    with engine.connect() as conn:
        trail = js.job_events(conn, job_id)
    assert [(e.to_status, e.actor) for e in trail] == [
        ("QUEUED", "test"), ("RUNNING", "w1"), ("QUEUED", "supervisor"), ("RUNNING", "w2"),
        ("CANCELED", "user:1")]
    times = [e.created_at for e in trail]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[-1] - times[0] == timedelta(microseconds=4)  # each one a tick after the last
    assert_trail_intact(engine, [job_id])


def test_the_database_refuses_an_ending_without_its_stamp(engine: Engine) -> None:
    clock, account = FakeClock(), make_account(engine)
    [job_id] = new_jobs(engine, account, clock, 1)
    for values in ({"status": "COMPLETED"}, {"status": "FAILED", "completed_at": clock()}):
        with pytest.raises(sa.exc.IntegrityError), write_transaction(engine) as conn:
            conn.execute(sa.update(js.jobs).where(js.jobs.c.id == job_id).values(**values))


def test_release_refunds_the_attempt(engine: Engine) -> None:
    clock, account = FakeClock(), make_account(engine)
    [job_id] = new_jobs(engine, account, clock, 1)
    [job] = claim(engine, clock)
    with write_transaction(engine) as conn:
        assert js.transition_leased(conn, job.lease, JobStatus.RUNNING, JobStatus.QUEUED,
                                    actor="w1", now=clock(), reason_code="WORKER_SHUTDOWN",
                                    refund_attempt=True)
    [again] = claim(engine, clock)
    assert again.attempts == 1


class JobsOnTheStore(RuleBasedStateMachine):
    """Random interleavings of claims, beats, fenced writes with current and stale tokens,
    cancels, the supervisor and the timeout worker, on the real database. After every step
    each job's trail is unbroken and its row agrees with its status."""

    engine: Engine
    settings: Settings
    jobs = Bundle("jobs")

    @initialize()
    def setup(self) -> None:
        with write_transaction(self.engine) as conn:  # examples share the database
            conn.execute(sa.delete(js.jobs))
        self.clock = FakeClock()
        self.account = make_account(self.engine)
        self.ids: list[str] = []
        self.leases: dict[str, js.ClaimedJob] = {}
        self.stale: list[js.ClaimedJob] = []

    @rule(target=jobs)
    def create(self) -> str:
        [job_id] = new_jobs(self.engine, self.account, self.clock, 1)
        self.ids.append(job_id)
        return job_id

    @rule(limit=st.integers(1, 3))
    def claim_some(self, limit: int) -> None:
        for job in claim(self.engine, self.clock, limit=limit):
            self.leases[job.id] = job

    def _write(self, job: js.ClaimedJob, current: JobStatus, target: JobStatus) -> bool:
        with write_transaction(self.engine) as conn:
            return js.transition_leased(conn, job.lease, current, target, actor="w",
                                        now=self.clock(), reason_code="TEST", result={})

    @rule(job_id=jobs, to=st.sampled_from([JobStatus.COMPLETED, JobStatus.FAILED,
                                               JobStatus.QUEUED, JobStatus.DEGRADED]))
    def holder_writes(self, job_id: str, to: JobStatus) -> None:
        target = to
        job = self.leases.get(job_id)
        if job is None:
            return
        with self.engine.connect() as conn:
            row = js.get_job(conn, job_id)
        assert row is not None
        current = JobStatus(row.status)
        if target not in TRANSITIONS[current]:
            return
        accepted = self._write(job, current, target)
        assert accepted == (row.lease_token == job.lease.token)
        if accepted and target not in HELD:
            self.stale.append(self.leases.pop(job_id))

    @rule()
    def stale_holder_writes(self) -> None:
        for job in self.stale:
            assert not self._write(job, JobStatus.RUNNING, JobStatus.COMPLETED)
            with write_transaction(self.engine) as conn:
                assert not js.heartbeat(conn, job.lease, now=self.clock(), lease_seconds=LEASE)

    @rule()
    def beat_all(self) -> None:
        with write_transaction(self.engine) as conn:
            held = js.renew_leases(conn, [js.Beat(j.lease, self.clock())
                                          for j in self.leases.values()],
                                   now=self.clock(), lease_seconds=LEASE)
        self._forget_lost(held)

    def _forget_lost(self, held: set[str]) -> None:
        for job_id in list(self.leases):
            if job_id not in held:
                self.stale.append(self.leases.pop(job_id))

    @rule(job_id=jobs)
    def cancel(self, job_id: str) -> None:
        try:
            with write_transaction(self.engine) as conn:
                js.cancel_job(conn, job_id, account_id=self.account, actor="u", now=self.clock())
        except DomainError as exc:
            assert exc.code == "JOB_TERMINAL"

    @rule(seconds=st.sampled_from([5.0, 20.0, LEASE + 1]), loop=st.sampled_from(BUILTIN))
    def time_passes_and_a_loop_runs(self, seconds: float, loop: ScheduledTask) -> None:
        self.clock.advance(seconds=seconds)
        loop.run(LoopContext(self.engine, self.settings, self.clock, loop.name, None))
        with self.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(js.jobs.c.id, js.jobs.c.lease_token)
                                                  .where(js.jobs.c.id.in_(self.ids)))}
        self._forget_lost({i for i, j in self.leases.items()
                           if rows[i].lease_token == j.lease.token})

    @invariant()
    def every_trail_intact(self) -> None:
        if hasattr(self, "ids"):
            assert_trail_intact(self.engine, self.ids)


def test_random_job_lives_keep_their_trail(engine: Engine, settings: Settings) -> None:
    JobsOnTheStore.engine = engine
    JobsOnTheStore.settings = settings.model_copy(update={
        "job_lease_seconds": LEASE, "job_retry_backoff_seconds": (0.0,),
        "job_heartbeat_timeout_seconds": {t.value: 15.0 for t in JobType}})
    run_state_machine_as_test(JobsOnTheStore, settings=hyp_settings(
        max_examples=25, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
