"""The user's orders, fills and positions as Tradovate's user sync reports them: the
initial snapshot of `user/syncrequest`, then each "props" event applied in the order it
came. Pure: no I/O, no clock, no lock (the socket's thread and the broker share it under
UserSync's lock).

Only the entity types the broker reads are kept; the snapshot's other lists (users, cash
balances, margin snapshots, products...) and their events are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Entity = Mapping[str, Any]

# The snapshot's list for each entity type kept (its keys are the plurals).
KEPT = {"orders": "order", "orderVersions": "orderVersion", "fills": "fill",
        "positions": "position", "commands": "command", "contracts": "contract"}
KINDS = frozenset(KEPT.values())


class UserMirror:
    def __init__(self) -> None:
        self._by_kind: dict[str, dict[int, Entity]] = {kind: {} for kind in KINDS}
        self._order_by_client_id: dict[str, int] = {}
        self.events_applied = 0
        # Changes whenever the fills may have: a runner asks for fills between its bars
        # only when it moved (broker.fill_revision).
        self.fill_revision = 0

    # ---- changes ----

    def load(self, snapshot: Entity) -> None:
        """Replace everything with the sync request's snapshot (a reconnect sends it again:
        what happened while the socket was down is in it)."""
        for kind in KINDS:
            self._by_kind[kind] = {}
        self._order_by_client_id = {}
        for key, kind in KEPT.items():
            for entity in snapshot.get(key) or ():
                self._put(kind, entity)
        self.fill_revision += 1

    def apply(self, event: Entity) -> bool:
        """One "props" event; False when it is of a type not kept or is malformed."""
        kind, change, entity = (event.get("entityType"), event.get("eventType"),
                                event.get("entity"))
        if kind not in KINDS or not isinstance(entity, Mapping) or "id" not in entity:
            return False
        if change == "Deleted":
            self._by_kind[kind].pop(int(entity["id"]), None)
        elif change in ("Created", "Updated"):
            self._put(kind, entity)
        else:
            return False
        self.events_applied += 1
        if kind == "fill":
            self.fill_revision += 1
        return True

    def _put(self, kind: str, entity: Entity) -> None:
        if "id" not in entity:
            return
        self._by_kind[kind][int(entity["id"])] = entity
        if kind == "command" and entity.get("clOrdId") and entity.get("orderId") is not None \
                and entity.get("commandType", "New") == "New":
            self._order_by_client_id[str(entity["clOrdId"])] = int(entity["orderId"])

    # ---- reads ----

    def order(self, order_id: int) -> Entity | None:
        return self._by_kind["order"].get(order_id)

    def orders(self) -> list[Entity]:
        return list(self._by_kind["order"].values())

    def versions(self, order_id: int | None = None) -> list[Entity]:
        return [v for v in self._by_kind["orderVersion"].values()
                if order_id is None or v.get("orderId") == order_id]

    def fills(self, order_id: int | None = None) -> list[Entity]:
        return [f for f in self._by_kind["fill"].values()
                if order_id is None or f.get("orderId") == order_id]

    def positions(self) -> list[Entity]:
        return list(self._by_kind["position"].values())

    def contract_name(self, contract_id: int) -> str | None:
        contract = self._by_kind["contract"].get(contract_id)
        return str(contract["name"]) if contract is not None and "name" in contract else None

    def order_id_for(self, client_order_id: str) -> int | None:
        """The order placed with `client_order_id` as its clOrdId (its New command)."""
        return self._order_by_client_id.get(client_order_id)

    def client_ids(self) -> dict[int, str]:
        return {order_id: cid for cid, order_id in self._order_by_client_id.items()}
