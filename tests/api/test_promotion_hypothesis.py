"""A stateful hypothesis test of promotion through the real API.

Random sequences of PATCH stage, graduate, approvals, promote-live, 2FA step-up grant and
expiry, approval expiry, evidence insertion, kill and resurrect (and, late, retire) run
against one bot. After every call:
- the bot's stage never rises by more than one step;
- it reaches LIVE only through promote-live, with an active step-up and an unused,
  unexpired approval token of this bot, and only with the CANARY evidence on record;
- each LIVE promotion used exactly one approval;
- every answer is the one a small model of the rules predicts (status and reason code).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from botwarden.api.app import create_app
from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.stage_machine import rank
from botwarden.domain.stages import LADDER, Stage
from botwarden.store.models import Approval, Bot
from tests.api.conftest import VALID_BOT, ApiUser
from tests.api.promotion_evidence import add_backtests, add_evidence_for, set_stage, set_step_up

GATED = [Stage.TRIALS, Stage.PAPER, Stage.SHADOW, Stage.CANARY]


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    """The API with rate limits out of the way: this test sends many mutations a second."""
    application = create_app(settings.model_copy(update={
        "rate_limit_user_per_minute": 1_000_000, "rate_limit_global_per_minute": 1_000_000}))
    yield application
    application.state.engine.dispose()


@dataclass
class Token:
    value: str
    used: bool = False
    expired: bool = False

    @property
    def valid(self) -> bool:
        return not self.used and not self.expired


class PromotionMachine(RuleBasedStateMachine):
    app: ClassVar[FastAPI]
    client: ClassVar[TestClient]
    make_user: ClassVar[Callable[..., ApiUser]]

    def __init__(self) -> None:
        super().__init__()
        # The demo profile: every gate applies, with the smaller volume that keeps the
        # evidence this test writes at each step small.
        self.user = type(self).make_user(gate_profile="demo")
        created = self.client.post("/api/bots", json=VALID_BOT, headers=self.user.headers)
        assert created.status_code == 201, created.text
        self.bot_id: str = created.json()["id"]
        self.stage = Stage.TRIALS
        self.step_up = False
        self.killed = False
        self.evidence: set[Stage] = set()
        self.synthetic_backtests = 0
        self.tokens: list[Token] = []
        self.calls = 0
        self.live_promotions = 0

    # --- helpers ---------------------------------------------------------------------------

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.calls += 1
        return self.client.request(method, f"/api/bots/{self.bot_id}/{path}", json=body,
                                   headers=self.user.headers)

    def server_stage(self) -> Stage:
        with self.app.state.session_factory() as session:
            return Stage(session.get(Bot, self.bot_id).stage)

    def expect(self, response: Any, status: int, code: str | None = None) -> None:
        detail = f"{response.request.method} {response.request.url.path}: {response.text}"
        assert response.status_code == status, detail
        if code is not None:
            assert response.json()["error"]["code"] == code, detail

    def settle(self, route: str, token: Token | None = None) -> None:
        """Check the safety properties on the server's stage, then adopt it."""
        before, after = self.stage, self.server_stage()
        if after is not Stage.RETIRED and rank(after) > rank(before):
            assert rank(after) == rank(before) + 1, f"{before} -> {after} skipped a stage"
            assert before in self.evidence, f"{before} -> {after} without its evidence"
        if after is Stage.LIVE and before is not Stage.LIVE:
            assert route == "promote-live", f"reached LIVE through {route}"
            assert self.step_up and token is not None and token.valid
        if before is Stage.RETIRED:
            assert after is Stage.RETIRED
        self.stage = after

    def policy_refusal(self, *, adds_risk: bool, needs_canary: bool = False,
                       needs_step_up: bool = False) -> tuple[int, str] | None:
        """What the action policy answers before any promotion rule runs."""
        if adds_risk and self.killed:
            return 409, "BOT_KILLED"
        if self.stage is Stage.RETIRED:
            return 409, "BOT_RETIRED"
        if needs_canary and self.stage is not Stage.CANARY:
            return 409, "STAGE_NOT_ELIGIBLE"
        if needs_step_up and not self.step_up:
            return 403, "STEP_UP_REQUIRED"
        return None

    # --- rules -----------------------------------------------------------------------------

    # CANARY is drawn more often: approvals and promote-live act there and nowhere else.
    @initialize(start=st.sampled_from([*LADDER, Stage.CANARY, Stage.CANARY]),
                with_evidence=st.booleans(), step_up=st.booleans())
    def start_at(self, start: Stage, with_evidence: bool, step_up: bool) -> None:
        """Begin anywhere on the ladder (written directly: the starting state is given), so
        that short runs reach approvals and promote-live too."""
        set_stage(self.app, self.bot_id, start)
        self.stage = start
        if with_evidence and start in GATED:
            self.add_evidence(start)
        self.step_up_change(step_up)

    @rule(to=st.sampled_from(Stage))
    def patch_stage(self, to: Stage) -> None:
        target = to
        response = self.call("PATCH", "stage", {"stage": target.value})
        refusal = self.policy_refusal(adds_risk=False)
        if refusal:
            self.expect(response, *refusal)
        elif target is self.stage:
            self.expect(response, 409, "STAGE_UNCHANGED")
        elif target is Stage.RETIRED:
            self.expect(response, 409, "USE_RETIRE")
        elif target is Stage.LIVE:
            self.expect(response, 409, "USE_PROMOTE_LIVE")
        elif rank(target) < rank(self.stage):
            self.expect(response, 200)
        elif rank(target) > rank(self.stage) + 1:
            self.expect(response, 409, "STAGE_SKIP")
        elif self.killed:
            self.expect(response, 409, "BOT_KILLED")
        elif self.stage not in self.evidence:
            self.expect(response, 409, "GATES_NOT_MET")
            assert response.json()["error"]["gates"], "GATES_NOT_MET lists the failing gates"
        else:
            self.expect(response, 200)
        self.settle("patch")

    @rule()
    def graduate(self) -> None:
        response = self.call("POST", "graduate")
        refusal = self.policy_refusal(adds_risk=True)
        if refusal:
            self.expect(response, *refusal)
        elif self.stage in (Stage.CANARY, Stage.LIVE):
            self.expect(response, 409, "STAGE_NOT_ELIGIBLE")
        elif self.stage not in self.evidence:
            self.expect(response, 409, "GATES_NOT_MET")
        else:
            self.expect(response, 200)
        self.settle("graduate")

    @rule()
    def issue_approval(self) -> None:
        response = self.call("POST", "approvals")
        refusal = self.policy_refusal(adds_risk=True, needs_canary=True, needs_step_up=True)
        if refusal:
            self.expect(response, *refusal)
        else:
            self.expect(response, 201)
            self.tokens.append(Token(response.json()["approval_token"]))
        self.settle("approvals")

    @rule(choice=st.sampled_from(["newest", "oldest", "tampered", "garbage"]))
    def promote_live(self, choice: str) -> None:
        token: Token | None = None
        if choice == "garbage" or not self.tokens:
            value = "garbage.token"
        elif choice == "tampered":
            value = self.tokens[-1].value[:-3] + "abc"
        else:
            token = self.tokens[-1] if choice == "newest" else self.tokens[0]
            value = token.value
        response = self.call("POST", "promote-live", {"approval_token": value})
        refusal = self.policy_refusal(adds_risk=True, needs_canary=True, needs_step_up=True)
        if refusal:
            self.expect(response, *refusal)
        elif token is None:
            self.expect(response, 403, "APPROVAL_INVALID")
        elif token.used:
            self.expect(response, 409, "APPROVAL_USED")
        elif token.expired:
            self.expect(response, 403, "APPROVAL_EXPIRED")
        elif Stage.CANARY not in self.evidence:
            self.expect(response, 409, "GATES_NOT_MET")
        else:
            self.expect(response, 200)
        self.settle("promote-live", token)
        if response.status_code == 200 and token is not None:
            token.used = True
            self.live_promotions += 1

    @rule(choice=st.sampled_from(["newest", "oldest", "tampered"]), expire=st.booleans())
    def approve_then_promote(self, choice: str, expire: bool) -> None:
        self.issue_approval()
        if expire:
            self.expire_approvals()
        self.promote_live(choice)

    @rule(active=st.booleans())
    def step_up_change(self, active: bool) -> None:
        set_step_up(self.app, self.user.user_id, active)
        self.step_up = active

    @rule()
    def expire_approvals(self) -> None:
        with self.app.state.session_factory() as session:
            session.execute(sa.update(Approval).where(Approval.bot_id == self.bot_id)
                            .values(expires_at=utcnow() - timedelta(seconds=1)))
            session.commit()
        for token in self.tokens:
            token.expired = True

    @rule(stage=st.sampled_from(GATED))
    def add_evidence(self, stage: Stage) -> None:
        if stage not in self.evidence:
            add_evidence_for(self.app, self.bot_id, stage, demo=True)
            self.evidence.add(stage)

    @rule()
    def add_evidence_for_this_stage(self) -> None:
        if self.stage in GATED:
            self.add_evidence(self.stage)

    @rule()
    def add_synthetic_backtest(self) -> None:
        """Synthetic bars meet the market-data gate only under a profile that declares it:
        the demo profile this machine runs on (domain/gates.py, `accepts_synthetic_data`),
        so three passing synthetic backtests are TRIALS evidence here. The standard profile
        refuses them (tests/domain/test_gates.py)."""
        add_backtests(self.app, self.bot_id, count=1, provider="synthetic", dataset="SYNTH")
        self.synthetic_backtests += 1
        if self.synthetic_backtests >= 3:
            self.evidence.add(Stage.TRIALS)

    @rule()
    def kill(self) -> None:
        response = self.call("POST", "kill", {"mode": "HARD", "reason": "hypothesis"})
        self.expect(response, *((409, "ALREADY_KILLED") if self.killed else (200, None)))
        self.killed = True
        self.settle("kill")

    @rule()
    def resurrect(self) -> None:
        response = self.call("POST", "resurrect", {})
        if not self.killed:
            self.expect(response, 409, "NOT_KILLED")
        elif self.stage is Stage.RETIRED:
            self.expect(response, 409, "BOT_RETIRED")
        else:
            self.expect(response, 200)
            self.killed = False
        self.settle("resurrect")

    @precondition(lambda self: self.calls >= 20)
    @rule()
    def retire(self) -> None:
        response = self.call("POST", "retire")
        refusal = self.policy_refusal(adds_risk=False)
        self.expect(response, *(refusal or (200, None)))
        self.settle("retire")

    @invariant()
    def each_live_promotion_used_exactly_one_approval(self) -> None:
        with self.app.state.session_factory() as session:
            used = session.scalar(sa.select(sa.func.count()).select_from(Approval).where(
                Approval.bot_id == self.bot_id, Approval.used_at.is_not(None)))
        assert used == self.live_promotions


def test_no_sequence_skips_a_stage_or_reaches_live_unapproved(
    app: FastAPI, client: TestClient, make_user: Callable[..., ApiUser]
) -> None:
    class Bound(PromotionMachine):
        pass

    Bound.app = app
    Bound.client = client
    Bound.make_user = staticmethod(make_user)  # type: ignore[assignment]
    run_state_machine_as_test(Bound, settings=settings(
        max_examples=30, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
