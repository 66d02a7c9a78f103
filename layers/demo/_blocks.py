"""Street blocks and their buildings (vectorised: one numpy pass per block type)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layers.demo import _layout as L
from layers.demo._geom import rects

__all__ = ["T", "block_buildings", "block_types"]


class T:
    """Block type codes."""

    NONE, PARK, VILLAGE, RES_MID, RES_HIGH, OFFICE, INDUSTRIAL, WORKSHOPS = range(8)
    SCHOOL, HOSPITAL, MARKET = 8, 9, 10


# rows, cols, (fx lo, hi), (fy lo, hi), max rotation (deg), fill probability
_LOTS = {
    T.VILLAGE: (6, 6, (0.6, 0.85), (0.6, 0.85), 6.0, 0.92),
    T.RES_MID: (5, 2, (0.72, 0.88), (0.4, 0.5), 3.0, 1.0),
    T.RES_HIGH: (3, 3, (0.5, 0.62), (0.35, 0.45), 3.0, 0.95),
    T.OFFICE: (2, 2, (0.45, 0.7), (0.45, 0.7), 2.0, 1.0),
    T.INDUSTRIAL: (2, 2, (0.6, 0.85), (0.55, 0.8), 2.0, 0.95),
    T.WORKSHOPS: (3, 4, (0.55, 0.8), (0.5, 0.75), 3.0, 0.9),
    T.SCHOOL: (2, 2, (0.55, 0.75), (0.35, 0.5), 1.0, 1.0),
    T.HOSPITAL: (2, 2, (0.5, 0.75), (0.45, 0.7), 1.0, 1.0),
    T.MARKET: (2, 3, (0.6, 0.85), (0.55, 0.8), 2.0, 1.0),
}


def _mark(t: np.ndarray, box: tuple[int, int, int, int], code: int) -> None:
    i0, i1, j0, j1 = box
    t[i0 : i1 + 1, j0 : j1 + 1] = code


def block_types(grid: L.Grid, rng: np.random.Generator) -> np.ndarray:
    """Block type per (i, j): dense towers in the centre, mid-rise around it, urban villages
    outside, the industrial zone in the south-east, special blocks at fixed places."""
    nx, ny, b = grid.nx, grid.ny, grid.b
    ci, cj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    cx, cy = (ci + 0.5) * b, (cj + 0.5) * b
    d = np.hypot(cx - 3150.0, cy - 3450.0)
    u = rng.random((nx, ny))
    core = (ci < L.CORE_NX) & (cj < L.CORE_NY)
    t = np.full((nx, ny), T.VILLAGE, dtype=np.int8)
    inner = d < 900
    t[inner] = np.where(u[inner] < 0.55, T.RES_HIGH, np.where(u[inner] < 0.85, T.OFFICE,
                                                              T.MARKET))
    mid = (d >= 900) & (d < 2300)
    t[mid] = np.where(u[mid] < 0.78, T.RES_MID, np.where(u[mid] < 0.9, T.RES_HIGH, T.VILLAGE))
    outer = (d >= 2300) & core
    t[outer] = np.where(u[outer] < 0.52, T.VILLAGE, np.where(u[outer] < 0.95, T.RES_MID,
                                                             T.PARK))
    ext = ~core
    t[ext] = np.select(
        [u[ext] < 0.22, u[ext] < 0.62, u[ext] < 0.70, u[ext] < 0.80, u[ext] < 0.83,
         u[ext] < 0.842, u[ext] < 0.846],
        [T.VILLAGE, T.RES_MID, T.RES_HIGH, T.WORKSHOPS, T.OFFICE, T.SCHOOL, T.HOSPITAL],
        T.PARK,
    )  # fmt: skip
    _mark(t, L.INDUSTRIAL, T.WORKSHOPS)
    ind = np.zeros_like(t, dtype=bool)
    ind[L.INDUSTRIAL[0] : L.INDUSTRIAL[1] + 1, L.INDUSTRIAL[2] : L.INDUSTRIAL[3] + 1] = True
    t[ind & (u < 0.45)] = T.INDUSTRIAL
    t[:, L.RIVER_ROW] = T.NONE
    _mark(t, L.WATER_BLOCKS, T.NONE)
    _mark(t, L.OIL_DEPOT, T.NONE)
    for i, j in (*L.DEPOTS.values(), L.GAS_STATION, L.SQUARE, L.STADIUM):
        t[i, j] = T.NONE
    for i in L.COMPOUND_COLS:
        for j in L.COMPOUND_ROWS:
            t[i, j] = T.NONE
    for i, j in L.SCHOOLS:
        t[i, j] = T.SCHOOL
    for i, j in L.HOSPITALS:
        t[i, j] = T.HOSPITAL
    for i, j in L.MARKETS:
        t[i, j] = T.MARKET
    return t


def _uses_floors(code: int, n: int, rng: np.random.Generator, area: np.ndarray):
    r = rng.random(n)
    if code == T.VILLAGE:
        use = np.where(r < 0.8, "residential", np.where(r < 0.95, "shed", "other"))
        floors = np.where(use == "residential", rng.integers(1, 4, n), 1)
    elif code == T.RES_MID:
        use = np.full(n, "residential", dtype=object)
        floors = rng.integers(6, 12, n)
    elif code == T.RES_HIGH:
        use = np.where(r < 0.93, "residential", "office")
        floors = rng.integers(18, 34, n)
    elif code == T.OFFICE:
        use = np.where(r < 0.85, "office", "public_assembly")
        floors = np.where(use == "office", rng.integers(10, 29, n), rng.integers(2, 5, n))
    elif code == T.INDUSTRIAL:
        use = np.where(r < 0.75, "industrial", "warehouse")
        floors = rng.integers(1, 4, n)
    elif code == T.WORKSHOPS:
        use = np.where(r < 0.55, "industrial", np.where(r < 0.85, "warehouse", "shed"))
        floors = np.where(use == "shed", 1, rng.integers(1, 5, n))
    elif code == T.SCHOOL:
        use = np.full(n, "school", dtype=object)
        floors = rng.integers(3, 6, n)
    elif code == T.HOSPITAL:
        use = np.full(n, "hospital", dtype=object)
        floors = rng.integers(4, 17, n)
    else:  # market
        use = np.where(r < 0.8, "market", "office")
        floors = rng.integers(1, 5, n)
    return np.asarray(use, dtype=object), np.asarray(floors, dtype=np.int64)


def block_buildings(
    grid: L.Grid,
    types: np.ndarray,
    rng: np.random.Generator,
    *,
    thin: float = 1.0,
    origin: tuple[float, float] = (0.0, 0.0),
) -> pd.DataFrame:
    """Buildings of every typed block as rotated rectangles in lots (translated by
    ``origin``).

    Returns a frame with ``geometry`` (shapely array), ``use``, ``floors``, ``households``,
    ``name``, ``block_i``, ``block_j``.
    """
    frames = []
    for code, (rows, cols, fx, fy, rot, fill) in _LOTS.items():
        bi, bj = np.nonzero(types == code)
        if len(bi) == 0:
            continue
        x0, y0, x1, y1 = grid.interior(bi, bj)
        lw = (x1 - x0) / cols
        lh = (y1 - y0) / rows
        r, c = (a.ravel() for a in np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"))
        nb, nl = len(bi), rows * cols
        shape = (nb, nl)
        w = lw[:, None] * rng.uniform(*fx, shape)
        h = lh[:, None] * rng.uniform(*fy, shape)
        if code == T.VILLAGE:  # small sheds among the houses
            small = rng.random(shape) < 0.12
            w = np.where(small, w * 0.55, w)
            h = np.where(small, h * 0.55, h)
        theta = np.deg2rad(rng.uniform(-rot, rot, shape))
        # keep the rotated rectangle inside its lot: jitter only within the free margin
        ew = np.abs(w * np.cos(theta)) + np.abs(h * np.sin(theta))
        eh = np.abs(w * np.sin(theta)) + np.abs(h * np.cos(theta))
        jx = (lw[:, None] - ew) / 2 * rng.uniform(-0.8, 0.8, shape)
        jy = (lh[:, None] - eh) / 2 * rng.uniform(-0.8, 0.8, shape)
        cx = x0[:, None] + (c[None, :] + 0.5) * lw[:, None] + jx
        cy = y0[:, None] + (r[None, :] + 0.5) * lh[:, None] + jy
        keep = (rng.random(shape) < fill * thin) & (ew < lw[:, None]) & (eh < lh[:, None])
        n = int(keep.sum())
        area = (w * h)[keep]
        use, floors = _uses_floors(code, n, rng, area)
        lot = np.broadcast_to(np.arange(nl)[None, :], shape)[keep]
        blk = np.broadcast_to(np.arange(nb)[:, None], shape)[keep]
        if code == T.RES_MID:  # a kindergarten in every 6th block, care homes in a few
            kg = (lot == 0) & ((bi[blk] * 7 + bj[blk] * 3) % 6 == 0)
            use[kg] = "kindergarten"
            floors[kg] = 3
            ec = (lot == 9) & ((bi[blk] * 5 + bj[blk] * 11) % 41 == 0)
            use[ec] = "elderly_care"
            floors[ec] = 5
        frames.append(pd.DataFrame({
            "geometry": rects(cx[keep], cy[keep], w[keep], h[keep], theta[keep], origin=origin),
            "use": use, "floors": floors, "area": area,
            "block_i": bi[blk], "block_j": bj[blk], "lot": lot,
        }))  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    df["households"] = households(df["use"].to_numpy(), df["area"].to_numpy(),
                                  df["floors"].to_numpy())
    df["name"] = None
    return df.drop(columns=["area"])


def households(use: np.ndarray, area: np.ndarray, floors: np.ndarray) -> pd.array:
    """Households of residential buildings: 75 % of gross floor area in 90 m² flats."""
    hh = np.maximum(1, np.floor(area * floors * 0.75 / 90.0)).astype(np.int64)
    out = pd.array(hh, dtype="Int64")
    out[np.asarray(use) != "residential"] = pd.NA
    return out

