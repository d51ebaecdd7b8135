"""Scenario configuration: one validated object per simulated market, loaded by name or from a file.

A scenario is a YAML document whose sections mirror the market's parts (catalog, users, traffic,
behaviour, campaigns) plus the engine's settings. Named scenarios ship in ``sim/scenarios``;
``load_scenario`` takes a name or a path and raises ``ScenarioError`` with one clear line on any
problem.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quanzhan.domain import SURFACE_NAMES
from quanzhan.engine.config import EngineConfig
from quanzhan.errors import ScenarioError

Positive = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0, le=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CatalogConfig(_Section):
    """Items, categories and merchants."""

    n_items: int = Field(gt=0)
    n_categories: int = Field(gt=0, le=10_000)
    n_merchants: int = Field(gt=0)
    merchant_zipf: float = Field(default=1.2, gt=1.0)
    latent_dim: int = Field(default=16, ge=2, le=256)
    category_price_median: tuple[Positive, Positive] = (15.0, 300.0)
    price_sigma: float = Field(default=0.5, ge=0)
    terms_per_category: int = Field(default=12, ge=2)
    shared_terms: int = Field(default=40, ge=0)
    title_terms: int = Field(default=4, ge=1, le=16)
    quality_sigma: float = Field(default=0.5, ge=0)

    @model_validator(mode="after")
    def _check(self) -> CatalogConfig:
        if self.n_items < self.n_categories:
            raise ValueError("n_items must be at least n_categories")
        if self.category_price_median[0] > self.category_price_median[1]:
            raise ValueError("category_price_median must be (low, high)")
        return self


class UsersConfig(_Section):
    """Shoppers, their interests and how often they come."""

    n_users: int = Field(gt=0)
    max_interests: int = Field(default=3, ge=1, le=8)
    activity_sigma: float = Field(default=1.0, ge=0)
    history_mean: float = Field(default=8.0, ge=0)
    offsite_match_rate: Share = 0.5


def _default_mix() -> dict[str, float]:
    return {
        "search": 0.35,
        "home_feed": 0.30,
        "cart_feed": 0.08,
        "post_purchase": 0.05,
        "detail": 0.17,
        "offsite": 0.05,
    }


# Share of a day's traffic in each hour: a trough around 04:00, a lunch bump, the evening peak.
DEFAULT_DIURNAL: tuple[float, ...] = (
    2.2, 1.4, 0.9, 0.6, 0.5, 0.6, 1.2, 2.4, 3.6, 4.3, 4.6, 4.9,
    5.3, 5.0, 4.6, 4.5, 4.6, 4.9, 5.3, 6.0, 7.1, 7.8, 7.2, 4.5,
)  # fmt: skip


class PageConfig(_Section):
    """One surface's page: how many ad slots and organic results a page view shows."""

    ad_slots: int = Field(ge=0, le=16)
    organic_slots: int = Field(ge=0, le=64)


def _default_pages() -> dict[str, PageConfig]:
    slots = {
        "search": (3, 8),
        "home_feed": (3, 8),
        "cart_feed": (2, 6),
        "post_purchase": (2, 6),
        "detail": (2, 6),
        "offsite": (1, 0),
    }
    return {name: PageConfig(ad_slots=a, organic_slots=o) for name, (a, o) in slots.items()}


class SurgeConfig(_Section):
    """A promotion window: more page views and readier buyers between two hours of one day.
    ``announced``: the platform puts it on its promotion calendar, with its traffic factor,
    for the bidding to plan on (``bidding.calendar``); the conversion factor it does not
    announce: the engine's models learn it. An unannounced surge is one nobody planned."""

    day: int = Field(ge=0)
    start_hour: float = Field(ge=0, lt=24)
    end_hour: float = Field(gt=0, le=24)
    traffic_factor: float = Field(default=3.0, gt=0, le=100)
    conversion_factor: float = Field(default=1.3, gt=0, le=10)
    announced: bool = True

    @model_validator(mode="after")
    def _check(self) -> SurgeConfig:
        if self.end_hour <= self.start_hour:
            raise ValueError("a surge must end after it starts")
        return self


class TrafficConfig(_Section):
    """How many page views, on which surfaces, at what time of day."""

    requests_per_day: int = Field(gt=0)
    days: int = Field(default=1, ge=1, le=60)
    surface_mix: dict[str, float] = Field(default_factory=_default_mix)
    diurnal: tuple[float, ...] = DEFAULT_DIURNAL
    pages: dict[str, PageConfig] = Field(default_factory=_default_pages)
    tick_minutes: float = Field(default=15.0, gt=0, le=1440)
    surges: tuple[SurgeConfig, ...] = ()
    # Ordinary days the platform ran before the first simulated one (``sim.past``): its ad log
    # and the models learned from it carry over; nothing of them is measured.
    warmup_days: int = Field(default=0, ge=0, le=7)

    @model_validator(mode="after")
    def _check(self) -> TrafficConfig:
        if any(surge.day >= self.days for surge in self.surges):
            raise ValueError("a surge falls after the last simulated day")
        for name, mapping in (("surface_mix", self.surface_mix), ("pages", self.pages)):
            unknown = set(mapping) - set(SURFACE_NAMES)
            if unknown:
                raise ValueError(f"{name} names unknown surfaces: {sorted(unknown)}")
        if set(self.pages) != set(SURFACE_NAMES):
            raise ValueError(f"pages must describe every surface: {list(SURFACE_NAMES)}")
        if any(v < 0 for v in self.surface_mix.values()) or sum(self.surface_mix.values()) <= 0:
            raise ValueError("surface_mix shares must be non-negative and not all zero")
        if len(self.diurnal) != 24 or min(self.diurnal) < 0 or sum(self.diurnal) <= 0:
            raise ValueError("diurnal must hold 24 non-negative hourly weights, not all zero")
        if self.tick_minutes % 1 or 1440 % self.tick_minutes:
            raise ValueError("tick_minutes must be a whole number of minutes dividing 1440")
        return self


class BehaviourConfig(_Section):
    """The hidden truth of how shoppers click and buy. The engine never reads it."""

    ctr_mean: Annotated[float, Field(gt=0, lt=0.5)] = 0.04
    cvr_mean: Annotated[float, Field(gt=0, lt=0.5)] = 0.01
    affinity_weight: float = Field(default=0.9, ge=0)
    cvr_affinity_weight: float = Field(default=0.6, ge=0)
    price_elasticity: float = Field(default=0.5, ge=0)
    search_match_weight: float = Field(default=1.2, ge=0)
    position_decay: Annotated[float, Field(gt=0, le=1)] = 0.85
    order_delay_median_minutes: Positive = 20.0
    order_delay_sigma: float = Field(default=1.2, ge=0)
    order_delay_max_hours: Positive = 48.0


class EntrantConfig(_Section):
    """Campaigns that enter mid-run: a competitor arriving with a large budget."""

    count: int = Field(gt=0)
    day: int = Field(default=0, ge=0)
    hour: float = Field(default=12.0, ge=0, lt=24)
    budget: float = Field(gt=0)
    target_roi: float = Field(gt=0)


class CampaignsConfig(_Section):
    """The advertisers: full-site ROI campaigns of many budgets and targets, and manual CPC."""

    n_campaigns: int = Field(gt=0)
    manual_share: Share = 0.2
    ad_only_share: Share = 0.1
    budget_range: tuple[Positive, Positive] = (5.0, 300.0)
    target_roi_range: tuple[Positive, Positive] = (1.5, 6.0)
    manual_cpc_value_share: tuple[Positive, Positive] = (0.1, 0.6)
    new_item_share: Share = 0.0
    entrants: tuple[EntrantConfig, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> CampaignsConfig:
        for name in ("budget_range", "target_roi_range", "manual_cpc_value_share"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be (low, high)")
        return self


class ScenarioConfig(_Section):
    """A whole simulated market and the engine settings it runs with."""

    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    catalog: CatalogConfig
    users: UsersConfig
    traffic: TrafficConfig
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)
    campaigns: CampaignsConfig
    engine: EngineConfig = Field(default_factory=EngineConfig)

    @model_validator(mode="after")
    def _check(self) -> ScenarioConfig:
        entrants = sum(e.count for e in self.campaigns.entrants)
        if self.campaigns.n_campaigns + entrants > self.catalog.n_items:
            raise ValueError("n_campaigns cannot exceed n_items: one campaign per item")
        if any(e.day >= self.traffic.days for e in self.campaigns.entrants):
            raise ValueError("an entrant arrives after the last simulated day")
        return self


def scenario_names() -> list[str]:
    """The scenarios that ship with the package."""
    folder = resources.files("quanzhan.sim").joinpath("scenarios")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_scenario(name_or_path: str) -> ScenarioConfig:
    """A named scenario (``tiny``, ``default``, ``large``, ...) or a YAML/JSON scenario file."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml", ".json"} or path.exists():
        return _parse(_read(path), source=str(path))
    if name_or_path not in scenario_names():
        known = ", ".join(scenario_names())
        raise ScenarioError(f"unknown scenario {name_or_path!r}; known: {known}")
    text = resources.files("quanzhan.sim").joinpath(f"scenarios/{name_or_path}.yaml").read_text()
    return _parse(text, source=name_or_path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"cannot read scenario file {path}: {error}") from error


def _parse(text: str, *, source: str) -> ScenarioConfig:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError(
            f"scenario {source} is not valid YAML: {_yaml_problem(error)}"
        ) from error
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {source} must be a mapping of sections")
    try:
        return ScenarioConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ScenarioError(f"scenario {source}: {where}: {first['msg']}") from error


def _yaml_problem(error: yaml.YAMLError) -> str:
    """``<problem> at line L, column C`` from a YAML error, on one line."""
    problem = getattr(error, "problem", None) or type(error).__name__
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"
