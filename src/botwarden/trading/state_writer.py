"""Runner states of one worker process, written together: one transaction every
FLUSH_SECONDS for every runner it hosts, instead of one per runner per bar.

A paced runner hands its state after each bar (`Seat.hand`); the writer's thread updates
every pending row with one executemany and, in the same transaction, reads the kill state
of every bot it hosts (bots.kill_state, accounts.kill_switch_engaged), which the runners
then read from memory (`Seat.kill_state`). On SQLite, where writers take turns, 250
runners at one bar a second cost 4 write transactions a second instead of 250.

What still holds, row by row:
- the fence: a row is written only while runner_states.job_id is the seat's job; a seat
  whose row another job owns is marked lost and its runner raises FenceLost at its next
  bar or watchdog tick (`Seat.check`); the other seats of the batch are not affected;
- at most one bar unsaved: before a runner decides on a bar, the state of its previous
  bar is durable (`Seat.ensure_saved` writes it at once if the writer has not yet), so a
  crash replays at most the bar being decided, as it did when every bar was saved before
  the next (crashpoints BAR_PROCESSED / STATE_SAVED keep their meaning);
- states of one bot never go backwards: a runner's own write waits for a batch holding its
  bot to commit;
- `Seat.save_now` writes at once (a bar that crossed a limit: the monitor reads that mark;
  an unpaced runner; the last state at a clean end).

A failed flush puts its states back (unless newer ones came meanwhile) and tries again at
the next tick; the kill states it did not refresh go stale, and a runner then reads its
bot's kill state itself (`Seat.kill_state` returns None).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from botwarden.domain.kill import KillState
from botwarden.store.db import write_transaction
from botwarden.trading import crashpoints
from botwarden.trading.order_store import FenceLost, accounts, bots, runner_states

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 0.25
# Kill states older than this are not trusted (flushes failing): the runner reads its own.
KILL_FRESH_SECONDS = 2.0
# A runner waiting for its previous state to be written waits this many flush intervals
# for the writer's thread before it writes the state itself.
AWAIT_FLUSH_INTERVALS = 8

_UPDATE = (
    runner_states.update()
    .where(runner_states.c.bot_id == sa.bindparam("b_bot"),
           runner_states.c.job_id == sa.bindparam("b_job"))
    .values(state=sa.bindparam("b_state", type_=runner_states.c.state.type),
            last_bar_time=sa.bindparam("b_bar", type_=runner_states.c.last_bar_time.type),
            last_price=sa.bindparam("b_price", type_=runner_states.c.last_price.type),
            bar_wall_seconds=sa.bindparam("b_wall", type_=runner_states.c.bar_wall_seconds.type),
            updated_at=sa.bindparam("b_at", type_=runner_states.c.updated_at.type)))
# Each hosted bot: who owns its runner state, its kill state and its account's kill switch.
_WATCH = (
    sa.select(bots.c.id, runner_states.c.job_id, bots.c.kill_state,
              accounts.c.kill_switch_engaged)
    .join(accounts, accounts.c.id == bots.c.account_id)
    .outerjoin(runner_states, runner_states.c.bot_id == bots.c.id)
    .where(bots.c.id.in_(sa.bindparam("bot_ids", expanding=True))))


@dataclass(frozen=True, slots=True)
class SavedState:
    """A runner's state after a bar; `at` is when the bar was processed (updated_at, which
    the stale-data detector reads as when the bar came)."""

    bot_id: str
    job_id: str
    state: dict[str, Any]
    last_bar_time: datetime
    last_price: Decimal
    bar_wall_seconds: float
    at: datetime

    def params(self) -> dict[str, Any]:
        return {"b_bot": self.bot_id, "b_job": self.job_id, "b_state": self.state,
                "b_bar": self.last_bar_time, "b_price": self.last_price,
                "b_wall": self.bar_wall_seconds, "b_at": self.at}


def effective_kill(kill_state: str, switch_engaged: bool) -> str:
    """The bot's kill state as a runner acts on it: an engaged account switch is a HARD
    kill of every bot not already killed."""
    if switch_engaged and kill_state == KillState.NONE.value:
        return KillState.HARD_KILLED.value
    return str(kill_state)


def _write_one(conn: Connection, saved: SavedState) -> str:
    """Update one runner state under its fence; returns its bot's kill state."""
    if conn.execute(_UPDATE, saved.params()).rowcount != 1:
        raise FenceLost(f"runner state of bot {saved.bot_id} is no longer ours")
    row = conn.execute(_WATCH, {"bot_ids": [saved.bot_id]}).one()
    return effective_kill(row.kill_state, row.kill_switch_engaged)


class StateWriter:
    """The runner states of one engine in this process (see `seat_for`)."""

    def __init__(self, engine: Engine, interval: float = FLUSH_SECONDS, *,
                 background: bool = True) -> None:
        """`background`: flush on a thread of its own while any runner is seated (else
        the caller calls `flush`)."""
        self.engine = engine
        self.interval = interval
        self.background = background
        self._cond = threading.Condition()
        self._seats: dict[str, str] = {}  # bot_id -> job_id
        self._pending: dict[str, SavedState] = {}
        self._in_flight: set[str] = set()
        self._lost: set[tuple[str, str]] = set()
        self._kills: dict[str, str] = {}
        self._kills_at = -float("inf")
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    # ---- the runners' side (through their Seat) ----

    def seat(self, bot_id: str, job_id: str) -> Seat:
        with self._cond:
            self._seats[bot_id] = job_id
            self._lost.discard((bot_id, job_id))
            if self.background and self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="runner-state-writer")
                self._thread.start()
        return Seat(self, bot_id, job_id)

    def _leave(self, bot_id: str, job_id: str) -> None:
        with self._cond:
            if self._seats.get(bot_id) == job_id:
                del self._seats[bot_id]
                self._kills.pop(bot_id, None)
            pending = self._pending.get(bot_id)
            if pending is not None and pending.job_id == job_id:
                del self._pending[bot_id]
            self._lost.discard((bot_id, job_id))

    def _hand(self, saved: SavedState) -> None:
        with self._cond:
            self._pending[saved.bot_id] = saved

    def _take_own(self, bot_id: str, job_id: str) -> SavedState | None:
        """Take the bot's pending state out of the batch, after any batch holding it has
        committed (so nothing older lands after what the caller writes)."""
        with self._cond:
            while bot_id in self._in_flight:
                self._cond.wait()
            pending = self._pending.get(bot_id)
            if pending is None or pending.job_id != job_id:
                return None
            del self._pending[bot_id]
            return pending

    def _await_flush(self, bot_id: str, job_id: str) -> bool:
        """Wake the writer's thread and wait until it has written the bot's pending state
        (group commit: runners catching up wait on one transaction together). False when
        there is no thread, or it has not managed within a few of its intervals."""
        with self._cond:
            if not self.background or self._thread is None:
                return False
            deadline = time.monotonic() + AWAIT_FLUSH_INTERVALS * self.interval
            while self._holds(bot_id, job_id):
                self._wake.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _holds(self, bot_id: str, job_id: str) -> bool:
        pending = self._pending.get(bot_id)
        return bot_id in self._in_flight or (pending is not None and pending.job_id == job_id)

    def _is_lost(self, bot_id: str, job_id: str) -> bool:
        with self._cond:
            return (bot_id, job_id) in self._lost

    def _kill_state(self, bot_id: str) -> str | None:
        with self._cond:
            if time.monotonic() - self._kills_at > KILL_FRESH_SECONDS:
                return None
            return self._kills.get(bot_id)

    def _save_now(self, saved: SavedState) -> str:
        with write_transaction(self.engine) as conn:
            kill = _write_one(conn, saved)
        crashpoints.reached(crashpoints.STATE_SAVED)
        return kill

    # ---- the writer's thread ----

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with _lock, self._cond:  # the registry's lock first, as in seat_for
                if not self._seats and not self._pending:
                    self._thread = None  # the last runner left: the writer goes too
                    if _writers.get(id(self.engine)) is self:
                        del _writers[id(self.engine)]
                    return
            self.flush()

    def flush(self) -> int:
        """Write every pending state and read every hosted bot's kill state, in one
        transaction; returns how many states were written."""
        with self._cond:
            batch = sorted(self._pending.values(), key=lambda s: s.bot_id)  # lock order
            self._pending = {}
            self._in_flight = {s.bot_id for s in batch}
            seats = dict(self._seats)
        try:
            watched = self._write_batch(batch, sorted(seats))
        except Exception as exc:  # noqa: BLE001 - the thread must survive; retried next tick
            log.warning("runner_states_flush_failed", states=len(batch), error=repr(exc))
            with self._cond:
                for saved in batch:
                    if saved.bot_id not in self._pending \
                            and self._seats.get(saved.bot_id) == saved.job_id:
                        self._pending[saved.bot_id] = saved
                self._in_flight = set()
                self._cond.notify_all()
            return 0
        written = 0
        with self._cond:
            for bot_id, (owner, kill) in watched.items():
                self._kills[bot_id] = kill
                job_id = seats.get(bot_id)
                if job_id is not None and owner != job_id:
                    self._lost.add((bot_id, job_id))
            for saved in batch:
                if watched.get(saved.bot_id, (None, ""))[0] == saved.job_id:
                    written += 1
                else:
                    self._lost.add((saved.bot_id, saved.job_id))
            self._kills_at = time.monotonic()
            self._in_flight = set()
            self._cond.notify_all()
        for _ in range(written):
            crashpoints.reached(crashpoints.STATE_SAVED)
        return written

    def _write_batch(self, batch: list[SavedState], bot_ids: list[str],
                     ) -> dict[str, tuple[str | None, str]]:
        """-> {bot_id: (owner job, kill state)} of the seats and the batch's bots. A row
        whose owner is still the state's job after the update was written: the update
        holds its lock (PostgreSQL) or the write lock (SQLite) until the commit."""
        wanted = sorted(set(bot_ids) | {s.bot_id for s in batch})
        if not wanted:
            return {}
        if batch:
            with write_transaction(self.engine) as conn:
                conn.execute(_UPDATE, [s.params() for s in batch])
                rows = conn.execute(_WATCH, {"bot_ids": wanted}).all()
        else:
            with self.engine.connect() as conn:
                rows = conn.execute(_WATCH, {"bot_ids": wanted}).all()
        return {r.id: (r.job_id, effective_kill(r.kill_state, r.kill_switch_engaged))
                for r in rows}


class Seat:
    """One runner's place at its process's writer."""

    def __init__(self, writer: StateWriter, bot_id: str, job_id: str) -> None:
        self.writer, self.bot_id, self.job_id = writer, bot_id, job_id

    def hand(self, saved: SavedState) -> None:
        """Queue the state for the next flush (a newer one replaces it)."""
        self.writer._hand(saved)

    def save_now(self, saved: SavedState) -> str:
        """Write the state at once (FenceLost when another job owns the bot); returns the
        bot's kill state read in the same transaction."""
        self.writer._take_own(self.bot_id, self.job_id)  # superseded by `saved`
        return self.writer._save_now(saved)

    def ensure_saved(self) -> None:
        """Make the last state handed durable now, unless the writer already did: have
        the writer flush at once, or write it here if the writer cannot."""
        if self.writer._await_flush(self.bot_id, self.job_id):
            return
        pending = self.writer._take_own(self.bot_id, self.job_id)
        if pending is not None:
            self.writer._save_now(pending)

    def check(self) -> None:
        """FenceLost when a flush found another job owning the bot's runner state."""
        if self.writer._is_lost(self.bot_id, self.job_id):
            raise FenceLost(f"runner state of bot {self.bot_id} is no longer ours")

    def kill_state(self) -> str | None:
        """The bot's kill state from the last flush; None when that is not fresh."""
        return self.writer._kill_state(self.bot_id)

    def leave(self, *, save: bool) -> None:
        """The runner ends: with `save`, its last state is written first; else dropped."""
        try:
            if save:
                self.ensure_saved()
        finally:
            self.writer._leave(self.bot_id, self.job_id)


_writers: dict[int, StateWriter] = {}
_lock = threading.Lock()


def seat_for(engine: Engine, bot_id: str, job_id: str) -> Seat:
    """A seat at the process's writer for `engine` (created with its first runner). Take
    it after claiming the bot's fence: a flush that finds another owner marks it lost."""
    with _lock:
        writer = _writers.get(id(engine))
        if writer is None or writer.engine is not engine:
            writer = _writers[id(engine)] = StateWriter(engine)
        return writer.seat(bot_id, job_id)
