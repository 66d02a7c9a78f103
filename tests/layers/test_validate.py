"""Validation of every layer: exact messages naming the feature and the field."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from layers.errors import LayerValidationError
from layers.schema import LAYER_NAMES, pressure_class
from layers.validate import HOUSEHOLD_AREA_M2, READ_PROBLEM, pressure_classes, validate_layer

X, Y = 117.25, 34.80
LINE = LineString([(X, Y), (X + 0.01, Y + 0.002)])
POLY = box(X, Y, X + 0.0004, Y + 0.0003)
POINT = Point(X, Y)

# One valid feature per layer.
VALID: dict[str, tuple[dict[str, object], object]] = {
    "pipelines": ({"id": "P-07", "medium": "natural_gas", "kind": "urban_gas",
                   "pressure_mpa": 0.4, "diameter_mm": 160.0}, LINE),
    "buildings": ({"id": "B-1", "use": "residential", "floors": 6, "households": 24}, POLY),
    "sites": ({"id": "S-1", "kind": "school", "name": "实验小学"}, POINT),
    "hca": ({"id": "H-1", "pipeline_id": "P-01", "grade": "II"}, POLY),
    "cameras": ({"id": "C-1", "range_m": 120.0}, POINT),
    "roads": ({"id": "R-1", "road_class": "arterial", "oneway": "no"}, LINE),
    "restricted_zones": ({"id": "Z-1", "kind": "water_source", "rule": "forbidden"}, POLY),
    "hazmat_routes": ({"id": "HR-1", "status": "published"}, LINE),
    "fire_lanes": ({"id": "F-1", "width_m": 4.0}, LINE),
    "fire_stations": ({"id": "FS-1", "kind": "station"}, POINT),
    "hydrants": ({"id": "HY-1", "status": "ok"}, POINT),
    "compounds": ({"id": "CP-1", "built_year": 1995, "households": 300}, POLY),
    "construction_sites": ({"id": "CS-1", "work": "excavation", "permit_no": "管许2026-01",
                            "permit_from": "2026-01-01", "permit_to": "2026-12-31"}, POLY),
    "pipeline_facilities": ({"id": "PF-1", "kind": "valve", "pipeline_id": "P-01"}, POINT),
    "warning_signs": ({"id": "WS-1", "pipeline_id": "P-01", "status": "ok"}, POINT),
    "patrol_paths": ({"id": "PP-1", "pipeline_id": "P-01", "passable": True}, LINE),
}

# A required field per layer (id where it is the only one).
REQUIRED = {
    "pipelines": ("medium", "one of natural_gas, crude_oil, refined_oil, lpg, other"),
    "buildings": ("id", "a unique text id per feature"),
    "sites": ("kind", "one of school, hospital, kindergarten, elderly_care, prison, market, "
              "square, stadium, gas_station, oil_depot, water_source, river, reservoir, "
              "nature_reserve, railway, other"),
    "hca": ("pipeline_id", "a text"),
    "cameras": ("id", "a unique text id per feature"),
    "roads": ("id", "a unique text id per feature"),
    "restricted_zones": ("rule", "one of forbidden, permit, avoid"),
    "hazmat_routes": ("id", "a unique text id per feature"),
    "fire_lanes": ("width_m", "a number > 0"),
    "fire_stations": ("kind", "one of station, micro_station"),
    "hydrants": ("id", "a unique text id per feature"),
    "compounds": ("id", "a unique text id per feature"),
    "construction_sites": ("work", "one of crossing, road, railway, canal, power_line, cable, "
                           "grounding, building, piling, excavation, drilling, blasting, "
                           "seismic, mining, anchoring, dredging, other"),
    "pipeline_facilities": ("kind", "one of station, valve, vent, depot, storage, loading, "
                            "river_crossing, tunnel, other"),
    "warning_signs": ("pipeline_id", "a text"),
    "patrol_paths": ("pipeline_id", "a text"),
}

# A value of the wrong enum (or, for layers without enums, of the wrong type).
WRONG = {
    "pipelines": ("medium", "gasoline", "one of natural_gas, crude_oil, refined_oil, lpg, other"),
    "buildings": ("use", "mall", "one of residential, school, kindergarten, hospital, "
                  "elderly_care, prison, market, office, public_assembly, industrial, "
                  "warehouse, gas_station, oil_depot, shed, other"),
    "sites": ("kind", "church", REQUIRED["sites"][1]),
    "hca": ("grade", "IV", "one of I, II, III"),
    "cameras": ("range_m", "far", "a number > 0"),
    "roads": ("road_class", "motorway", "one of expressway, national, provincial, arterial, "
              "collector, local, service"),
    "restricted_zones": ("rule", "closed", "one of forbidden, permit, avoid"),
    "hazmat_routes": ("status", "approved", "one of draft, published"),
    "fire_lanes": ("obstructed", "maybe", "true or false (accepted: yes/no, true/false, 1/0, 是/否, 有/无)"),
    "fire_stations": ("kind", "brigade", "one of station, micro_station"),
    "hydrants": ("status", "broken", "one of ok, faulty"),
    "compounds": ("property_management", "perhaps", "true or false (accepted: yes/no, true/false, 1/0, 是/否, 有/无)"),
    "construction_sites": ("status", "halted", "one of planned, active, finished"),
    "pipeline_facilities": ("kind", "bridge", REQUIRED["pipeline_facilities"][1]),
    "warning_signs": ("status", "stolen", "one of ok, damaged, missing"),
    "patrol_paths": ("passable", "sometimes", "true or false (accepted: yes/no, true/false, 1/0, 是/否, 有/无)"),
}

# A negative (out-of-bounds) number per layer that has a bounded numeric field.
NEGATIVE = {
    "pipelines": ("pressure_mpa", -1.2, "a number > 0"),
    "buildings": ("floors", 0, "a whole number >= 1"),
    "sites": ("occupants", -3, "a whole number >= 0"),
    "hca": ("start_m", -5.0, "a number >= 0"),
    "cameras": ("range_m", -10.0, "a number > 0"),
    "roads": ("speed_kmh", -30.0, "a number > 0"),
    "restricted_zones": ("penalty", -2.0, "a number > 0"),
    "fire_lanes": ("width_m", -3.5, "a number > 0"),
    "fire_stations": ("turnout_s", -5.0, "a number >= 0"),
    "compounds": ("households", -1, "a whole number >= 0"),
}

GEOM_EXPECTED = {
    "pipelines": "LineString or MultiLineString", "buildings": "Polygon or MultiPolygon",
    "sites": "Point, Polygon or MultiPolygon",
    "hca": "Polygon, MultiPolygon, LineString or MultiLineString", "cameras": "Point",
    "roads": "LineString or MultiLineString", "restricted_zones": "Polygon or MultiPolygon",
    "hazmat_routes": "LineString or MultiLineString", "fire_lanes": "LineString or MultiLineString",
    "fire_stations": "Point", "hydrants": "Point", "compounds": "Polygon or MultiPolygon",
    "construction_sites": "Point, Polygon or MultiPolygon",
    "pipeline_facilities": "Point, Polygon, MultiPolygon, LineString or MultiLineString",
    "warning_signs": "Point", "patrol_paths": "LineString or MultiLineString",
}


def frame(layer: str, n: int = 2, crs: object = 4490, **changes: object) -> gpd.GeoDataFrame:
    """``n`` valid features of ``layer``; the first gets ``changes``."""
    attrs, geom = VALID[layer]
    rows = []
    for i in range(n):
        row = dict(attrs)
        row["id"] = f"{attrs['id']}" if i == 0 else f"{attrs['id']}-{i}"
        rows.append(row)
    rows[0].update(changes)
    geoms = [shapely.affinity.translate(geom, 0.001 * i, 0) for i in range(n)]
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=crs)


def problems(gdf: gpd.GeoDataFrame, layer: str, **kw: object) -> list[str]:
    with pytest.raises(LayerValidationError) as info:
        validate_layer(gdf, layer, **kw)
    assert info.value.layer == layer
    return [str(p) for p in info.value.problems]


def fid(layer: str) -> str:
    return str(VALID[layer][0]["id"])


def test_the_tables_cover_every_layer() -> None:
    assert set(VALID) == set(LAYER_NAMES) == set(REQUIRED) == set(WRONG) == set(GEOM_EXPECTED)


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_valid_feature_passes(layer: str) -> None:
    clean, report = validate_layer(frame(layer), layer)
    assert len(clean) == 2 and report.count == 2
    assert clean.crs.to_epsg() == 4490
    assert list(clean["id"]) == [fid(layer), f"{fid(layer)}-1"]


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_missing_required_value_names_feature_and_field(layer: str) -> None:
    name, expected = REQUIRED[layer]
    got = problems(frame(layer, **{name: None}), layer)
    who = "row 1" if name == "id" else fid(layer)
    fix = "" if name == "id" else f" (fill it in, or use --default {name}=VALUE)"
    assert got == [f"layer '{layer}', feature '{who}': {name} is missing; expected {expected}"
                   + fix]


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_missing_required_column_is_one_problem(layer: str) -> None:
    name, expected = REQUIRED[layer]
    got = problems(frame(layer).drop(columns=name), layer)
    fix = ("or number the features with --make-ids" if name == "id"
           else f"or give all features one value with --default {name}=VALUE")
    assert got == [f"layer '{layer}': {name} is missing; expected {expected} (the file has no "
                   f"field '{name}'; map yours with --map SOURCE={name} {fix})"]


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_wrong_enum_or_type(layer: str) -> None:
    name, bad, expected = WRONG[layer]
    got = problems(frame(layer, **{name: bad}), layer)
    assert got == [f"layer '{layer}', feature '{fid(layer)}': {name} is '{bad}'; "
                   f"expected {expected}"]


@pytest.mark.parametrize("layer", sorted(NEGATIVE))
def test_negative_number(layer: str) -> None:
    name, bad, expected = NEGATIVE[layer]
    got = problems(frame(layer, **{name: bad}), layer)
    assert got == [f"layer '{layer}', feature '{fid(layer)}': {name} is {bad!r}; "
                   f"expected {expected}"]


def test_negative_pressure_message_is_the_documented_one() -> None:
    got = problems(frame("pipelines", pressure_mpa=-1.2), "pipelines")
    assert got == ["layer 'pipelines', feature 'P-07': pressure_mpa is -1.2; "
                   "expected a number > 0"]


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_empty_geometry(layer: str) -> None:
    gdf = frame(layer)
    empty = type(VALID[layer][1])()
    gdf.loc[0, "geometry"] = empty
    got = problems(gdf, layer)
    assert got == [f"layer '{layer}', feature '{fid(layer)}': geometry is "
                   f"'{empty.geom_type.upper()} EMPTY'; expected a non-empty "
                   f"{GEOM_EXPECTED[layer]}"]


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_missing_geometry(layer: str) -> None:
    gdf = frame(layer)
    gdf.loc[0, "geometry"] = None
    got = problems(gdf, layer)
    assert got == [f"layer '{layer}', feature '{fid(layer)}': geometry is missing; "
                   f"expected a {GEOM_EXPECTED[layer]}"]


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_swapped_lonlat(layer: str) -> None:
    gdf = frame(layer)
    gdf.loc[0, "geometry"] = shapely.transform(gdf.geometry.iloc[0], lambda c: c[:, ::-1])
    got = problems(gdf, layer)
    assert got == [f"layer '{layer}', feature '{fid(layer)}': geometry is '(34.800000, "
                   "117.250000)'; expected (lon, lat) in degrees (the coordinates look like "
                   "(lat, lon); swap them to (lon, lat))"]


def test_all_features_swapped_are_all_reported() -> None:
    gdf = frame("hydrants", n=3)
    gdf["geometry"] = gdf.geometry.map(lambda g: Point(g.y, g.x))
    got = problems(gdf, "hydrants")
    assert [p.split(":")[0] for p in got] == [
        "layer 'hydrants'", "layer 'hydrants', feature 'HY-1'",
        "layer 'hydrants', feature 'HY-1-1'", "layer 'hydrants', feature 'HY-1-2'"]
    assert got[0] == ("layer 'hydrants': geometry is '(lat, lon) in all 3 features'; expected "
                      "(lon, lat) in degrees (x spans 34.8000..34.8000, y spans "
                      "117.2500..117.2520; swap them to (lon, lat))")


def test_swapped_inside_china_envelope_is_reported() -> None:
    # (lat, lon) = (34.8, 117.25) puts x at 34.8: in range, but only in China when swapped.
    gdf = frame("hydrants", n=1)
    gdf["geometry"] = [Point(34.8, 80.0)]
    got = problems(gdf, "hydrants")
    assert got == ["layer 'hydrants', feature 'HY-1': geometry is '(34.800000, 80.000000)'; "
                   "expected (lon, lat) in degrees (the coordinates look like (lat, lon); "
                   "swap them to (lon, lat))"]


def test_projected_numbers_labelled_as_degrees() -> None:
    gdf = frame("hydrants", n=1)
    gdf["geometry"] = [Point(39_500_000.0, 3_850_000.0)]
    got = problems(gdf, "hydrants")
    assert got == ["layer 'hydrants', feature 'HY-1': geometry is '(39500000.000000, "
                   "3850000.000000)'; expected (lon, lat) in degrees (these are not degrees; "
                   "state the file's projected CRS, e.g. --crs EPSG:4548)"]


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_web_mercator_input_is_stored_in_cgcs2000(layer: str) -> None:
    src = frame(layer)
    clean, report = validate_layer(src.to_crs(3857), layer)
    assert clean.crs.to_epsg() == 4490
    assert report.source_crs == "EPSG:3857"
    a = shapely.get_coordinates(np.asarray(src.geometry.array))
    b = shapely.get_coordinates(np.asarray(clean.geometry.array))
    np.testing.assert_allclose(b, a, atol=1e-9)  # 1e-9 deg ≈ 0.1 mm


def test_wrong_geometry_type() -> None:
    gdf = frame("pipelines")
    gdf.loc[0, "geometry"] = POINT
    assert problems(gdf, "pipelines") == [
        "layer 'pipelines', feature 'P-07': geometry is 'Point'; expected a LineString or "
        "MultiLineString"]


def test_missing_crs_is_a_problem_unless_given() -> None:
    gdf = frame("cameras", crs=None)
    assert problems(gdf, "cameras") == [
        "layer 'cameras': crs is missing; expected the coordinate reference system of the file "
        "(state it with --crs: the coordinates look like lon/lat degrees: --crs EPSG:4490 "
        "(CGCS2000) or EPSG:4326 (WGS 84))"]
    clean, report = validate_layer(gdf, "cameras", crs="EPSG:4490")
    assert clean.crs.to_epsg() == 4490
    assert [n.message for n in report.notes] == ["coordinates read as EPSG:4490 (from --crs)"]


def test_gk_input_with_crs_option() -> None:
    src = frame("cameras")
    gk = src.to_crs(4548).set_crs(None, allow_override=True)
    clean, _ = validate_layer(gk, "cameras", crs="EPSG:4548")
    np.testing.assert_allclose(clean.geometry.x, src.geometry.x, atol=1e-9)
    np.testing.assert_allclose(clean.geometry.y, src.geometry.y, atol=1e-9)


def test_every_problem_is_collected_in_row_order() -> None:
    gdf = frame("pipelines", n=3, pressure_mpa=-1.2, medium="gasoline")
    gdf["diameter_mm"] = gdf["diameter_mm"].astype(object)
    gdf.loc[1, "diameter_mm"] = "big"
    gdf.loc[2, "id"] = "P-07"
    gdf.loc[2, "geometry"] = LineString()
    assert problems(gdf, "pipelines") == [
        "layer 'pipelines', feature 'P-07': id is 'P-07'; expected a unique id "
        "(2 features use it; fix the ids or number the features with --make-ids)",
        "layer 'pipelines', feature 'P-07': medium is 'gasoline'; expected one of natural_gas, "
        "crude_oil, refined_oil, lpg, other",
        "layer 'pipelines', feature 'P-07': pressure_mpa is -1.2; expected a number > 0",
        "layer 'pipelines', feature 'P-07-1': diameter_mm is 'big'; expected a number > 0",
        "layer 'pipelines', feature 'P-07': geometry is 'LINESTRING EMPTY'; expected a "
        "non-empty LineString or MultiLineString",
    ]


def test_problem_fields() -> None:
    with pytest.raises(LayerValidationError) as info:
        validate_layer(frame("pipelines", pressure_mpa=-1.2), "pipelines")
    (p,) = info.value.problems
    assert (p.layer, p.feature, p.field, p.received, p.expected) == (
        "pipelines", "P-07", "pressure_mpa", -1.2, "a number > 0")
    assert p.as_dict()["received"] == "-1.2"
    assert str(info.value).startswith("layer 'pipelines': 1 problem(s), nothing imported:\n")


def test_types_are_coerced_and_defaults_filled() -> None:
    gdf = frame("pipelines", n=1, pressure_mpa="0.4", diameter_mm="160", location_class="2",
                last_inspection="2024/5/1", laid_year=1998.0, medium=" Natural Gas ")
    clean, _ = validate_layer(gdf, "pipelines")
    row = clean.iloc[0]
    assert row["medium"] == "natural_gas"
    assert row["pressure_mpa"] == 0.4 and row["diameter_mm"] == 160.0
    assert row["location_class"] == 2 and str(clean["location_class"].dtype) == "Int64"
    assert row["laid_year"] == 1998
    assert row["last_inspection"] == dt.date(2024, 5, 1)
    assert row["status"] == "in_service"  # default
    assert row["pressure_class"] == "medium_a"


def test_booleans_from_words() -> None:
    gdf = frame("hca", n=5)
    gdf["people_dense"] = ["yes", "No", 1, "TRUE", None]
    gdf["video_monitored"] = [True, False, True, False, True]
    clean, _ = validate_layer(gdf, "hca")
    assert clean["people_dense"].tolist() == [True, False, True, True, False]  # default False
    assert clean["video_monitored"].tolist() == [True, False, True, False, True]


def test_whole_number_required_for_int_fields() -> None:
    assert problems(frame("buildings", floors=2.5), "buildings") == [
        "layer 'buildings', feature 'B-1': floors is 2.5; expected a whole number >= 1"]


def test_bad_date() -> None:
    assert problems(frame("pipelines", next_inspection_due="soon"), "pipelines") == [
        "layer 'pipelines', feature 'P-07': next_inspection_due is 'soon'; expected a date "
        "(YYYY-MM-DD) (accepted: 2024-05-01, 2024/5/1, 2024年5月1日)"]


def test_extra_attributes_are_kept() -> None:
    clean, _ = validate_layer(frame("hydrants", 外观="红色", pressure_bar=3), "hydrants")
    assert clean.loc[0, "外观"] == "红色"
    assert clean.loc[0, "pressure_bar"] == 3
    assert list(clean.columns) == ["id", "status", "外观", "pressure_bar", "geometry"]


def test_numeric_ids_become_text() -> None:
    gdf = frame("hydrants")
    gdf["id"] = [7.0, 8.0]
    clean, _ = validate_layer(gdf, "hydrants")
    assert clean["id"].tolist() == ["7", "8"]


def test_shapefile_style_field_names_are_matched() -> None:
    gdf = frame("pipelines").rename(columns={"id": "ID", "pressure_mpa": "PRESSURE_M",
                                             "diameter_mm": "diameter_m"})
    clean, report = validate_layer(gdf, "pipelines")
    assert clean["pressure_mpa"].tolist() == [0.4, 0.4]
    assert sorted(n.message for n in report.notes if n.kind == "rename") == [
        "field 'ID' read as 'id'", "field 'PRESSURE_M' read as 'pressure_mpa'",
        "field 'diameter_m' read as 'diameter_mm'"]


def test_invalid_polygon_repaired_and_reported() -> None:
    gdf = frame("buildings")
    bowtie = Polygon([(X, Y), (X + 0.001, Y + 0.001), (X + 0.001, Y), (X, Y + 0.001)])
    gdf.loc[0, "geometry"] = bowtie
    clean, report = validate_layer(gdf, "buildings")
    assert clean.geometry.iloc[0].geom_type == "MultiPolygon"
    assert clean.geometry.iloc[0].is_valid
    assert [str(n) for n in report.repairs] == [
        "layer 'buildings', feature 'B-1': invalid Polygon (Self-intersection[117.2505 34.8005]) "
        "repaired with make_valid; now a MultiPolygon"]


def test_unrepairable_geometry_is_a_problem() -> None:
    gdf = frame("buildings")
    gdf.loc[0, "geometry"] = Polygon([(X, Y), (X + 0.001, Y + 0.001), (X, Y), (X, Y)])
    got = problems(gdf, "buildings")
    assert len(got) == 1
    assert got[0].startswith("layer 'buildings', feature 'B-1': geometry is 'invalid Polygon (")
    assert got[0].endswith("'; expected a valid Polygon or MultiPolygon (make_valid would turn "
                           "it into nothing; fix it in the source)")


def test_invalid_line_whose_repair_changes_type() -> None:
    gdf = frame("roads")
    gdf.loc[0, "geometry"] = LineString([(X, Y), (X, Y)])
    got = problems(gdf, "roads")
    assert got == ["layer 'roads', feature 'R-1': geometry is 'invalid LineString (Too few "
                   "points in geometry component[117.25 34.8])'; expected a valid LineString or MultiLineString "
                   "(make_valid would turn it into a Point; fix it in the source)"]


def test_z_is_dropped_with_a_note() -> None:
    gdf = frame("cameras", n=1)
    gdf["geometry"] = [Point(X, Y, 40.0)]
    clean, report = validate_layer(gdf, "cameras")
    assert not clean.geometry.has_z.any()
    assert [n.message for n in report.notes] == ["Z coordinates dropped"]


def test_reader_problem_is_reported_by_feature() -> None:
    gdf = frame("buildings")
    gdf.loc[1, "geometry"] = None
    gdf[READ_PROBLEM] = [None, "way 202: ring is not closed"]
    assert problems(gdf, "buildings") == [
        "layer 'buildings', feature 'B-1-1': geometry is missing; expected a Polygon or "
        "MultiPolygon (way 202: ring is not closed)"]


def test_households_estimated_for_residential_without_them() -> None:
    # 30 m x 30 m in the GK zone (EPSG:4548), 5 floors: 900 x 5 / 90 = 50 households.
    x0, y0 = 522_000.0, 3_851_000.0
    gk = gpd.GeoDataFrame(
        {"id": ["B-1", "B-2", "B-3", "B-4"],
         "use": ["residential", "residential", "school", "residential"],
         "floors": [5, 5, 5, None], "households": [None, 12, None, None]},
        geometry=[box(x0, y0, x0 + 30, y0 + 30), box(x0 + 50, y0, x0 + 80, y0 + 30),
                  box(x0 + 100, y0, x0 + 130, y0 + 30), box(x0 + 150, y0, x0 + 153, y0 + 3)],
        crs=4548,
    )
    clean, report = validate_layer(gk, "buildings")
    assert HOUSEHOLD_AREA_M2 == 90.0
    assert clean["households"].tolist() == [50, 12, pd.NA, 1]  # at least one household
    assert clean["households_estimated"].tolist() == [True, False, False, True]
    assert clean["floors"].tolist() == [5, 5, 5, 1]
    assert [n.message for n in report.notes if n.kind == "estimate"] == [
        "households estimated for 2 residential building(s) as footprint area x floors / "
        "90 m² (see households_estimated)"]


def test_pressure_class_only_for_urban_gas() -> None:
    gdf = frame("pipelines", n=3)
    gdf["kind"] = ["urban_gas", "urban_gas", "long_distance"]
    gdf["pressure_mpa"] = [0.005, 1.6, 6.3]
    clean, _ = validate_layer(gdf, "pipelines")
    assert clean["pressure_class"].tolist() == ["low", "sub_high_a", pd.NA]
    assert list(clean.columns[:5]) == ["id", "name", "medium", "kind", "pressure_class"]


@pytest.mark.parametrize("p", [0.0, 0.005, 0.01, 0.0100001, 0.2, 0.2000001, 0.4, 0.8, 1.6,
                               2.5, 2.50001, 4.0, 4.00001, 10.0])
def test_vectorised_pressure_class_matches_scalar(p: float) -> None:
    assert pressure_classes([p])[0] == pressure_class(p)


def test_unknown_layer() -> None:
    from layers.errors import UnknownLayerError

    with pytest.raises(UnknownLayerError, match="unknown layer 'pipes'; expected one of "):
        validate_layer(frame("pipelines"), "pipes")


def test_hours_syntax() -> None:
    gdf = frame("restricted_zones", n=3, hours="07:00-09:00;17:00-19:00")
    gdf.loc[1, "hours"] = "morning"
    gdf.loc[2, "hours"] = None
    got = problems(gdf, "restricted_zones")
    assert got == ["layer 'restricted_zones', feature 'Z-1-1': hours is 'morning'; expected "
                   "time windows HH:MM-HH:MM separated by ';', e.g. 07:00-09:00;17:00-19:00 "
                   "(empty means always)"]
    gdf.loc[1, "hours"] = "22:00-06:00"
    clean, _ = validate_layer(gdf, "restricted_zones")
    assert clean["hours"].tolist() == ["07:00-09:00;17:00-19:00", "22:00-06:00", ""]


def test_hca_end_before_start() -> None:
    got = problems(frame("hca", start_m=1200.0, end_m=800.0), "hca")
    assert got == ["layer 'hca', feature 'H-1': end_m is 800.0; expected a number >= start_m "
                   "(1200)"]


def test_legacy_chinese_datum_is_noted() -> None:
    clean, report = validate_layer(frame("cameras").to_crs(2383), "cameras")  # Xian 1980 GK
    assert clean.crs.to_epsg() == 4490
    assert [n.message for n in report.notes] == [
        "EPSG:2383 is on the Xian 1980 datum; PROJ converts it to CGCS2000 without a datum "
        "shift (positions may be off by tens of metres) — convert with the district's "
        "transformation parameters first for surveying accuracy"]
