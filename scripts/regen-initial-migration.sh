#!/usr/bin/env bash
# Regenerate migration 0001 from the models. Only while nothing has been released: once a
# database in use is at 0001, schema changes go into new revisions instead.
set -euo pipefail
cd "$(dirname "$0")/.."
V=src/botwarden/store/migrations/versions
tmp=$(mktemp -d)
mv $V/0002_append_only_triggers.py "$tmp"/
rm -f $V/0001_initial_schema.py
uv run python - <<'PY'
from alembic import command
from botwarden.store.migrate import alembic_config
command.revision(alembic_config("sqlite:///" + __import__("tempfile").mktemp()),
                 message="initial schema", autogenerate=True, rev_id="0001")
PY
mv "$tmp"/0002_append_only_triggers.py $V/
uv run ruff format -q $V/0001_initial_schema.py || true
