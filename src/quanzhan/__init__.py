"""Quanzhan: a full-site promotion engine for e-commerce marketplaces."""

from quanzhan.domain import CampaignMode, RoiBasis, Surface
from quanzhan.errors import ConfigError, QuanzhanError, ScenarioError

__version__ = "0.1.0"

__all__ = [
    "CampaignMode",
    "ConfigError",
    "QuanzhanError",
    "RoiBasis",
    "ScenarioError",
    "Surface",
    "__version__",
]
