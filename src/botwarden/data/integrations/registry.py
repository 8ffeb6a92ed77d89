"""The integration registry: every provider and broker, its health, and proof that it is used.

One registry per process. Providers report every call to it (`on_call`); it keeps the
telemetry, runs the status machine, updates the Prometheus metrics, persists status changes
(with their events) at once and the rest on `flush`, and tells in-process listeners (the
kill engine, runners) about each change. It also builds the providers from the settings, so
keys are read in one place and never leave it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from botwarden.clock import Clock, utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.integrations import metrics, persist
from botwarden.data.integrations.status import (
    NOT_VERIFIED,
    IntegrationState,
    StatusPolicy,
    Transition,
    apply_failure,
    apply_success,
)
from botwarden.data.integrations.telemetry import TelemetryBuffer, prune, upsert_buckets
from botwarden.data.providers.base import CallRecord, ProviderKind, VerifyResult
from botwarden.data.providers.errors import RULES, ErrorCode, Health, ProviderError
from botwarden.logging import get_logger

if TYPE_CHECKING:
    from botwarden.data.providers.failover import FailoverProvider

log = get_logger("botwarden.integrations")

DATA_FEED = "data_feed"
FEED_KIND = "feed"


@dataclass(frozen=True, slots=True)
class IntegrationSpec:
    name: str
    kind: ProviderKind
    configured: bool
    key_hint: str  # which setting configures it (a name, never a value)


def default_specs(settings: Settings) -> list[IntegrationSpec]:
    tradovate = bool(settings.tradovate_username and settings.tradovate_password
                     and settings.tradovate_password.get_secret_value())
    return [
        IntegrationSpec("databento", ProviderKind.DATA, _has(settings.databento_api_key),
                        "BOTWARDEN_DATABENTO_API_KEY (or DATABENTO_API_KEY)"),
        IntegrationSpec("polygon", ProviderKind.DATA, _has(settings.polygon_api_key),
                        "BOTWARDEN_POLYGON_API_KEY"),
        IntegrationSpec("replay", ProviderKind.DATA, True, "BOTWARDEN_DATA_DIR (local bars)"),
        IntegrationSpec("unusual_whales", ProviderKind.CONTEXT,
                        _has(settings.unusual_whales_api_key), "BOTWARDEN_UNUSUAL_WHALES_API_KEY"),
        IntegrationSpec("tradovate", ProviderKind.BROKER, tradovate,
                        "BOTWARDEN_TRADOVATE_USERNAME and BOTWARDEN_TRADOVATE_PASSWORD"),
        IntegrationSpec("paper", ProviderKind.BROKER, True, "built in"),
    ]


def _has(secret: Any) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())


Listener = Callable[[Transition], None]
Verifier = Callable[[], VerifyResult]


class IntegrationRegistry:
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        *,
        clock: Clock = utcnow,
        policy: StatusPolicy | None = None,
        store: BarStore | None = None,
        specs: Sequence[IntegrationSpec] | None = None,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.policy = policy or StatusPolicy()
        self.store = store or BarStore.from_settings(settings)
        self.retention = retention
        self.telemetry = TelemetryBuffer()
        self._specs = {s.name: s for s in (specs if specs is not None
                                           else default_specs(settings))}
        self._states: dict[str, IntegrationState] = {}
        self._dirty: set[str] = set()
        self._providers: dict[str, Any] = {}
        self._verifiers: dict[str, Verifier] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._last_prune: datetime | None = None
        self._initialise()

    # ---- start-up ----

    def _initialise(self) -> None:
        stored = persist.load_states(self.engine) if self.engine is not None else {}
        now = self.clock()
        for spec in self._specs.values():
            before = stored.get(spec.name)
            if not spec.configured:
                state = IntegrationState(
                    spec.name, spec.kind.value, False, Health.DOWN,
                    last_success_at=before.last_success_at if before else None,
                    last_error_code=ErrorCode.KEY_MISSING.value,
                    last_error=f"not configured: set {spec.key_hint}", last_error_at=now)
            elif spec.name == "paper":
                state = IntegrationState(spec.name, spec.kind.value, True, Health.OK)
            elif before is not None and before.configured:
                state = replace(before, kind=spec.kind.value)
            else:
                # Keys present but nothing checked yet: not OK until a verify or a call says so.
                state = IntegrationState(
                    spec.name, spec.kind.value, True, Health.DEGRADED,
                    last_success_at=before.last_success_at if before else None,
                    last_error_code=NOT_VERIFIED,
                    last_error="keys present; entitlement not verified yet", last_error_at=now)
            self._states[spec.name] = state
            changed = before is None or (before.status, before.configured,
                                         before.last_error_code) != (
                state.status, state.configured, state.last_error_code)
            if changed and self.engine is not None:
                code = state.last_error_code if state.status is not Health.OK else None
                transition = Transition(spec.name, before.status if before else None,
                                        state.status, code, state.last_error, now)
                persist.save_state(self.engine, state, transition, now)
            metrics.observe_status(spec.name, state.status, state.configured)
        self.verify("replay")  # local and cheap: is there data to replay?

    def start_background_verification(self) -> threading.Thread:
        """Entitlement checks for every configured integration, off the caller's thread so
        start-up never waits on the network. Unconfigured ones were already recorded as
        KEY_MISSING without any network call."""

        def run() -> None:
            for spec in self._specs.values():
                if spec.configured and spec.name != "paper":
                    try:
                        self.verify(spec.name)
                    except Exception as exc:  # a start-up check must never kill the process
                        log.error("integration_verify_failed", integration=spec.name,
                                  error=type(exc).__name__)
            self.flush()

        thread = threading.Thread(target=run, name="integration-verify", daemon=True)
        thread.start()
        return thread

    def start_flusher(self, interval_seconds: float = 5.0) -> threading.Event:
        """Flush telemetry and progress every `interval_seconds`; set the event to stop."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval_seconds):
                try:
                    self.flush()
                except Exception as exc:  # the next round retries; calls stay buffered
                    log.error("integration_flush_failed", error=type(exc).__name__)

        threading.Thread(target=run, name="integration-flush", daemon=True).start()
        return stop

    # ---- what providers report ----

    def on_call(self, record: CallRecord) -> None:
        metrics.observe_call(record)
        self.telemetry.record(record)
        with self._lock:
            state = self._state_for(record.provider)
            if record.ok:
                new, transition = apply_success(state, record.at,
                                                verified=record.operation == "verify")
            else:
                assert record.error is not None
                new, transition = apply_failure(state, record.error, record.at, self.policy,
                                                verified=record.operation == "verify")
            self._states[record.provider] = new
            self._dirty.add(record.provider)
        if transition is not None:
            self._changed(new, transition)

    def _state_for(self, name: str) -> IntegrationState:
        state = self._states.get(name)
        if state is None:
            # A provider built outside the defaults (a second replay feed, a test double).
            state = self._states[name] = IntegrationState(name, ProviderKind.DATA.value, True,
                                                          Health.OK)
        return state

    def _changed(self, state: IntegrationState, transition: Transition) -> None:
        log.info("integration_status", integration=state.name,
                 from_status=transition.from_status, to_status=transition.to_status,
                 code=transition.code)
        metrics.observe_status(state.name, state.status, state.configured)
        if self.engine is not None:
            persist.save_state(self.engine, state, transition, self.clock())
        for listener in list(self._listeners):
            listener(transition)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every status change (and storm) this process observes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ---- verification ----

    def register_verifier(self, name: str, verifier: Verifier) -> None:
        """Let another layer (the broker adapters) plug its live check in."""
        self._verifiers[name] = verifier

    def has(self, name: str) -> bool:
        return name in self._specs

    def verify(self, name: str) -> VerifyResult:
        if name not in self._specs:
            raise ProviderError(name, ErrorCode.NO_DATA, "no such integration")
        if name == "paper":
            return VerifyResult(name, True, None, "built-in simulated broker", self.clock())
        verifier = self._verifiers.get(name)
        if verifier is None and name in ("databento", "polygon", "replay", "unusual_whales"):
            verifier = self.provider(name).verify
        if verifier is None:
            if not self._specs[name].configured:
                error = ProviderError(name, ErrorCode.KEY_MISSING, "no credentials configured")
                self.on_call(CallRecord(name, "verify", False, 0.0, 0, self.clock(), error))
                return VerifyResult(name, False, error.reason.value, error.detail, self.clock())
            return VerifyResult(name, False, "VERIFY_UNAVAILABLE",
                                f"no live check is installed for {name} in this process",
                                self.clock())
        result = verifier()
        with self._lock:
            state = self._state_for(name)
            code = (ErrorCode(result.code)
                    if result.code is not None and result.code in ErrorCode.__members__
                    else None)
            if (not result.ok and code is not None and RULES[code].health is None
                    and state.status is not Health.DOWN):
                # A verify that fails for a reason that says nothing of health (NO_DATA: an
                # empty store) still means the integration cannot be used.
                new = replace(state, status=Health.DOWN, last_error_code=code.value,
                              last_error=result.message, last_error_at=result.checked_at,
                              last_verified_at=result.checked_at)
                transition = Transition(name, state.status, Health.DOWN, code.value,
                                        result.message, result.checked_at)
            else:
                new = replace(state, last_verified_at=result.checked_at)
                transition = None
            self._states[name] = new
            self._dirty.add(name)
        if transition is not None:
            self._changed(new, transition)
        return result

    # ---- reading ----

    def state(self, name: str) -> IntegrationState:
        with self._lock:
            return self._state_for(name)

    def status(self, name: str) -> Health:
        return self.state(name).status

    def states(self) -> dict[str, IntegrationState]:
        with self._lock:
            return dict(self._states)

    def specs(self) -> list[IntegrationSpec]:
        return list(self._specs.values())

    def usable_data_providers(self) -> list[str]:
        """Data providers a runner could stream from right now (status OK)."""
        return [s.name for s in self._specs.values()
                if s.kind is ProviderKind.DATA and self.status(s.name) is Health.OK]

    def kill_trigger(self, chain: Sequence[str]) -> str | None:
        """The kill-engine trigger for a feed served by `chain`: none while any provider of it
        is OK (failover heals); else the most specific reason none can serve."""
        now = self.clock()
        states = [self.state(name) for name in chain]
        if any(s.status is Health.OK for s in states):
            return None
        triggers = [s.kill_trigger(now, self.policy) for s in states]
        for wanted in ("RATE_LIMIT_STORM", "ENTITLEMENT_REVOKED"):
            if wanted in triggers:
                return wanted
        if all(s.status is Health.DOWN for s in states):
            return "DATA_PROVIDER_MISSING"
        return None

    # ---- the data feed ----

    def record_feed_switch(self, chain: Sequence[str], old: str | None, new: str | None,
                           reason: str) -> None:
        """A switch of the data feed (STARTED, FAILOVER, FAILBACK, NO_PROVIDER, RECOVERED), as
        an event and a `data_feed` status: OK on the primary, DEGRADED on a backup, DOWN with
        nothing to serve."""
        now = self.clock()
        status = (Health.DOWN if new is None
                  else Health.OK if new == chain[0] else Health.DEGRADED)
        rank = {name: i for i, name in enumerate(chain)}
        with self._lock:
            before = self._states.get(DATA_FEED)
        if new is None:
            code = "NO_PROVIDER"
        elif old is None and (before is None or before.last_error_code != "NO_PROVIDER"):
            code = "STARTED" if new == chain[0] else "FAILOVER"
        elif old is None:
            code = "RECOVERED"
        elif rank.get(new, 0) > rank.get(old, 0):
            code = "FAILOVER"
        else:
            code = "FAILBACK"
        detail = f"{old or 'none'} -> {new or 'none'}: {reason}"
        with self._lock:
            state = IntegrationState(DATA_FEED, FEED_KIND, True, status,
                                     last_error_code=code, last_error=detail, last_error_at=now)
            self._states[DATA_FEED] = state
        log.info("data_feed_switch", code=code, detail=detail)
        if self.engine is not None:
            persist.save_state(self.engine, state, Transition(
                DATA_FEED, before.status if before else None, status, code, detail, now), now)

    def provider(self, name: str) -> Any:
        """The provider (or context client) behind `name`, built once from the settings."""
        with self._lock:
            if name not in self._providers:
                self._providers[name] = self._build(name)
            return self._providers[name]

    def _build(self, name: str) -> Any:
        if name == "databento":
            from botwarden.data.providers.databento import DatabentoProvider

            return DatabentoProvider(self.settings.databento_api_key, observer=self,
                                     clock=self.clock)
        if name == "polygon":
            from botwarden.data.providers.polygon import PolygonProvider

            return PolygonProvider(self.settings.polygon_api_key, observer=self,
                                   clock=self.clock)
        if name == "replay":
            from botwarden.data.providers.replay import ReplayProvider

            return ReplayProvider(self.store, observer=self, clock=self.clock)
        if name == "unusual_whales":
            from botwarden.data.unusual_whales import UnusualWhalesClient

            return UnusualWhalesClient(self.settings.unusual_whales_api_key, observer=self,
                                       clock=self.clock)
        raise ProviderError(name, ErrorCode.NO_DATA, "no provider by that name")

    def default_chain(self) -> list[str]:
        """Primary to last resort: the keyed vendors that are configured, then replay."""
        return [name for name in ("databento", "polygon")
                if self._specs[name].configured] + ["replay"]

    def data_feed(self, chain: Sequence[str] | None = None, **options: Any) -> FailoverProvider:
        from botwarden.data.providers.failover import FailoverProvider

        names = list(chain or self.default_chain())
        return FailoverProvider([self.provider(n) for n in names], self, **options)

    # ---- persistence ----

    def flush(self) -> None:
        """Write buffered telemetry and the last success/error of each touched integration;
        prune telemetry past the retention (at most hourly)."""
        if self.engine is None:
            self.telemetry.drain()
            return
        pending = self.telemetry.drain()
        try:
            upsert_buckets(self.engine, pending)
        except Exception:
            self.telemetry.restore(pending)
            raise
        with self._lock:
            dirty = [self._states[name] for name in self._dirty if name in self._states]
            self._dirty.clear()
        now = self.clock()
        for state in dirty:
            persist.save_state(self.engine, state, None, now)
        if self._last_prune is None or now - self._last_prune > timedelta(hours=1):
            prune(self.engine, now - self.retention)
            self._last_prune = now
