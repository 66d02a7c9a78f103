"""The demo district: a deterministic synthetic Zaozhuang High-tech Zone with planted cases.

Generated in EPSG:4548 (CGCS2000 / 3-degree GK CM 117E, metres) around 117.25°E, 34.80°N and
stored in EPSG:4490. Every analysis has known cases planted at exact design distances; they
are listed in a manifest (``demo.manifest.json`` beside the GeoPackage) — see
docs/dev/DEMO_MANIFEST.md for the contract.

Example
-------
>>> from layers.demo import build_demo
>>> demo = build_demo(seed=42)              # doctest: +SKIP
>>> demo.layers["buildings"].crs.to_epsg()  # doctest: +SKIP
4548
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from layers.demo import _layout as L
from layers.demo._blocks import T, block_buildings, block_types, households
from layers.demo._fire import build_compounds, build_stations, lane_nodes
from layers.demo._geom import ids, pieces, rects
from layers.demo._hazmat import build_routes, build_zones
from layers.demo._patrol import build_paths, build_signs, plant_inspections
from layers.demo._pipelines import (
    build_cameras,
    build_hca,
    build_pipelines,
    plant_buildings,
    unregistered_school,
)
from layers.demo._protection import build_protection, positions_path, write_positions
from layers.demo._roads import ROAD_COLUMNS, build_hydrants, build_roads, road_geometries
from layers.errors import RiskmapError
from layers.schema import LAYER_NAMES, SCHEMAS

__all__ = [
    "ANALYSIS_EPSG",
    "CLEARANCE_M",
    "DemoDistrict",
    "build_demo",
    "manifest_path",
    "write_demo",
]  # fmt: skip

ANALYSIS_EPSG = 4548
_NOTES = [
    "Distances are design values in EPSG:4548 (exact to < 1 cm after the EPSG:4490 round trip).",
    "Ordinary buildings stand > clearance_m from every pipeline; only planted ones are closer.",
    "The GeoPackage store writes the pipelines and hca layers as MultiLineString (single lines "
    "become one-part multis); P-OIL-02 is the only line with two parts, chainage runs on "
    "across them.",
    "Urban-gas setback violations for low and medium_b are planted at clear 0.6 m and 0.75 m "
    "(not required - 0.5 m): 0.2 m and 0.5 m would fall inside the 0.5 m protection zone and "
    "count as occupancy. shortfall_m gives the planted shortfall.",
    "Registered HCAs (hca layer) cover every long-distance line except the unregistered_hca "
    "stretch of P-GAS-01; cameras cover every video-monitored HCA.",
    "A fire-lane turnaround is a 12 m x 12 m square loop of lanes at the end of the branch "
    "(turnaround_ids); the branch has no dead tip.",
    "Hydrants stand <= 50 m apart along every road except the expressway (none, by design) and "
    "the hydrant_gap stretch; bridges have one hydrant on each bank.",
]
CLEARANCE_M = 60.0  # unplanted buildings are kept farther than this from every pipeline


@dataclass
class DemoDistrict:
    """The generated layers (GeoDataFrames in EPSG:4548) and the manifest of planted cases."""

    layers: dict[str, gpd.GeoDataFrame]
    manifest: dict[str, Any]
    positions: list[dict[str, Any]] = field(default_factory=list)  # machine positions (local m)


def manifest_path(out: str | os.PathLike[str]) -> Path:
    """``data/demo.gpkg`` → ``data/demo.manifest.json``."""
    p = Path(out)
    stem = p.name[: -len(".gpkg")] if p.name.lower().endswith(".gpkg") else p.name
    return p.with_name(stem + ".manifest.json")


def _shift(geoms: Any) -> np.ndarray:
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: c + np.array([L.E0, L.N0]))


def _gdf(
    df: pd.DataFrame, layer: str, geoms: Any = None, *, local: bool = True
) -> gpd.GeoDataFrame:
    """Frame with schema fields first (in schema order), extras after, EPSG:4548.

    ``local`` geometries are in local metres and get shifted to EPSG:4548.
    """
    geoms = df["geometry"].to_numpy() if geoms is None else geoms
    if local:
        geoms = _shift(geoms)
    schema = SCHEMAS[layer]
    cols = [f.name for f in schema.fields if f.name in df.columns]
    extra = [c for c in df.columns if c not in cols and c not in ("geometry", "x", "y")]
    out = gpd.GeoDataFrame(df[cols + extra].reset_index(drop=True),
                           geometry=geoms, crs=ANALYSIS_EPSG)
    return out


def _points(df: pd.DataFrame) -> np.ndarray:
    return shapely.points(df["x"].to_numpy(), df["y"].to_numpy())


def _special_buildings(grid: L.Grid) -> pd.DataFrame:
    """Gas station, oil-depot tanks, hazmat warehouses and the stadium."""
    b = grid.b
    rows = []

    def add(geom, use, floors, name):
        rows.append({"geometry": geom, "use": use, "floors": floors, "name": name})

    gi, gj = L.GAS_STATION
    add(rects(np.array([(gi + 0.5) * b]), np.array([(gj + 0.45) * b]), np.array([32.0]),
              np.array([20.0]), np.zeros(1))[0], "gas_station", 1, "中石化高新区加油站")
    add(rects(np.array([(gi + 0.5) * b]), np.array([(gj + 0.75) * b]), np.array([16.0]),
              np.array([10.0]), np.zeros(1))[0], "other", 1, "加油站便利店")
    i0, _i1, j0, _j1 = L.OIL_DEPOT
    for n, ty in enumerate((j0 * b + 70.0, j0 * b + 130.0, j0 * b + 190.0, j0 * b + 250.0)):
        add(shapely.Point(i0 * b + 80.0, ty).buffer(20.0, quad_segs=8), "oil_depot", 1,
            f"枣庄油库{n + 1}号储罐")
    for key, (i, j) in L.DEPOTS.items():
        for n, dy in enumerate((0.3, 0.7)):
            add(rects(np.array([(i + 0.5) * b]), np.array([(j + dy) * b]), np.array([80.0]),
                      np.array([30.0]), np.zeros(1))[0], "warehouse", 1,
                f"危化品仓库{key}-{n + 1}")
    si, sj = L.STADIUM
    add(shapely.Point((si + 0.5) * b, (sj + 0.5) * b).buffer(45.0, quad_segs=16),
        "public_assembly", 3, "高新区体育中心")
    return pd.DataFrame(rows)


def _school_name(n: int) -> str:
    return f"高新区第{n}{'小学' if n % 2 else '中学'}"


def _sites(grid: L.Grid, types: np.ndarray, blds: pd.DataFrame, campus: shapely.Polygon):
    """Sites: campuses, hospitals, markets, kindergartens/care homes (points), water, river,
    railway, gas station, oil depot, hazmat depots."""
    b = grid.b
    rows: list[tuple[Any, ...]] = []

    def block_poly(i, j, i1=None, j1=None):
        i1 = i if i1 is None else i1
        j1 = j if j1 is None else j1
        x0, y0, _, _ = grid.interior(np.array([i]), np.array([j]), setback=2.0)
        _, _, x1, y1 = grid.interior(np.array([i1]), np.array([j1]), setback=2.0)
        return shapely.box(float(x0[0]), float(y0[0]), float(x1[0]), float(y1[0]))

    for key, (i, j) in L.DEPOTS.items():
        rows.append(("other", "depot", 20, block_poly(i, j), f"危化品仓储{key}"))
    rows.append(("school", "西王庄村小学", 260, campus))
    rows.append(("square", "高新区市民广场", 2000, block_poly(*L.SQUARE)))
    rows.append(("stadium", "高新区体育中心", 8000, block_poly(*L.STADIUM)))
    rows.append(("gas_station", "中石化高新区加油站", 10, block_poly(*L.GAS_STATION)))
    i0, i1, j0, j1 = L.OIL_DEPOT
    rows.append(("oil_depot", "中石化枣庄油库", 40, block_poly(i0, j0, i1, j1)))
    rows.append(("water_source", "岩马水库(饮用水水源)", 0, shapely.box(*L.RESERVOIR)))
    x0, _y0, x1, _y1 = grid.extent
    ry = L.RIVER_ROW * b
    rows.append(("river", "薛城大沙河", 0, shapely.box(x0, ry + 25.0, x1, ry + b - 25.0)))
    rows.append(("railway", "京沪铁路", 0, shapely.box(x0, grid.height + 240.0, x1,
                                                        grid.height + 260.0)))
    # sites whose number varies with the seed and scale come last (stable ids above)
    si, sj = np.nonzero(types == T.SCHOOL)
    for n, (i, j) in enumerate(zip(si.tolist(), sj.tolist(), strict=True), start=1):
        rows.append(("school", _school_name(n), 1200 + (n * 137) % 1300, block_poly(i, j)))
    hi, hj = np.nonzero(types == T.HOSPITAL)
    hnames = ["枣庄市立医院高新区分院", "高新区人民医院", "枣庄矿业集团中心医院"]
    for n, (i, j) in enumerate(zip(hi.tolist(), hj.tolist(), strict=True)):
        name = hnames[n] if n < len(hnames) else f"高新区社区医院{n + 1}"
        rows.append(("hospital", name, 600 + (n * 211) % 900, block_poly(i, j)))
    mi, mj = np.nonzero(types == T.MARKET)
    for n, (i, j) in enumerate(zip(mi.tolist(), mj.tolist(), strict=True), start=1):
        rows.append(("market", f"高新区商贸市场{n}", 800, block_poly(i, j)))
    for use, kind, occ in (("kindergarten", "kindergarten", 240), ("elderly_care",
                                                                   "elderly_care", 150)):
        sel = blds[blds["use"] == use]
        pts = shapely.transform(shapely.centroid(sel["geometry"].to_numpy()),
                                lambda c: c - np.array([L.E0, L.N0]))
        for n, g in enumerate(pts, start=1):
            rows.append((kind, f"{'幼儿园' if kind == 'kindergarten' else '养老院'}{n}", occ, g))
    rows = [r if len(r) == 5 else (*r, None) for r in rows]
    df = pd.DataFrame(rows, columns=["kind", "name", "occupants", "geometry", "label"])
    df.insert(0, "id", [f"S-{n:03d}" for n in range(1, len(df) + 1)])
    df["occupants"] = df["occupants"].astype("int64")
    return df


def _check_planted(planted_geoms, planted_cases, pipes: pd.DataFrame) -> None:
    """Design invariants: each planted distance holds exactly and no other pipeline is near."""
    pg = pipes.set_index("id")["geometry"]
    for g, c in zip(planted_geoms, planted_cases, strict=True):
        d = shapely.distance(g, pg[c["pipeline_id"]])
        if abs(d - c["distance_m"]) > 1e-6:  # pragma: no cover - layout invariant
            raise AssertionError(f"{c['id']}: distance {d} != {c['distance_m']}")
        others = [shapely.distance(g, pg[o]) for o in pg.index if o != c["pipeline_id"]]
        if min(others) <= CLEARANCE_M:  # pragma: no cover
            raise AssertionError(f"{c['id']} is within {CLEARANCE_M} m of another pipeline")


def build_demo(*, seed: int = 42, scale: float = 1.0) -> DemoDistrict:
    """Generate the demo district (deterministic for ``seed``).

    ``scale`` >= 1 grows the street grid (blocks and buildings ~ ``scale`` ×) to the east and
    north; ``scale`` < 1 keeps the layout but thins the ordinary buildings. Planted cases are
    the same at every scale and seed.
    """
    if not (0.01 <= scale <= 400):
        raise RiskmapError(f"demo scale is {scale!r}; expected a number from 0.01 to 400")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    grid = L.Grid.for_scale(scale)
    types = block_types(grid, rng)
    origin = (L.E0, L.N0)
    gen = block_buildings(grid, types, rng, thin=min(1.0, scale), origin=origin)
    special = _special_buildings(grid)
    compounds, lanes, cbld, micro, fire_cases = build_compounds(grid, rng)
    roads = build_roads(grid, lane_nodes())
    hydrants, gap_ids = build_hydrants(roads, grid, rng)
    pipes = build_pipelines(grid)
    csites, facilities, prot_cases, positions = build_protection(pipes, grid, seed=seed)
    patrol_cases = plant_inspections(pipes)
    signs, sign_cases = build_signs(pipes)
    paths, path_cases = build_paths(pipes)
    patrol_cases += sign_cases + path_cases
    planted = plant_buildings(pipes, grid)
    school, campus, hca_case = unregistered_school()

    # ordinary buildings: kept farther than CLEARANCE_M from every pipeline
    special["households"] = pd.array([pd.NA] * len(special), dtype="Int64")
    cbld["households"] = households(cbld["use"].to_numpy(),
                                    shapely.area(cbld["geometry"].to_numpy()),
                                    cbld["floors"].to_numpy())
    # (ordinary buildings are made in EPSG:4548 directly: shifting a million is slow)
    special["geometry"] = _shift(special["geometry"])
    cbld["geometry"] = _shift(cbld["geometry"])
    ordinary = pd.concat([gen[["geometry", "use", "floors", "households", "name"]],
                          special, cbld[["geometry", "use", "floors", "households", "name"]]],
                         ignore_index=True)  # fmt: skip
    tree = shapely.STRtree(pieces(_shift(pipes["geometry"]), 50.0))
    near = tree.query(ordinary["geometry"].to_numpy(), predicate="dwithin",
                      distance=CLEARANCE_M)
    ordinary = ordinary.drop(index=np.unique(near[0])).reset_index(drop=True)
    ordinary.insert(0, "id", ids("B-", len(ordinary), 7))

    pl_geoms = [p.geometry for p in planted]
    pl_cases = [p.case for p in planted]
    _check_planted(pl_geoms, pl_cases, pipes)
    pl = pd.DataFrame({
        "id": [c["id"] for c in pl_cases], "geometry": pl_geoms,
        "use": [p.use for p in planted], "floors": [p.floors for p in planted],
        "name": [p.name for p in planted],
    })  # fmt: skip
    school_id = "B-P50"
    pl = pd.concat([pl, pd.DataFrame({"id": [school_id], "geometry": [school],
                                      "use": ["school"], "floors": [3],
                                      "name": ["西王庄村小学教学楼"]})], ignore_index=True)
    pl["households"] = households(pl["use"].to_numpy(), shapely.area(pl["geometry"].to_numpy()),
                                  pl["floors"].to_numpy())
    pl["geometry"] = _shift(pl["geometry"])
    buildings = pd.concat([ordinary, pl[ordinary.columns]], ignore_index=True)
    buildings["floors"] = buildings["floors"].astype("int64")

    sites = _sites(grid, types, buildings, campus)
    school_site = sites.loc[sites["name"] == "西王庄村小学", "id"].iloc[0]
    hca_case.update(site_id=school_site, building_id=school_id)

    zones = build_zones(grid, np.argwhere(types == T.SCHOOL))
    routes, route_cases = build_routes(grid, zones)
    hca = build_hca(pipes, grid, (hca_case["chainage_from_m"], hca_case["chainage_to_m"]))
    cameras = build_cameras(hca)
    stations = pd.concat([build_stations(grid), micro], ignore_index=True)

    cb = cbld.groupby("compound_id")["households"].sum()
    compounds.insert(3, "households", compounds["id"].map(cb).astype("int64"))
    layers = {
        "pipelines": _gdf(pipes, "pipelines"),
        "buildings": _gdf(buildings, "buildings", local=False),
        "sites": _gdf(sites, "sites"),
        "hca": _gdf(hca, "hca"),
        "cameras": _gdf(cameras.drop(columns=["hca_id"]), "cameras", _points(cameras)),
        "roads": _gdf(roads[ROAD_COLUMNS], "roads", road_geometries(roads)),
        "restricted_zones": _gdf(zones, "restricted_zones"),
        "hazmat_routes": _gdf(routes, "hazmat_routes"),
        "fire_lanes": _gdf(lanes, "fire_lanes"),
        "fire_stations": _gdf(stations, "fire_stations", _points(stations)),
        "hydrants": _gdf(hydrants[["id", "status"]], "hydrants", _points(hydrants)),
        "compounds": _gdf(compounds, "compounds"),
        "construction_sites": _gdf(csites, "construction_sites"),
        "pipeline_facilities": _gdf(facilities, "pipeline_facilities"),
        "warning_signs": _gdf(signs, "warning_signs"),
        "patrol_paths": _gdf(paths, "patrol_paths"),
    }
    for name in LAYER_NAMES:  # a layer no demo module builds (yet) is stored empty
        if name not in layers:
            layers[name] = gpd.GeoDataFrame({"id": pd.Series([], dtype=object)},
                                            geometry=gpd.GeoSeries([], crs=ANALYSIS_EPSG))
    layers = {name: layers[name] for name in LAYER_NAMES}

    cases: list[dict[str, Any]] = [*pl_cases, hca_case, *route_cases, *fire_cases,
                                   *patrol_cases, *prot_cases]
    road_len = float(shapely.length(road_geometries(roads[roads["id"].isin(gap_ids)])).sum())
    cases.append({"case": "hydrant_gap", "layer": "roads", "id": gap_ids[0], "ids": gap_ids,
                  "expect": "finding", "length_m": round(road_len, 3),
                  "note": "streets without hydrants (GB 50974 7.2.5: spacing <= 120 m)"})
    for hid in hydrants.loc[hydrants["status"] == "faulty", "id"]:
        cases.append({"case": "hydrant_faulty", "layer": "hydrants", "id": hid,
                      "expect": "finding"})
    to_ll = Transformer.from_crs(ANALYSIS_EPSG, 4490, always_xy=True)
    for sid, label, g in sites.loc[sites["name"] == "depot", ["id", "label", "geometry"]].itertuples(
        index=False
    ):
        c = g.centroid
        lon, lat = to_ll.transform(c.x + L.E0, c.y + L.N0)
        cases.append({"case": "depot", "layer": "sites", "id": sid,
                      "lonlat": [round(lon, 7), round(lat, 7)],
                      "xy_4548": [round(c.x + L.E0, 3), round(c.y + L.N0, 3)],
                      "note": f"hazmat depot {label} (routing O-D)"})
    for c in cases:  # drop None values for a clean manifest
        for k in [k for k, v in c.items() if v is None]:
            del c[k]
    manifest = {
        "seed": seed, "scale": scale, "crs": "EPSG:4490", "analysis_crs": "EPSG:4548",
        "origin_4548": [L.E0, L.N0], "grid": {"nx": grid.nx, "ny": grid.ny, "block_m": grid.b},
        "extent_4548": [grid.extent[0] + L.E0, grid.extent[1] + L.N0,
                        grid.extent[2] + L.E0, grid.extent[3] + L.N0],
        "clearance_m": CLEARANCE_M,
        "notes": _NOTES,
        "counts": {name: len(g) for name, g in layers.items()},
        "cases": cases,
        "timing": {"build_s": round(time.perf_counter() - t0, 3)},
    }  # fmt: skip
    return DemoDistrict(layers=layers, manifest=manifest, positions=positions)


def write_demo(
    out: str | os.PathLike[str] = "data/demo.gpkg", *, seed: int = 42, scale: float = 1.0
) -> dict[str, Any]:
    """Build the demo and write it: every layer in one store write, then the manifest.

    The GeoPackage is written to a fresh temporary file beside ``out`` and renamed over it,
    so an existing demo is replaced whole or not at all. Returns the manifest.
    """
    from layers.store import GeoPackageStore

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    demo = build_demo(seed=seed, scale=scale)
    t0 = time.perf_counter()
    tmpdir = Path(tempfile.mkdtemp(prefix=".demo-", dir=out.parent))
    try:
        tmp = tmpdir / "demo.gpkg"
        GeoPackageStore(tmp).write(demo.layers)
        # a WAL journal left by an earlier store at ``out`` must not be applied to the new file
        for stale in (Path(f"{out}-wal"), Path(f"{out}-shm")):
            stale.unlink(missing_ok=True)
        os.replace(tmp, out)
    finally:
        for p in tmpdir.iterdir():
            p.unlink()
        tmpdir.rmdir()
    manifest = dict(demo.manifest)
    manifest["timing"] = {**manifest["timing"], "write_s": round(time.perf_counter() - t0, 3)}
    mp = manifest_path(out)
    mp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    write_positions(positions_path(out), demo.positions)
    return manifest
