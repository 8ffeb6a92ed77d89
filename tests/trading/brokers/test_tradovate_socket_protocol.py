"""Tradovate's WebSocket frames and requests (socket_protocol): pure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from botwarden.trading.brokers.tradovate.socket_protocol import (
    HEARTBEAT,
    FrameKind,
    ProtocolError,
    is_ok,
    parse_frame,
    request,
    response_to,
)


def test_open_and_heartbeat_frames() -> None:
    assert parse_frame("o").kind is FrameKind.OPEN
    assert parse_frame(b"h").kind is FrameKind.HEARTBEAT
    assert HEARTBEAT == "[]"


def test_a_messages_frame_keeps_prices_exact() -> None:
    frame = parse_frame('a[{"s":200,"i":1,"d":{"price":6852.25}},{"e":"props","d":{}}]')
    assert frame.kind is FrameKind.MESSAGES
    first, second = frame.messages
    assert response_to(first, 1) and is_ok(first) and not response_to(first, 0)
    assert first["d"]["price"] == Decimal("6852.25")
    assert second["e"] == "props" and not response_to(second, 1)


def test_a_close_frame_gives_its_code_and_reason() -> None:
    frame = parse_frame('c[3000,"Go away!"]')
    assert (frame.kind, frame.close_code, frame.close_reason) == (
        FrameKind.CLOSE, 3000, "Go away!")
    assert parse_frame("c").close_code is None


@pytest.mark.parametrize("text", ["", "x[]", "a{", 'a{"s":200}', "a[1,2]", 'c{"a":1}'])
def test_anything_else_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_frame(text)


def test_requests_are_four_lines() -> None:
    assert request("authorize", 0, "token-1") == "authorize\n0\n\ntoken-1"
    assert request("user/syncrequest", 1, {"users": [7]}) == \
        'user/syncrequest\n1\n\n{"users": [7]}'
    assert request("account/list", 2) == "account/list\n2\n\n"
    assert request("contract/find", 3, query="name=MESZ5") == "contract/find\n3\nname=MESZ5\n"
    refused = {"s": 401, "i": 0, "d": "Access is denied"}
    assert response_to(refused, 0) and not is_ok(refused)
