"""schemathesis over the app's own OpenAPI schema, as an authenticated admin: no operation
answers a 5xx, whether the request fits the schema or breaks it. Examples per operation are
bounded so that it stays around a minute per database.

Path ids that name the caller's own resources (`bot_id`, `user_id`) are filled with a fresh
resource of the account for each operation, so that generated bodies reach the route's logic
instead of stopping at 404; other path parameters are generated.

Driven through `APIOperation.as_strategy` rather than `schemathesis.pytest.from_fixture`
(its lazy loader reads a node attribute pytest 9 no longer has), and through one test client
for the whole run: schemathesis's ASGI transport starts and stops the app (its lifespan, which
disposes the engine) around every single call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import get_client
from sqlalchemy.orm import Session, sessionmaker

from botwarden.api.app import create_app
from botwarden.config import Settings
from botwarden.domain.trading import Role
from botwarden.ids import new_id
from botwarden.services import bots as bot_service
from botwarden.services.accounts import add_user, create_account, issue_token
from botwarden.store.models import User
from tests.api.conftest import VALID_BOT

POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
EXAMPLES = {POSITIVE: 10, NEGATIVE: 6}
# The readiness probe answers 503 by contract while a dependency is not ready.
MAY_ANSWER_503 = {"GET /api/ready"}


class Account:
    """The fuzzing admin, and fresh resources of their account made through the services."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        with sessions() as session:
            account, user = create_account(session, f"{new_id()}@example.com",
                                           "correct horse battery")
            session.commit()
            self.account_id, self.user_id = account.id, user.id

    def headers(self) -> dict[str, str]:
        """A new token per case: a generated logout or 2FA change must not blind the rest."""
        with self.sessions() as session:
            issued = issue_token(session, session.get(User, self.user_id), timedelta(hours=1))
            session.commit()
        return {"Authorization": f"Bearer {issued.token}"}

    def bot_id(self) -> str:
        with self.sessions() as session:
            bot = bot_service.create_bot(session, self.account_id, VALID_BOT)
            session.commit()
            return bot.id

    def user_id_(self) -> str:
        with self.sessions() as session:
            user = add_user(session, self.account_id, f"{new_id()}@example.com",
                            "correct horse battery", Role.VIEWER)
            session.commit()
            return user.id


OWN: dict[str, Callable[[Account], str]] = {"bot_id": Account.bot_id,
                                             "user_id": Account.user_id_}


def test_no_operation_answers_a_server_error(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"log_level": "WARNING"}))  # quiet: many calls
    account = Account(app.state.session_factory)
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()
                  if result.ok().label not in MAY_ANSWER_503]
    failures: list[str] = []
    with get_client(app) as client:
        for operation in operations:
            names = [p.name for p in operation.path_parameters]
            own = {name: OWN[name](account) for name in names if name in OWN}
            for mode in modes(operation, all_filled=len(own) == len(names)):

                @hypothesis_settings(max_examples=EXAMPLES[mode], deadline=None, database=None,
                                     derandomize=True, suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode,
                                                  path_parameters=own or None))
                def run(case: schemathesis.Case) -> None:
                    case.call_and_validate(base_url=str(client.base_url), session=client,
                                           headers=account.headers(),
                                           checks=[not_a_server_error])

                try:
                    run()
                except (FailureGroup, Exception) as failure:  # collect all, then report
                    failures.append(f"{operation.label} ({mode.value}): {failure}")
    app.state.engine.dispose()
    assert len(operations) >= 20  # the schema really lists the app's routes
    assert not failures, "\n\n".join(failures)


def modes(operation: schemathesis.APIOperation,
          all_filled: bool) -> list[schemathesis.GenerationMode]:
    """Invalid requests where there is something to get wrong: a body or query. Not where a
    path parameter is left to generation: any string is a valid path id, and this version's
    negative mode then finds no case at all."""
    constrained = len(operation.body) > 0 or len(operation.query) > 0
    return [POSITIVE, NEGATIVE] if constrained and all_filled else [POSITIVE]
