"""Organic clicks: the platform's own results that shoppers clicked, which teach their profiles.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organic_clicks",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("surface", sa.String(20), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
    )
    op.create_index("ix_organic_clicks_time", "organic_clicks", ["time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_organic_clicks_time", table_name="organic_clicks")
    op.drop_table("organic_clicks")
