"""The demo district on PostGIS: same layers, same pipeline findings, same API answers as on
the GeoPackage store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from geopandas.testing import assert_geodataframe_equal
from postgis_support import postgis_url, scratch_schema

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def stores(demo_store: tuple[Any, dict]) -> Iterator[tuple[Any, Any]]:
    from layers.postgis import PostGISStore

    gpkg, _ = demo_store
    with scratch_schema(postgis_url()) as url:
        pg = PostGISStore(url)
        pg.write({info.name: gpkg.read(info.name) for info in gpkg.layers()})
        yield gpkg, pg


def test_every_layer_reads_back_identically(stores: tuple[Any, Any]) -> None:
    gpkg, pg = stores
    ref = {i.name: i for i in gpkg.layers()}
    got = {i.name: i for i in pg.layers()}
    assert list(got) == list(ref) and len(ref) == 16
    for name, info in ref.items():
        assert (got[name].count, got[name].geometry_type) == (info.count, info.geometry_type)
        assert got[name].bbox == pytest.approx(info.bbox, abs=1e-9)
        assert_geodataframe_equal(pg.read(name), gpkg.read(name))
    bbox = (117.24, 34.79, 117.26, 34.81)
    got_ids = pg.read("buildings", bbox=bbox)["id"].tolist()
    assert len(got_ids) > 100
    assert sorted(got_ids) == sorted(gpkg.read("buildings", bbox=bbox)["id"].tolist())


@pytest.mark.parametrize("engine", ["local", "postgis"])
def test_pipeline_check_same_findings(stores: tuple[Any, Any], engine: str) -> None:
    from api.commands.pipelines import run_pipeline_check

    gpkg, pg = stores
    ref = run_pipeline_check(gpkg).findings
    got = run_pipeline_check(pg, engine=engine).findings
    assert len(ref) > 0
    assert_geodataframe_equal(got, ref)


def test_api_serves_the_postgis_store(stores: tuple[Any, Any]) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    gpkg, pg = stores
    answers = []
    for store in (gpkg, pg):
        with TestClient(create_app(Settings(store=str(store.url), anonymous_role="planner"),
                                   store=store)) as client:
            r = client.get("/collections/buildings/items",
                           params={"bbox": "117.24,34.79,117.26,34.81", "limit": 50})
            assert r.status_code == 200, r.text
            body = r.json()
            answers.append((body["numberMatched"],
                            [f["id"] for f in body["features"]],
                            [f["geometry"] for f in body["features"]]))
    assert answers[0] == answers[1] and answers[0][0] > 0
