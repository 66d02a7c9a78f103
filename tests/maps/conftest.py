"""Fixtures for the map tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import pytest
from crafted_maps import crafted_findings, crafted_layers


@pytest.fixture
def layers() -> dict[str, gpd.GeoDataFrame]:
    return crafted_layers()


@pytest.fixture
def findings() -> gpd.GeoDataFrame:
    return crafted_findings()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless system Chromium for the module's browser tests (maps.browser.launch)."""
    pytest.importorskip("playwright.sync_api")
    from maps.browser import launch

    with launch() as b:
        yield b
