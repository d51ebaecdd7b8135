"""The policies that ship, by name. ``DEFAULT_POLICY`` steers full-site campaigns unless told
otherwise; the others are baselines kept for comparison and as campaign modes."""

from __future__ import annotations

from quanzhan.bidding.dual import DualPacing
from quanzhan.bidding.landscape import LandscapePacing
from quanzhan.bidding.online_lp import OnlineLp
from quanzhan.bidding.pacing import ProportionalPacing
from quanzhan.bidding.pid import PidRoi
from quanzhan.bidding.policy import Policy, PolicyFactory
from quanzhan.errors import ConfigError

DEFAULT_POLICY = "landscape"

POLICIES: dict[str, PolicyFactory] = {
    "dual": DualPacing,
    "landscape": LandscapePacing,
    "online_lp": OnlineLp,
    "pid_roi": PidRoi,
    "proportional": ProportionalPacing,
}


def make_policy(name: str) -> Policy:
    """A fresh policy of that name."""
    try:
        factory = POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise ConfigError(f"unknown policy {name!r}; known: {known}") from None
    return factory()
