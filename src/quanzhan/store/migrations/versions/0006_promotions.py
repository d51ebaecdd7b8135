"""Promotions: the platform's calendar of busier hours, for the traffic forecast and the policies.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("start_hour", sa.Float(), nullable=False),
        sa.Column("end_hour", sa.Float(), nullable=False),
        sa.Column("traffic_factor", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_promotions_day", "promotions", ["day"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_promotions_day", table_name="promotions")
    op.drop_table("promotions")
