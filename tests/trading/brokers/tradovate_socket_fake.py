"""A loopback WebSocket server speaking Tradovate's user-sync protocol (the open frame,
`authorize`, `user/syncrequest` answered with a snapshot, heartbeats, "props" events pushed
by the test, a close frame on demand), for the user sync's tests."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


class FakeTradovateSocket:
    def __init__(self, snapshot: dict[str, Any], heartbeat_seconds: float = 0.05) -> None:
        self.snapshot = snapshot
        self.heartbeat_seconds = heartbeat_seconds
        self.received: list[str] = []  # every frame a client sent, in order
        self.sessions = 0
        self.refuse_auth = False
        self.heartbeats = True  # the server's "h" frames
        self._outbox: queue.Queue[str] = queue.Queue()
        self._close = threading.Event()
        self.server = serve(self._handle, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/v1/websocket"

    def push(self, *events: dict[str, Any]) -> None:
        """Send `events` to the connected client, in one `a` frame."""
        self._outbox.put("a" + json.dumps(list(events)))

    def close_session(self) -> None:
        self._close.set()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.thread.join(5)

    def heartbeats_received(self) -> int:
        return sum(1 for frame in self.received if frame == "[]")

    def _handle(self, socket: ServerConnection) -> None:
        self.sessions += 1
        try:
            socket.send("o")
            self.received.append(str(socket.recv(timeout=5)))
            if self.refuse_auth:
                socket.send('a[{"s":401,"i":0,"d":"Access is denied"}]')
                socket.recv(timeout=5)  # until the client hangs up
                return
            socket.send('a[{"s":200,"i":0}]')
            self.received.append(str(socket.recv(timeout=5)))
            socket.send("a" + json.dumps([{"s": 200, "i": 1, "d": self.snapshot}]))
            beat = time.monotonic()
            while True:
                if self._close.is_set():
                    self._close.clear()
                    socket.send('c[3000,"Go away!"]')
                    return
                with contextlib.suppress(TimeoutError):
                    self.received.append(str(socket.recv(timeout=0.01)))
                while not self._outbox.empty():
                    socket.send(self._outbox.get_nowait())
                if self.heartbeats and time.monotonic() - beat >= self.heartbeat_seconds:
                    socket.send("h")
                    beat = time.monotonic()
        except (ConnectionClosed, TimeoutError):
            return
