"""The guard every mutating route declares: authenticate, rate-limit, run the action policy,
and write the audit row in the same transaction as the change.

A route declares its action by depending on `guard(Action.X)`. `assert_every_mutation_guarded`
runs at start-up and refuses to serve an app with a mutating route that does not."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, authenticate, bearer, get_write_session
from botwarden.api.tracing import current_trace_id
from botwarden.clock import utcnow
from botwarden.domain.errors import DomainError
from botwarden.domain.kill import KillState
from botwarden.domain.stages import Stage
from botwarden.policy import AccountFacts, Action, BotFacts, Decision, decide
from botwarden.policy.actions import SPECS, Target
from botwarden.services.audit import attach_on_commit, audit_row, write_denial
from botwarden.store.models import Account, AuditLog, Bot

GUARD_ATTR = "__botwarden_action__"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}

FactsFn = Callable[[Session, Bot | None, Mapping[str, Any]], Mapping[str, Any]]


@dataclass
class Guarded:
    """What a guarded route gets: its session (with the ALLOW audit row already added),
    the caller, and the target bot and account, loaded once."""

    session: Session
    principal: Principal | None
    action: Action
    bot: Bot | None
    account: Account | None
    trace_id: str
    audit: AuditLog
    decision: Decision

    @property
    def actor_label(self) -> str:
        return self.principal.label if self.principal else "anonymous"

    def commit(self) -> None:
        self.session.commit()


def bot_facts(bot: Bot) -> BotFacts:
    return BotFacts(bot.id, bot.account_id, Stage(bot.stage), KillState(bot.kill_state),
                    bot.is_trading_enabled)


async def _json_body(request: Request) -> Mapping[str, Any]:
    if request.method not in MUTATING:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def guard(
    action: Action,
    *,
    bot_from: Literal["path", "body"] = "path",
    facts: FactsFn | None = None,
) -> Callable[..., Guarded]:
    spec = SPECS[action]

    def dependency(
        request: Request,
        session: Session = Depends(get_write_session),
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        body: Mapping[str, Any] = Depends(_json_body),
    ) -> Guarded:
        trace_id = current_trace_id()
        principal = None if spec.min_role is None else authenticate(session, credentials)
        limiter = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None and spec.rate_limited:
            limiter.hit(principal.user_id if principal else _client(request))
        bot: Bot | None = None
        target_id: str | None = None
        if spec.target is Target.BOT:
            raw = request.path_params.get("bot_id") if bot_from == "path" else body.get("bot_id")
            target_id = raw if isinstance(raw, str) else None
            bot = session.get(Bot, target_id) if target_id else None
            if bot is not None and principal is not None and bot.account_id != principal.account_id:
                bot = None  # another account's bot is indistinguishable from a missing one
        account = session.get(Account, principal.account_id) if principal else None
        params = dict(facts(session, bot, body)) if facts else dict(body)
        decision = decide(
            action.value,
            principal.actor if principal else None,
            account=AccountFacts(account.id, account.kill_switch_engaged) if account else None,
            bot=bot_facts(bot) if bot else None,
            params=params,
            now=utcnow(),
        )
        row = audit_row(
            account_id=principal.account_id if principal else None,
            actor=principal.label if principal else f"client:{_client(request)}",
            action=action.value, allowed=decision.allowed, reason_code=decision.reason_code,
            target_type="bot" if spec.target is Target.BOT else None, target_id=target_id,
            trace_id=trace_id,
        )
        if not decision.allowed:
            write_denial(session, row)
            raise DomainError(decision.reason_code, decision.message, decision.fix,
                              status=decision.status)
        attach_on_commit(session, row)

        async def on_domain_error(exc: DomainError) -> None:
            denied = audit_row(account_id=row.account_id, actor=row.actor, action=row.action,
                               allowed=False, reason_code=exc.code, target_type=row.target_type,
                               target_id=row.target_id, trace_id=trace_id)
            # The request's session may already be closed (its dependency has exited), so
            # the denial is written through a session of its own.
            await run_in_threadpool(_write_denial_fresh, request, denied)

        request.state.on_domain_error = on_domain_error
        return Guarded(session, principal, action, bot, account, trace_id, row, decision)

    setattr(dependency, GUARD_ATTR, action)
    return dependency


def _write_denial_fresh(request: Request, row: AuditLog) -> None:
    with request.app.state.session_factory() as fresh:
        write_denial(fresh, row)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def route_action(route: APIRoute) -> Action | None:
    """The action a route declared through its guard dependency, searched recursively."""

    def walk(dep: Dependant) -> Action | None:
        found = getattr(dep.call, GUARD_ATTR, None)
        if found is not None:
            return found  # type: ignore[no-any-return]
        for sub in dep.dependencies:
            hit = walk(sub)
            if hit is not None:
                return hit
        return None

    return walk(route.dependant)


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of the app, through included routers (FastAPI >= 0.160 keeps them
    nested; `iter_route_contexts` flattens them)."""
    from fastapi.routing import iter_route_contexts

    return [ctx.original_route for ctx in iter_route_contexts(app.routes)
            if isinstance(ctx.original_route, APIRoute)]


def assert_every_mutation_guarded(app: FastAPI) -> None:
    # An APIRoute always has a set of methods (FastAPI fills in GET); the attribute is typed
    # by Starlette's Route, where it is None for an ASGI-app endpoint.
    unguarded = [
        f"{sorted(cast(set[str], route.methods) & MUTATING)} {route.path}"
        for route in api_routes(app)
        if cast(set[str], route.methods) & MUTATING and route_action(route) is None
    ]
    if unguarded:
        raise RuntimeError("mutating routes without a declared action: " + ", ".join(unguarded))
