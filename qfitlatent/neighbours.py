"""Neighbours from a k-d tree (scipy's cKDTree): pairs of points closer than a radius
(featurising) and each point's k nearest (the network's attention lists).

Atoms have a bounded density, so a fixed radius holds a bounded number of neighbours: the pairs
of a structure, and the time to find them, grow linearly with its size (k nearest: N log N).
Both replace distance matrices, which grow with the square (a 50,000-residue structure would
need a 50,000 × 50,000 matrix, or as many chunked row blocks).
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


def nearest(points: np.ndarray, k: int, chunk: int = 1 << 14) -> np.ndarray:
    """[N, k] int64: each point's k nearest points (itself included), ordered by (distance,
    index), so the result is one well-defined list whatever the search order.

    Ties at the k-th place go to the lower index. The tree proposes a few more than k candidates
    per row and the order is decided on distances computed here (the tree's can differ in the last
    bit); a row whose ties may reach past the candidates is searched in full instead (only for
    exactly repeated distances, as in a lattice). Time O(N k log N), memory O(N k), never N × N.

    Args:
        points: [N, 3] positions, N >= k; float64 gives exact comparisons.
        chunk: query rows per step ([chunk, k + 8, 3] float64 temporaries, 28 MB at k = 64);
            only bounds memory, never changes the result.
    """
    n = len(points)
    if not 1 <= k <= n:
        raise ValueError(f"cannot take the {k} nearest of {n} points")
    points = np.asarray(points, dtype=np.float64)
    tree = cKDTree(points)
    width = min(n, k + 8)  # candidates per row: spare places for ties at the k-th
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        q = points[start : start + chunk]  # [Q, 3]
        _, j = tree.query(q, k=width)  # [Q, W]
        j = j.reshape(len(q), width).astype(np.int64)
        d2 = ((q[:, None, :] - points[j]) ** 2).sum(-1)  # [Q, W]
        # By distance, then index: sorted by index first, then stably by distance (two argsorts
        # are many times faster than np.lexsort on rows).
        by_index = np.argsort(j, axis=-1)
        j, d2 = np.take_along_axis(j, by_index, -1), np.take_along_axis(d2, by_index, -1)
        by_distance = np.argsort(d2, axis=-1, kind="stable")
        j, d2 = np.take_along_axis(j, by_distance, -1), np.take_along_axis(d2, by_distance, -1)
        out[start : start + len(q)] = j[:, :k]
        if width == n:
            continue
        # The last candidate as near as the k-th (to rounding): a tie may continue beyond the
        # candidates, so those rows are sorted over every point.
        for r in np.flatnonzero(d2[:, -1] <= d2[:, k - 1] * (1 + 1e-9)):
            d2_all = ((points - q[r]) ** 2).sum(-1)  # [N]
            out[start + r] = np.lexsort((np.arange(n), d2_all))[:k]
    return out
