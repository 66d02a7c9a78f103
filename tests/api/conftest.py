"""Fixtures for the API tests: a small crafted store and app clients per role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import LineString, Point, Polygon, box

from api.app import create_app
from api.settings import Settings
from layers.store import GeoPackageStore

KEYS = {
    "planner": "planner-key-0001",
    "police": "police-key-0001",
    "fire": "fire-key-00000001",
    "admin": "admin-key-0000001",
    "public": "public-key-000001",
}
API_KEYS = ",".join(f"{role}:{role}-user:{key}" for role, key in KEYS.items())

LON0, LAT0 = 117.25, 34.80
D = 0.0005  # ~50 m (lat) / ~45 m (lon)


def _buildings() -> gpd.GeoDataFrame:
    rows = []
    for i in range(12):
        x = LON0 + (i % 4) * D
        y = LAT0 + (i // 4) * D
        rows.append({"id": f"B-{i:02d}", "use": "residential" if i % 3 else "school",
                     "floors": 1 + i % 5, "households": 10 * i, "name": f"building {i}",
                     "geometry": box(x, y, x + D / 3, y + D / 3)})
    return gpd.GeoDataFrame(rows, crs=4490)


def small_layers() -> dict[str, gpd.GeoDataFrame]:
    """A few features per layer around the demo district centre (EPSG:4490)."""
    pipe = LineString([(LON0 - D, LAT0 + D / 6), (LON0 + 5 * D, LAT0 + D / 6)])
    return {
        "buildings": _buildings(),
        "pipelines": gpd.GeoDataFrame([
            {"id": "P-01", "name": "crude line", "medium": "crude_oil", "kind": "long_distance",
             "pressure_mpa": 6.3, "diameter_mm": 720.0, "status": "in_service",
             "geometry": pipe},
            {"id": "P-02", "name": "gas main", "medium": "natural_gas", "kind": "urban_gas",
             "pressure_mpa": 0.4, "diameter_mm": 219.0, "status": "in_service",
             "geometry": LineString([(LON0, LAT0 + 3 * D), (LON0 + 3 * D, LAT0 + 3 * D)])},
        ], crs=4490),
        "hca": gpd.GeoDataFrame([
            {"id": "H-1", "pipeline_id": "P-01", "grade": "II", "start_m": 0.0, "end_m": 200.0,
             "people_dense": True, "video_monitored": False,
             "geometry": pipe.buffer(D / 2)},
        ], crs=4490),
        "hazmat_routes": gpd.GeoDataFrame([
            {"id": "R-1", "name": "north route", "hours": "", "status": "published",
             "authority": "traffic police",
             "geometry": LineString([(LON0, LAT0 + 4 * D), (LON0 + 4 * D, LAT0 + 4 * D)])},
            {"id": "R-2", "name": "draft route", "hours": "", "status": "draft",
             "authority": "traffic police",
             "geometry": LineString([(LON0, LAT0 + 5 * D), (LON0 + 4 * D, LAT0 + 5 * D)])},
        ], crs=4490),
        "restricted_zones": gpd.GeoDataFrame([
            {"id": "Z-1", "name": "water source", "kind": "water_source", "rule": "forbidden",
             "hours": "", "geometry": box(LON0 + 6 * D, LAT0, LON0 + 8 * D, LAT0 + 2 * D)},
        ], crs=4490),
        "fire_stations": gpd.GeoDataFrame([
            {"id": "F-1", "name": "station 1", "kind": "station", "engines": 3,
             "turnout_s": 60.0, "geometry": Point(LON0 + 2 * D, LAT0 - D)},
        ], crs=4490),
        "compounds": gpd.GeoDataFrame([
            {"id": "C-1", "name": "old compound", "built_year": 1995, "households": 120,
             "property_management": False,
             "geometry": Polygon([(LON0, LAT0), (LON0 + 4 * D, LAT0), (LON0 + 4 * D, LAT0 + 3 * D),
                                  (LON0, LAT0 + 3 * D)])},
        ], crs=4490),
    }


@pytest.fixture(scope="session")
def small_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api") / "small.gpkg"
    GeoPackageStore(path).write(small_layers())
    return path


@pytest.fixture()
def store_copy(small_store_path: Path, tmp_path: Path) -> GeoPackageStore:
    """A writable copy of the small store for tests that change it."""
    import shutil

    dst = tmp_path / "store.gpkg"
    shutil.copy(small_store_path, dst)
    return GeoPackageStore(dst)


def make_client(store_path: Path, **overrides: object) -> TestClient:
    settings = Settings(store=str(store_path), api_keys=API_KEYS, **overrides)
    return TestClient(create_app(settings))


@pytest.fixture(scope="session")
def client(small_store_path: Path) -> Iterator[TestClient]:
    with make_client(small_store_path) as c:
        yield c


def auth(role: str) -> dict[str, str]:
    """Headers for ``role``."""
    return {"Authorization": f"Bearer {KEYS[role]}"}
