"""The service's tables (SQLAlchemy Core). Alembic migrations in ``store/migrations`` create them;
this module is what the code reads and writes through.

Money is stored as floating point in the currency's unit, like the engine computes it; every
charge is a ledger row, and a campaign's spend on a day is kept beside its rows (``campaign_days``)
so that the budget check is one locked row, not a sum over the ledger.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

merchants = Table(
    "merchants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("merchant_id", Integer, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("title", String(500), nullable=False),
    Column("price", Float, nullable=False),
    Column("category", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("merchant_id", Integer, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("daily_budget", Float, nullable=False),
    Column("target_roi", Float, nullable=False),
    Column("roi_basis", String(20), nullable=False),
    Column("status", String(20), nullable=False),  # active | paused
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Bumped by every change: serving processes rebuild their snapshot when the sum moves (a
    # timestamp would not do: a change that waited for the write lock can carry an older one).
    Column("revision", Integer, nullable=False, server_default="0"),
    # One active campaign per item, held by the database even under concurrent requests.
    Index(
        "uq_campaigns_active_item",
        "item_id",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)

# The controller of each campaign: its current bid multiplier and its pickled policy state, so
# that a restarted service resumes where it stopped.
controllers = Table(
    "controllers",
    metadata,
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), primary_key=True),
    Column("multiplier", Float, nullable=False),
    Column("policy", String(50), nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("day", String(10), nullable=False),
    Column("updated_at", Float, nullable=False),
)

campaign_days = Table(
    "campaign_days",
    metadata,
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("spend", Float, nullable=False),
)

# Every event ever acknowledged, by its id: the idempotency key of the event API.
events = Table(
    "events",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("type", String(20), nullable=False),
    Column("received_at", Float, nullable=False),
)

impressions = Table(
    "impressions",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("decision_id", String(32), nullable=False),
    Column("slot", Integer, nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("surface", String(20), nullable=False),
    Column("time", Float, nullable=False),
    UniqueConstraint("decision_id", "slot", name="uq_impressions_ad"),
    Index("ix_impressions_campaign_time", "campaign_id", "time"),
)

clicks = Table(
    "clicks",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("decision_id", String(32), nullable=False),
    Column("slot", Integer, nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("surface", String(20), nullable=False),
    Column("time", Float, nullable=False),
    Column("price", Float, nullable=False),  # the auction's price per click
    Column("charged", Float, nullable=False),  # what the ledger took (less at a budget's edge)
    Column("pcvr", Float, nullable=False),
    Column("value", Float, nullable=False),  # predicted GMV: pCVR x price of the item
    UniqueConstraint("decision_id", "slot", name="uq_clicks_ad"),
    Index("ix_clicks_campaign_time", "campaign_id", "time"),
    Index("ix_clicks_user_item_time", "user_id", "item_id", "time"),
    Index("ix_clicks_time", "time"),
)

organic_clicks = Table(
    "organic_clicks",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("surface", String(20), nullable=False),
    Column("time", Float, nullable=False),
    Index("ix_organic_clicks_time", "time"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("click_id", String(128), primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("day", String(10), nullable=False),
    Column("amount", Float, nullable=False),
    Column("time", Float, nullable=False),
    Index("ix_ledger_campaign_day", "campaign_id", "day"),
)

orders = Table(
    "orders",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False, index=True),
    Column("user_id", String(128), nullable=True),
    Column("amount", Float, nullable=False),
    Column("time", Float, nullable=False),
    # The ad click it is attributed to, and that click's campaign and time; null when organic.
    Column("click_id", String(128), nullable=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=True, index=True),
    Column("click_time", Float, nullable=True),
)

# Which process runs the control loop: a lease renewed every tick, taken over when it lapses.
leases = Table(
    "leases",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Page views served per hour (``YYYY-MM-DDTHH``, UTC), summed over serving processes: what the
# control loop learns the day's traffic curve from.
traffic = Table(
    "traffic",
    metadata,
    Column("hour", String(13), primary_key=True),
    Column("requests", Integer, nullable=False),
)

# Slot menus the serving processes sampled from their auctions, in the engine's predicted terms
# (``api.menus``): a queue the control loop drains every tick, for the policies that plan over
# the landscape. ``value`` and ``cost`` hold one float64 per slot of the page (``nan``: absent).
menu_samples = Table(
    "menu_samples",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, nullable=False),
    Column("time", Float, nullable=False),
    Column("weight", Float, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("cost", LargeBinary, nullable=False),
    # Ids never come back: a lease holder that lapsed mid-tick deletes only what it read.
    sqlite_autoincrement=True,
)

# The platform's promotion calendar: hours of a day (UTC, ``YYYY-MM-DD``) it expects busier
# than an ordinary day's by ``traffic_factor`` (``bidding.calendar``).
promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", String(10), nullable=False, index=True),
    Column("start_hour", Float, nullable=False),
    Column("end_hour", Float, nullable=False),
    Column("traffic_factor", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)
