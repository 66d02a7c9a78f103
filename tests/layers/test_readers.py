"""Readers: real small files of every supported format, OSM tag mapping, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod

from layers.errors import CRSError, InputFileError, LayerValidationError
from layers.readers import (
    _diameter_mm,
    _length_m,
    _pressure_mpa,
    _speed_kmh,
    _weight_t,
    parse_mapping,
    read_file,
)
from layers.validate import validate_layer

DATA = Path(__file__).parents[1] / "data"
GEOD = Geod(ellps="GRS80")
KNOWN_3857 = (117.2512345, 34.8012345)  # tests/data/make_test_data.py KNOWN
KNOWN_2263 = (-73.9856644, 40.7484405)
FORMATS = ("one of GeoJSON (.geojson, .json), GeoPackage (.gpkg), zipped Shapefile (.zip, "
           ".shp), CSV with a WKT column or lon/lat columns (.csv), OSM PBF (.osm.pbf, .osm), "
           "KML (.kml), FlatGeobuf (.fgb)")


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


# --- GeoJSON / GeoPackage ------------------------------------------------------------------------
def test_geojson() -> None:
    gdf = read_file(DATA / "pipelines.geojson")
    assert gdf.crs.to_epsg() == 4326
    assert gdf["id"].tolist() == ["P-01", "P-02"]
    assert gdf["name"].tolist() == ["鲁皖成品油管道", "光明路中压管"]
    clean, _ = validate_layer(gdf, "pipelines")
    assert clean["pressure_class"].tolist()[1] == "medium_a"
    assert clean["owner_ref"].tolist()[0] == "X-1"


def test_geopackage_layer_choice() -> None:
    with pytest.raises(InputFileError) as info:
        read_file(DATA / "two_layers.gpkg")
    assert str(info.value) == (f"{DATA / 'two_layers.gpkg'} holds several layers (gas_mains, "
                               "cctv); choose one with --source-layer")
    assert read_file(DATA / "two_layers.gpkg", layer="cctv")["id"].tolist() == ["C-1"]
    with pytest.raises(InputFileError, match=r"has no layer 'pipes'; its layers are: "
                                             r"gas_mains, cctv"):
        read_file(DATA / "two_layers.gpkg", layer="pipes")


# --- Shapefile in projected CRSs -----------------------------------------------------------------
def test_zipped_shapefile_web_mercator_round_trip_within_1cm() -> None:
    gdf = read_file(DATA / "buildings_3857.zip")
    assert gdf.crs.to_epsg() == 3857
    clean, report = validate_layer(gdf, "buildings")
    assert report.source_crs == "EPSG:3857"
    first = shapely.get_coordinates(clean.geometry.iloc[0])[0]
    assert metres(tuple(first), KNOWN_3857) < 0.01
    # DBF upper-case names matched; residential without households estimated
    assert clean["id"].tolist() == ["B-1", "B-2", "B-3"]
    assert clean["use"].tolist() == ["residential", "school", "residential"]
    assert clean["households_estimated"].tolist() == [True, False, False]
    assert clean["households"].tolist()[2] == 12


def test_zipped_shapefile_in_us_survey_feet_round_trip_within_1cm() -> None:
    gdf = read_file(DATA / "hydrants_2263.zip")
    assert gdf.crs.to_epsg() == 2263
    clean, _ = validate_layer(gdf, "hydrants")
    pt = clean.geometry.iloc[0]
    assert metres((pt.x, pt.y), KNOWN_2263) < 0.01
    assert clean["status"].tolist() == ["ok", "faulty"]


def test_crs_option_conflicting_with_stated_crs() -> None:
    with pytest.raises(CRSError) as info:
        read_file(DATA / "hydrants_2263.zip", crs="EPSG:4490")
    assert str(info.value) == (f"{DATA / 'hydrants_2263.zip'} states its CRS as EPSG:2263 but "
                               "--crs says EPSG:4490; drop --crs or fix the file")


# --- CSV -----------------------------------------------------------------------------------------
def test_csv_with_wkt() -> None:
    gdf = read_file(DATA / "sites_wkt.csv", crs="EPSG:4490")
    assert gdf.crs.to_epsg() == 4490
    assert gdf.geometry.geom_type.tolist() == ["Point", "Polygon"]
    clean, _ = validate_layer(gdf, "sites")
    assert clean["occupants"].tolist() == [1200, None] or clean["occupants"].isna().tolist() == [
        False, True]
    assert clean["name"].tolist() == ["实验小学", "区人民医院"]


def test_csv_without_crs_fails_validation_naming_crs() -> None:
    gdf = read_file(DATA / "sites_wkt.csv")
    assert gdf.crs is None
    with pytest.raises(LayerValidationError) as info:
        validate_layer(gdf, "sites")
    assert [p.field for p in info.value.problems] == ["crs"]


def test_csv_lonlat_with_mapping() -> None:
    gdf = read_file(DATA / "hydrants_lonlat.csv", crs=4490, mapping={"编号": "id"})
    assert gdf["id"].tolist() == ["H-1", "H-2"]
    assert [(p.x, p.y) for p in gdf.geometry] == [(117.251, 34.801), (117.252, 34.802)]
    clean, _ = validate_layer(gdf, "hydrants")
    assert clean["status"].tolist() == ["ok", "faulty"]


def test_csv_bad_wkt_is_reported_by_feature() -> None:
    gdf = read_file(DATA / "sites_bad_wkt.csv", crs=4490)
    with pytest.raises(LayerValidationError) as info:
        validate_layer(gdf, "sites")
    assert [str(p) for p in info.value.problems] == [
        "layer 'sites', feature 'S-2': geometry is missing; expected a Point, Polygon or "
        "MultiPolygon (wkt 'POLYGON ((117.26 34.80, 117' is not valid WKT)"]


def test_csv_without_geometry() -> None:
    with pytest.raises(InputFileError) as info:
        read_file(DATA / "no_geometry.csv")
    assert str(info.value) == (
        f"{DATA / 'no_geometry.csv'} is a CSV without geometry: expected a WKT column (wkt, "
        "geometry, geom) or lon/lat columns (lon/lat, longitude/latitude, x/y); its columns "
        "are: id, name")


def test_csv_in_gb18030(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_bytes("id,名称,lon,lat\nH-1,消火栓,117.25,34.8\n".encode("gb18030"))
    gdf = read_file(p, crs=4490)
    assert gdf["名称"].tolist() == ["消火栓"]


# --- OSM -----------------------------------------------------------------------------------------
def test_osm_roads_tags() -> None:
    gdf = read_file(DATA / "district.osm.pbf", target="roads")
    assert gdf.crs.to_epsg() == 4326
    got = gdf.set_index("id")
    assert got.index.tolist() == ["w100", "w101", "w102", "w103", "w105"]  # footway skipped
    assert got["road_class"].tolist() == ["provincial", "local", "expressway", "collector",
                                          "service"]
    assert got["oneway"].tolist() == [False, True, True, False, False]
    assert got.loc["w100", "speed_kmh"] == 60.0
    assert got.loc["w101", "speed_kmh"] == pytest.approx(48.28)  # 30 mph
    assert got["hazmat"].fillna("-").tolist() == ["no", "no", "-", "destination", "-"]
    assert got.loc["w101", "max_weight_t"] == 20.0 and got.loc["w102", "max_weight_t"] == 40.0
    assert got.loc["w101", "max_height_m"] == 4.5
    assert got.loc["w103", "max_height_m"] == 4.42  # 14'6" = 4.4196 m, to the mm
    assert got["bridge"].tolist() == [False, False, True, False, False]
    assert got["tunnel"].tolist() == [False, False, False, True, False]
    assert got.loc["w100", "lanes"] == 4 and got.loc["w100", "name"] == "光明大道"
    # oneway=-1: the line is reversed so it runs in the permitted direction
    assert shapely.get_coordinates(got.loc["w101", "geometry"])[0].tolist() == [117.252, 34.801]
    clean, report = validate_layer(gdf, "roads")
    assert clean["hazmat"].tolist() == ["no", "no", "yes", "destination", "yes"]
    assert [str(n) for n in report.repairs] == [
        "layer 'roads', feature 'w105': 1 of 4 nodes are missing from the extract (clipped); "
        "built from the remaining nodes"]


def test_osm_buildings() -> None:
    gdf = read_file(DATA / "district.osm.pbf", target="buildings")
    clean, _report = validate_layer(gdf, "buildings")
    got = clean.set_index("id")
    assert got.index.tolist() == ["w200", "w201", "r300"]
    assert got["use"].tolist() == ["residential", "school", "industrial"]
    assert got["floors"].tolist() == [6, 1, 2]
    assert got["households_estimated"].tolist() == [True, False, False]
    assert len(got.loc["r300", "geometry"].geoms[0].interiors) == 1  # relation with a hole
    assert got.loc["w200", "name"] == "1号楼"


def test_osm_clipped_extract_reports_broken_rings_by_feature() -> None:
    gdf = read_file(DATA / "clipped.osm.pbf", target="buildings")
    assert gdf["id"].tolist() == ["w200", "w202", "r310"]
    with pytest.raises(LayerValidationError) as info:
        validate_layer(gdf, "buildings")
    assert [str(p) for p in info.value.problems] == [
        "layer 'buildings', feature 'w202': geometry is missing; expected a Polygon or "
        "MultiPolygon (way 202: ring is not closed (1 of 4 nodes missing from the extract — "
        "clipped at its edge))",
        "layer 'buildings', feature 'r310': geometry is missing; expected a Polygon or "
        "MultiPolygon (relation 310: 1 of 2 member way(s) are missing from the extract "
        "(clipped at its edge); rings cannot be closed)",
    ]


def test_osm_pipelines_without_pressure_fail_clearly() -> None:
    gdf = read_file(DATA / "district.osm.pbf", target="pipelines")
    assert gdf["id"].tolist() == ["w400", "w401"]  # water pipeline skipped
    first = gdf.iloc[0]
    assert (first["medium"], first["kind"], first["pressure_mpa"], first["diameter_mm"]) == (
        "natural_gas", "long_distance", 6.3, 610.0)
    with pytest.raises(LayerValidationError) as info:
        validate_layer(gdf, "pipelines")
    assert [str(p) for p in info.value.problems] == [
        "layer 'pipelines', feature 'w401': kind is missing; expected one of long_distance, "
        "urban_gas (fill it in, or use --default kind=VALUE)",
        "layer 'pipelines', feature 'w401': pressure_mpa is missing; expected a number > 0 "
        "(fill it in, or use --default pressure_mpa=VALUE)",
        "layer 'pipelines', feature 'w401': diameter_mm is missing; expected a number > 0 "
        "(fill it in, or use --default diameter_mm=VALUE)",
    ]


def test_osm_needs_an_osm_layer() -> None:
    with pytest.raises(InputFileError) as info:
        read_file(DATA / "district.osm.pbf", target="hydrants")
    assert str(info.value) == (f"{DATA / 'district.osm.pbf'}: OSM files provide the layers "
                               "roads, buildings, pipelines, construction_sites; got 'hydrants'")


@pytest.mark.parametrize(("fn", "text", "want"), [
    (_speed_kmh, "60", 60.0), (_speed_kmh, "30 mph", 48.28), (_speed_kmh, "CN:urban", None),
    (_speed_kmh, "50;70", 50.0), (_length_m, "4.5 m", 4.5), (_length_m, "12'", 3.658),
    (_length_m, "none", None), (_weight_t, "5500 kg", 5.5), (_weight_t, "10 st", 9.072),
    (_pressure_mpa, "63 bar", 6.3), (_pressure_mpa, "0.4 MPa", 0.4), (_pressure_mpa, "40", 4.0),
    (_pressure_mpa, "400 kPa", 0.4), (_pressure_mpa, "high", None), (_diameter_mm, "610", 610.0),
    (_diameter_mm, '24"', 609.6), (_diameter_mm, "0.72 m", 720.0),
])
def test_osm_value_parsers(fn: object, text: str, want: float | None) -> None:
    got = fn(text)  # type: ignore[operator]
    assert got == (pytest.approx(want, abs=1e-3) if want is not None else None)


# --- refusals ------------------------------------------------------------------------------------
def test_file_too_large() -> None:
    p = DATA / "pipelines.geojson"
    with pytest.raises(InputFileError) as info:
        read_file(p, max_bytes=100)
    size = p.stat().st_size
    assert size < 1024
    assert str(info.value) == (f"{p} is {size} B, over the limit of 100 B; clip it "
                               "to the district first (e.g. ogr2ogr -clipsrc or osmium extract) "
                               "or raise the limit")


def test_default_limit_is_2gb() -> None:
    from layers.readers import DEFAULT_MAX_BYTES

    assert DEFAULT_MAX_BYTES == 2 * 1024**3


@pytest.mark.parametrize(("name", "message"), [
    ("not_geodata.gpkg", "{p} cannot be read as geodata ('{p}' not recognized as being in a "
     "supported file format); expected a GeoPackage"),
    ("not_geodata.json", "{p} is JSON but not GeoJSON (no \"type\" member near the start); "
     "expected a GeoJSON FeatureCollection"),
    ("notes.txt", "{p}: unsupported file type '.txt'; expected " + FORMATS),
    ("missing.geojson", "{p}: no such file"),
])
def test_not_geodata(name: str, message: str) -> None:
    p = DATA / name
    with pytest.raises(InputFileError) as info:
        read_file(p)
    assert str(info.value) == message.format(p=p)


def test_broken_geojson() -> None:
    p = DATA / "broken.geojson"
    with pytest.raises(InputFileError) as info:
        read_file(p)
    text = str(info.value)
    assert text.startswith(f"{p} cannot be read as geodata (")
    assert text.endswith("); expected a GeoJSON FeatureCollection")


def test_empty_file_and_directory(tmp_path: Path) -> None:
    (tmp_path / "e.geojson").write_text("")
    with pytest.raises(InputFileError, match=r"e.geojson is empty; expected one of GeoJSON"):
        read_file(tmp_path / "e.geojson")
    with pytest.raises(InputFileError, match=r"is a directory; expected a file"):
        read_file(tmp_path)


def test_zip_without_shapefile(tmp_path: Path) -> None:
    import zipfile

    p = tmp_path / "x.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(InputFileError) as info:
        read_file(p)
    assert str(info.value) == (f"{p} holds no Shapefile (.shp) or other geodata; found: "
                               "readme.txt")


def test_mapping() -> None:
    with pytest.raises(InputFileError) as info:
        read_file(DATA / "pipelines.geojson", mapping={"YALI": "pressure_mpa"})
    assert str(info.value) == (f"{DATA / 'pipelines.geojson'}: --map names field(s) 'YALI' that "
                               "the file does not have; its fields are: id, name, medium, kind, "
                               "pressure_mpa, diameter_mm, status, last_inspection, owner_ref")
    gdf = read_file(DATA / "pipelines.geojson", mapping={"owner_ref": "operator"})
    assert gdf["operator"].tolist()[0] == "X-1" and "owner_ref" not in gdf.columns
    # mapping onto an existing field replaces it
    gdf = read_file(DATA / "pipelines.geojson", mapping={"owner_ref": "name"})
    assert gdf["name"].tolist()[0] == "X-1"
    assert np.sum(gdf.columns == "name") == 1


def test_parse_mapping() -> None:
    assert parse_mapping(["YALI=pressure_mpa", " GJ = diameter_mm "]) == {
        "YALI": "pressure_mpa", "GJ": "diameter_mm"}
    with pytest.raises(ValueError, match=r"--map 'YALI': expected SOURCE_FIELD=OUR_FIELD"):
        parse_mapping(["YALI"])


def test_geojson_in_gk_coordinates_with_crs_option(tmp_path: Path) -> None:
    # A legacy GeoJSON in the GK zone without a "crs" member: GDAL assumes WGS 84, so
    # validation says the numbers are not degrees; --crs fixes it.
    import geopandas as gpd

    src = gpd.GeoDataFrame({"id": ["C-1"], "range_m": [80.0]},
                           geometry=[shapely.Point(117.25, 34.8)], crs=4490).to_crs(4548)
    p = tmp_path / "cams.geojson"
    p.write_text(src.to_json(drop_id=True).replace('"crs"', '"_crs"'))
    with pytest.raises(LayerValidationError) as info:
        validate_layer(read_file(p), "cameras")
    assert info.value.problems[0].note.startswith("these are not degrees")
    clean, _ = validate_layer(read_file(p, crs="EPSG:4548"), "cameras")
    pt = clean.geometry.iloc[0]
    assert metres((pt.x, pt.y), (117.25, 34.8)) < 0.01


def test_geopackage_layer_named_like_target(tmp_path: Path) -> None:
    import geopandas as gpd

    p = tmp_path / "x.gpkg"
    gdf = gpd.GeoDataFrame({"id": ["C-1"]}, geometry=[shapely.Point(117.25, 34.8)], crs=4490)
    gdf.to_file(p, layer="cameras")
    gdf.to_file(p, layer="other")
    assert read_file(p, target="cameras")["id"].tolist() == ["C-1"]


def test_plain_shapefile_without_prj_needs_crs(tmp_path: Path) -> None:
    import geopandas as gpd

    p = tmp_path / "h.shp"
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        gpd.GeoDataFrame({"id": ["H-1"]}, geometry=[shapely.Point(117.25, 34.8)]).to_file(p)
    assert read_file(p).crs is None
    assert read_file(p, crs="EPSG:4490").crs.to_epsg() == 4490
