"""read_near: only the features near lines, through the store's spatial index."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString

from layers.near import boxes_near, read_near
from layers.store import GeoPackageStore

CRS = "EPSG:4548"
X0, Y0 = 500_000.0, 3_800_000.0


class _Plain:
    """A store that is not a GeoPackageStore (exercises the tiled fallback)."""

    def __init__(self, inner: GeoPackageStore) -> None:
        self.inner = inner
        self.url = inner.url

    def read(self, layer: str, **kw: object) -> gpd.GeoDataFrame:
        return self.inner.read(layer, **kw)  # type: ignore[arg-type]


def _store(tmp_path: Path) -> tuple[GeoPackageStore, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    xs, ys = np.meshgrid(np.arange(0, 5000, 50.0), np.arange(-2000, 2000, 50.0))
    x, y = X0 + xs.ravel(), Y0 + ys.ravel()
    b = gpd.GeoDataFrame({"id": [f"B{i:05d}" for i in range(len(x))], "use": "residential"},
                         geometry=shapely.box(x, y, x + 10, y + 10), crs=CRS)
    lines = gpd.GeoDataFrame({"id": ["P1"]}, geometry=[LineString(
        [(X0, Y0 - 1500), (X0 + 4000, Y0 + 1500)])], crs=CRS)
    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.write({"buildings": b})
    return store, b, lines


def test_reads_a_superset_of_the_near_features_and_few_others(tmp_path: Path) -> None:
    store, b, lines = _store(tmp_path)
    near = read_near(store, "buildings", lines, 25.0, columns=["id", "use"])
    d = shapely.distance(b.geometry.values, lines.geometry.iat[0])
    want = set(b.loc[d <= 25.0, "id"])
    got = set(near["id"])
    assert want <= got
    assert len(got) < len(b) / 10  # the index did the work
    assert near.crs == b.crs and list(near.columns) == ["id", "use", "geometry"]
    assert near["id"].tolist() == sorted(near["id"])  # stored order
    # the generic (tiled bbox reads) path gives a superset too
    plain = read_near(_Plain(store), "buildings", lines, 25.0)  # type: ignore[arg-type]
    assert want <= set(plain["id"])


def test_boxes_cover_the_radius_in_lon_lat(tmp_path: Path) -> None:
    _, _, lines = _store(tmp_path)
    boxes = boxes_near(lines, 30.0)
    assert boxes.shape[1] == 4 and (boxes[:, 2] > boxes[:, 0]).all()
    assert 116.9 < boxes[:, 0].min() < 117.1
    empty = read_near(_store(tmp_path / "x")[0], "buildings",
                      lines.set_geometry([LineString([(0, 0), (10, 0)])], crs=CRS), 5.0)
    assert len(empty) == 0


def test_boxes_are_stretches_of_line_and_cover_every_point_within_the_radius() -> None:
    from pyproj import Transformer
    from shapely.geometry import MultiLineString

    # 1 km with a vertex every 10 m; a MultiLineString with a gap; one 2 km segment
    xs = np.arange(0, 1001, 10.0)
    lines = gpd.GeoDataFrame({"id": ["V", "M", "L"]}, geometry=[
        LineString(np.c_[X0 + xs, np.full(len(xs), Y0)]),
        MultiLineString([[(X0, Y0 + 500), (X0 + 300, Y0 + 500)],
                         [(X0 + 400, Y0 + 500), (X0 + 400, Y0 + 700)]]),
        LineString([(X0, Y0 - 500), (X0 + 2000, Y0 - 300)]),
    ], crs=CRS)
    boxes = boxes_near(lines, np.array([12.0, 12.0, 12.0]), piece_m=50.0)
    # 20 stretches of 50 m; 6 + 4 over the two parts; the 2010 m segment is cut into 41
    # pieces of 49.02 m, grouped by 50 m of length: 40 stretches
    assert len(boxes) == 20 + 10 + 40
    rng = np.random.default_rng(5)
    pts = []
    for g in lines.geometry.values:
        at = shapely.line_interpolate_point(g, rng.uniform(0, g.length, 4000))
        ang, rad = rng.uniform(0, 2 * np.pi, 4000), rng.uniform(0, 12.0, 4000)
        pts.append(shapely.get_coordinates(at) + np.c_[rad * np.cos(ang), rad * np.sin(ang)])
    xy = np.concatenate(pts)
    lon, lat = Transformer.from_crs(CRS, "EPSG:4490", always_xy=True).transform(*xy.T)
    inside = ((lon[:, None] >= boxes[:, 0]) & (lon[:, None] <= boxes[:, 2])
              & (lat[:, None] >= boxes[:, 1]) & (lat[:, None] <= boxes[:, 3]))
    assert inside.any(axis=1).all()


def test_box_join_reads_exactly_the_r_tree_candidates(tmp_path: Path) -> None:
    """read_layer(boxes=): the features whose R-tree box meets a box, each once, in fid order
    — the same frame as reading those fids (and read_near gives it in the lines' CRS)."""
    import sqlite3

    from layers import gpkg_read

    store, b, lines = _store(tmp_path)
    boxes = boxes_near(lines, 30.0)
    with sqlite3.connect(store.path) as con:
        want = sorted({r[0] for q in boxes.tolist() for r in con.execute(
            "SELECT id FROM rtree_buildings_geom WHERE maxx >= ? AND minx <= ? AND maxy >= ? "
            "AND miny <= ?", (q[0], q[2], q[1], q[3]))})
    assert 0 < len(want) < len(b) // 10
    with gpkg_read.snapshot(store.path) as con:
        got = gpkg_read.read_layer(con, "buildings", boxes=boxes, columns=["id"])
        by_fid = gpkg_read.read_layer(con, "buildings", fids=want, columns=["id"])
        again = gpkg_read.read_layer(con, "buildings", boxes=boxes[:1], columns=["id"])
    assert got.equals(by_fid) and len(got) == len(want)
    assert got["id"].is_monotonic_increasing and got["id"].is_unique
    assert set(again["id"]) < set(got["id"])  # the temporary table is refilled per read
    near = read_near(store, "buildings", lines, 30.0, columns=["id"])
    assert near["id"].tolist() == got["id"].tolist() and near.crs == lines.crs
