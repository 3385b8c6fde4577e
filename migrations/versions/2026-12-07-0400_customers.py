"""customers: a record per customer with their identities; cases join on the record

Backfill, from the feedback already stored (oldest first): each verified external id gets a
record; a verified e-mail goes to the record of the external id it was first given with, else
to one of its own; a verified phone to its first external id's record, else its first e-mail's,
else one of its own; a claimed identity not known otherwise gets a record of its own, unverified.
(Longer chains, an e-mail linking two phones' records, are linked as items arrive from now on.)
Then each verified case is keyed by its record instead of its identity; where that would give
a customer two active cases with one team, the older keeps the record and the other its old key,
which nothing joins any more.

Revision ID: customers
Revises: uuid7_function
Create Date: 2026-12-07 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "customers"
down_revision: str | None = "uuid7_function"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status IN ('open', 'in_progress', 'waiting_on_customer')"

# Every identity of stored feedback, as first seen: by whom, and first seen beside which
# external id and e-mail (verified items only).
_SEEN = """
CREATE TEMPORARY TABLE seen AS
WITH f AS (
    SELECT id, source, channel, received_at, customer_verified AS verified,
        customer_external_id AS x, customer_email AS m, customer_phone AS p
    FROM feedback
    WHERE customer_external_id IS NOT NULL OR customer_email IS NOT NULL
        OR customer_phone IS NOT NULL
),
i AS (
    SELECT 'external_id' AS kind, x AS value, NULL::text AS with_x, NULL::text AS with_m, f.*
    FROM f WHERE x IS NOT NULL
    UNION ALL SELECT 'email', m, x, NULL, f.* FROM f WHERE m IS NOT NULL
    UNION ALL SELECT 'phone', p, x, m, f.* FROM f WHERE p IS NOT NULL
)
SELECT DISTINCT ON (value, kind) kind, value,
    bool_or(verified) OVER w AS verified,
    min(received_at) FILTER (WHERE verified) OVER w AS verified_at,
    source, channel, id AS feedback_id, received_at AS first_seen_at,
    first_value(with_x) OVER (
        PARTITION BY value, kind ORDER BY (verified AND with_x IS NOT NULL) DESC, received_at, id
    ) AS with_x,
    first_value(with_m) OVER (
        PARTITION BY value, kind ORDER BY (verified AND with_m IS NOT NULL) DESC, received_at, id
    ) AS with_m,
    bool_or(verified AND with_x IS NOT NULL) OVER w AS verified_with_x,
    bool_or(verified AND with_m IS NOT NULL) OVER w AS verified_with_m,
    closeloop_uuid7() AS own
FROM i
WINDOW w AS (PARTITION BY value, kind)
ORDER BY value, kind, received_at, id
"""
# Which record each identity goes to.
_OWNER = """
ALTER TABLE seen ADD COLUMN customer_id uuid;
UPDATE seen SET customer_id = own WHERE kind = 'external_id' OR NOT verified;
UPDATE seen s SET customer_id = x.customer_id FROM seen x
WHERE s.kind = 'email' AND s.verified AND s.verified_with_x AND x.kind = 'external_id'
    AND x.value = s.with_x AND x.verified;
UPDATE seen SET customer_id = own WHERE kind = 'email' AND customer_id IS NULL;
UPDATE seen s SET customer_id = x.customer_id FROM seen x
WHERE s.kind = 'phone' AND s.verified AND s.verified_with_x AND x.kind = 'external_id'
    AND x.value = s.with_x AND x.verified;
UPDATE seen s SET customer_id = m.customer_id FROM seen m
WHERE s.kind = 'phone' AND s.customer_id IS NULL AND s.verified AND s.verified_with_m
    AND m.kind = 'email' AND m.value = s.with_m AND m.verified;
UPDATE seen SET customer_id = own WHERE customer_id IS NULL;
INSERT INTO customer (id, created_at)
SELECT customer_id, min(first_seen_at) FROM seen GROUP BY customer_id;
INSERT INTO customer_identity (id, customer_id, kind, value, verified, verified_at, source,
    channel, feedback_id, first_seen_at)
SELECT closeloop_uuid7(), customer_id, kind, value, verified, verified_at, source, channel,
    feedback_id, first_seen_at
FROM seen
"""
# Cases keyed by their record: the key a case joined on was its first item's first identity
# (external id, else e-mail, else phone), as its stored columns give it.
_REKEY = f"""
WITH k AS (
    SELECT c.id, c.{_ACTIVE} AS active, c.opened_for_team, c.created_at, i.customer_id
    FROM feedback_case c
    JOIN customer_identity i ON i.value = c.customer_key AND i.kind = CASE
        WHEN c.customer_key = c.customer_external_id THEN 'external_id'
        WHEN c.customer_key = c.customer_email THEN 'email' ELSE 'phone' END
    WHERE c.customer_key IS NOT NULL
),
r AS (
    SELECT id, customer_id, active AND row_number() OVER (
        PARTITION BY customer_id, opened_for_team, active ORDER BY created_at, id
    ) > 1 AS duplicate
    FROM k
)
UPDATE feedback_case c SET customer_key = r.customer_id::text
FROM r WHERE r.id = c.id AND NOT r.duplicate
"""
# Back to identities: a case's key is its external id, else e-mail, else phone; where that
# gives a customer two active cases with one team, the later one joins nothing.
_UNKEY = f"""
WITH k AS (
    SELECT c.id, COALESCE(c.customer_external_id, c.customer_email, c.customer_phone) AS key,
        c.{_ACTIVE} AS active, c.opened_for_team, c.created_at
    FROM feedback_case c JOIN customer r ON r.id::text = c.customer_key
),
r AS (
    SELECT id, CASE WHEN active AND row_number() OVER (
        PARTITION BY key, opened_for_team, active ORDER BY created_at, id
    ) > 1 THEN NULL ELSE key END AS key
    FROM k
)
UPDATE feedback_case c SET customer_key = r.key FROM r WHERE r.id = c.id
"""


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
    )
    op.create_table(
        "customer_identity",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("feedback_id", sa.Uuid(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detached_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_identity_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_identity")),
        sa.UniqueConstraint("value", "kind", name=op.f("uq_customer_identity_value_kind")),
    )
    op.create_index("ix_customer_identity_customer", "customer_identity", ["customer_id"])
    op.execute(_SEEN)
    for statement in _OWNER.split(";"):
        op.execute(statement)
    op.execute(_REKEY)
    op.execute("DROP TABLE seen")


def downgrade() -> None:
    op.execute(_UNKEY)
    op.drop_index("ix_customer_identity_customer", table_name="customer_identity")
    op.drop_table("customer_identity")
    op.drop_table("customer")
