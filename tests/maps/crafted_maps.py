"""Crafted layers and findings for the map tests (a few features per layer, EPSG:4490)."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from shapely.geometry import LineString, Point, box

from geo.findings import make_findings

LON0, LAT0 = 117.25, 34.80
D = 0.0005  # ~50 m


def crafted_layers(n_buildings: int = 12) -> dict[str, gpd.GeoDataFrame]:
    """All 12 layers with a handful of features each around the demo district centre."""
    side = max(int(n_buildings ** 0.5), 1)
    b = [{"id": f"B-{i:05d}", "use": "residential" if i % 3 else "school", "floors": 1 + i % 5,
          "households": 10, "name": f"楼 {i}",
          "geometry": box(LON0 + (i % side) * D, LAT0 + (i // side) * D,
                          LON0 + (i % side) * D + D / 3, LAT0 + (i // side) * D + D / 3)}
         for i in range(n_buildings)]
    pipe = LineString([(LON0 - D, LAT0 + D / 2), (LON0 + 6 * D, LAT0 + D / 2)])
    road1 = LineString([(LON0 - 2 * D, LAT0 - D), (LON0 + 8 * D, LAT0 - D)])
    road2 = LineString([(LON0 + 8 * D, LAT0 - D), (LON0 + 8 * D, LAT0 + 8 * D)])
    return {
        "buildings": gpd.GeoDataFrame(b, crs=4490),
        "pipelines": gpd.GeoDataFrame([
            {"id": "P-01", "name": "原油管道", "medium": "crude_oil", "kind": "long_distance",
             "pressure_mpa": 6.3, "diameter_mm": 720.0, "geometry": pipe},
            {"id": "P-02", "name": "中压燃气", "medium": "natural_gas", "kind": "urban_gas",
             "pressure_mpa": 0.4, "diameter_mm": 219.0,
             "geometry": LineString([(LON0, LAT0 + 3 * D), (LON0 + 3 * D, LAT0 + 3 * D)])},
        ], crs=4490),
        "sites": gpd.GeoDataFrame([{"id": "S-1", "kind": "school", "name": "一中",
                                    "geometry": Point(LON0 + 2 * D, LAT0 + 2 * D)}], crs=4490),
        "hca": gpd.GeoDataFrame([{"id": "H-1", "pipeline_id": "P-01", "grade": "II",
                                  "start_m": 0.0, "end_m": 200.0, "people_dense": True,
                                  "video_monitored": False, "geometry": pipe.buffer(D)}], crs=4490),
        "cameras": gpd.GeoDataFrame([{"id": "CAM-1", "range_m": 60.0,
                                      "geometry": Point(LON0 + D, LAT0 + D)}], crs=4490),
        "roads": gpd.GeoDataFrame([
            {"id": "RD-1", "name": "南环路", "road_class": "arterial", "hazmat": "yes", "geometry": road1},
            {"id": "RD-2", "name": "东环路", "road_class": "arterial", "hazmat": "no", "geometry": road2},
        ], crs=4490),
        "restricted_zones": gpd.GeoDataFrame([
            {"id": "Z-01", "name": "水源地", "kind": "water_source", "rule": "forbidden",
             "hours": "", "authority": "某市公安局交通警察支队", "notice": "公交通〔2024〕12号",
             "geometry": box(LON0 + 2 * D, LAT0 - 3 * D, LON0 + 4 * D, LAT0 - 2 * D)},
            {"id": "Z-02", "name": "学校周边", "kind": "school_area", "rule": "permit",
             "hours": "07:00-09:00;17:00-19:00", "authority": "某市公安局交通警察支队",
             "notice": "公交通〔2024〕12号",
             "geometry": box(LON0 + 5 * D, LAT0 - 3 * D, LON0 + 6 * D, LAT0 - 2 * D)},
        ], crs=4490),
        "hazmat_routes": gpd.GeoDataFrame([
            {"id": "HR-01", "name": "一号线", "status": "published", "hours": "00:00-24:00",
             "authority": "某市公安局交通警察支队", "geometry": road1},
            {"id": "HR-02", "name": "草案线", "status": "draft", "hours": "", "geometry": road2},
        ], crs=4490),
        "fire_lanes": gpd.GeoDataFrame([
            {"id": "FL-01", "compound_id": "C-1", "width_m": 3.2, "clear_height_m": 4.5,
             "obstructed": False, "marked": True,
             "geometry": LineString([(LON0, LAT0 + 5 * D), (LON0 + 2 * D, LAT0 + 5 * D)])},
            {"id": "FL-02", "compound_id": "C-1", "width_m": 4.5, "clear_height_m": 4.5,
             "obstructed": False, "marked": True,
             "geometry": LineString([(LON0, LAT0 + 6 * D), (LON0 + 2 * D, LAT0 + 6 * D)])},
        ], crs=4490),
        "fire_stations": gpd.GeoDataFrame([
            {"id": "FS-1", "name": "特勤站", "kind": "station", "engines": 4,
             "geometry": Point(LON0 - D, LAT0 + 4 * D)},
            {"id": "FS-M1", "name": "微型站", "kind": "micro_station", "engines": 0,
             "geometry": Point(LON0 + 3 * D, LAT0 + 5 * D)}], crs=4490),
        "hydrants": gpd.GeoDataFrame([
            {"id": "H-01", "status": "ok", "geometry": Point(LON0 + D, LAT0 + 5.2 * D)},
            {"id": "H-02", "status": "faulty", "geometry": Point(LON0 + 2 * D, LAT0 + 5.2 * D)}],
            crs=4490),
        "compounds": gpd.GeoDataFrame([
            {"id": "C-1", "name": "幸福小区", "built_year": 1992, "households": 300,
             "geometry": box(LON0 - D / 2, LAT0 + 4.5 * D, LON0 + 2.5 * D, LAT0 + 6.5 * D)}],
            crs=4490),
    }


def crafted_findings() -> gpd.GeoDataFrame:
    """One planted setback finding (B-00001, shortfall 0.5 m), one occupancy, one lane, one route."""
    lay = crafted_layers()
    b = lay["buildings"].set_index("id")
    rows = [
        dict(kind="setback", severity="high", layer="buildings", feature_id="B-00001",
             other_layer="pipelines", other_id="P-01", rule_id="gb50253_residential",
             rule_source="GB 50253-2014 4.1.6", distance_m=14.86, clear_distance_m=14.5,
             required_m=15.0, shortfall_m=0.5, chainage_from_m=123.4, chainage_to_m=130.0,
             message_zh="建筑 B-00001 距原油管道 P-01 净距 14.5 m，小于规定 15.0 m，不足 0.5 m",
             message_en="building B-00001 is 14.5 m clear of crude line P-01; 15.0 m required, 0.5 m short",
             geometry=b.loc["B-00001", "geometry"]),
        dict(kind="occupancy", severity="critical", layer="buildings", feature_id="B-00002",
             other_layer="pipelines", other_id="P-01", rule_id="occupancy_long_distance",
             rule_source="管道保护法 第三十条", distance_m=0.0, overlap_m2=120.0,
             chainage_from_m=180.0, chainage_to_m=195.0,
             message_zh="建筑 B-00002 占压原油管道 P-01", message_en="building B-00002 occupies P-01",
             geometry=b.loc["B-00002", "geometry"]),
        dict(kind="lane_narrow", severity="high", layer="fire_lanes", feature_id="FL-01",
             rule_id="fire.lane_min_width_m", rule_source="GB 50016-2014 7.1.8", value_m=3.2,
             required_m=4.0, shortfall_m=0.8,
             message_zh="消防车道 FL-01 净宽 3.2 m，小于 4.0 m", message_en="fire lane FL-01 is 3.2 m wide",
             geometry=lay["fire_lanes"].geometry.iloc[0]),
        dict(kind="route_forbidden_zone", severity="critical", layer="hazmat_routes",
             feature_id="HR-02", other_layer="restricted_zones", other_id="Z-01",
             rule_id="zone.forbidden", rule_source="危险货物道路运输安全管理办法 第46条",
             chainage_from_m=10.0, chainage_to_m=60.0,
             message_zh="路线 HR-02 穿越禁行区 Z-01", message_en="route HR-02 runs inside Z-01",
             geometry=lay["hazmat_routes"].geometry.iloc[1]),
    ]
    out = []
    for r in rows:
        g = r.pop("geometry")
        kind = r.pop("kind")
        out.append(make_findings(pd.DataFrame([r]), kind=kind, geometry=[g], crs=4490,
                                 id_columns=["feature_id"]))
    return gpd.GeoDataFrame(pd.concat(out, ignore_index=True), crs=4490)
