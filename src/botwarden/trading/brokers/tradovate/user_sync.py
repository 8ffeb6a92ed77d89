"""Tradovate's user sync: one WebSocket per process keeps a UserMirror of the user's orders,
fills and positions, so the broker reads them without a REST request each (Tradovate allows
5,000 requests an hour a user; a runner polling fills every bar would spend them).

The socket's thread: connect to wss://<environment>.tradovateapi.com/v1/websocket, wait for
the open frame, `authorize` with the REST client's access token, send `user/syncrequest`
for the token's user (the reference's form, {"users": [id]}), load the snapshot it answers,
then apply every "props" event. It sends the heartbeat "[]" every 2.5 s. Whatever ends a
session (a close frame, a "shutdown" event, a refused authorization, a dropped connection,
nothing heard for `stale_after` seconds: the server's own heartbeat is 2.5 s) starts another
after a backoff (1 s, doubling to 30 s; back to 1 s once a session synced), and the new
session's snapshot holds what happened meanwhile.

Fail closed: `read` answers only while the mirror is live (synced, and the server heard from
within `stale_after`); otherwise None, and the broker asks REST instead. Never stale data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import structlog
from websockets.sync.client import connect as ws_connect

from botwarden.trading.brokers.tradovate.client import TradovateClient
from botwarden.trading.brokers.tradovate.socket_protocol import (
    HEARTBEAT,
    HEARTBEAT_SECONDS,
    FrameKind,
    ProtocolError,
    is_ok,
    parse_frame,
    request,
    response_to,
)
from botwarden.trading.brokers.tradovate.user_mirror import UserMirror

log = structlog.get_logger(__name__)
T = TypeVar("T")

AUTHORIZE, SYNC = 0, 1  # request ids of a session's two requests
MAX_FRAME = 16 * 1024 * 1024  # the first snapshot of a busy user is large


class SessionEnded(Exception):
    """Why a session ended; the thread starts another after its backoff."""


def socket_url(client: TradovateClient) -> str:
    return client.base_url.replace("https://", "wss://", 1) + "/websocket"


class UserSync:
    def __init__(self, client: TradovateClient, *, url: str | None = None,
                 connect: Callable[..., Any] = ws_connect,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, stale_after: float = 10.0,
                 backoff: tuple[float, float] = (1.0, 30.0),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.url = url or socket_url(client)
        self._connect = connect
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_after = stale_after
        self.backoff = backoff
        self._monotonic = monotonic
        self._changed = threading.Condition()  # guards everything below
        self._mirror = UserMirror()
        self._synced = False
        self._last_frame = 0.0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.sessions = 0
        self.last_error: str | None = None

    # ---- life ----

    def start(self) -> UserSync:
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tradovate-user-sync",
                                                daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # ---- reads ----

    @property
    def live(self) -> bool:
        with self._changed:
            return self._live()

    def _live(self) -> bool:
        return self._synced and self._monotonic() - self._last_frame <= self.stale_after

    def read(self, reader: Callable[[UserMirror], T]) -> T | None:
        """`reader(mirror)` while the mirror is live, else None (ask REST)."""
        with self._changed:
            return reader(self._mirror) if self._live() else None

    def wait(self, predicate: Callable[[UserMirror], bool], timeout: float) -> bool:
        """Wait until the mirror is live and `predicate(mirror)` holds."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._live() and predicate(self._mirror), timeout)

    def status(self) -> dict[str, Any]:
        with self._changed:
            age = self._monotonic() - self._last_frame if self._last_frame else None
            return {"live": self._live(), "sessions": self.sessions,
                    "events": self._mirror.events_applied, "last_error": self.last_error,
                    "seconds_since_heard": age}

    # ---- the socket's thread ----

    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stopped.is_set():
            synced = False
            try:
                synced = self._session()
            except Exception as error:  # any failure ends the session; the next one resyncs
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("tradovate_user_sync_ended", error=self.last_error)
            finally:
                with self._changed:
                    synced = synced or self._synced
                    self._synced = False
                    self._changed.notify_all()
            delay = self.backoff[0] if synced else min(delay * 2, self.backoff[1])
            self._stopped.wait(delay)

    def _session(self) -> bool:
        """One connection, until it ends; True when it had synced."""
        token = self.client.access_token()
        user_id = self.client.user_id
        if user_id is None:
            raise SessionEnded("the access token names no user")
        # No WebSocket-level pings: Tradovate's protocol has its own heartbeats (above),
        # and a server that ignored pings would have every session dropped after 40 s.
        with self._connect(self.url, open_timeout=10, close_timeout=2, ping_interval=None,
                           max_size=MAX_FRAME) as socket:
            self.sessions += 1
            self._heard()
            opened = synced = False
            early: list[Mapping[str, Any]] = []  # events before the snapshot
            sent = self._monotonic()
            while not self._stopped.is_set():
                try:
                    raw = socket.recv(timeout=self.heartbeat_seconds)
                except TimeoutError:
                    raw = None
                now = self._monotonic()
                if raw is not None:
                    self._heard()
                    frame = parse_frame(raw)
                    if frame.kind is FrameKind.CLOSE:
                        raise SessionEnded(f"closed by Tradovate: {frame.close_code} "
                                           f"{frame.close_reason}")
                    if frame.kind is FrameKind.OPEN and not opened:
                        opened = True
                        socket.send(request("authorize", AUTHORIZE, token))
                    for message in frame.messages:
                        if response_to(message, AUTHORIZE):
                            self._authorized(message)
                            socket.send(request("user/syncrequest", SYNC, {"users": [user_id]}))
                        elif response_to(message, SYNC):
                            self._load(message, early)
                            synced = True
                        elif message.get("e") == "props":
                            if synced:
                                self._apply(message.get("d"))
                            else:
                                early.append(message)
                        elif message.get("e") == "shutdown":
                            raise SessionEnded(f"Tradovate shut the session: {message.get('d')}")
                elif now - self._last_frame > self.stale_after:
                    raise SessionEnded(f"nothing heard for {self.stale_after:.0f} s")
                if now - sent >= self.heartbeat_seconds:
                    socket.send(HEARTBEAT)
                    sent = now
            return synced

    def _heard(self) -> None:
        with self._changed:
            self._last_frame = self._monotonic()

    def _authorized(self, message: Mapping[str, Any]) -> None:
        if not is_ok(message):
            raise SessionEnded(f"authorization refused ({message.get('s')}): "
                               f"{message.get('d')}")

    def _load(self, message: Mapping[str, Any], early: list[Mapping[str, Any]]) -> None:
        snapshot = message.get("d")
        if not is_ok(message) or not isinstance(snapshot, Mapping):
            raise SessionEnded(f"user/syncrequest refused ({message.get('s')}): "
                               f"{message.get('d')}")
        with self._changed:
            self._mirror.load(snapshot)
            for event in early:
                self._mirror.apply(event.get("d") or {})
            self._synced = True
            self._changed.notify_all()
        log.info("tradovate_user_sync_live", session=self.sessions)

    def _apply(self, event: Any) -> None:
        if not isinstance(event, Mapping):
            raise ProtocolError("a props event without its data")
        with self._changed:
            self._mirror.apply(event)
            self._changed.notify_all()
