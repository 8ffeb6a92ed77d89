"""One call to a simulated broker: its fault drawn from the plan (a disconnect, a delay, a
lost request, a rejection, a dropped acknowledgement), its work done, and its telemetry
reported to the observer, as a real broker's calls are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from botwarden.clock import Clock
from botwarden.data.providers.base import CallObserver, CallRecord
from botwarden.data.providers.errors import ErrorCode, ProviderError
from botwarden.trading.brokers.base import BrokerDisconnected, BrokerError, BrokerTimeout
from botwarden.trading.brokers.faults import BrokerFaultKind, BrokerFaultPlan

T = TypeVar("T")


def faulted_call(operation: str, faults: BrokerFaultPlan | None,
                 sleep: Callable[[float], None], work: Callable[[str | None], T],
                 report: Callable[[BrokerError | None], None]) -> T:
    """Run `work` under the fault plan; it receives an injected rejection code (or None).
    `report` is told how the call ended."""
    try:
        fault = faults.draw(operation) if faults is not None else None
        kind = fault.kind if fault is not None else None
        if kind is BrokerFaultKind.DISCONNECT:
            raise BrokerDisconnected(f"injected disconnect on {operation}")
        if kind is BrokerFaultKind.DELAY:
            assert fault is not None
            sleep(fault.seconds)
        if kind is BrokerFaultKind.LOSE_REQUEST:
            raise BrokerTimeout(f"injected: the {operation} request was lost")
        result = work(fault.code if kind is BrokerFaultKind.REJECT and fault else None)
        if kind is BrokerFaultKind.DROP_ACK:
            raise BrokerTimeout(f"injected: the {operation} acknowledgement was lost")
    except BrokerError as error:
        report(error)
        raise
    report(None)
    return result


def report_call(observer: CallObserver | None, broker: str, clock: Clock, operation: str,
                started: float, error: BrokerError | None) -> None:
    """The call's telemetry (its latency since `started`, a perf_counter reading)."""
    if observer is None:
        return
    problem = None
    if error is not None:
        code = (ErrorCode(error.reason) if error.reason in ErrorCode.__members__
                else ErrorCode.SERVER_ERROR)
        problem = ProviderError(broker, code, error.message)
    observer.on_call(CallRecord(broker, operation, error is None,
                                (time.perf_counter() - started) * 1000.0, 0, clock(),
                                problem))
