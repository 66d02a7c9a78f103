"""Fixtures for the map tests."""

from __future__ import annotations

import geopandas as gpd
import pytest
from crafted_maps import crafted_findings, crafted_layers


@pytest.fixture
def layers() -> dict[str, gpd.GeoDataFrame]:
    return crafted_layers()


@pytest.fixture
def findings() -> gpd.GeoDataFrame:
    return crafted_findings()
