"""Approximate nearest-neighbour search by inner product, over the items of live campaigns.

A thin wrapper over faiss: HNSW for large sets, an exact flat index for small ones (where HNSW
would buy nothing). The graph is built on one thread so that the same vectors give the same index.
"""

from __future__ import annotations

import faiss
import numpy as np
from numpy.typing import NDArray

# Below this many vectors an exact scan is as fast as a graph walk.
_EXACT_UP_TO = 4096
_HNSW_NEIGHBOURS = 32
_HNSW_SEARCH_DEPTH = 96


class VectorIndex:
    """Inner-product top-k over fixed ``(m, d)`` vectors; results are row numbers of those vectors."""

    def __init__(self, vectors: NDArray[np.float32]) -> None:
        if vectors.ndim != 2:
            raise ValueError("vectors must be a (m, d) matrix")
        self.size, self.dim = vectors.shape
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.size <= _EXACT_UP_TO:
            self._index = faiss.IndexFlatIP(self.dim)
        else:
            self._index = faiss.IndexHNSWFlat(self.dim, _HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efSearch = _HNSW_SEARCH_DEPTH
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            self._index.add(data)
        finally:
            faiss.omp_set_num_threads(threads)

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """``(n, k)`` row numbers (``-1`` where fewer exist) and their inner products."""
        if len(queries) == 0 or self.size == 0:
            return np.full((len(queries), k), -1, np.int64), np.zeros((len(queries), k), np.float32)
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return rows.astype(np.int64), scores.astype(np.float32)
