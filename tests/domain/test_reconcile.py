from __future__ import annotations

from decimal import Decimal

from botwarden.domain.orders import TRANSITIONS, can_transition
from botwarden.domain.reconcile import ActionKind, BrokerFill, BrokerOrder, OurOrder, diff
from botwarden.domain.trading import OrderStatus as S


def test_final_states_are_final_and_unresolved_never_resends() -> None:
    for final in (S.FILLED, S.CANCELED, S.REJECTED):
        assert TRANSITIONS[final] == frozenset()
    assert not can_transition(S.UNRESOLVED, S.PENDING)
    assert not can_transition(S.UNRESOLVED, S.SENT)


def test_in_sync_means_no_drift() -> None:
    ours = [OurOrder("a", S.FILLED, 1, 1)]
    theirs = [BrokerOrder("a", S.FILLED, 1, 1)]
    report = diff(ours, 1, frozenset({"f1"}), theirs, [BrokerFill("f1", "a", 1, Decimal(1))],
                  1, {"a": 1})
    assert not report.drift and report.fixable


def test_dropped_ack_and_missed_fill_are_fixable() -> None:
    ours = [OurOrder("a", S.UNRESOLVED, 1, 0), OurOrder("b", S.SENT, 1, 0)]
    theirs = [BrokerOrder("a", S.FILLED, 1, 1)]
    report = diff(ours, 0, frozenset(), theirs, [BrokerFill("f1", "a", 1, Decimal(1))], 1,
                  {"a": 1, "b": 1})
    kinds = sorted(a.kind.value for a in report.actions)
    assert kinds == ["ADOPT_STATUS", "APPLY_FILL", "MARK_REJECTED"]
    assert report.drift and report.fixable and report.expected_position == 1


def test_unexplained_position_is_a_mismatch() -> None:
    report = diff([], 0, frozenset(), [], [], 2, {})
    assert not report.fixable
    assert report.actions[-1].kind is ActionKind.MISMATCH


def test_unknown_working_order_at_broker_is_cancelled() -> None:
    report = diff([], 0, frozenset(), [BrokerOrder("x", S.WORKING, 1, 0)], [], 0, {})
    assert [a.kind for a in report.actions] == [ActionKind.CANCEL_AT_BROKER] and report.fixable
