"""The app's own route table, for tests that must cover every route and verb, including
routes added later: iterate them, and build a request for each from its OpenAPI operation
(path and query parameters, a minimal valid JSON body)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from botwarden.api.guard import MUTATING, api_routes, route_action
from botwarden.policy import Action

# The only /api routes a caller may use without a token (api.md, "Conventions").
PUBLIC = {("POST", "/api/auth/register"), ("POST", "/api/auth/login"),
          ("GET", "/api/health"), ("GET", "/api/ready")}


@dataclass(frozen=True)
class Endpoint:
    method: str
    route: APIRoute

    @property
    def path(self) -> str:
        return self.route.path

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING

    @property
    def action(self) -> Action | None:
        return route_action(self.route)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> Iterator[Endpoint]:
    """Every (verb, route) of the app, in a stable order."""
    found = [Endpoint(method, route) for route in api_routes(app)
             for method in sorted(route.methods - {"HEAD", "OPTIONS"})]
    yield from sorted(found, key=lambda e: (e.path, e.method))


def protected(app: FastAPI) -> Iterator[Endpoint]:
    """Every /api endpoint that needs a token."""
    for endpoint in endpoints(app):
        if endpoint.path.startswith("/api/") and (endpoint.method, endpoint.path) not in PUBLIC:
            yield endpoint


def path_params(endpoint: Endpoint) -> list[str]:
    return [p.name for p in endpoint.route.dependant.path_params]


def operation(app: FastAPI, endpoint: Endpoint) -> dict[str, Any]:
    return app.openapi()["paths"][endpoint.path][endpoint.method.lower()]  # type: ignore[no-any-return]


class Schemas:
    """Minimal valid instances of the app's JSON schemas: required fields only, each with the
    first value its schema allows."""

    def __init__(self, app: FastAPI) -> None:
        self.components = app.openapi().get("components", {}).get("schemas", {})

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def minimal(self, schema: Mapping[str, Any], depth: int = 0) -> Any:
        schema = self.resolve(schema)
        for key in ("const", "default"):
            if key in schema:
                return schema[key]
        if schema.get("enum"):
            return schema["enum"][0]
        if schema.get("examples"):
            return schema["examples"][0]
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                options = [s for s in schema[key] if self.resolve(s).get("type") != "null"]
                return self.minimal(options[0] if options else schema[key][0], depth + 1)
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            if depth > 8:
                return {}
            props = schema.get("properties", {})
            return {name: self.minimal(props.get(name, {}), depth + 1)
                    for name in schema.get("required", [])}
        if kind == "array":
            item = schema.get("items", {})
            return [self.minimal(item, depth + 1) for _ in range(schema.get("minItems", 0))]
        if kind == "string":
            return _string(schema)
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
            return int(low) if kind == "integer" else float(low)
        if kind == "boolean":
            return False
        return None

    def body(self, app: FastAPI, endpoint: Endpoint) -> Any:
        content = operation(app, endpoint).get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        return None if schema is None else self.minimal(schema)

    def body_properties(self, app: FastAPI, endpoint: Endpoint) -> set[str]:
        content = operation(app, endpoint).get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        return set(self.resolve(schema).get("properties", {})) if schema else set()

    def query(self, app: FastAPI, endpoint: Endpoint) -> dict[str, Any]:
        """The required query parameters, each with a minimal value."""
        return {p["name"]: self.minimal(p.get("schema", {}))
                for p in operation(app, endpoint).get("parameters", [])
                if p.get("in") == "query" and p.get("required")}

    def query_names(self, app: FastAPI, endpoint: Endpoint) -> set[str]:
        return {p["name"] for p in operation(app, endpoint).get("parameters", [])
                if p.get("in") == "query"}


def _string(schema: Mapping[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "email":
        return "someone@example.com"
    if fmt == "date-time":
        return datetime.now(UTC).isoformat()
    if fmt == "date":
        return datetime.now(UTC).date().isoformat()
    return "x" * max(1, int(schema.get("minLength", 1)))


def fill_path(endpoint: Endpoint, values: Mapping[str, str]) -> str:
    """The route's path with each `{param}` (or `{param:converter}`) replaced."""
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: values[m.group(1)], endpoint.path)
