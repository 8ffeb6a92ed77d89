"""Tradovate behind the broker interface: orders over REST; fills and order reports from the
WebSocket user sync while it is live (user_sync.py), else over REST.

Exactly-once. Every order is placed with our client order id as Tradovate's `clOrdId`, which
Tradovate keeps on the order's New command. Before placing, the broker looks the id up in
GET /command/list (clOrdId -> orderId) whenever it has not read the commands yet in this
process, or an earlier attempt with this id ended with an unknown outcome; a hit answers the
existing order's ack and places nothing. Tradovate's own record is the mapping, so nothing
needs persisting on our side and a restarted process finds its orders by our ids.

Outcomes of placing an order: a `failureReason` in the answer is BrokerRejected (that code);
a 429 is BrokerRateLimited and a refused login BrokerAuthError (nothing was placed); no
connection at all is BrokerDisconnected; anything else that fails after the request left
(a timeout, a dropped connection, a 5xx, an unreadable answer) is BrokerTimeout: the order
may exist, so query it, and a resend with the same id finds it first.

Reads: query_order reads the order, its versions and fills (/order/item, /orderVersion/deps,
/fill/deps); open_orders and fills read the lists (/order/list, /orderVersion/list,
/fill/list: fills' two are shared by the process's polls for 2 s, shared_read.py); position
reads /position/list. With a live user sync (`sync`), fills and query_order read its mirror
instead, and finding an order by our client id reads the mirror's commands: no request.
The mirror may trail Tradovate by the time an event takes to arrive, so what must be
current reads REST always: an order the mirror has not seen yet (just placed), the order
after a cancel, the orders after a placing that ended unknown, and open_orders and
position (reconcile compares them with our book; flatten sizes its order on the position).

Symbols: a root we know ("MES") trades its front month, as Tradovate names it
(/contract/suggest, then /contractMaturity/items: the maturity marked isFront, else the
nearest unexpired), resolved once a UTC day; a contract name ("MESZ6") is looked up with
/contract/find. Reports name the root. Orders Tradovate holds that we did not send (no
clOrdId) are reported as "tradovate:<orderId>", so reconcile can see and cancel them.

Brackets are refused (BRACKET_UNSUPPORTED) before anything is sent: send the exits as stop
and limit orders once the entry has filled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import httpx

from botwarden.clock import Clock, utcnow
from botwarden.config import Settings
from botwarden.data.providers.base import CallObserver
from botwarden.data.providers.errors import ErrorCode, ProviderError
from botwarden.domain.instruments import INSTRUMENTS
from botwarden.domain.orders import OPEN
from botwarden.domain.trading import OrderStatus
from botwarden.trading.brokers.base import (
    Ack,
    BrokerAuthError,
    BrokerDisconnected,
    BrokerError,
    BrokerRateLimited,
    BrokerRejected,
    BrokerTimeout,
    FillReport,
    OrderReport,
    OrderRequest,
    PositionReport,
    flatten_request,
)
from botwarden.trading.brokers.tradovate import mapping as m
from botwarden.trading.brokers.tradovate.client import TradovateClient, TradovateCredentials
from botwarden.trading.brokers.tradovate.shared_read import SharedRead
from botwarden.trading.brokers.tradovate.user_mirror import UserMirror
from botwarden.trading.brokers.tradovate.user_sync import UserSync

T = TypeVar("T")
FILL_LISTS_SHARED = timedelta(seconds=2)  # a bar's fill polls: 2 requests, not 2 a runner
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class TradovateBroker:
    name = "tradovate"
    supports_brackets = False  # the order manager places the exits itself (managed_exits)

    def __init__(self, client: TradovateClient, *, account: str | None = None,
                 clock: Clock = utcnow, sync: UserSync | None = None) -> None:
        self.client = client
        self.sync = sync
        self.account_name = account
        self.clock = clock
        self._lock = threading.RLock()
        self._account: tuple[int, str] | None = None
        self._contracts: dict[str, tuple[int, str, date]] = {}  # symbol -> id, name, day
        self._contract_names: dict[int, str] = {}
        self._by_client_id: dict[str, int] = {}
        self._by_order_id: dict[int, str] = {}
        self._commands_read = False
        self._unknown: set[str] = set()  # client ids whose placing ended unknown
        self._fill_lists: SharedRead[tuple[Any, Any]] = SharedRead(FILL_LISTS_SHARED, clock)

    @classmethod
    def from_settings(cls, settings: Settings, *, observer: CallObserver | None = None,
                      http: httpx.Client | None = None) -> TradovateBroker:
        client = TradovateClient(TradovateCredentials.from_settings(settings), http=http,
                                 observer=observer)
        return cls(client, account=settings.tradovate_account)

    # ---- the interface ----

    def submit(self, request: OrderRequest) -> Ack:
        if request.bracket is not None:
            raise BrokerRejected("BRACKET_UNSUPPORTED", "the Tradovate adapter places no "
                                 "brackets: send the exits once the entry has filled")
        cid = request.client_order_id
        with self._lock:
            existing = self._order_id(cid)
            if existing is not None:
                return self._ack_existing(cid, existing)
            off_grid = m.off_tick_grid(request)
            if off_grid:
                raise BrokerRejected("PRICE_OFF_TICK_GRID", off_grid)
            account_id, account_spec = self._the_account()
            contract_name = self._contract(request.symbol)[1]
            body = m.place_order_body(request, account_id, account_spec, contract_name)
            try:
                result = self.client.post("/order/placeorder", body, operation="submit")
            except ProviderError as error:
                raise self._entry_error(error, cid) from error
            answer = result if isinstance(result, dict) else {}
            order_id = answer.get("orderId")
            if order_id is not None:
                self._remember(cid, int(order_id))
            failure = answer.get("failureReason")
            if failure and failure != "Success":
                raise BrokerRejected(str(failure), str(answer.get("failureText") or failure))
            if order_id is None:
                self._unknown.add(cid)
                raise BrokerTimeout("placeorder answered without an orderId",
                                    code="NO_ORDER_ID", reason=ErrorCode.PROVIDER_BAD_DATA.value)
            self._unknown.discard(cid)
            return Ack(cid, str(order_id), OrderStatus.WORKING)

    def cancel(self, client_order_id: str) -> OrderReport | None:
        with self._lock:
            order_id = self._order_id(client_order_id)
            if order_id is None:
                return None
            report = self._report(order_id, client_order_id)
            if report is None or report.status not in OPEN:
                return report
            try:
                result = self.client.post("/order/cancelorder",
                                          {"orderId": order_id, "isAutomated": True},
                                          operation="cancel")
            except ProviderError as error:
                raise self._entry_error(error, None) from error
            after = self._report(order_id, client_order_id, fresh=True)
            failure = result.get("failureReason") if isinstance(result, dict) else None
            if failure and failure != "Success" and after is not None and after.status in OPEN:
                raise BrokerRejected(str(failure), str(result.get("failureText") or failure))
            return after

    def query_order(self, client_order_id: str) -> OrderReport | None:
        with self._lock:
            order_id = self._order_id(client_order_id)
            return self._report(order_id, client_order_id) if order_id is not None else None

    def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        with self._lock:
            account_id = self._the_account()[0]
            orders = [o for o in self._read("/order/list", operation="open_orders")
                      if o.get("accountId") == account_id
                      and o.get("ordStatus") in m.WORKING_STATUSES]
            if not orders:
                return []
            versions = self._read("/orderVersion/list", operation="open_orders")
            fills = self._read("/fill/list", operation="open_orders")
            self._know_orders(int(o["id"]) for o in orders)
            wanted = m.root_symbol(symbol) if symbol else None
            reports = []
            for order in orders:
                order_id = int(order["id"])
                cid = self._client_id(order_id)
                name = self._symbol_of(int(order["contractId"]))
                if wanted is not None and name != wanted:
                    continue
                own = [m.fill_report(f, cid, name, self.fill_prefix) for f in fills
                       if f.get("orderId") == order_id and f.get("active", True)]
                reports.append(m.order_report(order, m.latest_version(versions, order_id), own,
                                              cid, name))
            return reports

    def fills(self, since: datetime | None = None) -> list[FillReport]:
        """Fills of this account's orders at or after `since` (inclusive)."""
        with self._lock:
            account_id = self._the_account()[0]
            lists = self._mirrored(lambda mirror: (mirror.orders(), mirror.fills()))
            if lists is None:
                lists = self._fill_lists.get(lambda: (
                    self._read("/order/list", operation="fills"),
                    self._read("/fill/list", operation="fills")))
            orders = {int(o["id"]): o for o in lists[0] if o.get("accountId") == account_id}
            raw = [f for f in lists[1] if f.get("orderId") in orders and f.get("active", True)]
            self._know_orders(int(f["orderId"]) for f in raw)
            reports = [m.fill_report(f, self._client_id(int(f["orderId"])),
                                     self._symbol_of(int(orders[int(f["orderId"])]
                                                         ["contractId"])), self.fill_prefix)
                       for f in raw]
            return sorted((r for r in reports if since is None or r.at >= since),
                          key=lambda r: (r.at, r.fill_id))

    def position(self, symbol: str) -> PositionReport:
        with self._lock:
            account_id = self._the_account()[0]
            contract_id = self._contract(symbol)[0]
            root = m.root_symbol(symbol)
            for row in self._read("/position/list", operation="position"):
                if row.get("accountId") == account_id and row.get("contractId") == contract_id:
                    qty = int(row.get("netPos") or 0)
                    net_price = row.get("netPrice")
                    avg = m.price(net_price) if qty and net_price is not None else None
                    return PositionReport(root, qty, avg)
            return PositionReport(root, 0, None)

    def flatten(self, symbol: str, client_order_id: str) -> Ack | None:
        with self._lock:
            existing = self._order_id(client_order_id)
            if existing is not None:
                return self._ack_existing(client_order_id, existing)
            request = flatten_request(self.position(symbol), client_order_id)
            return self.submit(request) if request is not None else None

    def fill_revision(self) -> int | None:
        """A number that changes when the user sync learns of a fill; None while it is not
        live (then fills are asked for with each bar only: REST requests cost)."""
        return self._mirrored(lambda mirror: mirror.fill_revision)

    @property
    def fill_prefix(self) -> str:
        """Fill ids are unique across brokers and Tradovate's two environments."""
        return f"tradovate-{self.client.environment}-"

    # ---- orders by our client id ----

    def _order_id(self, client_order_id: str) -> int | None:
        foreign = m.parse_foreign(client_order_id)
        if foreign is not None:
            return foreign
        if client_order_id not in self._by_client_id and client_order_id not in self._unknown:
            found = self._mirrored(lambda mirror: mirror.order_id_for(client_order_id))
            if found is not None:
                self._remember(client_order_id, found)
                return found
            if self._mirrored(lambda _mirror: True):
                return None  # the live mirror holds every command: no such order
        if client_order_id not in self._by_client_id and (
                not self._commands_read or client_order_id in self._unknown):
            self._read_commands()
        return self._by_client_id.get(client_order_id)

    def _mirrored(self, reader: Callable[[UserMirror], T]) -> T | None:
        """`reader(mirror)` while the user sync is live, else None."""
        return self.sync.read(reader) if self.sync is not None else None

    def _read_commands(self) -> None:
        for command in self._read("/command/list", operation="commands"):
            if command.get("clOrdId") and command.get("commandType", "New") == "New":
                self._remember(str(command["clOrdId"]), int(command["orderId"]))
        self._commands_read = True

    def _know_orders(self, order_ids: Any) -> None:
        unknown = [order_id for order_id in order_ids if order_id not in self._by_order_id]
        if not unknown:
            return
        known = self._mirrored(UserMirror.client_ids)
        if known is not None:
            for order_id, client_order_id in known.items():
                self._remember(client_order_id, order_id)
            return  # the live mirror holds every command: the rest are not ours (foreign)
        self._read_commands()  # orders placed since (by a process before a restart)

    def _remember(self, client_order_id: str, order_id: int) -> None:
        self._by_client_id[client_order_id] = order_id
        self._by_order_id[order_id] = client_order_id
        self._unknown.discard(client_order_id)

    def _client_id(self, order_id: int) -> str:
        return self._by_order_id.get(order_id) or m.foreign_client_id(order_id)

    def _ack_existing(self, client_order_id: str, order_id: int) -> Ack:
        report = self._report(order_id, client_order_id)
        status = report.status if report is not None else OrderStatus.UNRESOLVED
        if report is not None and status is OrderStatus.REJECTED:
            raise BrokerRejected(report.reject_code or "Rejected",
                                 report.message or "Tradovate rejected this order")
        return Ack(client_order_id, str(order_id), status, duplicate=True)

    def _report(self, order_id: int, client_order_id: str, *, fresh: bool = False
                ) -> OrderReport | None:
        """The order as the mirror has it, else (or `fresh`, or not in the mirror yet) as
        REST reads it."""
        mirrored = None if fresh or client_order_id in self._unknown else self._mirrored(
            lambda mirror: (mirror.order(order_id), mirror.versions(order_id),
                            mirror.fills(order_id)))
        order: Any = mirrored[0] if mirrored is not None else None
        if mirrored is not None and order is not None:
            versions, raw = mirrored[1], mirrored[2]
        else:
            order = self._read("/order/item", {"id": order_id}, operation="query_order")
            if not isinstance(order, dict) or "id" not in order:
                return None
            versions = self._read("/orderVersion/deps", {"masterid": order_id},
                                  operation="query_order")
            raw = self._read("/fill/deps", {"masterid": order_id}, operation="query_order")
        name = self._symbol_of(int(order["contractId"]))
        fills = [m.fill_report(f, client_order_id, name, self.fill_prefix) for f in raw
                 if f.get("active", True)]
        return m.order_report(order, m.latest_version(versions, order_id), fills,
                              client_order_id, name)

    # ---- account and contracts ----

    def _the_account(self) -> tuple[int, str]:
        if self._account is None:
            wanted = self.account_name
            for row in self._read("/account/list", operation="accounts"):
                if row.get("active", True) and (wanted is None or row.get("name") == wanted):
                    self._account = (int(row["id"]), str(row["name"]))
                    break
            else:
                raise BrokerRejected("NO_ACCOUNT", "no active Tradovate account"
                                     + (f" named {wanted!r}" if wanted else ""))
        return self._account

    def _contract(self, symbol: str) -> tuple[int, str, date]:
        key = symbol.upper()
        today = self.clock().date()
        cached = self._contracts.get(key)
        if cached is not None and (cached[2] == today or key not in INSTRUMENTS):
            return cached
        if key in INSTRUMENTS:
            contract_id, name = self._front_month(key)
        else:
            found = self._read("/contract/find", {"name": key}, operation="contracts")
            if not isinstance(found, dict) or "id" not in found:
                raise BrokerRejected("UNKNOWN_SYMBOL", f"Tradovate has no contract {key}")
            contract_id, name = int(found["id"]), str(found["name"])
        self._contracts[key] = (contract_id, name, today)
        self._contract_names[contract_id] = name
        return self._contracts[key]

    def _front_month(self, root: str) -> tuple[int, str]:
        rows = self._read("/contract/suggest", {"t": root, "l": 20}, operation="contracts")
        outrights = [c for c in rows if m.is_outright_of(str(c.get("name", "")), root)]
        if not outrights:
            raise BrokerRejected("UNKNOWN_SYMBOL", f"Tradovate lists no {root} contract")
        ids = ",".join(str(c["contractMaturityId"]) for c in outrights)
        maturities = self._read("/contractMaturity/items", {"ids": ids}, operation="contracts")
        chosen = m.front_month(outrights, maturities, self.clock())
        if chosen is None:
            raise BrokerRejected("UNKNOWN_SYMBOL", f"no unexpired {root} contract")
        return int(chosen["id"]), str(chosen["name"])

    def _symbol_of(self, contract_id: int) -> str:
        name = self._contract_names.get(contract_id) or self._mirrored(
            lambda mirror: mirror.contract_name(contract_id))
        if name is None:
            found = self._read("/contract/item", {"id": contract_id}, operation="contracts")
            name = str(found["name"]) if isinstance(found, dict) else str(contract_id)
            self._contract_names[contract_id] = name
        return m.root_symbol(name)

    # ---- errors ----

    def _read(self, path: str, params: dict[str, Any] | None = None, *,
              operation: str) -> Any:
        try:
            return self.client.get(path, params, operation=operation)
        except ProviderError as error:
            raise _read_error(error) from error

    def _entry_error(self, error: ProviderError, client_order_id: str | None) -> BrokerError:
        if error.reason is ErrorCode.RATE_LIMITED:
            return BrokerRateLimited(error.detail, retry_after=error.retry_after)
        if error.reason in (ErrorCode.ENTITLEMENT_REVOKED, ErrorCode.KEY_MISSING):
            return BrokerAuthError(error.detail)
        if error.reason is ErrorCode.BAD_REQUEST:
            return BrokerRejected("BAD_REQUEST", error.detail)
        if isinstance(error.__cause__, _NOTHING_SENT):
            return BrokerDisconnected(error.detail, code=error.reason.value,
                                      reason=error.reason.value)
        if client_order_id is not None:
            self._unknown.add(client_order_id)
        return BrokerTimeout(error.detail, code=error.reason.value, reason=error.reason.value)


def _read_error(error: ProviderError) -> BrokerError:
    """A read that failed changed nothing at the broker: ask again later."""
    if error.reason is ErrorCode.RATE_LIMITED:
        return BrokerRateLimited(error.detail, retry_after=error.retry_after)
    if error.reason in (ErrorCode.ENTITLEMENT_REVOKED, ErrorCode.KEY_MISSING):
        return BrokerAuthError(error.detail)
    return BrokerDisconnected(error.detail, code=error.reason.value, reason=error.reason.value)
