"""A synthetic district of any size for the scale benchmark: pipelines and buildings.

Deterministic (seeded), vectorised. Pipelines are long polylines across the area (long-distance
and urban gas mains of several pressure classes); buildings are small rectangles, uniformly
spread, plus a share placed close to a pipeline so that every rule fires. Coordinates are
generated in the GK zone of 117°E (EPSG:4548) around the demo district and returned there.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

__all__ = ["CRS", "buildings", "pipelines", "side_m"]

CRS = "EPSG:4548"
X0, Y0 = 523_000.0, 3_850_000.0  # ≈ 117.25°E, 34.8°N
DENSITY = 2_000.0  # buildings per km²


def side_m(n_buildings: int) -> float:
    """Side of the square area holding ``n_buildings`` at the district density."""
    return float(np.sqrt(n_buildings / DENSITY) * 1000.0)


def pipelines(n_buildings: int, *, seed: int = 7) -> gpd.GeoDataFrame:
    """About one pipeline per 2 km of area side, zig-zagging across the area."""
    rng = np.random.default_rng(seed)
    side = side_m(n_buildings)
    n = max(4, int(side / 2000.0) * 2)
    kinds = np.where(np.arange(n) % 2 == 0, "long_distance", "urban_gas")
    press = np.where(kinds == "long_distance", 6.3,
                     rng.choice([0.005, 0.3, 0.6, 1.2, 2.0], size=n))
    geoms = []
    for i in range(n):
        k = 12
        t = np.linspace(0, side, k)
        off = (i + 0.5) * side / n + rng.normal(0, side / (8 * n), size=k)
        xy = np.column_stack([t, off]) if i % 2 == 0 else np.column_stack([off, t])
        geoms.append(shapely.LineString(xy + np.array([X0, Y0])))
    return gpd.GeoDataFrame({
        "id": [f"P{i:04d}" for i in range(n)],
        "medium": np.where(kinds == "long_distance", "crude_oil", "natural_gas"),
        "kind": kinds, "pressure_mpa": press,
        "diameter_mm": rng.choice([159.0, 325.0, 508.0], size=n),
        "wall_mm": rng.choice([6.0, 8.0, 12.0], size=n),
        "status": "in_service",
    }, geometry=geoms, crs=CRS)


def buildings(n_buildings: int, *, seed: int = 11, start: int = 0,
              count: int | None = None, near_share: float = 0.03) -> gpd.GeoDataFrame:
    """Buildings ``start`` … ``start + count`` of an ``n_buildings`` district (so large
    districts can be generated slice by slice with the same result)."""
    count = n_buildings - start if count is None else count
    rng = np.random.default_rng([seed, start])
    side = side_m(n_buildings)
    pipes = pipelines(n_buildings)
    x = rng.uniform(0, side, count) + X0
    y = rng.uniform(0, side, count) + Y0
    near = rng.random(count) < near_share
    if near.any():  # put these 0–60 m from a random point on a random pipeline
        which = rng.integers(0, len(pipes), near.sum())
        frac = rng.random(near.sum())
        lines = pipes.geometry.values[which]
        pts = shapely.line_interpolate_point(lines, frac, normalized=True)
        ang = rng.uniform(0, 2 * np.pi, near.sum())
        r = rng.uniform(0, 60, near.sum())
        x[near] = shapely.get_x(pts) + r * np.cos(ang)
        y[near] = shapely.get_y(pts) + r * np.sin(ang)
    w = rng.uniform(6, 20, count)
    h = rng.uniform(6, 14, count)
    uses = rng.choice(["residential", "school", "hospital", "office", "industrial",
                       "shed", "market"], size=count,
                      p=[0.6, 0.03, 0.02, 0.12, 0.1, 0.1, 0.03])
    return gpd.GeoDataFrame({
        "id": [f"B{i:08d}" for i in range(start, start + count)],
        "use": uses,
        "floors": rng.integers(1, 30, count),
    }, geometry=shapely.box(x - w / 2, y - h / 2, x + w / 2, y + h / 2), crs=CRS)
