"""The summary of a run: platform totals, prediction quality, and every campaign's outcome.

This is the dictionary written to ``summary.json`` and rendered by ``quanzhan.report``. Its
invariants: the campaigns' spend adds up to ``cmr``, and ``gmv_total = gmv_ad + gmv_organic``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quanzhan.domain import SURFACE_NAMES, CampaignMode, RoiBasis
from quanzhan.sim.evaluation import PredictionRecord
from quanzhan.sim.run import SimulationResult

# On expected values a campaign meets its target at 98% of it (the benchmark's rule); realized
# ROI, noisy with a handful of orders a day, is held to the full target.
ROI_MET_TOLERANCE = 0.98
# Periods a run's calibration over time is cut into (two hours each on a one-day run).
CALIBRATION_PERIODS = 12


def build_summary(result: SimulationResult, *, wall_seconds: float) -> dict[str, Any]:
    stats = result.stats
    platform = {m: v.sum() for m, v in stats.platform.items()}
    cmr = float(result.ledger.rows().amount.sum())
    gmv_ad, gmv_organic = float(platform["gmv_ad"]), float(platform["gmv_organic"])
    campaigns = _campaigns(result)
    return {
        "scenario": result.config.name,
        "seed": result.seed,
        "policy": result.policy,
        "days": result.config.traffic.days,
        "requests": int(platform["requests"]),
        "impressions": int(platform["impressions"]),
        "clicks": int(platform["clicks"]),
        "orders": int(platform["orders"] + platform["organic_orders"]),
        "orders_ad": int(platform["orders"]),
        "organic_impressions": int(platform["organic_impressions"]),
        "organic_clicks": int(platform["organic_clicks"]),
        "gmv_total": gmv_ad + gmv_organic,
        "gmv_ad": gmv_ad,
        "gmv_organic": gmv_organic,
        "cmr": cmr,
        "take_rate": cmr / (gmv_ad + gmv_organic) if gmv_ad + gmv_organic > 0 else None,
        "unpaid_clicks": result.free_clicks,
        "model_refreshes": result.refreshes,
        "wall_seconds": round(wall_seconds, 3),
        "prediction": {
            "pctr": _prediction(result.click_prediction, days=result.config.traffic.days),
            "pcvr": _prediction(result.purchase_prediction, days=result.config.traffic.days),
        },
        "retrieval": result.retrieval.report(),
        "campaign_totals": _campaign_totals(campaigns),
        "by_hour": _by_hour(result),
        "by_surface": _by_surface(result),
        "campaigns": campaigns,
    }


def _prediction(record: PredictionRecord, *, days: int) -> dict[str, Any]:
    """The record's metrics, and its calibration per surface over ``CALIBRATION_PERIODS``
    equal periods of the run: a model can be right over the day and wrong in every hour."""
    hours = 24.0 * days / CALIBRATION_PERIODS
    out = record.report()
    out["calibration_over_time"] = {
        "hours": hours,
        "by_surface": record.calibration_over_time(hours=hours, periods=CALIBRATION_PERIODS),
    }
    return out


def _campaigns(result: SimulationResult) -> list[dict[str, Any]]:
    table = result.view.campaigns
    stats = result.stats
    spend = np.bincount(
        result.ledger.rows().campaign, weights=result.ledger.rows().amount, minlength=len(table)
    )
    gmv_ad = stats.campaign_totals("gmv_ad")
    organic = stats.organic_gmv()
    expected = result.oracle.value.sum(axis=1)
    clicks = stats.campaign_totals("clicks")
    impressions = stats.campaign_totals("impressions")
    rows = []
    for c in range(len(table)):
        full_site = table.roi_basis[c] == RoiBasis.FULL_SITE
        gmv_total = gmv_ad[c] + organic[c]
        basis_gmv = gmv_total if full_site else gmv_ad[c]
        basis_expected = expected[c] + (organic[c] if full_site else 0.0)
        rows.append(
            {
                "id": c,
                "item": int(table.item[c]),
                "mode": CampaignMode(int(table.mode[c])).label,
                "roi_basis": RoiBasis(int(table.roi_basis[c])).label,
                "budget": float(table.budget[c]) * result.config.traffic.days,
                "target_roi": float(table.target_roi[c]),
                "manual_cpc": float(table.manual_cpc[c]) or None,
                "impressions": int(impressions[c]),
                "clicks": int(clicks[c]),
                "spend": float(spend[c]),
                "gmv_ad": float(gmv_ad[c]),
                "gmv_total": float(gmv_total),
                "gmv_ad_expected": float(expected[c]),
                "roi": float(basis_gmv / spend[c]) if spend[c] > 0 else None,
                "roi_expected": float(basis_expected / spend[c]) if spend[c] > 0 else None,
            }
        )
    return rows


def _campaign_totals(campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    auto = [c for c in campaigns if c["mode"] == CampaignMode.FULL_SITE.label]
    spent = [c for c in auto if c["spend"] > 0]
    met = [c for c in spent if c["roi"] >= c["target_roi"]]
    met_expected = [c for c in spent if c["roi_expected"] >= ROI_MET_TOLERANCE * c["target_roi"]]
    use = [c["spend"] / c["budget"] for c in campaigns]
    return {
        "count": len(campaigns),
        "full_site": len(auto),
        "manual_cpc": len(campaigns) - len(auto),
        "roi_met_share": len(met) / len(spent) if spent else None,
        "roi_met_share_expected": len(met_expected) / len(spent) if spent else None,
        "budget_use_median": float(np.median(use)) if use else None,
        "budget_exhausted": sum(1 for c in campaigns if c["spend"] >= c["budget"]),
    }


def _by_hour(result: SimulationResult) -> dict[str, list[float]]:
    platform = result.stats.platform
    return {
        "hour": list(range(result.stats.n_hours)),  # the last one: orders after the close
        "requests": platform["requests"].sum(axis=0).tolist(),
        "spend": platform["spend"].sum(axis=0).tolist(),
        "gmv_ad": platform["gmv_ad"].sum(axis=0).tolist(),
        "gmv_organic": platform["gmv_organic"].sum(axis=0).tolist(),
    }


def _by_surface(result: SimulationResult) -> dict[str, dict[str, float]]:
    platform = result.stats.platform
    return {
        name: {
            "requests": float(platform["requests"][s].sum()),
            "impressions": float(platform["impressions"][s].sum()),
            "clicks": float(platform["clicks"][s].sum()),
            "spend": float(platform["spend"][s].sum()),
            "orders": float(platform["orders"][s].sum()),
            "gmv_ad": float(platform["gmv_ad"][s].sum()),
        }
        for s, name in enumerate(SURFACE_NAMES)
    }
