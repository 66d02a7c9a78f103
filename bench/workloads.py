"""Stores for the pipeline benchmarks (issue 12), generated deterministically and cached.

- :func:`dense_store` — a 20 km x 20 km district in EPSG:4548: 50 urban gas mains (sub-high A,
  1.2 MPa, 219 mm, 5-20 km each, wandering, a vertex every 10 m) through ``n`` clustered
  rectangular buildings; about 8.4 % of them lie inside the 13.5 m clearance (1 M buildings ->
  ~84,000 flagged). Seeded numpy, vectorised: 1 M buildings generate in seconds.
- :func:`urban_store` — the demo district at ``--scale 4`` (~94 k buildings) with a gas main
  along every road segment (14,225 mains) under the footway (1.5 m inside the road's edge),
  pressure class by road class.

Both are validated by :func:`layers.validate.validate_layer` (what ``riskmap import`` checks)
and written through :class:`layers.store.GeoPackageStore` under ``bench/out/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DENSE_CRS = "EPSG:4548"
X0, Y0 = 500_000.0, 3_800_000.0  # south-west corner of the dense district (EPSG:4548)
SIDE = 20_000.0
MARGIN = 500.0  # mains stay this far inside the square
N_MAINS = 50
STEP_M = 10.0
# share of the buildings in street clusters along the mains (tuned: 8.4 % flagged)
ON_STREET = 0.08

__all__ = ["dense_layers", "dense_store", "fold", "urban_layers", "urban_store"]


def fold(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect ``v`` into ``[lo, hi]`` (a walk leaving the square bounces back off its side)."""
    span = hi - lo
    m = np.mod(v - lo, 2 * span)
    return lo + np.where(m <= span, m, 2 * span - m)


def _mains(rng: np.random.Generator) -> list[np.ndarray]:
    """50 wandering lines, 5-20 km, a vertex every 10 m, inside the square (local metres)."""
    lines = []
    for length in rng.uniform(5_000, 20_000, N_MAINS):
        n = int(length / STEP_M) + 1
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.03, n - 1))
        start = rng.uniform(2_000, SIDE - 2_000, 2)
        steps = STEP_M * np.column_stack([np.cos(heading), np.sin(heading)])
        xy = np.vstack([start, start + np.cumsum(steps, axis=0)])
        lines.append(fold(xy, MARGIN, SIDE - MARGIN))
    return lines


def dense_layers(n: int, *, seed: int = 12) -> tuple[object, object]:
    """(pipelines, buildings) GeoDataFrames of the dense district, EPSG:4548 (unvalidated)."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    mains = _mains(rng)
    pipes = gpd.GeoDataFrame({
        "id": [f"G-{i:03d}" for i in range(N_MAINS)], "name": None, "kind": "urban_gas",
        "medium": "natural_gas", "pressure_mpa": 1.2, "diameter_mm": 219.0,
        "status": "in_service",
    }, geometry=[shapely.linestrings(np.add(m, (X0, Y0))) for m in mains], crs=DENSE_CRS)
    # cluster centres: street blocks beside the mains (offset 20-120 m) and neighbourhoods
    verts = np.concatenate([m[:-1] for m in mains])
    dirs = np.concatenate([np.diff(m, axis=0) for m in mains]) / STEP_M
    n_cl = max(20, n // 250)
    n_on = int(n_cl * ON_STREET)
    k = rng.integers(0, len(verts), n_on)
    off = rng.choice([-1.0, 1.0], n_on) * rng.uniform(20, 120, n_on)
    on = verts[k] + off[:, None] * np.column_stack([-dirs[k, 1], dirs[k, 0]])
    anywhere = rng.uniform(0, SIDE, (n_cl - n_on, 2))
    centres = np.concatenate([on, anywhere])
    sigma = np.where(np.arange(n_cl) < n_on, 45.0, 220.0)
    c = rng.integers(0, n_cl, n)
    xy = centres[c] + rng.normal(0, 1, (n, 2)) * sigma[c, None]
    w, h = rng.uniform(8, 30, n), rng.uniform(8, 20, n)
    a = rng.uniform(0, np.pi, n)
    unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float) / 2
    cx, cy = unit[None, :, 0] * w[:, None], unit[None, :, 1] * h[:, None]
    cos, sin = np.cos(a)[:, None], np.sin(a)[:, None]
    ring = np.stack([xy[:, :1] + cx * cos - cy * sin, xy[:, 1:] + cx * sin + cy * cos], axis=2)
    uses = rng.choice(np.array(["residential", "office", "school", "industrial", "shed"]), n,
                      p=[0.6, 0.2, 0.05, 0.1, 0.05])
    blds = gpd.GeoDataFrame({
        "id": np.char.add("B", np.char.zfill(np.arange(n).astype(str), 7)), "use": uses,
        "floors": rng.integers(1, 19, n),
    }, geometry=shapely.polygons(np.add(ring, (X0, Y0))), crs=DENSE_CRS)
    return pipes, blds


def _write(path: Path, layers: dict[str, object]) -> None:
    from layers.store import GeoPackageStore
    from layers.validate import validate_layer

    clean = {}
    for name, gdf in layers.items():
        clean[name], _report = validate_layer(gdf, name)  # type: ignore[arg-type]
    tmp = path.with_suffix(".tmp.gpkg")
    tmp.unlink(missing_ok=True)
    GeoPackageStore(tmp).write(clean)
    tmp.replace(path)


def dense_store(n: int) -> Path:
    """The dense district with ``n`` buildings as a GeoPackage store (built once, cached)."""
    path = OUT / f"dense12_{n}.gpkg"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        pipes, blds = dense_layers(n)
        _write(path, {"pipelines": pipes, "buildings": blds})
        print(f"  built {path.name} ({n:,} buildings) in {time.perf_counter() - t:.1f} s",
              file=sys.stderr, flush=True)
    return path


# (pressure class, MPa, OD mm) of the main under each road class; local streets alternate
_BY_ROAD = {
    "local": [("low", 0.005, 110.0), ("medium_b", 0.15, 160.0)],
    "collector": [("medium_a", 0.35, 219.0), ("medium_b", 0.15, 160.0)],
    "arterial": [("sub_high_b", 0.7, 273.0), ("sub_high_a", 1.2, 219.0)],
}
_TRUNK = [("sub_high_a", 1.2, 323.9)]


def urban_layers(demo: Path) -> tuple[object, object]:
    """(pipelines, buildings): a gas main along every road of the ``demo`` store."""
    import geopandas as gpd
    import shapely

    from geo.crs import analysis_crs
    from layers.store import open_store

    st = open_store(demo)
    roads = st.read("roads")
    blds = st.read("buildings")
    cls = roads["road_class"].astype(str).to_numpy()
    alt = np.arange(len(roads)) % 2
    mpa = np.empty(len(roads))
    od = np.empty(len(roads))
    for road_class, options in {**_BY_ROAD, "trunk": _TRUNK}.items():
        sel = (cls == road_class) if road_class != "trunk" else ~np.isin(cls, list(_BY_ROAD))
        pick = np.minimum(alt[sel], len(options) - 1)
        mpa[sel] = np.array([o[1] for o in options])[pick]
        od[sel] = np.array([o[2] for o in options])[pick]
    # the main lies under the footway: 1.5 m inside the road's edge, sides alternating
    crs = analysis_crs(roads)
    centre = roads.to_crs(crs).geometry.to_numpy()
    width = roads["width_m"].fillna(7.0).to_numpy(dtype=float)
    side = np.where(alt == 0, 1.0, -1.0)
    under_footway = shapely.offset_curve(centre, side * np.maximum(width / 2 - 1.5, 0.5))
    pipes = gpd.GeoDataFrame({
        "id": np.char.add("GM-", np.char.zfill(np.arange(len(roads)).astype(str), 5)),
        "kind": "urban_gas", "medium": "natural_gas", "pressure_mpa": mpa, "diameter_mm": od,
        "status": "in_service",
    }, geometry=under_footway, crs=crs)
    return pipes, blds[["id", "use", "floors", "households", "name", "geometry"]]


def urban_store(scale: float = 4.0) -> Path:
    """The urban network store (demo at ``scale``, mains along every street; cached)."""
    from layers.demo import write_demo

    path = OUT / f"urban12_{scale:g}.gpkg"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        demo = OUT / f"demo_{scale:g}.gpkg"
        t = time.perf_counter()
        if not demo.exists():
            write_demo(demo, seed=42, scale=scale)
        pipes, blds = urban_layers(demo)
        _write(path, {"pipelines": pipes, "buildings": blds})
        print(f"  built {path.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr,
              flush=True)
    return path
