"""Real server processes for end-to-end tests: `botwarden serve` on a free port, ready when
/api/health answers, stopped cleanly (SIGTERM, then SIGKILL after a grace period)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.log_tail()}")


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def _launch(database_url: str, workdir: Path, env: Mapping[str, str] | None) -> Server:
    port = free_port()
    log = workdir / f"server-{port}.log"
    command = [str(Path(sys.executable).with_name("botwarden")), "serve", "--host", "127.0.0.1",
               "--port", str(port), "--database-url", database_url, "--no-workers",
               "--no-migrate"]
    full_env = {**os.environ, "BOTWARDEN_ENV": "test", "BOTWARDEN_RUN_WORKERS": "false",
                "BOTWARDEN_LOG_LEVEL": "WARNING", "BOTWARDEN_DEMO_FLEET": "false", **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=workdir)
    return Server(f"http://127.0.0.1:{port}", process, log)


@contextmanager
def serve_many(count: int, database_url: str, workdir: Path,
               env: Mapping[str, str] | None = None,
               ready_timeout: float = 90.0) -> Iterator[list[Server]]:
    """`count` `botwarden serve` processes (no workers, no migration) on `database_url`,
    started together and each ready before this yields."""
    servers: list[Server] = []
    try:
        servers = [_launch(database_url, workdir, env) for _ in range(count)]
        for server in servers:
            _wait_ready(server, ready_timeout)
        yield servers
    finally:
        for server in servers:
            _stop(server)


@contextmanager
def serve(database_url: str, workdir: Path, env: Mapping[str, str] | None = None,
          ready_timeout: float = 90.0) -> Iterator[Server]:
    """One `botwarden serve` process (no workers, no migration) on `database_url`."""
    with serve_many(1, database_url, workdir, env, ready_timeout) as (server,):
        yield server
