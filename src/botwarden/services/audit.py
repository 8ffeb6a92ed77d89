"""Audit rows: one per allowed or denied mutation, written in the change's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from botwarden.store.models import AuditLog


def audit_row(
    *,
    account_id: str | None,
    actor: str,
    action: str,
    allowed: bool,
    reason_code: str | None,
    target_type: str | None = None,
    target_id: str | None = None,
    trace_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    return AuditLog(
        account_id=account_id,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        decision="ALLOW" if allowed else "DENY",
        reason_code=reason_code,
        trace_id=trace_id,
        detail=detail or {},
    )


def write_denial(session: Session, row: AuditLog) -> None:
    """A denial is recorded even though the change it refused is rolled back."""
    session.rollback()
    discard_pending(session)
    session.add(row)
    session.commit()


PENDING_KEY = "botwarden_pending_audit"


def attach_on_commit(session: Session, row: AuditLog) -> None:
    """Write `row` with whatever this session commits next, so the change and its audit row
    share one transaction, while the row's fields may still be completed until then."""
    session.info.setdefault(PENDING_KEY, []).append(row)


def discard_pending(session: Session) -> list[AuditLog]:
    return list(session.info.pop(PENDING_KEY, []))


@event.listens_for(Session, "before_commit")
def _add_pending_audit_rows(session: Session) -> None:
    for row in discard_pending(session):
        session.add(row)
