"""The order state machine. UNRESOLVED means sent with an unknown outcome: it is resolved
by asking the broker for the client order id, never by sending again."""

from __future__ import annotations

from botwarden.domain.errors import DomainError
from botwarden.domain.trading import OrderStatus as S

OPEN: frozenset[S] = frozenset({S.PENDING, S.SENT, S.WORKING, S.PARTIALLY_FILLED, S.UNRESOLVED})
FINAL: frozenset[S] = frozenset({S.FILLED, S.CANCELED, S.REJECTED})

TRANSITIONS: dict[S, frozenset[S]] = {
    # Persisted intent: sent, or refused before sending (risk, kill) = REJECTED.
    S.PENDING: frozenset({S.SENT, S.REJECTED, S.CANCELED, S.UNRESOLVED}),
    S.SENT: frozenset({S.WORKING, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELED,
                       S.UNRESOLVED}),
    S.WORKING: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.UNRESOLVED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.UNRESOLVED}),
    # Resolution comes from the broker's own report of the order.
    S.UNRESOLVED: frozenset({S.WORKING, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED,
                             S.UNRESOLVED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
}


def client_id_prefix(bot_id: str) -> str:
    """What every client order id of a bot starts with (its decisions', its exits', its
    halts'): a broker account several bots share reports all their orders, and a bot takes
    only its own."""
    return f"{bot_id[:20]}-"


def can_transition(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]


def transition(current: S, target: S) -> S:
    if not can_transition(current, target):
        raise DomainError("ILLEGAL_ORDER_TRANSITION",
                          f"order cannot go from {current.value} to {target.value}",
                          "Reconcile the order with the broker.")
    return target


def status_for_fill(qty: int, filled_qty: int) -> S:
    return S.FILLED if filled_qty >= qty else S.PARTIALLY_FILLED
