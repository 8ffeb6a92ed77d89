"""TOTP: the drift window, single use of codes, setup and verification of secrets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from botwarden.domain.errors import DomainError
from botwarden.services import totp
from botwarden.services.accounts import create_account
from botwarden.store.models import User

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1),
                     timezones=st.just(UTC))


@given(when=times, offset=st.sampled_from([-1, 0, 1]))
def test_codes_one_step_away_match_their_step(when: datetime, offset: int) -> None:
    code = totp.code_at(SECRET, when, offset)
    assert totp.step_at(SECRET, when) + offset in totp.matching_steps(SECRET, code, when)


@settings(max_examples=200)
@given(when=times, offset=st.sampled_from([-3, -2, 2, 3]))
def test_codes_further_away_do_not_match(when: datetime, offset: int) -> None:
    code = totp.code_at(SECRET, when, offset)
    assume(code not in {totp.code_at(SECRET, when, k) for k in (-1, 0, 1)})
    assert totp.matching_steps(SECRET, code, when) == []


def test_codes_agree_with_pyotp_and_tolerate_spaces() -> None:
    when = datetime(2030, 5, 17, 12, 0, 7, tzinfo=UTC)
    code = pyotp.TOTP(SECRET).at(when)
    assert totp.code_at(SECRET, when) == code
    assert totp.matching_steps(SECRET, f"{code[:3]} {code[3:]}", when) == [
        pyotp.TOTP(SECRET).timecode(when)]
    for malformed in ("", "12345", "1234567", "abcdef", code + "0"):
        assert totp.matching_steps(SECRET, malformed, when) == []


def test_otpauth_uri_carries_the_secret() -> None:
    uri = totp.otpauth_uri(SECRET, "ann@example.com")
    parsed = pyotp.parse_uri(uri)
    assert parsed.secret == SECRET and parsed.issuer == "Botwarden"
    assert parsed.name == "ann@example.com"


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s:
        yield s


@pytest.fixture
def member(session: Session) -> User:
    _, user = create_account(session, "totp@example.com", "correct horse battery")
    session.commit()
    return user


def test_consume_accepts_each_step_once_and_never_an_older_one(
    session: Session, member: User
) -> None:
    now = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    step = totp.consume(session, member, SECRET, totp.code_at(SECRET, now), now)
    assert step == totp.step_at(SECRET, now)
    session.commit()
    for code in (totp.code_at(SECRET, now), totp.code_at(SECRET, now, -1)):
        with pytest.raises(DomainError) as refused:
            totp.consume(session, member, SECRET, code, now)
        assert refused.value.code == "TOTP_REPLAYED"
    later = now + timedelta(seconds=30)
    assert totp.consume(session, member, SECRET, totp.code_at(SECRET, later), later) == step + 1


def test_a_second_session_cannot_reuse_a_consumed_code(
    session_factory: sessionmaker[Session], member: User
) -> None:
    now = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    code = totp.code_at(SECRET, now)
    with session_factory() as first, session_factory() as second:
        stale = second.get(User, member.id)  # loaded before the first use: totp_last_step 0
        assert stale is not None and stale.totp_last_step == 0
        second.commit()  # ends the read; the object keeps its stale values in memory
        totp.consume(first, first.get(User, member.id), SECRET, code, now)  # type: ignore[arg-type]
        first.commit()
        with pytest.raises(DomainError) as refused:
            totp.consume(second, stale, SECRET, code, now)
        assert refused.value.code == "TOTP_REPLAYED"


def test_verify_enables_a_pending_secret_then_steps_up_with_it(
    session: Session, member: User
) -> None:
    now = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    with pytest.raises(DomainError) as not_set_up:
        totp.verify(session, member, "123456", now, timedelta(minutes=5))
    assert not_set_up.value.code == "TOTP_NOT_SET_UP"
    secret = totp.begin_setup(member, now)
    assert member.totp_pending_secret == secret and not member.totp_enabled
    first = totp.verify(session, member, totp.code_at(secret, now), now, timedelta(minutes=5))
    assert first.enabled_now and member.totp_enabled and member.totp_secret == secret
    assert member.totp_pending_secret is None
    assert first.step_up_until == now + timedelta(minutes=5)
    later = now + timedelta(minutes=1)
    again = totp.verify(session, member, totp.code_at(secret, later), later, timedelta(minutes=5))
    assert not again.enabled_now and again.step_up_until == later + timedelta(minutes=5)
    assert totp.step_up_active(member, later + timedelta(minutes=4, seconds=59))
    assert not totp.step_up_active(member, later + timedelta(minutes=5))
    with pytest.raises(DomainError) as needs_step_up:
        totp.begin_setup(member, later + timedelta(minutes=5))
    assert needs_step_up.value.code == "STEP_UP_REQUIRED"
