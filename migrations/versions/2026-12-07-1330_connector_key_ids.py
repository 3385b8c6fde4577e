"""a connector's items belong to its tool and source, not to its row

Items a connector stored were owned by the connector's id, so a connector deleted and made
again for the same tool and source (a new secret, say) could no longer update them: the tool's
next event of a response was a 404. They now belong to an id made from the tool and source
(`connector_key_id`, app/connectors/service.py), the same for every connector of that pair; the
items of the connectors there are move to it. Items of connectors deleted before this stay as
they are (nothing says which connector stored them).

Revision ID: connector_key_ids
Revises: report_case_facts
Create Date: 2026-12-07 13:30:00+00:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "connector_key_ids"
down_revision: str | None = "report_case_facts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOVE = sa.text(
    "UPDATE feedback f SET api_key_id = m.to_id "
    "FROM unnest(CAST(:from_ids AS uuid[]), CAST(:to_ids AS uuid[])) AS m(from_id, to_id) "
    "WHERE f.api_key_id = m.from_id"
)


def _key_id(tool: str, source: str) -> uuid.UUID:
    # The migration's own copy of connector_key_id: a migration must not change when the app
    # does.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"closeloop:connector:{tool}/{source}")


def _pairs() -> list[tuple[uuid.UUID, uuid.UUID]]:
    rows = op.get_bind().execute(sa.text("SELECT id, tool, source FROM connector"))
    return [(row.id, _key_id(row.tool, row.source)) for row in rows]


def _move(pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    if pairs:
        op.get_bind().execute(
            _MOVE, {"from_ids": [a for a, _ in pairs], "to_ids": [b for _, b in pairs]}
        )


def upgrade() -> None:
    _move(_pairs())


def downgrade() -> None:
    _move([(key_id, connector_id) for connector_id, key_id in _pairs()])
