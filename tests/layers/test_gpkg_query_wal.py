"""Cached API readers see every committed write of a WAL store (issue 11): a write in WAL mode
may leave the main file's size and mtime untouched, so metadata must not be keyed on them."""

from __future__ import annotations

import geopandas as gpd
import shapely

from layers import gpkg_query as gq
from layers.store import GeoPackageStore


def _points(start: int, n: int, **extra: object) -> gpd.GeoDataFrame:
    data = {"id": [f"P{i}" for i in range(start, start + n)], **{k: [v] * n for k, v in
                                                               extra.items()}}
    geoms = shapely.points([117.0 + i * 1e-4 for i in range(start, start + n)], [35.0] * n)
    return gpd.GeoDataFrame(data, geometry=geoms, crs=4490)


def test_cached_reader_sees_appends_and_new_columns(tmp_path):
    path = tmp_path / "s.gpkg"
    store = GeoPackageStore(path)
    store.write({"pts": _points(0, 10)})
    with gq.reader(path) as con:
        meta = gq.describe(con, "pts")
    assert meta.count == 10 and meta.column("note") is None
    held = gq.connect(path)  # another reader keeps the WAL from being checkpointed away
    with held as other:
        other.execute("SELECT count(*) FROM pts").fetchone()
        store.append("pts", _points(10, 10, note="x"))
        with gq.reader(path) as con:
            meta = gq.describe(con, "pts")
    assert meta.count == 20
    assert meta.column("note") is not None


def test_cached_reader_sees_a_replace(tmp_path):
    path = tmp_path / "s.gpkg"
    store = GeoPackageStore(path)
    store.write({"pts": _points(0, 10)})
    with gq.reader(path) as con:
        assert gq.describe(con, "pts").count == 10
    store.write({"pts": _points(0, 3)})
    with gq.reader(path) as con:
        assert gq.describe(con, "pts").count == 3
