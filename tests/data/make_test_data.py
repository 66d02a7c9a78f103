"""Write the small real files in tests/data/ used by the import and reader tests.

Run from the repository root: ``.venv/bin/python tests/data/make_test_data.py``. The files are
committed; this script documents how they were made (and remakes them identically).
Known coordinates used by the round-trip tests are in ``KNOWN``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
import osmium
import pyogrio
import shapely
from osmium.osm.mutable import Node, Relation, Way

HERE = Path(__file__).parent

# Known lon/lat (EPSG:4490) of the first feature of each projected file.
KNOWN = {
    "buildings_3857.zip": (117.2512345, 34.8012345),  # first vertex of building B-1
    "hydrants_2263.zip": (-73.9856644, 40.7484405),  # hydrant H-1 (Manhattan; US survey feet)
}


def _box(x: float, y: float, dx: float = 0.0003, dy: float = 0.0002) -> shapely.Polygon:
    return shapely.Polygon([(x, y), (x + dx, y), (x + dx, y + dy), (x, y + dy)])


def pipelines_geojson() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature",
             "properties": {"id": "P-01", "name": "鲁皖成品油管道", "medium": "crude_oil",
                            "kind": "long_distance", "pressure_mpa": 6.3, "diameter_mm": 720,
                            "status": "in_service", "last_inspection": "2024-05-01",
                            "owner_ref": "X-1"},
             "geometry": {"type": "LineString",
                          "coordinates": [[117.20, 34.79], [117.25, 34.80], [117.30, 34.81]]}},
            {"type": "Feature",
             "properties": {"id": "P-02", "name": "光明路中压管", "medium": "natural_gas",
                            "kind": "urban_gas", "pressure_mpa": 0.4, "diameter_mm": 160,
                            "status": None, "last_inspection": None, "owner_ref": None},
             "geometry": {"type": "LineString",
                          "coordinates": [[117.24, 34.80], [117.26, 34.80]]}},
        ],
    }
    (HERE / "pipelines.geojson").write_text(json.dumps(fc, ensure_ascii=False, indent=1))


def _zip_shapefile(gdf: gpd.GeoDataFrame, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / f"{Path(name).stem}.shp"
        pyogrio.write_dataframe(gdf, shp, driver="ESRI Shapefile", layer_options={"ENCODING": "UTF-8"})
        with zipfile.ZipFile(HERE / name, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                info = zipfile.ZipInfo(part.name, date_time=(2024, 1, 1, 0, 0, 0))
                zf.writestr(info, part.read_bytes(), zipfile.ZIP_DEFLATED)


def buildings_3857() -> None:
    x, y = KNOWN["buildings_3857.zip"]
    gdf = gpd.GeoDataFrame(
        {"ID": ["B-1", "B-2", "B-3"], "USE": ["residential", "school", "Residential"],
         "FLOORS": [6, 3, 2], "HOUSEHOLDS": [None, None, 12]},
        geometry=[_box(x, y), _box(x + 0.001, y), _box(x + 0.002, y)], crs=4490,
    ).to_crs(3857)
    _zip_shapefile(gdf, "buildings_3857.zip")


def hydrants_2263() -> None:
    x, y = KNOWN["hydrants_2263.zip"]
    gdf = gpd.GeoDataFrame(
        {"id": ["H-1", "H-2"], "status": ["ok", "faulty"]},
        geometry=[shapely.Point(x, y), shapely.Point(x + 0.001, y + 0.001)], crs=4326,
    ).to_crs(2263)
    _zip_shapefile(gdf, "hydrants_2263.zip")


def csv_files() -> None:
    (HERE / "sites_wkt.csv").write_text(
        "id,kind,name,occupants,WKT\n"
        "S-1,school,实验小学,1200,POINT (117.252 34.803)\n"
        'S-2,hospital,区人民医院,,"POLYGON ((117.26 34.80, 117.261 34.80, 117.261 34.801, '
        '117.26 34.801, 117.26 34.80))"\n',
        encoding="utf-8",
    )
    (HERE / "hydrants_lonlat.csv").write_text(
        "编号,longitude,latitude,status\nH-1,117.251,34.801,ok\nH-2,117.252,34.802,faulty\n",
        encoding="utf-8",
    )
    (HERE / "sites_bad_wkt.csv").write_text(
        "id,kind,wkt\nS-1,school,POINT (117.252 34.803)\nS-2,market,\"POLYGON ((117.26 34.80, 117\"\n",
        encoding="utf-8",
    )
    (HERE / "no_geometry.csv").write_text("id,name\n1,a\n2,b\n", encoding="utf-8")


def broken_files() -> None:
    text = (HERE / "pipelines.geojson").read_text()
    (HERE / "broken.geojson").write_text(text[: len(text) // 2])
    (HERE / "not_geodata.gpkg").write_text("This is a meeting note, not a GeoPackage.\n")
    (HERE / "not_geodata.json").write_text('{"meeting": "2024-05-01", "attendees": 7}\n')
    (HERE / "notes.txt").write_text("minutes of the safety committee\n")


def two_layer_gpkg() -> None:
    path = HERE / "two_layers.gpkg"
    if path.exists():
        path.unlink()
    gdf = gpd.read_file(HERE / "pipelines.geojson")
    pyogrio.write_dataframe(gdf, path, layer="gas_mains", driver="GPKG")
    pts = gpd.GeoDataFrame({"id": ["C-1"], "range_m": [80.0]},
                           geometry=[shapely.Point(117.25, 34.8)], crs=4490)
    pyogrio.write_dataframe(pts, path, layer="cctv", driver="GPKG")


def _osm(name: str, nodes: dict[int, tuple[float, float]], ways: list[Way],
         relations: list[Relation] = ()) -> None:  # type: ignore[assignment]
    path = HERE / name
    if path.exists():
        path.unlink()
    w = osmium.SimpleWriter(str(path))
    try:
        for nid, (x, y) in sorted(nodes.items()):
            tags = {"highway": "traffic_signals"} if nid == 1 else {}
            w.add_node(Node(id=nid, location=(x, y), version=1, tags=tags))
        for way in sorted(ways, key=lambda w: w.id):
            w.add_way(way)
        for rel in relations:
            w.add_relation(rel)
    finally:
        w.close()


def osm_files() -> None:
    x0, y0 = 117.25, 34.80
    nodes = {i + 1: (x0 + 0.001 * (i % 10), y0 + 0.001 * (i // 10)) for i in range(60)}
    roads = [
        Way(id=100, version=1, nodes=[1, 2, 3], tags={
            "highway": "primary", "name": "光明大道", "ref": "S348", "maxspeed": "60",
            "lanes": "4", "hazmat": "no"}),
        Way(id=101, version=1, nodes=[11, 12, 13], tags={
            "highway": "residential", "oneway": "-1", "maxspeed": "30 mph",
            "hazmat:water": "no", "maxheight": "4.5", "maxweight": "20"}),
        Way(id=102, version=1, nodes=[21, 22], tags={
            "highway": "motorway", "bridge": "yes", "maxweight": "40 t"}),
        Way(id=103, version=1, nodes=[31, 32, 33], tags={
            "highway": "tertiary", "tunnel": "yes", "maxheight": "14'6\"",
            "hgv": "destination"}),
        Way(id=104, version=1, nodes=[41, 42], tags={"highway": "footway"}),
        Way(id=105, version=1, nodes=[51, 52, 999, 53], tags={"highway": "service"}),
    ]
    pipes = [
        Way(id=400, version=1, nodes=[4, 5, 6], tags={
            "man_made": "pipeline", "substance": "gas", "usage": "transmission",
            "pressure": "63 bar", "diameter": "610", "name": "西气东输支线", "operator": "PipeChina"}),
        Way(id=401, version=1, nodes=[14, 15, 16], tags={"man_made": "pipeline", "substance": "oil"}),
        Way(id=402, version=1, nodes=[24, 25], tags={"man_made": "pipeline", "substance": "water"}),
    ]
    bld = [
        Way(id=200, version=1, nodes=[7, 8, 18, 17, 7], tags={
            "building": "apartments", "building:levels": "6", "name": "1号楼"}),
        Way(id=201, version=1, nodes=[9, 10, 20, 19, 9], tags={"building": "yes", "amenity": "school"}),
        Way(id=301, version=1, nodes=[24, 28, 58, 54, 24], tags={}),
        Way(id=302, version=1, nodes=[35, 36, 46, 45, 35], tags={}),
    ]
    rel = Relation(id=300, version=1, tags={"type": "multipolygon", "building": "industrial",
                                            "building:levels": "2"},
                   members=[("w", 301, "outer"), ("w", 302, "inner")])
    _osm("district.osm.pbf", nodes, roads + pipes + bld, [rel])
    # a clipped extract: a building ring cut at the edge (node 999 absent, ring not closed)
    # and a multipolygon whose outer way is missing
    clipped = [
        bld[0],
        Way(id=202, version=1, nodes=[27, 28, 38, 999], tags={"building": "house"}),
        bld[3],
    ]
    rel2 = Relation(id=310, version=1, tags={"type": "multipolygon", "building": "retail"},
                    members=[("w", 311, "outer"), ("w", 302, "inner")])
    _osm("clipped.osm.pbf", nodes, clipped, [rel2])


def main() -> None:
    os.chdir(HERE)
    pipelines_geojson()
    buildings_3857()
    hydrants_2263()
    csv_files()
    broken_files()
    two_layer_gpkg()
    osm_files()


if __name__ == "__main__":
    main()
