"""The action policy: one pure module decides every mutation (who may do what to which bot),
with a reason code and a fix. The API guard and `POST /api/action-security` both call it."""

from botwarden.policy.actions import Action, ActionSpec
from botwarden.policy.decide import AccountFacts, ActorFacts, BotFacts, Decision, decide

__all__ = ["AccountFacts", "Action", "ActionSpec", "ActorFacts", "BotFacts", "Decision", "decide"]
