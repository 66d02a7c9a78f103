"""PostGIS item pages are pushed down to SQL and equal the GeoPackage source's pages.

The same small layers are written to a GeoPackage and to a PostGIS store; every query is asked
of :class:`StoreLayerSource` and :class:`PostGISLayerSource` and the pages must agree: columns,
values with their Python types, ids, order, geometries, ``numberMatched`` and the large-result
offsets. Then the same through HTTP, and the page query's plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Polygon, box

from api import features
from api.app import create_app
from api.features import (
    ItemsQuery,
    NearFilter,
    Page,
    PostGISLayerSource,
    StoreLayerSource,
    source_for,
)
from api.settings import Settings
from layers import pg_query as pq
from layers.errors import LayerNotFoundError
from layers.postgis import PostGISStore
from layers.store import GeoPackageStore
from tests.api.conftest import API_KEYS, auth
from tests.layers.postgis_support import postgis_url, scratch_schema

pytestmark = pytest.mark.server

LON0, LAT0 = 117.25, 34.80
D = 2e-4
N = 400


def _buildings() -> gpd.GeoDataFrame:
    k = np.arange(N)
    x, y = LON0 + (k % 20) * D, LAT0 + (k // 20) * D
    geoms = list(shapely.box(x, y, x + D / 2, y + D / 2))
    geoms[5] = MultiPolygon([box(x[5], y[5], x[5] + D / 4, y[5] + D / 4),
                             box(x[5] + D / 3, y[5], x[5] + D / 2, y[5] + D / 4)])
    # an L-shape whose envelope meets boxes it does not touch
    geoms[21] = Polygon([(x[21], y[21]), (x[21] + D, y[21]), (x[21] + D, y[21] + D / 8),
                         (x[21] + D / 8, y[21] + D / 8), (x[21] + D / 8, y[21] + D),
                         (x[21], y[21] + D)])
    ids: list[str | None] = [f"B-{i:04d}" for i in k]
    ids[7] = None
    return gpd.GeoDataFrame({
        "id": ids,
        "use": np.asarray(["residential", "school", "office", "医院"])[k % 4],
        "floors": (k % 9 + 1).astype("int64"),
        "height_m": np.where(k % 11 == 0, np.nan, k * 0.5 + 0.25),
        "school": k % 3 == 0,
        "built": [dt.date(2000 + int(i) % 20, 1 + int(i) % 12, 1) if i % 5 else None
                  for i in k],
        "name": ["" if i % 7 == 0 else f"house {i}" for i in k],
    }, geometry=geoms, crs=4490)


def _no_ids() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"label": ["a", "b", "c"]},
                            geometry=shapely.points([LON0, LON0 + D, LON0 + 2 * D], LAT0),
                            crs=4490)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GeoPackageStore,
                                                                       PostGISStore]]:
    layers = {"buildings": _buildings(), "labels": _no_ids()}
    gpkg = GeoPackageStore(tmp_path_factory.mktemp("pages") / "s.gpkg")
    gpkg.write(layers)
    with scratch_schema(postgis_url()) as url:
        pg = PostGISStore(url)
        pg.write(layers)
        yield gpkg, pg


def _sources(stores: tuple[GeoPackageStore, PostGISStore], layer: str = "buildings"
             ) -> tuple[StoreLayerSource, PostGISLayerSource]:
    gpkg, pg = stores
    a, b = source_for(gpkg, layer), source_for(pg, layer)
    assert isinstance(a, StoreLayerSource) and isinstance(b, PostGISLayerSource)
    return a, b


def _same(a: Page | None, b: Page | None) -> None:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    assert b.columns == a.columns
    assert b.ids == a.ids
    assert [tuple(map(type, r)) for r in b.records] == [tuple(map(type, r)) for r in a.records]
    assert b.records == a.records
    assert list(shapely.to_wkb(b.geometries)) == list(shapely.to_wkb(a.geometries))
    assert (b.matched, b.next_offset) == (a.matched, a.next_offset)


def _near(within_m: float) -> NearFilter:
    crs = CRS.from_epsg(4548)
    x, y = Transformer.from_crs(4490, crs, always_xy=True).transform(LON0 + 5 * D, LAT0 + 5 * D)
    return NearFilter(target=shapely.Point(x, y), crs=crs, within_m=within_m)


QUERIES = {
    "first page": ItemsQuery(limit=10),
    "offset page": ItemsQuery(limit=25, offset=380),
    "past the end": ItemsQuery(limit=10, offset=500),
    "filter": ItemsQuery(where={"use": "school"}, limit=30, offset=20),
    "filters of every type": ItemsQuery(where={"school": True, "floors": 4}, limit=50),
    "unicode and null": ItemsQuery(where={"use": "医院", "built": None}, limit=100),
    "date filter": ItemsQuery(where={"built": "2001-02-01"}),
    "no such value": ItemsQuery(where={"use": "\x00no-such-value"}),
    "bbox": ItemsQuery(region=box(LON0 + 2.2 * D, LAT0 + 0.2 * D, LON0 + 6.1 * D,
                                  LAT0 + 4.3 * D), limit=7, offset=3),
    "bbox misses the L's arm": ItemsQuery(region=box(LON0 + 1.3 * D, LAT0 + 1.3 * D,
                                                     LON0 + 1.9 * D, LAT0 + 1.9 * D)),
    "bbox and filter": ItemsQuery(region=box(LON0, LAT0, LON0 + 10 * D, LAT0 + 10 * D),
                                  where={"use": "office"}, limit=5, offset=5),
    "polygon region": ItemsQuery(region=Polygon([(LON0, LAT0), (LON0 + 12 * D, LAT0),
                                                 (LON0, LAT0 + 12 * D)]), limit=40),
    "near": ItemsQuery(near=_near(60.0), limit=8, offset=2),
    "near in a bbox": ItemsQuery(near=_near(90.0), region=box(LON0, LAT0, LON0 + 5.5 * D,
                                                              LAT0 + 20 * D)),
    "disjoint bbox and near": ItemsQuery(near=_near(10.0), region=box(LON0, LAT0,
                                                                      LON0 + D, LAT0 + D)),
    "empty bbox": ItemsQuery(region=box(LON0 - 1, LAT0 - 1, LON0 - 0.9, LAT0 - 0.9)),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_pages_equal_the_geopackage_source(stores: tuple[GeoPackageStore, PostGISStore],
                                           name: str) -> None:
    a, b = _sources(stores)
    q = QUERIES[name]
    expected = a.page(q)
    _same(expected, b.page(q))
    if name == "bbox":
        assert expected.matched == 25 and len(expected.ids) == 7
    if name == "bbox misses the L's arm":
        assert "B-0021" not in expected.ids and expected.matched == 0


@pytest.mark.parametrize("name", ["bbox", "polygon region", "near in a bbox", "bbox and filter"])
def test_large_results_page_through_candidates_alike(
        stores: tuple[GeoPackageStore, PostGISStore], name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Above LARGE_RESULT candidates: no numberMatched, offsets count candidates — the
    next offsets and every page agree until the end."""
    monkeypatch.setattr(features, "LARGE_RESULT", 5)
    a, b = _sources(stores)
    q = QUERIES[name]
    q = ItemsQuery(region=q.region, near=q.near, where=q.where, limit=4, offset=0)
    pages = 0
    while True:
        pa, pb = a.page(q), b.page(q)
        _same(pa, pb)
        assert pa.matched is None
        pages += 1
        if pa.next_offset is None:
            break
        q = ItemsQuery(region=q.region, near=q.near, where=q.where, limit=4,
                       offset=pa.next_offset)
    assert pages >= 2


def test_features_by_id_and_fid(stores: tuple[GeoPackageStore, PostGISStore]) -> None:
    a, b = _sources(stores)
    for fid in ["B-0000", "B-0005", "B-0399", "B-9999", "", "8", "B-0007"]:
        _same(a.feature(fid), b.feature(fid))
    got = b.feature("B-0123")
    assert got is not None and got.ids == ["B-0123"] and got.matched == 1
    assert b.feature("B-9999") is None
    la, lb = _sources(stores, "labels")
    for fid in ["1", "3", "4", "0", "x"]:
        _same(la.feature(fid), lb.feature(fid))
    third = lb.feature("3")
    assert third is not None and third.ids == [3] and third.records == [("c",)]
    _same(la.page(ItemsQuery()), lb.page(ItemsQuery()))


def test_columns_and_errors(stores: tuple[GeoPackageStore, PostGISStore]) -> None:
    a, b = _sources(stores)
    assert b.columns() == a.columns() == [
        ("id", "str"), ("use", "str"), ("floors", "int"), ("height_m", "float"),
        ("school", "bool"), ("built", "date"), ("name", "str")]
    with pytest.raises(LayerNotFoundError, match="no column 'nope'"):
        b.page(ItemsQuery(where={"nope": 1}))
    with pytest.raises(LayerNotFoundError, match="has no layer 'roads'"):
        PostGISLayerSource(stores[1], "roads").page(ItemsQuery())


def test_page_query_uses_the_gist_index_and_a_limit(tmp_path: Path) -> None:
    with scratch_schema(postgis_url()) as url:
        pg = PostGISStore(url)
        xs, ys = np.meshgrid(np.arange(150), np.arange(150))
        pts = shapely.points(LON0 + xs.ravel() * 1e-4, LAT0 + ys.ravel() * 1e-4)
        pg.write({"hydrants": gpd.GeoDataFrame({"id": [f"H{i}" for i in range(pts.size)]},
                                               geometry=pts, crs=4490)})
        region = pq.Region((LON0, LAT0, LON0 + 5e-4, LAT0 + 5e-4),
                           box(LON0, LAT0, LON0 + 5e-4, LAT0 + 5e-4))
        with pq.reader(pg) as cur:
            meta = pq.describe(cur, pg, "hydrants")
            plan = pq.explain_page(cur, meta, region=region, limit=10)
            by_id = pq.explain_page(cur, meta, where={"id": "H77"}, limit=1)
        assert "hydrants_gix" in plan and "&&" in plan and plan.startswith("Limit")
        assert "hydrants_idx" in by_id
        page = PostGISLayerSource(pg, "hydrants").page(ItemsQuery(region=region.exact, limit=10))
        assert page.matched == 36 and page.ids == [f"H{i}" for i in
                                                  (0, 1, 2, 3, 4, 5, 150, 151, 152, 153)]


def _client(store: str) -> TestClient:
    return TestClient(create_app(Settings(store=store, api_keys=API_KEYS)))


def test_http_pages_equal(stores: tuple[GeoPackageStore, PostGISStore]) -> None:
    gpkg, pg = stores
    urls = ["/collections/buildings/items?limit=5&offset=3",
            f"/collections/buildings/items?bbox={LON0},{LAT0},{LON0 + 4 * D},{LAT0 + 4 * D}"
            "&limit=6&use=school",
            "/collections/buildings/items?school=true&floors=4",
            "/collections/buildings/items/B-0042",
            "/collections/labels/items/2"]
    with _client(str(gpkg.path)) as ca, _client(pg._url) as cb:
        for url in urls:
            ra, rb = ca.get(url, headers=auth("admin")), cb.get(url, headers=auth("admin"))
            assert ra.status_code == rb.status_code == 200, (url, rb.text)
            ja, jb = ra.json(), rb.json()
            ja.pop("timeStamp", None)
            jb.pop("timeStamp", None)
            assert jb == ja, url
        missing = "/collections/buildings/items/B-9999"
        assert cb.get(missing, headers=auth("admin")).status_code == 404


def test_offset_pages_when_fids_have_gaps() -> None:
    """Offsets of a whole-layer page are fid ranges only while fids are 1 … count; after an
    outside delete the page still skips ``offset`` rows."""
    import psycopg

    from layers.postgis import split_url

    with scratch_schema(postgis_url()) as url:
        pg = PostGISStore(url)
        pg.write({"labels": gpd.GeoDataFrame(
            {"id": [f"L{i}" for i in range(10)]},
            geometry=shapely.points(LON0 + np.arange(10) * D, LAT0), crs=4490)})
        src = PostGISLayerSource(pg, "labels")
        assert src.page(ItemsQuery(limit=3, offset=3)).ids == ["L3", "L4", "L5"]
        conninfo, schema = split_url(url)
        with psycopg.connect(conninfo) as conn:
            conn.execute(f'DELETE FROM "{schema}".labels WHERE id = %s', ("L1",))
            conn.execute(f'UPDATE "{schema}".riskmap_layers SET feature_count = 9')
        page = src.page(ItemsQuery(limit=3, offset=3))
        assert page.ids == ["L4", "L5", "L6"] and page.matched == 9
        assert src.page(ItemsQuery(limit=3, offset=8)).ids == ["L9"]
