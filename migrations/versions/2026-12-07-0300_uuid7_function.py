"""ids: closeloop_uuid7(), the SQL twin of app.core.db.uuid7 for ids made inside SQL

PostgreSQL's own uuidv7() arrives in version 18; we support 14 and newer, so set-based
INSERT ... SELECT statements (outbox messages, delivery attempts) take their version-7 ids
from this function: the millisecond Unix time in the first 48 bits, random bits after it.

Revision ID: uuid7_function
Revises: connectors
Create Date: 2026-12-07 03:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "uuid7_function"
down_revision: str | None = "connectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A random (version 4) UUID whose first 6 bytes become the millisecond clock and whose
    # version nibble goes from 0100 to 0111 (bits 52 and 53 of the bytea); the variant stays.
    op.execute(
        """
        CREATE FUNCTION closeloop_uuid7() RETURNS uuid
        LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
            SELECT encode(
                set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(
                        floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6), 52, 1), 53, 1),
                'hex')::uuid
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION closeloop_uuid7()")
