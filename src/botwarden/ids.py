"""Opaque, time-sortable identifiers (UUIDv7 as 32 hex characters)."""

from uuid6 import uuid7


def new_id() -> str:
    return uuid7().hex
