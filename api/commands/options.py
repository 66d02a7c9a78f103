"""Choices the command line offers, spelled out so building the parser imports nothing heavy.

Each tuple mirrors a constant of the module that implements it (named beside it);
``tests/api/test_cli_startup.py`` fails when they drift apart.
"""

from __future__ import annotations

__all__ = ["BASEMAPS", "FINDING_FORMATS", "IMPORT_FORMATS", "IMPORT_MAX_MB", "MAP_NAMES",
           "OBJECTIVES"]

#: layers.writers.FORMATS — findings files written by ``check``, ``route``, ``publish``.
FINDING_FORMATS: tuple[str, ...] = (".geojson", ".json", ".gpkg", ".csv")
#: layers.readers.FORMATS — what ``riskmap import`` reads.
IMPORT_FORMATS: tuple[str, ...] = (
    "GeoJSON (.geojson, .json)", "GeoPackage (.gpkg)", "zipped Shapefile (.zip, .shp)",
    "CSV with a WKT column or lon/lat columns (.csv)", "OSM PBF (.osm.pbf, .osm)", "KML (.kml)",
    "FlatGeobuf (.fgb)")
#: layers.readers.DEFAULT_MAX_BYTES in MB.
IMPORT_MAX_MB: float = 2048.0
#: geo.routing.OBJECTIVES
OBJECTIVES: tuple[str, ...] = ("time", "distance", "risk")
#: maps.sources.MAP_NAMES
MAP_NAMES: tuple[str, ...] = ("planner", "police", "fire", "overview")
#: tuple(maps.base.BASEMAPS)
BASEMAPS: tuple[str, ...] = ("none", "osm", "tianditu", "gaode", "local")
