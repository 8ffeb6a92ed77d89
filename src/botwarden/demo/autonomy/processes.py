"""The demo's worker processes: real `botwarden worker` commands, configured the way an
operator would, through BOTWARDEN_* environment variables, with fast loop intervals so the
whole story plays in a couple of minutes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Seconds, as environment values. A lease of 4 s renewed every second: a killed worker's
# runner is found lost within about 5 s. Retries of a lost runner start after about 1 s.
FAST_LOOPS: Mapping[str, str] = {
    "BOTWARDEN_SUPERVISOR_INTERVAL_SECONDS": "1",
    "BOTWARDEN_TIMEOUT_WORKER_INTERVAL_SECONDS": "2",
    "BOTWARDEN_RISK_MONITOR_INTERVAL_SECONDS": "0.5",
    "BOTWARDEN_JOB_LEASE_SECONDS": "4",
    "BOTWARDEN_WORKER_HEARTBEAT_SECONDS": "1",
    "BOTWARDEN_WORKER_POLL_SECONDS": "0.5",
    "BOTWARDEN_WORKER_SHUTDOWN_GRACE_SECONDS": "3",
    "BOTWARDEN_JOB_RETRY_BACKOFF_SECONDS": "[1, 2, 4]",
    "BOTWARDEN_JOB_RETRY_JITTER": "0",
}


def worker_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """This process's environment with the demo's store and the fast loops."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWARDEN_")}
    env.update(FAST_LOOPS)
    env.update(BOTWARDEN_DATABASE_URL=database_url, BOTWARDEN_DATA_DIR=str(data_dir),
               BOTWARDEN_ENV="development", BOTWARDEN_LOG_JSON="true",
               BOTWARDEN_INTEGRATION_CHECKS="false")
    return env


def worker_command() -> list[str]:
    """`botwarden worker`, from the interpreter running this demo (its console script when
    installed beside it, else the worker command's module)."""
    script = shutil.which("botwarden", path=str(Path(sys.executable).parent))
    if script:
        return [script, "worker"]
    return [sys.executable, "-m", "botwarden.workers.cli"]


@dataclass
class WorkerProcess:
    label: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.time)
    _log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def sigkill(self) -> None:
        """What a crash looks like to everyone else: no shutdown, no release, no goodbye."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: the worker releases its jobs, signs off and exits."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if the worker has not exited within `timeout`."""
        if self.alive:
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


def start_worker(label: str, args: list[str], env: Mapping[str, str],
                 log_dir: Path) -> WorkerProcess:
    log_path = log_dir / f"{label}.log"
    log = log_path.open("ab")
    process = subprocess.Popen([*worker_command(), *args], env=dict(env), stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return WorkerProcess(label, process, log_path, _log=log)
