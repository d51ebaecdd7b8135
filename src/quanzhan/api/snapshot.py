"""What a serving process decides with: the catalog as the engine's columns, and the engine.

The service's catalog changes while it runs (merchants add items and campaigns, pause and resume
them), while the engine works on fixed tables whose rows are indices. A ``Snapshot`` freezes one
version of the catalog: database ids mapped to rows, titles to term ids, categories to category
ids, and an ``Engine`` built over them. A new snapshot is built when the catalog changes; decisions
in flight finish on the one they started with.

Shoppers are hashed into a fixed number of profile rows, so the service needs no user table and
its memory does not grow with the number of shoppers; the rare collision merely shares a profile.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import CampaignMode, CampaignTable, ItemTable, RoiBasis
from quanzhan.engine.config import EngineConfig
from quanzhan.engine.decision import Engine

USER_ROWS = 1 << 18
MAX_SLOTS = 10
_MAX_TITLE_TERMS = 24
_MAX_QUERY_TERMS = 8
_WORD = re.compile(r"\w+", re.UNICODE)


def terms(text: str) -> list[str]:
    """Lower-cased words; CJK text without spaces splits into single characters as well, so a
    query word matches inside a title."""
    words = _WORD.findall(text.lower())
    out: list[str] = []
    for word in words:
        out.append(word)
        if len(word) > 1 and not word.isascii():
            out.extend(ch for ch in word if not ch.isascii())
    return out


def user_row(user_id: str | None) -> int:
    if user_id is None:
        return -1
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % USER_ROWS


@dataclass(frozen=True)
class Snapshot:
    """One version of the catalog, ready to decide on."""

    version: tuple[int, int, int]
    item_ids: NDArray[np.int64]  # row -> database id
    item_rows: dict[int, int]  # database id -> row
    campaign_ids: NDArray[np.int64]  # campaign row -> database id
    campaign_budget: NDArray[np.float64]
    vocabulary: dict[str, int]
    engine: Engine | None  # None while no campaign is active
    # The same ids and prices as plain lists, for the per-ad loop of every decision.
    item_id_list: list[int]
    item_price_list: list[float]
    campaign_id_list: list[int]

    @classmethod
    def build(
        cls,
        *,
        version: tuple[int, int, int],
        item_rows_db: list[dict[str, Any]],
        campaign_rows_db: list[dict[str, Any]],
        config: EngineConfig,
    ) -> Snapshot:
        item_ids = np.array([r["id"] for r in item_rows_db], dtype=np.int64)
        item_rows = {int(i): row for row, i in enumerate(item_ids)}
        categories = sorted({r["category"] for r in item_rows_db})
        category_id = {c: i for i, c in enumerate(categories)}
        vocabulary: dict[str, int] = {}
        title_terms = np.full((len(item_rows_db), _MAX_TITLE_TERMS), -1, dtype=np.int32)
        for row, record in enumerate(item_rows_db):
            ids = [vocabulary.setdefault(t, len(vocabulary)) for t in terms(record["title"])]
            unique = list(dict.fromkeys(ids))[:_MAX_TITLE_TERMS]
            title_terms[row, : len(unique)] = unique
        price = np.array([r["price"] for r in item_rows_db], dtype=np.float64)
        table = ItemTable(
            category=np.array([category_id[r["category"]] for r in item_rows_db], dtype=np.int32),
            merchant=np.array([r["merchant_id"] for r in item_rows_db], dtype=np.int32),
            price=price,
            title_terms=title_terms,
            n_categories=max(len(categories), 1),
            n_terms=max(len(vocabulary), 1),
        )
        # A campaign reads its item from the same snapshot of the database; were one missing,
        # the campaign waits for the next rebuild rather than breaking this one.
        campaign_rows_db = [r for r in campaign_rows_db if r["item_id"] in item_rows]
        campaign_ids = np.array([r["id"] for r in campaign_rows_db], dtype=np.int64)
        n = len(campaign_rows_db)
        budget = np.array([r["daily_budget"] for r in campaign_rows_db], dtype=np.float64)
        engine = None
        if n:
            campaigns = CampaignTable(
                item=np.array([item_rows[r["item_id"]] for r in campaign_rows_db], dtype=np.int32),
                mode=np.full(n, CampaignMode.FULL_SITE, dtype=np.int8),
                budget=budget,
                target_roi=np.array([r["target_roi"] for r in campaign_rows_db], dtype=np.float64),
                roi_basis=np.array(
                    [RoiBasis[r["roi_basis"].upper()] for r in campaign_rows_db], dtype=np.int8
                ),
                manual_cpc=np.zeros(n),
            )
            engine = Engine(
                config=config,
                items=table,
                campaigns=campaigns,
                n_users=USER_ROWS,
                max_slots=MAX_SLOTS,
            )
        return cls(
            version=version,
            item_ids=item_ids,
            item_rows=item_rows,
            campaign_ids=campaign_ids,
            campaign_budget=budget,
            vocabulary=vocabulary,
            engine=engine,
            item_id_list=item_ids.tolist(),
            item_price_list=price.tolist(),
            campaign_id_list=campaign_ids.tolist(),
        )

    def query_terms(self, query: str | None) -> list[int]:
        if not query:
            return []
        known = [self.vocabulary[t] for t in terms(query) if t in self.vocabulary]
        return list(dict.fromkeys(known))[:_MAX_QUERY_TERMS]

    def learn_clicks(self, user_ids: list[str | None], item_ids: list[int]) -> None:
        """Fold clicks into the shoppers' interest profiles (items outside the snapshot skipped)."""
        if self.engine is None:
            return
        users, categories = [], []
        for user, item in zip(user_ids, item_ids, strict=True):
            row = self.item_rows.get(item)
            if user is not None and row is not None:
                users.append(user_row(user))
                categories.append(int(self.engine.items.category[row]))
        if users:
            self.engine.profiles.add(
                user=np.array(users, dtype=np.int32), category=np.array(categories, dtype=np.int32)
            )
