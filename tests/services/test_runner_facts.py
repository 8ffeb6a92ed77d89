"""The facts behind the safe-start checks as the runner service reads them from the
store: bars and datasets, provider and broker health, keyed vendors, live loops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr

from botwarden.clock import utcnow
from botwarden.data.bar_store import SYNTHETIC_DATASET
from botwarden.data.synth import synthesize
from botwarden.domain.errors import DomainError
from botwarden.domain.stages import Stage
from botwarden.store.models import IntegrationStatus, SchedulerTask
from tests.services.runner_fleet import TRADOVATE_KEYS, Fleet


def test_data_checks(ready: Fleet) -> None:
    mnq = ready.bot(symbol="MNQ")
    assert ready.refusal(mnq) == "424 DATA_UNAVAILABLE"  # bars of MES only
    bot_id = ready.bot()
    with ready.session() as session:
        session.add(IntegrationStatus(name="replay", kind="data", status="DOWN", configured=True,
                                      last_error_code="PROVIDER_FORBIDDEN",
                                      last_error="fault injected"))
        session.commit()
    assert ready.refusal(bot_id) == "424 DATA_UNAVAILABLE"
    # DOWN because the store was empty when last verified: the store now has bars.
    with ready.session() as session:
        session.get(IntegrationStatus, "replay").last_error_code = "NO_DATA"
        session.commit()
    assert ready.start(bot_id).payload["dataset"] == SYNTHETIC_DATASET


def test_a_keyed_vendor_as_the_runners_provider(ready: Fleet) -> None:
    bot_id = ready.bot()
    vendor = ready.settings.model_copy(update={"runner_provider": "databento"})
    assert ready.refusal(bot_id, vendor) == "424 INTEGRATION_KEY_MISSING"
    unknown = ready.settings.model_copy(update={"runner_provider": "tradovate"})  # a broker
    assert ready.refusal(bot_id, unknown) == "424 INTEGRATION_KEY_MISSING"
    keyed = vendor.model_copy(update={"databento_api_key": SecretStr("db-key")})
    payload = ready.start(bot_id, keyed).payload
    assert (payload["provider"], payload["dataset"], payload["speed"]) == (
        "databento", "GLBX.MDP3", None)


def test_the_replay_dataset_prefers_real_bars(ready: Fleet) -> None:
    bot_id = ready.bot()
    real = synthesize("MES", 1, seed=7)
    for name in ("CSV-Z", "CSV-A"):
        ready.store.write(real, dataset=name, provider="csv", synthetic=False)
    assert ready.start(bot_id).payload["dataset"] == "CSV-A"


def test_loops_must_have_run_recently_and_well(ready: Fleet) -> None:
    bot_id = ready.bot()
    with ready.session() as session:
        task = session.get(SchedulerTask, "supervisor")
        task.last_run_at = utcnow() - timedelta(seconds=3 * task.interval_seconds + 5)
        session.commit()
    with pytest.raises(DomainError) as raised:
        ready.start(bot_id)
    assert raised.value.code == "AUTONOMY_BLOCKED" and "supervisor" in raised.value.message
    ready.run_loops()
    with ready.session() as session:
        session.get(SchedulerTask, "timeout_worker").last_ok = False
        session.commit()
    with pytest.raises(DomainError) as raised:
        ready.start(bot_id)
    assert "timeout_worker" in raised.value.message and "supervisor" not in raised.value.message
    ready.run_loops()
    ready.start(bot_id)


def test_a_real_money_runner_needs_its_broker_up(ready: Fleet) -> None:
    keyed = ready.settings.model_copy(update=TRADOVATE_KEYS)
    bot_id = ready.bot(Stage.LIVE, is_trading_enabled=True)
    with ready.session() as session:
        session.add(IntegrationStatus(name="tradovate", kind="broker", status="DOWN",
                                      configured=True, last_error_code="ENTITLEMENT_REVOKED"))
        session.commit()
    assert ready.refusal(bot_id, keyed) == "424 INTEGRATION_KEY_MISSING"
    assert ready.start(ready.bot(Stage.PAPER), keyed).payload["broker"] == "paper"
