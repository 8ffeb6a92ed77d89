"""The user sync's mirror (user_mirror): the snapshot, then each "props" event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botwarden.trading.brokers.tradovate.user_mirror import UserMirror

SOCKET = Path(__file__).parent / "fixtures" / "tradovate" / "socket"
NEW_ORDER = 8812347900


def fixture(name: str) -> Any:
    return json.loads((SOCKET / name).read_text())


def loaded() -> UserMirror:
    mirror = UserMirror()
    mirror.load(fixture("sync_snapshot.json"))
    return mirror


def test_the_snapshot_fills_the_kept_types() -> None:
    mirror = loaded()
    assert {o["id"] for o in mirror.orders()} == {8812347711, 8812347750}
    assert [f["id"] for f in mirror.fills(8812347711)] == [5521441, 5521442]
    assert mirror.versions(8812347750)[0]["price"] == 6870.5
    assert mirror.order_id_for("bw-c-2") == 8812347750
    assert mirror.client_ids() == {8812347711: "bw-c-1", 8812347750: "bw-c-2"}
    assert mirror.contract_name(3447120) == "MESZ5" and mirror.contract_name(1) is None
    assert mirror.positions()[0]["netPos"] == 2


def test_events_create_update_and_delete_in_their_order() -> None:
    mirror = loaded()
    events = fixture("events_order_filled.json")
    applied = [mirror.apply(e["d"]) for e in events]
    assert applied == [True] * 7 + [False]  # cashBalance is not kept
    assert mirror.events_applied == 7
    assert mirror.order_id_for("bw-c-3") == NEW_ORDER
    order = mirror.order(NEW_ORDER)
    assert order is not None and order["ordStatus"] == "Filled"
    assert [f["qty"] for f in mirror.fills(NEW_ORDER)] == [2]
    assert mirror.positions()[0]["netPos"] == 0
    assert mirror.apply({"entityType": "order", "eventType": "Deleted",
                         "entity": {"id": NEW_ORDER}})
    assert mirror.order(NEW_ORDER) is None


def test_malformed_events_change_nothing() -> None:
    mirror = loaded()
    for event in ({}, {"entityType": "order", "eventType": "Updated"},
                  {"entityType": "order", "eventType": "Updated", "entity": {"ordStatus": "X"}},
                  {"entityType": "order", "eventType": "Renamed", "entity": {"id": 1}}):
        assert not mirror.apply(event)
    assert mirror.events_applied == 0 and len(mirror.orders()) == 2


def test_a_new_snapshot_replaces_everything() -> None:
    mirror = loaded()
    mirror.apply(fixture("events_order_filled.json")[0]["d"])
    mirror.load({"orders": [], "commands": []})
    assert mirror.orders() == [] and mirror.order_id_for("bw-c-3") is None
    assert mirror.fills() == []
