"""Vectorised geometry helpers for the demo district (local metres, EPSG:4548 offsets)."""

from __future__ import annotations

import numpy as np
import shapely

__all__ = ["ids", "rects", "segments", "side_rect"]


def rects(
    cx: np.ndarray,
    cy: np.ndarray,
    w: np.ndarray,
    h: np.ndarray,
    theta: np.ndarray,
    *,
    origin: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Rotated rectangles (centre, width along x, height along y, angle in radians),
    translated by ``origin``."""
    cx, cy, w, h, theta = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (cx, cy, w, h, theta))
    )
    c, s = np.cos(theta), np.sin(theta)
    dx = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    dy = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    lx = w[:, None] * dx[None, :]
    ly = h[:, None] * dy[None, :]
    x = (cx + origin[0])[:, None] + lx * c[:, None] - ly * s[:, None]
    y = (cy + origin[1])[:, None] + lx * s[:, None] + ly * c[:, None]
    return shapely.polygons(np.stack([x, y], axis=-1))


def side_rect(
    p0: tuple[float, float],
    p1: tuple[float, float],
    s: float,
    along: float,
    o1: float,
    o2: float,
) -> shapely.Polygon:
    """Rectangle beside the straight segment ``p0``→``p1``.

    Centred at chainage ``s`` from ``p0`` (``along`` m long, parallel to the segment) and
    spanning signed offsets ``o1``..``o2`` along the left normal. With ``0 < o1 < o2`` the
    nearest edge lies exactly ``o1`` from the segment's line.
    """
    a = np.asarray(p0, dtype=float)
    b = np.asarray(p1, dtype=float)
    u = (b - a) / np.hypot(*(b - a))
    n = np.array([-u[1], u[0]])
    c0 = a + u * (s - along / 2.0)
    c1 = a + u * (s + along / 2.0)
    pts = [c0 + n * o1, c1 + n * o1, c1 + n * o2, c0 + n * o2, c0 + n * o1]
    poly = shapely.Polygon(pts)
    return poly if poly.exterior.is_ccw else shapely.Polygon(pts[::-1])


def segments(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Two-point LineStrings from endpoint arrays."""
    coords = np.stack([np.stack([x0, y0], -1), np.stack([x1, y1], -1)], axis=1)
    return shapely.linestrings(coords)


def ids(prefix: str, n: int, width: int, start: int = 1) -> np.ndarray:
    """``prefix`` + zero-padded running numbers."""
    nums = np.arange(start, start + n).astype(str)
    return np.char.add(prefix, np.char.zfill(nums, width)).astype(object)


def pieces(lines: np.ndarray, max_len: float) -> np.ndarray:
    """Two-point segments (at most ``max_len`` long) of every part of ``lines``."""
    parts = shapely.get_parts(shapely.segmentize(np.asarray(lines, dtype=object), max_len))
    xy, idx = shapely.get_coordinates(parts, return_index=True)
    same = idx[1:] == idx[:-1]
    return segments(xy[:-1, 0][same], xy[:-1, 1][same], xy[1:, 0][same], xy[1:, 1][same])
