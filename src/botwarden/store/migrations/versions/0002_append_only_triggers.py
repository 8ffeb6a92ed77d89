"""Append-only kill events and audit log, enforced by the database itself.

UPDATE is always refused. DELETE is refused while the parent row still exists, so a
row can leave only with its bot or account (ON DELETE CASCADE), never by itself.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, parent table, foreign key column)
APPEND_ONLY = (("kill_events", "bots", "bot_id"), ("audit_log", "accounts", "account_id"))


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, parent, column in APPEND_ONLY:
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {parent} WHERE id = OLD.{column}) "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
        else:
            op.execute(
                f"""
                CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$
                BEGIN
                  IF TG_OP = 'UPDATE' THEN
                    RAISE EXCEPTION '{table} is append-only';
                  END IF;
                  IF EXISTS (SELECT 1 FROM {parent} WHERE id = OLD.{column}) THEN
                    RAISE EXCEPTION '{table} is append-only';
                  END IF;
                  RETURN OLD;
                END $$ LANGUAGE plpgsql
                """
            )
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, _parent, _column in APPEND_ONLY:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
