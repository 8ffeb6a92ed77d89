"""The broker interface: one small, synchronous contract for the paper, shadow and Tradovate
brokers, with frozen requests and reports.

    ack = broker.submit(OrderRequest(client_order_id, symbol, side, qty, order_type, ...))
    broker.cancel(client_order_id)       -> OrderReport | None   (None: never seen)
    broker.query_order(client_order_id)  -> OrderReport | None   (None: never seen)
    broker.open_orders(symbol=None)      -> list[OrderReport]
    broker.fills(since=None)             -> list[FillReport]     (unique fill ids)
    broker.position(symbol)              -> PositionReport        (signed qty, avg price)
    broker.flatten(symbol, client_order_id) -> Ack | None         (None: already flat)
    simulated brokers also: broker.on_bar(symbol, bar) -> list[FillReport]  (new fills)

Exactly-once, the broker's half: a client order id names one order for ever. Submitting it
again never creates a second order: it answers the existing order's ack (`duplicate=True`),
or, if the broker had rejected it, the same rejection again.

What each error tells the caller to do next:

- `BrokerRejected(code, message)`: the broker saw the order and refused it. Final; a new
  intent needs a new client order id.
- `BrokerTimeout`: the request may or may not have reached the broker. Mark the order
  UNRESOLVED and resolve it with `query_order`; never resend blindly.
- `BrokerDisconnected`: nothing reached the broker; sending again (same client id) is safe.
  `BrokerRateLimited` (the broker refused to handle calls for now, see `retry_after`) and
  `BrokerAuthError` (credentials refused: ENTITLEMENT_REVOKED) are kinds of it.

Every error carries `reason`, the integration registry's code (TIMEOUT, DISCONNECTED,
RATE_LIMITED, ENTITLEMENT_REVOKED, ...), so telemetry and the kill engine read one vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from botwarden.data.providers.base import Bar
from botwarden.domain.reconcile import BrokerFill, BrokerOrder
from botwarden.domain.trading import OrderStatus, OrderType, Side

CLIENT_ORDER_ID_MAX = 64  # orders.client_order_id and Tradovate's clOrdId are both 64
STOP_LOSS_SUFFIX = ":SL"
PROFIT_TARGET_SUFFIX = ":TP"


# ---- errors ----


class BrokerError(Exception):
    """A broker call that did not do what was asked. `code` is specific (the broker's own
    reject reason, or ours); `reason` is the integration registry's code."""

    reason: str = "BROKER_ERROR"

    def __init__(self, code: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        if reason is not None:
            self.reason = reason


class BrokerRejected(BrokerError):
    """The broker saw the order and refused it (final)."""

    reason = "BAD_REQUEST"


class BrokerTimeout(BrokerError):
    """Outcome unknown: the order may exist. Query it by client id; never resend blindly."""

    reason = "TIMEOUT"

    def __init__(self, message: str, *, code: str = "TIMEOUT", reason: str | None = None) -> None:
        super().__init__(code, message, reason=reason)


class BrokerDisconnected(BrokerError):
    """Nothing reached the broker: safe to send again with the same client order id."""

    reason = "DISCONNECTED"

    def __init__(self, message: str, *, code: str = "DISCONNECTED",
                 reason: str | None = None) -> None:
        super().__init__(code, message, reason=reason)


class BrokerRateLimited(BrokerDisconnected):
    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, code="RATE_LIMITED")
        self.retry_after = retry_after


class BrokerAuthError(BrokerDisconnected):
    reason = "ENTITLEMENT_REVOKED"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="ENTITLEMENT_REVOKED")


# ---- requests ----


@dataclass(frozen=True, slots=True)
class Bracket:
    """Exits attached to an entry, placed when (and as far as) it fills: a stop-loss and a
    profit target, in ticks from the entry's fill price, one cancelling the other. Their
    client order ids are the entry's plus ":SL" / ":TP" (`bracket_ids`)."""

    stop_loss_ticks: int | None = None
    profit_target_ticks: int | None = None

    def __post_init__(self) -> None:
        legs = (self.stop_loss_ticks, self.profit_target_ticks)
        if all(leg is None for leg in legs):
            raise ValueError("a bracket needs a stop-loss, a profit target or both")
        if any(leg is not None and leg <= 0 for leg in legs):
            raise ValueError("bracket distances are counts of ticks > 0")


def bracket_ids(client_order_id: str) -> tuple[str, str]:
    """(stop-loss id, profit-target id) of the bracket attached to `client_order_id`."""
    return client_order_id + STOP_LOSS_SUFFIX, client_order_id + PROFIT_TARGET_SUFFIX


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str  # fixed per trading intent, persisted by the caller before sending
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    bracket: Bracket | None = None

    def __post_init__(self) -> None:
        longest = CLIENT_ORDER_ID_MAX - (len(STOP_LOSS_SUFFIX) if self.bracket else 0)
        if not self.client_order_id or len(self.client_order_id) > longest:
            raise ValueError(f"client_order_id must have 1 to {longest} characters")
        if self.qty <= 0:
            raise ValueError("qty must be a positive number of contracts")
        wants = {OrderType.MARKET: (False, False), OrderType.LIMIT: (True, False),
                 OrderType.STOP: (False, True)}[self.order_type]
        if (self.limit_price is not None, self.stop_price is not None) != wants:
            raise ValueError(f"a {self.order_type.value} order takes "
                             + {(False, False): "no price", (True, False): "a limit price only",
                                (False, True): "a stop price only"}[wants])

    @property
    def price(self) -> Decimal | None:
        return self.limit_price if self.order_type is OrderType.LIMIT else self.stop_price


# ---- reports ----


@dataclass(frozen=True, slots=True)
class Ack:
    client_order_id: str
    broker_order_id: str
    status: OrderStatus  # the order's status when acknowledged
    duplicate: bool = False  # True: the client id was already known; nothing new was created


@dataclass(frozen=True, slots=True)
class FillReport:
    fill_id: str  # unique for ever (across accounts and brokers): the apply-once key
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: int
    price: Decimal
    fee: Decimal | None  # None: the broker does not report it (use the instrument's default)
    at: datetime

    def as_broker_fill(self) -> BrokerFill:
        return BrokerFill(self.fill_id, self.client_order_id, self.qty, self.price)


@dataclass(frozen=True, slots=True)
class OrderReport:
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: int
    filled_qty: int
    status: OrderStatus
    avg_fill_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    fills: tuple[FillReport, ...] = ()
    reject_code: str | None = None
    message: str | None = None
    parent_client_order_id: str | None = None  # set on a bracket's exits

    def as_broker_order(self) -> BrokerOrder:
        return BrokerOrder(self.client_order_id, self.status, self.qty, self.filled_qty,
                           self.avg_fill_price)


@dataclass(frozen=True, slots=True)
class PositionReport:
    symbol: str
    qty: int  # signed contracts
    avg_price: Decimal | None
    realized_pnl: Decimal | None = None  # net of fees; None where the broker does not say
    fees: Decimal | None = None
    lots: tuple[tuple[int, Decimal], ...] = field(default=())


# ---- the interface ----


@runtime_checkable
class Broker(Protocol):
    name: str

    def submit(self, request: OrderRequest) -> Ack: ...

    def cancel(self, client_order_id: str) -> OrderReport | None: ...

    def query_order(self, client_order_id: str) -> OrderReport | None: ...

    def open_orders(self, symbol: str | None = None) -> list[OrderReport]: ...

    def fills(self, since: datetime | None = None) -> list[FillReport]: ...

    def position(self, symbol: str) -> PositionReport: ...

    def flatten(self, symbol: str, client_order_id: str) -> Ack | None: ...


@runtime_checkable
class SimulatedBroker(Broker, Protocol):
    def on_bar(self, symbol: str, bar: Bar) -> list[FillReport]: ...


def flatten_request(position: PositionReport, client_order_id: str) -> OrderRequest | None:
    """The market order that takes `position` to flat, or None when it is flat already."""
    if position.qty == 0:
        return None
    side = Side.SELL if position.qty > 0 else Side.BUY
    return OrderRequest(client_order_id, position.symbol, side, abs(position.qty),
                        OrderType.MARKET)


def broker_orders(reports: Sequence[OrderReport]) -> list[BrokerOrder]:
    """Reports in the shape `domain.reconcile.diff` compares."""
    return [r.as_broker_order() for r in reports]
