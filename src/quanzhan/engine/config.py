"""The engine's settings: retrieval depth, per-surface auction rules, model refresh and priors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quanzhan.domain import SURFACE_NAMES


class SurfaceRules(BaseModel):
    """The auction rules of one surface: the reserve price per click and the relevance floor."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    reserve: float = Field(default=0.05, ge=0)
    relevance_floor: float = Field(default=0.002, ge=0, lt=1)


def _default_rules() -> dict[str, SurfaceRules]:
    reserves = {
        "search": 0.08,
        "home_feed": 0.05,
        "cart_feed": 0.06,
        "post_purchase": 0.05,
        "detail": 0.06,
        "offsite": 0.03,
    }
    return {name: SurfaceRules(reserve=r) for name, r in reserves.items()}


class EngineConfig(BaseModel):
    """Everything the decision path and its learning need, with production-sane defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Candidates per request (K). More find a little more of the best supply but let the
    # auction pick the most overrated of more noisy predictions: on `default`, 100 cost 10% of
    # ad GMV against 48 (docs/matching.md).
    candidates: int = Field(default=48, ge=1, le=1000)
    # Whether search shows only ads that answer the query (a word of it in the title, or its
    # topic). Off by default: shoppers click a well-liked item off the query too, less often,
    # and the models rank by that (the `retrieval` feature); on `default` the rule cut recall at
    # 100 from 0.40 to 0.26 for no more ad GMV (docs/matching.md).
    search_requires_match: bool = False
    # Rank of the learned category affinity (``engine.affinity``).
    embedding_dim: int = Field(default=24, ge=2, le=256)
    surfaces: dict[str, SurfaceRules] = Field(default_factory=_default_rules)
    attribution_window_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    refresh_hours: float = Field(default=2.0, gt=0)
    first_refresh_hours: float = Field(default=1.0, gt=0)
    # Clicks younger than this are not learned from for purchases. The younger ones the model
    # does learn from count as the share of their orders that its learned delay distribution
    # says has arrived (``engine.prediction``), so none need be left out.
    conversion_maturity_hours: float = Field(default=0.0, ge=0)
    max_training_rows: int = Field(default=400_000, ge=1000)
    prior_ctr: float = Field(default=0.03, gt=0, lt=1)
    prior_cvr: float = Field(default=0.01, gt=0, lt=1)
    prior_position_decay: float = Field(default=0.8, gt=0, le=1)
    l2: float = Field(default=1.0, ge=0)
    # How hard the purchase model's per-surface weights are pulled towards the shared ones, in
    # clicks: a surface's few dozen orders a day cannot tell its own slopes from noise (unpooled,
    # post-purchase came to weigh the shopper's interest four times as much as the others, and
    # served most of its auctions a tenth of their purchase odds: ``docs/matching.md``).
    purchase_deviation_l2: float = Field(default=300.0, ge=0)
    # The policy steering full-site campaigns: the registry's default (``bidding.registry``).
    policy: str = Field(default="landscape", min_length=1)

    @model_validator(mode="after")
    def _check(self) -> EngineConfig:
        if set(self.surfaces) != set(SURFACE_NAMES):
            raise ValueError(f"surfaces must give rules for every surface: {list(SURFACE_NAMES)}")
        return self

    def reserve_by_surface(self) -> list[float]:
        return [self.surfaces[name].reserve for name in SURFACE_NAMES]

    def floor_by_surface(self) -> list[float]:
        return [self.surfaces[name].relevance_floor for name in SURFACE_NAMES]
