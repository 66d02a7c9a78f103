"""Import on real files from outside the project (tests/data/real) and on real-world quirks.

The real files come from PyPI packages (see tests/data/real/README.md). Quirks no real file
here shows (GBK Shapefiles without .cpg, GK coordinates with a zone prefix, swapped lat/lon,
legacy GeoJSON ``crs`` members, numbers written with units …) are written per test in
``tmp_path``. Known coordinates are checked to < 1 cm on the ellipsoid after reprojection.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import CRS, Geod, Transformer

import api.cli
from layers.errors import InputFileError, LayerValidationError
from layers.importing import ImportResult, import_file
from layers.store import GeoPackageStore

REAL = Path(__file__).parents[1] / "data" / "real"
GEOD = Geod(ellps="GRS80")


def gap_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance on the ellipsoid between two lon/lat points (metres)."""
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def first_xy(store: GeoPackageStore, layer: str, fid: str) -> tuple[float, float]:
    gdf = store.read(layer)
    g = gdf.loc[gdf["id"] == fid, "geometry"].iloc[0]
    x, y = shapely.get_coordinates(g)[0]
    return float(x), float(y)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def messages(exc: LayerValidationError) -> list[str]:
    return [str(p) for p in exc.problems]


def note_texts(result: ImportResult) -> list[str]:
    return [str(n) for n in result.notes]


@pytest.fixture
def store(tmp_path: Path) -> GeoPackageStore:
    return GeoPackageStore(tmp_path / "district.gpkg")


# --- projected real files: CRS from .prj, a known vertex to < 1 cm ------------------------------
def test_state_plane_feet_streets_from_nested_zip(store: GeoPackageStore) -> None:
    zp = REAL / "geodanet_az_ftus.zip"
    with pytest.raises(InputFileError) as info:
        import_file(store, "roads", zp)
    assert str(info.value) == (
        f"{zp} holds several geodata files: geodanet/streets/streets.shp (--source-layer "
        "streets), geodanet/schools/schools.shp (--source-layer schools); choose one with "
        "--source-layer")
    res = import_file(store, "roads", zp, source_layer="streets")
    assert (res.imported, res.source_crs) == (293, "ESRI:102649")
    assert note_texts(res) == ["layer 'roads': field 'ID' read as 'id'"]
    assert store.read("roads").crs.to_epsg() == 4490
    # raw vertex (728368.047617978, 877125.8953524104) US ft in NAD83 / Arizona Central, as an
    # independent PROJ string (x_0 = 699998.6 ft = 213360 m)
    tm = Transformer.from_crs("+proj=tmerc +lat_0=31 +lon_0=-111.9166666666667 +k=0.9999 "
                              "+x_0=213360 +y_0=0 +ellps=GRS80 +units=us-ft +no_defs",
                              "EPSG:4326", always_xy=True)
    want = tm.transform(728368.047617978, 877125.8953524104)
    assert want == pytest.approx((-111.823696, 33.411130), abs=1e-6)
    assert gap_m(first_xy(store, "roads", "1"), want) < 0.01


def test_state_plane_schools_as_sites_with_default_kind(store: GeoPackageStore) -> None:
    res = import_file(store, "sites", REAL / "geodanet_az_ftus.zip", source_layer="schools",
                      mapping={"POLYID": "id"}, defaults={"kind": "school"})
    assert res.imported == 8
    assert note_texts(res) == [
        "layer 'sites': kind set to 'school' (--default) on 8 feature(s) that lacked it"]
    sites = store.read("sites")
    assert sites["kind"].tolist() == ["school"] * 8
    assert gap_m(first_xy(store, "sites", "1"), (-111.82790274941695, 33.41865652656735)) < 0.01


def test_web_mercator_esri_wkt_duplicate_ids_then_make_ids(store: GeoPackageStore) -> None:
    zp = REAL / "soho_network_3857.zip"
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "roads", zp)
    assert messages(info.value) == [
        "layer 'roads', feature '0': id is '0'; expected a unique id (118 features use it; fix "
        "the ids or number the features with --make-ids)"]
    assert not store.path.exists()
    res = import_file(store, "roads", zp, make_ids="SOHO-")
    assert (res.imported, res.source_crs) == (118, "EPSG:3857")
    assert note_texts(res) == [
        "layer 'roads': ids made from the feature order (--make-ids): SOHO-1 … SOHO-118; the "
        "file's field 'Id' is kept as source_id"]
    roads = store.read("roads")
    assert roads["source_id"].astype(int).tolist() == [0] * 118
    # spherical Web Mercator inverse, written out (independent of PROJ)
    x, y, r = -15664.521179199219, 6712578.655700684, 6378137.0
    want = (math.degrees(x / r), math.degrees(2 * math.atan(math.exp(y / r)) - math.pi / 2))
    assert want == pytest.approx((-0.140717, 51.513193), abs=1e-6)
    assert gap_m(first_xy(store, "roads", "SOHO-1"), want) < 0.01


def test_utm_points_refused_as_roads_in_one_problem_then_sites(store: GeoPackageStore) -> None:
    zp = REAL / "vautm17n_points.zip"
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "roads", zp)
    got = messages(info.value)
    assert len(got) == 201  # one line for the file, then every feature
    assert got[:2] == [
        "layer 'roads': geometry is 'Point (all 200 features)'; expected a LineString or "
        "MultiLineString (is this the file for layer 'roads'?)",
        "layer 'roads', feature '0': geometry is 'Point'; expected a LineString or "
        "MultiLineString"]
    res = import_file(store, "sites", zp, defaults={"kind": "other"})
    assert (res.imported, res.source_crs) == (200, "EPSG:32617")
    utm = Transformer.from_crs("+proj=utm +zone=17 +datum=WGS84", "EPSG:4326", always_xy=True)
    want = utm.transform(865322.486180551, 4150317.315954312)
    assert gap_m(first_xy(store, "sites", "0"), want) < 0.01


def test_empty_prj_needs_crs_and_says_lonlat(store: GeoPackageStore) -> None:
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "sites", REAL / "mexicojoin_empty_prj.zip", make_ids="MX-",
                    defaults={"kind": "other"})
    assert messages(info.value) == [
        "layer 'sites': crs is missing; expected the coordinate reference system of the file "
        "(state it with --crs: the coordinates look like lon/lat degrees: --crs EPSG:4490 "
        "(CGCS2000) or EPSG:4326 (WGS 84))"]
    res = import_file(store, "sites", REAL / "mexicojoin_empty_prj.zip", make_ids="MX-",
                      defaults={"kind": "other"}, crs="EPSG:4326")
    assert res.imported == 32
    assert store.read("sites")["name"].iloc[0] == "Baja California Norte"


def test_xyzm_and_curve_geopackages(store: GeoPackageStore) -> None:
    res = import_file(store, "roads", REAL / "line_zm.gpkg", make_ids="L")
    assert note_texts(res) == [
        "layer 'roads': ids made from the feature order (--make-ids): L1 … L1",
        "layer 'roads': M (measure) values dropped: Original type 'Measured 3D LineString' is "
        "converted to 'LineString Z'",
        "layer 'roads': Z coordinates dropped",
    ]
    assert not store.read("roads").geometry.has_z.any()
    res = import_file(store, "buildings", REAL / "curvepolygon.gpkg", make_ids="B")
    assert res.imported == 1
    assert store.read("buildings").geometry.iloc[0].geom_type == "Polygon"


# --- a clipped OSM extract -------------------------------------------------------------------
def test_clipped_osm_roads_all_or_nothing_then_drop_clipped(store: GeoPackageStore) -> None:
    pbf = REAL / "helsinki.osm.pbf"
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "roads", pbf)
    got = messages(info.value)
    assert len(got) == 37
    assert got[0] == (
        "layer 'roads', feature 'w7973125': geometry is missing; expected a LineString or "
        "MultiLineString (way 7973125: 1 of 2 nodes are missing from the extract (clipped at "
        "its edge); too few left for a line)")
    assert not store.path.exists()
    res = import_file(store, "roads", pbf, drop_clipped=True)
    assert (res.imported, res.source_crs) == (965, "EPSG:4326")
    skipped = [n for n in res.notes if n.kind == "skip"]
    assert len(skipped) == 37
    assert str(skipped[0]).startswith("layer 'roads', feature 'w7973125': left out "
                                      "(--drop-clipped): way 7973125: 1 of 2 nodes")
    roads = store.read("roads").set_index("id")
    assert roads.crs.to_epsg() == 4490
    r = roads.loc["w4236349"]
    assert (r["name"], r["road_class"], bool(r["oneway"]), r["speed_kmh"]) == (
        "Erottajankatu", "local", True, 30.0)
    # the first node of way 4236349 as stored in the PBF (1e-7 degree fixed point)
    assert gap_m(first_xy(store, "roads", "w4236349"), (24.9432708, 60.1665138)) < 0.01
    assert roads["road_class"].value_counts().to_dict() == {
        "local": 395, "service": 238, "collector": 186, "arterial": 146}


def test_clipped_osm_buildings_and_relations(store: GeoPackageStore) -> None:
    pbf = REAL / "helsinki.osm.pbf"
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "buildings", pbf)
    got = messages(info.value)
    assert len(got) == 54
    assert ("layer 'buildings', feature 'w17361610': geometry is missing; expected a Polygon "
            "or MultiPolygon (way 17361610: closed ring could not be built (1 of 7 nodes "
            "missing from the extract — clipped at its edge))") in got
    assert ("layer 'buildings', feature 'r167264': geometry is missing; expected a Polygon or "
            "MultiPolygon (relation 167264: 2 of 2 member way(s) have nodes missing from the "
            "extract (clipped at its edge); rings cannot be closed)") in got
    res = import_file(store, "buildings", pbf, drop_clipped=True)
    assert res.imported == 446
    b = store.read("buildings")
    assert b["use"].value_counts().to_dict() == {
        "other": 354, "residential": 21, "public_assembly": 18, "school": 15, "shed": 14,
        "market": 13, "office": 11}
    assert int(b["households_estimated"].sum()) == 21
    assert b.geometry.is_valid.all()


def test_osm_gas_pipelines_need_defaults(store: GeoPackageStore) -> None:
    pbf = REAL / "helsinki.osm.pbf"
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "pipelines", pbf)
    got = messages(info.value)
    assert got[:2] == [
        "layer 'pipelines', feature 'w45820831': kind is missing; expected one of "
        "long_distance, urban_gas (fill it in, or use --default kind=VALUE)",
        "layer 'pipelines', feature 'w45820831': pressure_mpa is missing; expected a number "
        "> 0 (fill it in, or use --default pressure_mpa=VALUE)",
    ]
    res = import_file(store, "pipelines", pbf, defaults={
        "medium": "other", "kind": "urban_gas", "pressure_mpa": "0.4", "diameter_mm": "100"})
    assert res.imported == 11  # gas only: 30 water, heat and cooling pipelines left out
    assert note_texts(res)[:4] == [
        "layer 'pipelines': medium set to 'other' (--default) on 1 feature(s) that lacked it",
        "layer 'pipelines': kind set to 'urban_gas' (--default) on 11 feature(s) that lacked it",
        "layer 'pipelines': pressure_mpa set to '0.4' (--default) on 10 feature(s) that "
        "lacked it",
        "layer 'pipelines': diameter_mm set to '100' (--default) on 8 feature(s) that lacked it",
    ]
    p = store.read("pipelines").set_index("id")
    assert p.loc["w81238736", "diameter_mm"] == pytest.approx(101.6)  # diameter=4"
    assert p.loc["w45820831", "diameter_mm"] == 100.0  # from the file, not the default
    assert set(p["pressure_class"]) == {"medium_a"}  # 0.2 < 0.4 <= 0.4 MPa


def test_osm_unsorted_and_no_pipelines(store: GeoPackageStore) -> None:
    pbf = REAL / "gdal_sample.osm.pbf"
    with pytest.raises(InputFileError) as info:
        import_file(store, "buildings", pbf)
    assert str(info.value) == (
        f"{pbf} is not sorted (Way IDs out of order: 53588781); building areas need a sorted "
        "file: sort it with `osmium sort gdal_sample.osm.pbf -o sorted.osm.pbf` and import that")
    with pytest.raises(InputFileError) as info:
        import_file(store, "pipelines", pbf)
    assert str(info.value) == (
        f"{pbf} holds no man_made=pipeline ways carrying oil, gas or other hydrocarbons (water, "
        "sewage and heat pipelines are left out); nothing to import as 'pipelines'")
    assert import_file(store, "roads", pbf).imported == 26


# --- quirks, written per test ---------------------------------------------------------------
def _gbk_shapefile_zip(tmp_path: Path) -> Path:
    """A pipelines Shapefile in GBK with Chinese field names, no .cpg and no DBF code page."""
    gdf = gpd.GeoDataFrame(
        {"编号": ["GX-01", "GX-02"], "名称": ["鲁皖输油管道", "光明路中压管"],
         "介质": ["原油", "天然气"], "类型": ["长输", "城镇燃气"], "压力": ["6.3MPa", "400kPa"],
         "管径": ["Φ720×8", "160mm"], "STATUS": ["在用", "停用"], "LAST_INSP": ["2024/5/1", "-"]},
        geometry=[shapely.LineString([(117.20, 34.79), (117.30, 34.81)]),
                  shapely.LineString([(117.24, 34.80), (117.26, 34.80)])], crs="EPSG:4490")
    d = tmp_path / "gbk"
    d.mkdir()
    pyogrio.write_dataframe(gdf, d / "管线.shp", encoding="GBK")
    (d / "管线.cpg").unlink(missing_ok=True)
    dbf = bytearray((d / "管线.dbf").read_bytes())
    dbf[29] = 0  # no language driver id: GDAL falls back to ISO-8859-1
    (d / "管线.dbf").write_bytes(bytes(dbf))
    zp = tmp_path / "gbk.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        for f in sorted(d.iterdir()):
            zf.write(f, f"导出/{f.name}")
        zf.writestr("__MACOSX/导出/._管线.shp", b"\x00\x05\x16\x07")
    return zp


def test_gbk_shapefile_without_cpg_chinese_fields_units(store: GeoPackageStore,
                                                       tmp_path: Path) -> None:
    zp = _gbk_shapefile_zip(tmp_path)
    res = import_file(store, "pipelines", zp, mapping={
        "编号": "id", "名称": "name", "介质": "medium", "类型": "kind", "压力": "pressure_mpa",
        "管径": "diameter_mm"})
    assert res.imported == 2
    assert note_texts(res) == [
        "layer 'pipelines': the Shapefile has no .cpg and no code page; its text was read as "
        "GB18030 (add a .cpg file holding GBK to say so)",
        "layer 'pipelines': field 'STATUS' read as 'status'",
        "layer 'pipelines': 2 value(s) of medium named in Chinese or a synonym read as the "
        "layer's value (e.g. '原油' → crude_oil, '天然气' → natural_gas)",
        "layer 'pipelines': 2 value(s) of kind named in Chinese or a synonym read as the layer's "
        "value (e.g. '长输' → long_distance, '城镇燃气' → urban_gas)",
        "layer 'pipelines': 2 value(s) of pressure_mpa written with a unit converted to MPa "
        "(e.g. '6.3MPa' → 6.3, '400kPa' → 0.4)",
        "layer 'pipelines': 2 value(s) of diameter_mm written with a unit converted to mm "
        "(e.g. 'Φ720×8' → 720, '160mm' → 160)",
        "layer 'pipelines': 2 value(s) of status named in Chinese or a synonym read as the "
        "layer's value (e.g. '在用' → in_service, '停用' → idle)",
    ]
    p = store.read("pipelines").set_index("id")
    assert p.loc["GX-01", "name"] == "鲁皖输油管道"
    assert p[["medium", "kind", "status"]].values.tolist() == [
        ["crude_oil", "long_distance", "in_service"], ["natural_gas", "urban_gas", "idle"]]
    assert p["pressure_class"].isna().tolist() == [True, False]  # long-distance: no class
    assert p.loc["GX-02", "pressure_class"] == "medium_a"
    assert p["pressure_mpa"].tolist() == [6.3, 0.4]
    assert p["diameter_mm"].tolist() == [720.0, 160.0]
    assert str(p.loc["GX-01", "LAST_INSP"]) == "2024/5/1"  # extra field kept as text


def test_numbers_with_units_nulls_and_chinese_booleans(store: GeoPackageStore,
                                                      tmp_path: Path) -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {
            "id": 1, "width_m": "7.5m", "speed_kmh": "60km/h", "lanes": "2车道",
            "bridge": "是", "tunnel": "否", "max_weight_t": "30吨", "max_height_m": "-",
            "road_class": "主干路", "hazmat": "禁止通行", "oneway": ""},
         "geometry": {"type": "LineString", "coordinates": [[117.20, 34.80], [117.21, 34.80]]}},
        {"type": "Feature", "properties": {
            "id": "2", "width_m": 12, "speed_kmh": "NULL", "lanes": 4, "bridge": "有",
            "tunnel": "无", "max_weight_t": "1,500", "max_height_m": "4.5 米",
            "road_class": "国道", "hazmat": "yes", "oneway": "Y"},
         "geometry": {"type": "LineString", "coordinates": [[117.21, 34.80], [117.22, 34.80]]}},
    ]}
    path = tmp_path / "roads.geojson"
    path.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "roads", path)
    assert messages(info.value) == [
        "layer 'roads', feature '2': max_weight_t is '1,500'; expected a number > 0 (remove "
        "the thousands separators)"]
    fc["features"][1]["properties"]["max_weight_t"] = "1500kg"
    path.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    import_file(store, "roads", path)
    r = store.read("roads").set_index("id")
    assert r.loc["1", ["width_m", "speed_kmh", "lanes", "max_weight_t"]].tolist() == [
        7.5, 60.0, 2, 30.0]
    assert np.isnan(r.loc["1", "max_height_m"])
    assert r.loc["2", ["max_weight_t", "max_height_m"]].tolist() == [1.5, 4.5]
    assert r["bridge"].tolist() == [True, True]
    assert r["tunnel"].tolist() == [False, False]
    assert r["oneway"].tolist() == [False, True]
    assert r["road_class"].tolist() == ["arterial", "national"]
    assert r["hazmat"].tolist() == ["no", "yes"]


def test_unit_and_dn_messages(store: GeoPackageStore, tmp_path: Path) -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {
            "id": "P1", "medium": "natural_gas", "kind": "urban_gas", "pressure_mpa": "6.3atm",
            "diameter_mm": "DN200"},
         "geometry": {"type": "LineString", "coordinates": [[117.20, 34.80], [117.21, 34.80]]}},
    ]}
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps(fc), encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "pipelines", path)
    assert messages(info.value) == [
        "layer 'pipelines', feature 'P1': pressure_mpa is '6.3atm'; expected a number > 0 (a "
        "number in MPa; written units accepted: mpa, kpa, bar, pa, psi)",
        "layer 'pipelines', feature 'P1': diameter_mm is 'DN200'; expected a number > 0 (DN is "
        "a nominal size, not the outside diameter; give the outside diameter in mm (e.g. "
        "DN700 → 711))",
    ]


ZAOZHUANG = (117.25, 34.80)


def _gk39(lon: float, lat: float) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:4490", "EPSG:4527", always_xy=True).transform(lon, lat)


def _hydrant_fc(x: float, y: float, crs_name: str | None) -> dict[str, object]:
    fc: dict[str, object] = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "H-1", "status": "正常"},
         "geometry": {"type": "Point", "coordinates": [x, y]}}]}
    if crs_name is not None:
        fc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    return fc


def test_geojson_legacy_crs_member_gk_with_zone_prefix(store: GeoPackageStore,
                                                      tmp_path: Path) -> None:
    x, y = _gk39(*ZAOZHUANG)
    assert 39_500_000 < x < 39_530_000
    path = tmp_path / "h.geojson"
    path.write_text(json.dumps(_hydrant_fc(x, y, "urn:ogc:def:crs:EPSG::4527")))
    res = import_file(store, "hydrants", path)
    assert res.source_crs == "EPSG:4527"
    assert store.read("hydrants").crs.to_epsg() == 4490
    assert gap_m(first_xy(store, "hydrants", "H-1"), ZAOZHUANG) < 0.01


def test_zone_prefix_with_the_wrong_gk_crs(store: GeoPackageStore, tmp_path: Path) -> None:
    x, y = _gk39(*ZAOZHUANG)
    path = tmp_path / "h.geojson"
    path.write_text(json.dumps(_hydrant_fc(x, y, "urn:ogc:def:crs:EPSG::4548")))
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "hydrants", path)
    assert messages(info.value) == [
        f"layer 'hydrants': crs is 'EPSG:4548'; expected coordinates within the CRS's zone "
        f"(false easting 500000) (x {x:.2f}..{x:.2f}, y {y:.2f}..{y:.2f}: x carries the zone "
        "prefix 39, so the CRS is EPSG:4527 (CGCS2000 3-degree GK zone 39; EPSG:2363 if Xian "
        "1980, EPSG:2415 if Beijing 1954); correct the CRS (--crs, or the file's .prj) or "
        "remove the prefix)"]
    csv = tmp_path / "h.csv"
    csv.write_text(f"id,X,Y\nH-1,{x:.3f},{y:.3f}\n", encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "hydrants", csv)
    assert messages(info.value) == [
        f"layer 'hydrants': crs is missing; expected the coordinate reference system of the "
        f"file (state it with --crs: the coordinates (x {x:.0f}..{x:.0f}, y {y:.0f}..{y:.0f}) "
        "look like Gauss-Krüger with zone prefix 39: --crs EPSG:4527 (CGCS2000 3-degree GK "
        "zone 39; EPSG:2363 if Xian 1980, EPSG:2415 if Beijing 1954))"]
    res = import_file(store, "hydrants", csv, crs="EPSG:4527")
    assert gap_m(first_xy(store, "hydrants", "H-1"), ZAOZHUANG) < 0.01
    assert res.imported == 1


def test_degrees_given_a_projected_crs(store: GeoPackageStore, tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id,经度,纬度\nH-1,117.25,34.80\nH-2,117.26,34.81\n", encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "hydrants", path, crs="EPSG:4548")
    assert messages(info.value) == [
        "layer 'hydrants': crs is 'EPSG:4548'; expected the CRS of the coordinates (the "
        "coordinates (x 117.25..117.26, y 34.80..34.81) look like lon/lat degrees but the "
        "file's CRS is projected (CGCS2000 / 3-degree Gauss-Kruger CM 117E); use --crs "
        "EPSG:4490 or fix the .prj)"]


def test_beijing54_gk_without_prefix_converted_with_note(store: GeoPackageStore,
                                                        tmp_path: Path) -> None:
    x, y = Transformer.from_crs("EPSG:4214", "EPSG:2436", always_xy=True).transform(*ZAOZHUANG)
    path = tmp_path / "h.csv"
    path.write_text(f"id,y,x\nH-1,{y:.4f},{x:.4f}\n", encoding="gb18030")
    res = import_file(store, "hydrants", path, crs="EPSG:2436")
    assert [str(n) for n in res.notes] == [
        "layer 'hydrants': EPSG:2436 is on the Beijing 1954 datum; PROJ converts it to "
        "CGCS2000 without a datum shift (positions may be off by tens of metres) — convert "
        "with the district's transformation parameters first for surveying accuracy"]
    # no datum shift: the lon/lat on Beijing 1954 are kept as CGCS2000 lon/lat
    assert gap_m(first_xy(store, "hydrants", "H-1"), ZAOZHUANG) < 0.01


def test_swapped_lat_lon_feature_collection(store: GeoPackageStore, tmp_path: Path) -> None:
    fc = _hydrant_fc(34.80, 117.25, None)
    fc["features"].append({"type": "Feature", "properties": {"id": "H-2"},  # type: ignore[attr-defined]
                           "geometry": {"type": "Point", "coordinates": [117.26, 34.81]}})
    path = tmp_path / "h.geojson"
    path.write_text(json.dumps(fc))
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "hydrants", path)
    assert messages(info.value) == [
        "layer 'hydrants', feature 'H-1': geometry is '(34.800000, 117.250000)'; expected "
        "(lon, lat) in degrees (the coordinates look like (lat, lon); swap them to (lon, lat))"]


def test_gb18030_csv_with_chinese_lonlat_columns_and_precision(store: GeoPackageStore,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "消防站.csv"
    path.write_text("编号,名称,类型,消防车,纬度,经度\n"
                    "FS-1,高新区消防站,消防站,4台,34.800000000000012345,117.250000000000098765\n"
                    "FS-2,光明路微型站,微型消防站,1,34.81,117.26\n", encoding="gb18030")
    res = import_file(store, "fire_stations", path, crs="EPSG:4490", mapping={
        "编号": "id", "名称": "name", "类型": "kind", "消防车": "engines"})
    assert res.imported == 2
    fs = store.read("fire_stations").set_index("id")
    assert fs["kind"].tolist() == ["station", "micro_station"]
    assert fs["engines"].tolist() == [4, 1]
    assert fs.loc["FS-1", "name"] == "高新区消防站"
    assert gap_m(first_xy(store, "fire_stations", "FS-1"), ZAOZHUANG) < 1e-6


def test_3d_geometry_collection_and_multipart(store: GeoPackageStore, tmp_path: Path) -> None:
    def feat(fid: str, geom: dict[str, object]) -> dict[str, object]:
        return {"type": "Feature", "properties": {"id": fid}, "geometry": geom}

    fc = {"type": "FeatureCollection", "features": [
        feat("H-1", {"type": "Point", "coordinates": [117.25, 34.80, 55.2]}),
        feat("H-2", {"type": "MultiPoint", "coordinates": [[117.26, 34.80]]}),
        feat("H-3", {"type": "GeometryCollection", "geometries": [
            {"type": "Point", "coordinates": [117.27, 34.80]}]}),
        feat("H-4", {"type": "MultiPoint", "coordinates": [[117.28, 34.80], [117.29, 34.80]]}),
    ]}
    path = tmp_path / "h.geojson"
    path.write_text(json.dumps(fc))
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "hydrants", path)
    assert messages(info.value) == [
        "layer 'hydrants', feature 'H-4': geometry is 'MultiPoint'; expected a Point (it has "
        "2 parts (Point); split it into one feature per part (e.g. geopandas explode) or fix "
        "it in the source)"]
    fc["features"].pop()
    path.write_text(json.dumps(fc))
    res = import_file(store, "hydrants", path)
    assert note_texts(res) == [
        "layer 'hydrants': Z coordinates dropped",
        "layer 'hydrants', feature 'H-2': a MultiPoint of one part stored as a Point",
        "layer 'hydrants', feature 'H-3': a GeometryCollection of 1 Point(s) stored as a Point",
    ]
    assert store.read("hydrants").geom_type.tolist() == ["Point"] * 3


def test_geometry_collection_of_polygons_becomes_multipolygon(store: GeoPackageStore,
                                                              tmp_path: Path) -> None:
    a = shapely.box(117.25, 34.80, 117.2501, 34.8001)
    b = shapely.box(117.2503, 34.80, 117.2504, 34.8001)
    gdf = gpd.GeoDataFrame({"id": ["B-1"]}, geometry=[shapely.GeometryCollection([a, b])],
                           crs="EPSG:4490")
    path = tmp_path / "b.gpkg"
    gdf.to_file(path)
    res = import_file(store, "buildings", path)
    assert note_texts(res) == ["layer 'buildings', feature 'B-1': a GeometryCollection of 2 "
                               "Polygon(s) stored as a MultiPolygon"]
    assert store.read("buildings").geometry.iloc[0].equals(shapely.MultiPolygon([a, b]))


def test_zero_features_refused_and_store_unchanged(tmp_path: Path) -> None:
    store = GeoPackageStore(tmp_path / "district.gpkg")
    import_file(store, "roads", REAL / "gdal_sample.osm.pbf")
    before = sha256(store.path)
    path = tmp_path / "empty.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputFileError) as info:
        import_file(store, "roads", path, replace=True)
    assert str(info.value) == (f"{path} holds no features; nothing to import into 'roads' "
                               "(wrong --source-layer, or an empty export?)")
    assert sha256(store.path) == before


def test_several_layers_in_one_geopackage(store: GeoPackageStore, tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    pt = gpd.GeoDataFrame({"id": ["H-1"]}, geometry=[shapely.Point(117.25, 34.80)],
                          crs="EPSG:4490")
    pt.to_file(path, layer="消火栓")
    pt.assign(kind="school").to_file(path, layer="学校")
    with pytest.raises(InputFileError) as info:
        import_file(store, "hydrants", path)
    assert str(info.value) == (f"{path} holds several layers (消火栓, 学校); choose one with "
                               "--source-layer")
    assert import_file(store, "hydrants", path, source_layer="消火栓").imported == 1


def test_default_option_checks_its_value(store: GeoPackageStore) -> None:
    with pytest.raises(InputFileError) as info:
        import_file(store, "pipelines", REAL / "helsinki.osm.pbf",
                    defaults={"pressure_mpa": "-1", "colour": "red", "id": "x"})
    assert str(info.value) == (
        "--default pressure_mpa=-1: expected a number > 0; --default colour: layer 'pipelines' "
        "has no field 'colour'; its fields are id, name, medium, kind, pressure_mpa, "
        "diameter_mm, wall_mm, location_class, operator, status, laid_year, depth_m, "
        "last_inspection, next_inspection_due; --default cannot set id (ids must differ); use "
        "--make-ids")


def test_cli_default_make_ids_drop_clipped(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    gpkg = tmp_path / "s.gpkg"
    rc = api.cli.main(["import", "--store", str(gpkg), "pipelines",
                       str(REAL / "helsinki.osm.pbf"), "--default", "medium=other",
                       "kind=urban_gas", "pressure_mpa=0.4", "--default", "diameter_mm=100"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0] == (
        f"imported 11 feature(s) from {REAL / 'helsinki.osm.pbf'} into layer 'pipelines' (now "
        "11); source CRS EPSG:4326, stored in EPSG:4490")
    rc = api.cli.main(["import", "--store", str(gpkg), "buildings",
                       str(REAL / "helsinki.osm.pbf"), "--drop-clipped"])
    assert rc == 0
    assert "imported 446 feature(s)" in capsys.readouterr().out
    rc = api.cli.main(["import", "--store", str(gpkg), "roads",
                       str(REAL / "soho_network_3857.zip"), "--make-ids"])
    assert rc == 0
    roads = GeoPackageStore(gpkg).read("roads")
    assert roads["id"].tolist()[:3] == ["1", "2", "3"]
    assert CRS.from_user_input(roads.crs).to_epsg() == 4490
    rc = api.cli.main(["import", "--store", str(gpkg), "roads", str(REAL / "line_zm.gpkg"),
                       "--default", "speed"])
    assert rc == 2
    assert capsys.readouterr().err.strip() == (
        "riskmap: error: --default 'speed': expected FIELD=VALUE, e.g. pressure_mpa=1.6")


def test_geojson_feature_id_members_and_legacy_epsg_4326_urn(store: GeoPackageStore,
                                                             tmp_path: Path) -> None:
    fc = {"type": "FeatureCollection",
          "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4326"}},
          "features": [
              {"type": "Feature", "id": 101, "properties": {"status": "ok"},
               "geometry": {"type": "Point", "coordinates": [117.25, 34.80]}},
              {"type": "Feature", "id": 102, "properties": None,
               "geometry": {"type": "Point", "coordinates": [117.26, 34.80]}}]}
    path = tmp_path / "h.geojson"
    path.write_text(json.dumps(fc))
    res = import_file(store, "hydrants", path)
    assert note_texts(res) == [
        "layer 'hydrants': ids taken from the Features' \"id\" members (there is no id property)"]
    h = store.read("hydrants")
    assert h["id"].tolist() == ["101", "102"]
    assert h["status"].tolist() == ["ok", "ok"]  # properties null: the default
    assert gap_m(first_xy(store, "hydrants", "101"), ZAOZHUANG) < 0.01  # lon/lat, not lat/lon


def test_semicolon_csv_with_decimal_commas_and_unit_headers(store: GeoPackageStore,
                                                           tmp_path: Path) -> None:
    semi = tmp_path / "h.csv"
    semi.write_text("id;Longitude (deg);Latitude (deg)\nH-1;117,25;34,80\n", encoding="utf-8")
    import_file(store, "hydrants", semi, crs="EPSG:4326")
    excel = tmp_path / "x.csv"
    excel.write_text("编号,经度(°),纬度(°)\nH-2,117.25,34.80\n", encoding="gb18030")
    import_file(store, "hydrants", excel, crs="EPSG:4326", mapping={"编号": "id"})
    arc = tmp_path / "a.csv"
    arc.write_text("id,POINT_X,POINT_Y\nH-3,117.25,34.80\n", encoding="utf-8")
    import_file(store, "hydrants", arc, crs="EPSG:4326")
    for fid in ("H-1", "H-2", "H-3"):
        assert gap_m(first_xy(store, "hydrants", fid), ZAOZHUANG) < 0.01


ESRI_BEIJING54_GK_CM117 = (
    'PROJCS["Beijing_1954_3_Degree_GK_CM_117E",GEOGCS["GCS_Beijing_1954",DATUM["D_Beijing_1954",'
    'SPHEROID["Krasovsky_1940",6378245.0,298.3]],PRIMEM["Greenwich",0.0],UNIT["Degree",'
    '0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],'
    'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",117.0],PARAMETER['
    '"Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]')


def test_esri_prj_beijing54_gk_shapefile(store: GeoPackageStore, tmp_path: Path) -> None:
    x, y = Transformer.from_crs("EPSG:4214", "EPSG:2436", always_xy=True).transform(*ZAOZHUANG)
    gdf = gpd.GeoDataFrame({"ID": ["C-1"], "KIND": ["摄像头"]}, geometry=[shapely.Point(x, y)], crs="EPSG:2436")
    shp = tmp_path / "cams.shp"
    pyogrio.write_dataframe(gdf, shp, encoding="UTF-8")
    shp.with_suffix(".prj").write_text(ESRI_BEIJING54_GK_CM117)  # as ArcGIS writes it
    res = import_file(store, "cameras", shp)
    assert res.source_crs == "EPSG:2436"
    assert "EPSG:2436 is on the Beijing 1954 datum" in note_texts(res)[-1]
    cams = store.read("cameras")
    assert cams["range_m"].tolist() == [100.0]
    assert cams["KIND"].tolist() == ["摄像头"]
    assert gap_m(first_xy(store, "cameras", "C-1"), ZAOZHUANG) < 0.01


def test_geojson_claiming_crs84_with_local_coordinates(store: GeoPackageStore) -> None:
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "sites", REAL / "baltimore_not_degrees.geojson",
                    mapping={"STATION": "id"}, defaults={"kind": "other"})
    got = messages(info.value)
    assert len(got) == 212
    assert got[:2] == [
        "layer 'sites': crs is 'EPSG:4326'; expected the CRS of the coordinates (all 211 "
        "features are outside the range of degrees, so the stated lon/lat CRS (or the GeoJSON "
        "default WGS 84) is wrong; state the real CRS with --crs: the coordinates are x "
        "860..988, y 506..581; e.g. --crs EPSG:4490 for CGCS2000 lon/lat or --crs EPSG:4548 "
        "for the CGCS2000 GK zone at 117°E)",
        "layer 'sites', feature '1': geometry is '(907.000000, 534.000000)'; expected (lon, "
        "lat) in degrees (these are not degrees; state the file's projected CRS, e.g. --crs "
        "EPSG:4548)"]


def test_kml_placemarks(store: GeoPackageStore, tmp_path: Path) -> None:
    kml = tmp_path / "消火栓.kml"
    kml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
        "<Document><name>消火栓</name>"
        "<Placemark><name>H-1</name><Point><coordinates>117.25,34.80,0</coordinates></Point>"
        "</Placemark><Placemark><name>H-2</name><Point><coordinates>117.26,34.80,0"
        "</coordinates></Point></Placemark></Document></kml>", encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "hydrants", kml)
    assert messages(info.value)[0] == (
        "layer 'hydrants', feature 'row 1': id is missing; expected a unique text id per feature")
    res = import_file(store, "hydrants", kml, mapping={"Name": "id"})
    assert res.imported == 2
    assert gap_m(first_xy(store, "hydrants", "H-1"), ZAOZHUANG) < 0.01


def test_extra_field_differing_only_by_case_is_kept_renamed(store: GeoPackageStore,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id,ID,Status,lon,lat\nH-1,old-7,正常,117.25,34.80\n", encoding="utf-8")
    res = import_file(store, "hydrants", path, crs="EPSG:4490")
    assert "layer 'hydrants': extra field 'ID' kept as 'ID_src' (its name clashes with another " \
           "field when case is ignored)" in note_texts(res)
    h = store.read("hydrants")
    assert h[["id", "ID_src", "status"]].values.tolist() == [["H-1", "old-7", "ok"]]
