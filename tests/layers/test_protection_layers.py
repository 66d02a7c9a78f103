"""Issue 16 layers: construction_sites, pipeline_facilities, warning_signs, patrol_paths."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from layers.errors import LayerValidationError
from layers.importing import import_file
from layers.schema import LAYER_NAMES, SCHEMAS
from layers.store import GeoPackageStore

NEW = ("construction_sites", "pipeline_facilities", "warning_signs", "patrol_paths")


def _fc(features: list[tuple[dict[str, object], dict[str, object]]]) -> dict[str, object]:
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": p, "geometry": g}
                         for p, g in features]}


def _pt(lon: float, lat: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [lon, lat]}


def _sq(lon: float, lat: float, d: float = 0.0005) -> dict[str, object]:
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _write(path: Path, fc: dict[str, object]) -> Path:
    path.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_four_layers_follow_the_twelve() -> None:
    assert LAYER_NAMES[-4:] == NEW and len(LAYER_NAMES) == 16
    assert SCHEMAS["construction_sites"].required == ("id", "work")
    assert SCHEMAS["warning_signs"].geometry_types == ("Point",)
    assert SCHEMAS["patrol_paths"]["passable"].default is True


def test_construction_sites_import_with_chinese_names_and_dates(tmp_path: Path) -> None:
    fc = _fc([
        ({"id": "CS-1", "work": "开挖", "permit_no": "许-001", "permit_from": "2026/3/1",
          "permit_to": "2026年12月31日", "status": "施工中"}, _sq(117.25, 34.80)),
        ({"id": "CS-2", "work": "Blasting", "status": "planned"}, _pt(117.26, 34.80)),
        ({"id": "CS-3", "work": "取土"}, _pt(117.27, 34.80)),
    ])
    store = GeoPackageStore(tmp_path / "d.gpkg")
    import_file(store, "construction_sites", _write(tmp_path / "cs.geojson", fc))
    got = store.read("construction_sites")
    assert got["work"].tolist() == ["excavation", "blasting", "mining"]
    assert got["status"].tolist() == ["active", "planned", "active"]  # default active
    assert got["permit_from"].iloc[0] == dt.date(2026, 3, 1)
    assert got["permit_to"].iloc[0] == dt.date(2026, 12, 31)
    assert got.geometry.geom_type.tolist() == ["Polygon", "Point", "Point"]


def test_construction_sites_all_or_nothing(tmp_path: Path) -> None:
    fc = _fc([
        ({"id": "CS-1", "work": "excavation"}, _pt(117.25, 34.80)),
        ({"id": "CS-2", "work": "sunbathing"}, _pt(117.26, 34.80)),
        ({"id": "CS-3", "work": "road", "permit_to": "soon"}, _pt(117.27, 34.80)),
    ])
    store = GeoPackageStore(tmp_path / "d.gpkg")
    with pytest.raises(LayerValidationError) as err:
        import_file(store, "construction_sites", _write(tmp_path / "cs.geojson", fc))
    lines = [str(p) for p in err.value.problems]
    assert lines[0].startswith(
        "layer 'construction_sites', feature 'CS-2': work is 'sunbathing'; expected one of "
        "crossing, road, railway,")
    assert lines[1].startswith(
        "layer 'construction_sites', feature 'CS-3': permit_to is 'soon'; expected a date")
    assert len(lines) == 2 and store.layers() == []


def test_facilities_signs_and_paths_import(tmp_path: Path) -> None:
    store = GeoPackageStore(tmp_path / "d.gpkg")
    import_file(store, "pipeline_facilities", _write(tmp_path / "f.geojson", _fc([
        ({"id": "F-1", "kind": "阀室", "pipeline_id": "P-1"}, _pt(117.25, 34.80)),
        ({"id": "F-2", "kind": "station"}, _sq(117.26, 34.80)),
        ({"id": "F-3", "kind": "河流穿越", "pipeline_id": "P-1"},
         {"type": "LineString", "coordinates": [[117.25, 34.81], [117.25, 34.812]]}),
    ])))
    import_file(store, "warning_signs", _write(tmp_path / "s.geojson", _fc([
        ({"id": "S-1", "pipeline_id": "P-1", "status": "损坏"}, _pt(117.25, 34.80)),
        ({"id": "S-2", "pipeline_id": "P-1", "status": "缺失"}, _pt(117.25, 34.801)),
        ({"id": "S-3", "pipeline_id": "P-1"}, _pt(117.25, 34.802)),
    ])))
    import_file(store, "patrol_paths", _write(tmp_path / "p.geojson", _fc([
        ({"id": "W-1", "pipeline_id": "P-1", "passable": "否"},
         {"type": "LineString", "coordinates": [[117.25, 34.80], [117.26, 34.80]]}),
        ({"id": "W-2", "pipeline_id": "P-1"},
         {"type": "LineString", "coordinates": [[117.26, 34.80], [117.27, 34.80]]}),
    ])))
    assert store.read("pipeline_facilities")["kind"].tolist() == [
        "valve", "station", "river_crossing"]
    assert store.read("warning_signs")["status"].tolist() == ["damaged", "missing", "ok"]
    assert store.read("patrol_paths")["passable"].tolist() == [False, True]


def test_sign_needs_a_point(tmp_path: Path) -> None:
    store = GeoPackageStore(tmp_path / "d.gpkg")
    bad = _fc([({"id": "S-1", "pipeline_id": "P-1"}, _sq(117.25, 34.80))])
    with pytest.raises(LayerValidationError) as err:
        import_file(store, "warning_signs", _write(tmp_path / "s.geojson", bad))
    assert str(err.value.problems[0]).startswith(
        "layer 'warning_signs', feature 'S-1': geometry is ")


DATA = Path(__file__).parents[1] / "data"


def test_osm_construction_areas_and_pipelines_import(tmp_path: Path) -> None:
    store = GeoPackageStore(tmp_path / "d.gpkg")
    import_file(store, "construction_sites", DATA / "construction.osm")
    got = store.read("construction_sites")
    # closed ways only: the highway=construction line w104 is not a site
    assert got["id"].tolist() == ["w101", "w102", "w103"]
    assert got["work"].tolist() == ["road", "building", "other"]
    assert got["status"].tolist() == ["active"] * 3
    assert got["name"].tolist()[::2] == ["Road works", "工地"]
    assert got.geometry.geom_type.tolist() == ["MultiPolygon"] * 3  # as osmium builds areas
    import_file(store, "pipelines", DATA / "construction.osm")
    pipes = store.read("pipelines")  # the water pipeline w202 is left out
    assert pipes[["id", "medium", "kind", "pressure_mpa", "diameter_mm"]].values.tolist() == [
        ["w201", "natural_gas", "long_distance", 6.3, 610.0]]


def test_postgis_store_takes_the_new_layers(tmp_path: Path) -> None:
    from tests.layers.postgis_support import postgis_url, scratch_schema

    url = postgis_url()  # skips without a test server
    from layers.postgis import PostGISStore

    gpkg = GeoPackageStore(tmp_path / "d.gpkg")
    import_file(gpkg, "construction_sites", DATA / "construction.osm")
    import_file(gpkg, "pipeline_facilities", _write(tmp_path / "f.geojson", _fc([
        ({"id": "F-1", "kind": "valve"}, _pt(117.25, 34.80)),
        ({"id": "F-3", "kind": "tunnel"},
         {"type": "LineString", "coordinates": [[117.25, 34.81], [117.25, 34.812]]})])))
    with scratch_schema(url) as u:
        pg = PostGISStore(u)
        pg.write({n: gpkg.read(n) for n in ("construction_sites", "pipeline_facilities")})
        for n in ("construction_sites", "pipeline_facilities"):
            a, b = pg.read(n), gpkg.read(n)
            assert a["id"].tolist() == b["id"].tolist()
            assert a.geometry.geom_equals_exact(b.geometry, 1e-9).all()
        assert pg.read("pipeline_facilities")["kind"].tolist() == ["valve", "tunnel"]
