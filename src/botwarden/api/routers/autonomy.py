"""The autonomy score (domain.md, "Autonomy score"): per bot and for the account."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.clock import utcnow
from botwarden.domain.autonomy import AutonomyScore, score_account
from botwarden.domain.stages import Stage
from botwarden.services.evidence import autonomy_scores
from botwarden.store.models import Account, Bot

router = APIRouter(prefix="/api/autonomy", tags=["autonomy"])


class CheckOut(BaseModel):
    id: str
    points: float
    max_points: float
    detail: str = ""


class PartOut(BaseModel):
    id: str
    score: float
    max_score: int
    checks: list[CheckOut]


class ScoreOut(BaseModel):
    score: int
    tier: str
    parts: list[PartOut]


class BotScoreOut(ScoreOut):
    bot_id: str
    name: str
    stage: str


class AutonomyOut(BaseModel):
    account: ScoreOut
    bots: list[BotScoreOut]


def _parts(score: AutonomyScore) -> list[PartOut]:
    return [PartOut(id=p.id, score=p.score, max_score=p.max_score,
                    checks=[CheckOut(id=c.id, points=round(c.points, 2), max_points=c.max_points,
                                     detail=c.detail) for c in p.checks])
            for p in score.parts]


@router.get("/score", response_model=AutonomyOut)
def score(principal: Principal = Depends(current_principal),
          session: Session = Depends(get_session)) -> AutonomyOut:
    """Each bot's score with its five parts and tier; the account's is the mean over its
    bots that are not retired."""
    account = session.get(Account, principal.account_id)
    assert account is not None
    bots = session.scalars(sa.select(Bot).where(Bot.account_id == principal.account_id)
                           .order_by(Bot.created_at, Bot.id)).all()
    scores = autonomy_scores(session, bots, account, now=utcnow())
    active = [scores[b.id] for b in bots if b.stage != Stage.RETIRED.value]
    overall = score_account(active)
    return AutonomyOut(
        account=ScoreOut(score=overall.score, tier=overall.tier.value, parts=_parts(overall)),
        bots=[BotScoreOut(bot_id=b.id, name=b.name, stage=b.stage, score=scores[b.id].score,
                          tier=scores[b.id].tier.value, parts=_parts(scores[b.id]))
              for b in bots])
