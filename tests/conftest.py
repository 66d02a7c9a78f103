"""Session fixtures shared by the whole suite: the demo district, built once per session.

``demo_store`` yields ``(store, manifest)``: a GeoPackageStore holding all 12 demo layers
(EPSG:4490) and the manifest dict of planted cases (docs/dev/DEMO_MANIFEST.md). The store
is shared by the whole session: treat it as read-only (copy the file before writing to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layers.store import GeoPackageStore

DEMO_SEED = 42


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the demo GeoPackage (seed 42, scale 1), built once per test session."""
    from layers.demo import write_demo

    path = tmp_path_factory.mktemp("demo") / "demo.gpkg"
    write_demo(path, seed=DEMO_SEED, scale=1.0)
    return path


@pytest.fixture(scope="session")
def demo_manifest(demo_path: Path) -> dict[str, Any]:
    """The manifest written beside the demo GeoPackage."""
    import json

    from layers.demo import manifest_path

    return json.loads(manifest_path(demo_path).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def demo_store(
    demo_path: Path, demo_manifest: dict[str, Any]
) -> Iterator[tuple[GeoPackageStore, dict[str, Any]]]:
    """``(store, manifest)`` for the demo district."""
    yield GeoPackageStore(demo_path), demo_manifest
