"""Which broker a bot's orders go to, by the runner's mode (domain.md, stages):
PAPER -> the paper broker, SHADOW -> the shadow broker, CANARY and LIVE -> Tradovate.

Each simulated broker keeps its own book per bot (`account_key`), in the database, apart
from the runner's: reconciliation compares two real sides."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.research.spec import DEFAULT_SLIPPAGE_TICKS
from botwarden.trading.brokers import BarQuotes, Broker, PaperBroker, ShadowBroker, SqlStateStore

MODE_BROKERS = {"PAPER": "paper", "SHADOW": "shadow", "CANARY": "tradovate", "LIVE": "tradovate"}


def account_key(broker: str, bot_id: str) -> str:
    return f"{broker}:{bot_id}"


def make_broker(engine: Engine, settings: Settings, bot_id: str, broker: str, *,
                slippage_ticks: int = DEFAULT_SLIPPAGE_TICKS, **options: object) -> Broker:
    """The broker named `broker` for `bot_id`. Real brokers need their keys (fail closed)."""
    store = SqlStateStore(engine)
    if broker == "paper":
        return PaperBroker(account_key(broker, bot_id), store, slippage_ticks=slippage_ticks,
                           **options)
    if broker == "shadow":
        return ShadowBroker(account_key(broker, bot_id), store, quotes=BarQuotes(),
                            **options)
    if broker == "tradovate":
        from botwarden.trading.brokers.tradovate.integration import is_configured
        from botwarden.trading.brokers.tradovate.session import process_broker

        if not is_configured(settings):
            raise DomainError("INTEGRATION_KEY_MISSING", "Tradovate credentials are not set",
                              "Set BOTWARDEN_TRADOVATE_USERNAME, _PASSWORD, _CID and _SEC.",
                              status=424)
        return process_broker(settings)
    raise DomainError("UNKNOWN_BROKER", f"no broker named {broker!r}",
                      "Use paper, shadow or tradovate.", status=422)
