"""Bot lifecycle stages and the stage machine (domain.md, "Bot lifecycle stages")."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    TRIALS = "TRIALS"
    PAPER = "PAPER"
    SHADOW = "SHADOW"
    CANARY = "CANARY"
    LIVE = "LIVE"
    RETIRED = "RETIRED"


LADDER: tuple[Stage, ...] = (Stage.TRIALS, Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE)
RUNNER_STAGES: frozenset[Stage] = frozenset({Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE})
REAL_MONEY_STAGES: frozenset[Stage] = frozenset({Stage.CANARY, Stage.LIVE})


def next_stage(stage: Stage) -> Stage | None:
    """The one stage a promotion may reach, or None at the top and for RETIRED."""
    if stage not in LADDER:
        return None
    index = LADDER.index(stage)
    return LADDER[index + 1] if index + 1 < len(LADDER) else None
