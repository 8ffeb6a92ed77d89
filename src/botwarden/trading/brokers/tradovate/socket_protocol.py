"""Tradovate's WebSocket protocol, as its API reference describes it ("WebSockets",
"user/syncrequest"). Pure: no I/O.

Frames from the server start with one letter:
- `o`: the socket is open (then authorize it with the access token);
- `h`: a heartbeat, about every 2.5 s;
- `a`: a JSON array of messages;
- `c`: closed, a JSON array [code, reason].

A message is either a response to a request, {"i": request id, "s": HTTP-like status,
"d": data}, or an event, {"e": "props" | "shutdown" | ..., "d": data}. A "props" event's data
is {"entityType": "order", "eventType": "Created" | "Updated" | "Deleted", "entity": {...}},
the entity in the same JSON shape as the REST API's.

A request is four lines: the endpoint, the request id, the query, the body (JSON; the
access token itself for `authorize`). The client's heartbeat is the frame "[]": Tradovate
drops a client that sends nothing for a while, so it is due every 2.5 s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

HEARTBEAT = "[]"
HEARTBEAT_SECONDS = 2.5


class ProtocolError(ValueError):
    """A frame that is not Tradovate's protocol: the connection cannot be trusted further."""


class FrameKind(StrEnum):
    OPEN = "o"
    HEARTBEAT = "h"
    MESSAGES = "a"
    CLOSE = "c"


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    messages: tuple[Mapping[str, Any], ...] = ()
    close_code: int | None = None
    close_reason: str = ""


def parse_frame(text: str | bytes) -> Frame:
    """One frame as the server sent it. Numbers in messages are parsed as Decimal (prices
    exact, as with the REST client)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text:
        raise ProtocolError("an empty frame")
    letter, rest = text[0], text[1:]
    try:
        kind = FrameKind(letter)
    except ValueError:
        raise ProtocolError(f"a frame starting with {letter!r}") from None
    if kind in (FrameKind.OPEN, FrameKind.HEARTBEAT):
        return Frame(kind)
    try:
        body = json.loads(rest, parse_float=Decimal) if rest else []
    except json.JSONDecodeError as error:
        raise ProtocolError(f"an unreadable {kind.name.lower()} frame: {error}") from None
    if not isinstance(body, list):
        raise ProtocolError(f"a {kind.name.lower()} frame that is not a JSON array")
    if kind is FrameKind.CLOSE:
        code = int(body[0]) if body and isinstance(body[0], int | Decimal) else None
        reason = str(body[1]) if len(body) > 1 else ""
        return Frame(kind, close_code=code, close_reason=reason)
    if not all(isinstance(item, dict) for item in body):
        raise ProtocolError("a message that is not a JSON object")
    return Frame(kind, tuple(body))


def request(endpoint: str, request_id: int, body: Mapping[str, Any] | str | None = None,
            query: str = "") -> str:
    """A request frame. A str body goes as it is (the access token of `authorize`)."""
    text = "" if body is None else body if isinstance(body, str) else json.dumps(body)
    return f"{endpoint}\n{request_id}\n{query}\n{text}"


def response_to(message: Mapping[str, Any], request_id: int) -> bool:
    return message.get("i") == request_id and "s" in message


def is_ok(message: Mapping[str, Any]) -> bool:
    return message.get("s") == 200
