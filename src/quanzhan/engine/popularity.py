"""How popular each item was before the run: its clicks in the platform's history log.

An item shoppers clicked often in the past is one they take to: a platform's organic ranking
shows appealing items more, and shoppers click them more when shown. Against its category's
items, an item's log history clicks are an early measure of its appeal, there from the first
page view, long before the engine's own log holds a hundred clicks of it.

An item with no history clicks (new to the platform, or never clicked) is not known to be
unpopular: it takes its category's average, zero, and its own log decides.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def history_popularity(
    *, item_category: NDArray[np.integer], n_categories: int, history_item: NDArray[np.integer]
) -> NDArray[np.float64]:
    """Per item, ``log(1 + history clicks)`` less its category's mean over the items with any;
    zero for items without history clicks."""
    n_items = len(item_category)
    if len(history_item) and (history_item.min() < 0 or history_item.max() >= n_items):
        raise ValueError("history items must be item ids of the catalog")
    clicks = np.bincount(history_item, minlength=n_items).astype(np.float64)
    seen = clicks > 0
    log_clicks = np.log1p(clicks)
    category = item_category.astype(np.int64)
    total = np.bincount(category[seen], weights=log_clicks[seen], minlength=n_categories)
    count = np.bincount(category[seen], minlength=n_categories)
    mean = np.divide(total, count, out=np.zeros(n_categories), where=count > 0)
    out: NDArray[np.float64] = np.where(seen, log_clicks - mean[category], 0.0)
    return out
