"""sites: the plants of a group, and the site of every source

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

A group of plants forwards each plant's rows to a central store (DESIGN §8), so every
source belongs to a site:

- ``sites``: one row per site (``name`` the key, used in NATS subject names), its IANA
  ``time_zone`` (the default zone of its sources' naive timestamps and of the console's
  times), its ``shifts`` (JSON list) and a description;
- ``data_source_registry.site``: NOT NULL, referencing ``sites.name``. Sources stored
  before this revision get the process's site (``FACTORYSYNC_SITE``, handed over by
  :func:`factorysync.store.db.upgrade`; ``main`` when run by plain ``alembic``), and
  that site is created without a zone. The column's database default is ``main`` (a
  row inserted with plain SQL that names no site), so the ``main`` site always exists.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

REGISTRY = "data_source_registry"
SITES = "sites"
FALLBACK_SITE = "main"
NOW = sa.text("CURRENT_TIMESTAMP")
TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
FK = "fk_data_source_registry_site_sites"


def _process_site() -> str:
    site = context.config.attributes.get("site") if context.config else None
    return str(site or FALLBACK_SITE)


def upgrade() -> None:
    op.create_table(
        SITES,
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("shifts", JSON, nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, server_default=NOW, nullable=True),
        sa.Column("updated_at", TIME, server_default=NOW, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_sites"),
    )
    site = _process_site()
    sites = sa.table(SITES, sa.column("name", sa.String()))
    names = sorted({FALLBACK_SITE, site})
    op.bulk_insert(sites, [{"name": name} for name in names])
    op.add_column(
        REGISTRY,
        sa.Column("site", sa.String(length=32), nullable=True, server_default=FALLBACK_SITE),
    )
    op.get_bind().execute(sa.text(f"UPDATE {REGISTRY} SET site = :site").bindparams(site=site))
    with op.batch_alter_table(REGISTRY) as batch:
        batch.alter_column("site", existing_type=sa.String(length=32), nullable=False)
        batch.create_foreign_key(FK, SITES, ["site"], ["name"], onupdate="CASCADE")
        batch.create_index("ix_data_source_registry_site", ["site"])


def downgrade() -> None:
    with op.batch_alter_table(REGISTRY) as batch:
        batch.drop_index("ix_data_source_registry_site")
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("site")
    op.drop_table(SITES)
