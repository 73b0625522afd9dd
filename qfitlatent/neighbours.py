"""Pairs of points closer than a radius, from a k-d tree (scipy's cKDTree).

Atoms have a bounded density, so a fixed radius holds a bounded number of neighbours: the pairs
of a structure, and the time to find them, grow linearly with its size. Featurising uses this
instead of distance matrices, which grow with the square (a 50,000-residue structure would need
a 50,000 × 50,000 matrix, or as many chunked row blocks).
"""

from collections.abc import Iterator

import numpy as np
from scipy.spatial import cKDTree

# The tree's own distances can differ from ours in the last bit, so it searches a hair wider and
# `pairs_within` decides "closer than" on the distance it computes itself.
_SLACK = 1e-9


def pairs_within(
    query: np.ndarray, points: np.ndarray, radius: float, chunk: int = 1 << 16
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
    """Every pair (i, j) with |query[i] - points[j]| < radius, strictly, self pairs included.

    Args:
        query: [Q, 3] positions; points: [M, 3] positions (float64 for exact comparisons).
        chunk: query rows per step; only bounds memory, never changes the pairs found.
    Yields:
        (rows, i, j, d) per chunk of query rows: the slice of query rows searched, i [E] int64
        indices into query (all within rows), j [E] int64 indices into points, d [E] float64
        distances; pairs in no particular order.
    """
    if len(query) == 0 or len(points) == 0:
        return
    tree = cKDTree(points)
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk]
        found = cKDTree(q).sparse_distance_matrix(
            tree, radius * (1 + _SLACK), output_type="ndarray"
        )  # structured [E]: i, j, v
        i = found["i"].astype(np.int64)
        j = found["j"].astype(np.int64)
        d = np.sqrt(((q[i] - points[j]) ** 2).sum(-1))  # [E]
        keep = d < radius
        yield slice(start, start + len(q)), i[keep] + start, j[keep], d[keep]


def count_per_row(rows: slice, i: np.ndarray) -> np.ndarray:
    """[rows.stop - rows.start] how many times each row of `rows` occurs in `i` [E]."""
    return np.bincount(i - rows.start, minlength=rows.stop - rows.start)
