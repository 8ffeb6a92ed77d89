"""Tradovate's JSON entities to and from our broker vocabulary. Pure: no I/O.

Entities (Tradovate REST API reference, camelCase JSON):

- Order: id, accountId, contractId, timestamp, action (Buy/Sell), ordStatus (Canceled,
  Completed, Expired, Filled, PendingCancel, PendingNew, PendingReplace, Rejected, Suspended,
  Unknown, Working). It carries no quantity or price: those are on its OrderVersions
  (orderId, orderQty, orderType, price, stopPrice); what filled is in its Fills (orderId,
  action, qty, price, timestamp, active).
- Command: orderId, clOrdId, commandType (New, Modify, Cancel): the `clOrdId` sent with
  /order/placeorder comes back here, which is how an order is found again by our client id.
- Position: accountId, contractId, netPos, netPrice. Contract: id, name ("MESZ6").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botwarden.domain.instruments import INSTRUMENTS, get_instrument
from botwarden.domain.ledger import PRICE_QUANTUM, ZERO
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading.brokers.base import FillReport, OrderReport, OrderRequest

Entity = Mapping[str, Any]

ACTION = {Side.BUY: "Buy", Side.SELL: "Sell"}
SIDE = {v: k for k, v in ACTION.items()}
ORDER_TYPE = {OrderType.MARKET: "Market", OrderType.LIMIT: "Limit", OrderType.STOP: "Stop"}
TYPE = {v: k for k, v in ORDER_TYPE.items()}
# Order statuses still at the broker. PendingCancel/Replace: a request is in flight, the
# order works until it lands.
WORKING_STATUSES = frozenset({"PendingNew", "Working", "PendingCancel", "PendingReplace",
                              "Suspended"})
FOREIGN_PREFIX = "tradovate:"  # client id we give an order we did not send (no clOrdId)
_CONTRACT = re.compile(r"^([A-Z0-9]+?)([FGHJKMNQUVXZ])(\d{1,2})$")


def place_order_body(request: OrderRequest, account_id: int, account_spec: str,
                     contract_name: str) -> dict[str, Any]:
    """The /order/placeorder body. `isAutomated` must be true for orders not placed by a
    person; `clOrdId` (<= 64 characters) is our client order id."""
    body: dict[str, Any] = {
        "accountSpec": account_spec,
        "accountId": account_id,
        "clOrdId": request.client_order_id,
        "action": ACTION[request.side],
        "symbol": contract_name,
        "orderQty": request.qty,
        "orderType": ORDER_TYPE[request.order_type],
        "isAutomated": True,
    }
    if request.limit_price is not None:
        body["price"] = float(request.limit_price)
    if request.stop_price is not None:
        body["stopPrice"] = float(request.stop_price)
    return body


def root_symbol(contract_name: str) -> str:
    """"MESZ6" -> "MES" for the instruments we know; anything else is returned as it is."""
    match = _CONTRACT.match(contract_name.upper())
    if match and match.group(1) in INSTRUMENTS:
        return match.group(1)
    return contract_name.upper()


def is_outright_of(contract_name: str, root: str) -> bool:
    match = _CONTRACT.match(contract_name.upper())
    return match is not None and match.group(1) == root.upper()


def foreign_client_id(order_id: int) -> str:
    return f"{FOREIGN_PREFIX}{order_id}"


def parse_foreign(client_order_id: str) -> int | None:
    if client_order_id.startswith(FOREIGN_PREFIX):
        tail = client_order_id[len(FOREIGN_PREFIX):]
        return int(tail) if tail.isdigit() else None
    return None


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def price(value: Decimal | float | int | str) -> Decimal:
    """An exact price. The client parses JSON numbers as Decimal already; a float is taken by
    its shortest repr, which is the decimal text it was parsed from."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def order_status(ord_status: str, qty: int, filled: int) -> OrderStatus:
    if ord_status in WORKING_STATUSES:
        return OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.WORKING
    if ord_status == "Filled" or (ord_status == "Completed" and qty and filled >= qty):
        return OrderStatus.FILLED
    if ord_status in ("Canceled", "Expired", "Completed"):
        return OrderStatus.CANCELED  # what filled before stays in filled_qty
    if ord_status == "Rejected":
        return OrderStatus.REJECTED
    return OrderStatus.UNRESOLVED  # "Unknown": ask again later


def fill_report(fill: Entity, client_order_id: str, symbol: str, fill_prefix: str
                ) -> FillReport:
    return FillReport(
        fill_id=f"{fill_prefix}{fill['id']}",
        client_order_id=client_order_id,
        broker_order_id=str(fill["orderId"]),
        symbol=symbol,
        side=SIDE[fill["action"]],
        qty=int(fill["qty"]),
        price=price(fill["price"]),
        fee=None,  # Tradovate keeps fees apart (fillFee); use the instrument's default
        at=parse_time(fill["timestamp"]),
    )


def latest_version(versions: Sequence[Entity], order_id: int) -> Entity | None:
    mine = [v for v in versions if v.get("orderId") == order_id]
    return max(mine, key=lambda v: int(v.get("id", 0))) if mine else None


def order_report(order: Entity, version: Entity | None, fills: Sequence[FillReport],
                 client_order_id: str, symbol: str, reject_text: str | None = None
                 ) -> OrderReport:
    """One order as we report it. Without a version (not seen yet) the quantity is what
    filled so far."""
    filled = sum(f.qty for f in fills)
    qty = int(version["orderQty"]) if version is not None else filled
    order_type = TYPE.get(str(version.get("orderType")), OrderType.MARKET) if version else (
        OrderType.MARKET)
    avg = None
    if filled:
        avg = (sum((f.price * f.qty for f in fills), ZERO) / filled).quantize(PRICE_QUANTUM)
    status = order_status(str(order.get("ordStatus")), qty, filled)

    def version_price(key: str) -> Decimal | None:
        value = version.get(key) if version is not None else None
        return price(value) if value is not None else None

    return OrderReport(
        client_order_id=client_order_id,
        broker_order_id=str(order["id"]),
        symbol=symbol,
        side=SIDE[order["action"]],
        order_type=order_type,
        qty=max(qty, filled),
        filled_qty=filled,
        status=status,
        avg_fill_price=avg,
        limit_price=version_price("price") if order_type is OrderType.LIMIT else None,
        stop_price=version_price("stopPrice") if order_type is OrderType.STOP else None,
        fills=tuple(fills),
        reject_code="Rejected" if status is OrderStatus.REJECTED else None,
        message=reject_text,
    )


def front_month(outrights: Sequence[Entity], maturities: Sequence[Entity], now: datetime
                ) -> Entity | None:
    """The contract to trade among a root's outrights: the unexpired one whose maturity is
    marked isFront, else the nearest unexpired; None when every one has expired."""
    by_id = {int(x["id"]): x for x in maturities}
    known = [c for c in outrights if int(c["contractMaturityId"]) in by_id]

    def expires(contract: Entity) -> datetime:
        return parse_time(by_id[int(contract["contractMaturityId"])]["expirationDate"])

    live = [c for c in known if expires(c) > now]
    front = [c for c in live if by_id[int(c["contractMaturityId"])].get("isFront")]
    return min(front or live, key=expires) if live else None


def off_tick_grid(request: OrderRequest) -> str | None:
    """Why the request's price is off its instrument's tick grid, or None."""
    root = root_symbol(request.symbol)
    if request.price is None or root not in INSTRUMENTS:
        return None
    instrument = get_instrument(root)
    if instrument.is_on_grid(request.price):
        return None
    return f"{request.price} is not a multiple of {root}'s tick {instrument.tick_size}"
