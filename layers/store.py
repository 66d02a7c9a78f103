"""Layer stores: read a layer as a GeoDataFrame in a given CRS; replace or append layers, each
write one transaction.

The GeoPackage store is the embedded default. Layers are stored in EPSG:4490 (lon/lat);
GeoPackage keeps an R-tree per layer so bbox reads go through the index. Writes are SQLite
transactions on the file itself (:mod:`layers.gpkg_write`): one writer at a time, readers
never blocked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from layers import gpkg_catalog
from layers.errors import StoreError, missing_layer
from layers.registry import resolve_busy_timeout

if TYPE_CHECKING:  # heavy modules are imported where features are read or written, so that
    # listing a store (``riskmap layers``) or asking its version starts fast
    import geopandas as gpd
    import numpy as np
    from pyproj import CRS

__all__ = ["Bbox", "GeoPackageStore", "LayerInfo", "Store", "open_store"]

Bbox = tuple[float, float, float, float]


@dataclass(frozen=True)
class LayerInfo:
    """Summary of a stored layer; ``bbox`` is lon/lat in EPSG:4490."""

    name: str
    count: int
    crs: str
    geometry_type: str
    bbox: Bbox | None


@runtime_checkable
class Store(Protocol):
    """What every store offers."""

    url: str

    def layers(self) -> list[LayerInfo]: ...

    def has_layer(self, layer: str) -> bool: ...

    def read(
        self,
        layer: str,
        *,
        crs: CRS | str | int | None = None,
        bbox: Bbox | None = None,
        bbox_crs: CRS | str | int | None = None,
        columns: list[str] | None = None,
    ) -> gpd.GeoDataFrame: ...

    def write(self, layers: Mapping[str, gpd.GeoDataFrame]) -> None: ...

    def append(self, layer: str, gdf: gpd.GeoDataFrame) -> int: ...

    def version(self) -> str: ...


def _bbox_to_storage(bbox: Bbox, bbox_crs: CRS | str | int | None) -> Bbox:
    if bbox_crs is None:
        return bbox
    from pyproj import CRS, Transformer

    from geo.crs import STORAGE_CRS

    src = CRS.from_user_input(bbox_crs)
    if src == STORAGE_CRS or src.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return bbox
    t = Transformer.from_crs(src, STORAGE_CRS, always_xy=True)
    minx, miny, maxx, maxy = t.transform_bounds(*bbox, densify_pts=21)
    return (minx, miny, maxx, maxy)


class GeoPackageStore:
    """A store in one GeoPackage file, shared by several writers and readers.

    Every write is one SQLite transaction on the file (WAL journal): all or nothing, one
    writer at a time, readers never blocked. A writer waits up to ``busy_timeout`` seconds
    (default ``$RISKMAP_BUSY_TIMEOUT`` or 30) for another, then raises
    :class:`~layers.errors.StoreBusy` having changed nothing.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float | None = None
                 ) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self.busy_timeout = resolve_busy_timeout(busy_timeout)

    # -- reading ---------------------------------------------------------------------------
    def _exists(self) -> bool:
        """The file holds a database (a first writer may have created it still empty)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _listed(self) -> list[tuple[str, str | None]]:
        """(name, geometry type) of the store's tables; [] for no store or an empty one."""
        if not self._exists():
            return []
        with gpkg_catalog.snapshot(self.path) as con:
            return gpkg_catalog.list_tables(con)

    def _layer_names(self) -> list[str]:
        return [name for name, _gt in self._listed()]

    def has_layer(self, layer: str) -> bool:
        return layer in self._layer_names()

    def layers(self) -> list[LayerInfo]:
        """Every feature layer with count, CRS, geometry type and extent."""
        if not self._exists():
            return []
        with gpkg_catalog.snapshot(self.path) as con:
            return [LayerInfo(s.name, s.count, s.crs, s.geometry_type, s.bbox)
                    for s in gpkg_catalog.summaries(con)]

    def read(
        self,
        layer: str,
        *,
        crs: CRS | str | int | None = None,
        bbox: Bbox | None = None,
        bbox_crs: CRS | str | int | None = None,
        columns: list[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Read ``layer`` (one snapshot); ``bbox`` (in ``bbox_crs``, default EPSG:4490) uses
        the R-tree and keeps the features intersecting it, in fid order.

        Read with sqlite3, not GDAL (see :mod:`layers.gpkg_read`): the same frame pyogrio
        gives, without a second SQLite in the process beside the store's writers.
        """
        from geo.crs import STORAGE_CRS
        from layers import gpkg_read

        if not self._exists():
            raise missing_layer(self.url, layer)
        box = None if bbox is None else _bbox_to_storage(bbox, bbox_crs)
        with gpkg_read.snapshot(self.path) as con:
            if layer not in [name for name, gt in gpkg_read.list_tables(con) if gt]:
                raise missing_layer(self.url, layer)
            gdf = gpkg_read.read_layer(con, layer, bbox=box, columns=columns)
        if gdf.crs is None:
            gdf = gdf.set_crs(STORAGE_CRS)
        if crs is not None:
            gdf = gdf.to_crs(crs)
        return gdf

    def read_fids(self, layer: str, fids: Sequence[int] | np.ndarray, *,
                  columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """The features of ``layer`` with these fids (e.g. R-tree hits), in fid order, in
        EPSG:4490 — what ``pyogrio.read_dataframe(path, fids=…)`` gives, read with sqlite3."""
        from geo.crs import STORAGE_CRS
        from layers import gpkg_read

        if not self._exists():
            raise missing_layer(self.url, layer)
        with gpkg_read.snapshot(self.path) as con:
            if layer not in [name for name, gt in gpkg_read.list_tables(con) if gt]:
                raise missing_layer(self.url, layer)
            gdf = gpkg_read.read_layer(con, layer, fids=fids, columns=columns)
        return gdf if gdf.crs is not None else gdf.set_crs(STORAGE_CRS)

    def version(self) -> str:
        """``<store id>:<data version>``: moves inside every layer write's transaction and on
        nothing else (registry edits leave it); ``"empty"`` before the first write."""
        if not self._exists():
            return "empty"
        version = gpkg_catalog.read_version(self.path)
        if version is None:  # written before versions existed: the file itself
            st = self.path.stat()
            return f"file:{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"
        return version

    # -- writing ---------------------------------------------------------------------------
    def write(self, layers: Mapping[str, gpd.GeoDataFrame]) -> None:
        """Replace (or create) every given layer, all in one transaction.

        Each frame must carry a CRS; it is stored in EPSG:4490.
        """
        from layers import gpkg_write

        prepared = {name: _to_storage(name, gdf) for name, gdf in layers.items()}
        if not prepared:
            return
        with gpkg_write.transaction(self.path, prepared, busy_timeout=self.busy_timeout) as con:
            gpkg_write.replace_layers(con, list(prepared))

    def append(self, layer: str, gdf: gpd.GeoDataFrame) -> int:
        """Add the features of ``gdf`` to ``layer`` in one transaction; return the new total.

        The ids are checked against the stored ones inside the transaction: any id already
        there raises LayerValidationError (one problem per id) and nothing is written. A
        layer the store lacks is created; fields it lacks are added.
        """
        from layers import gpkg_write

        prepared = {layer: _to_storage(layer, gdf)}
        with gpkg_write.transaction(self.path, prepared, busy_timeout=self.busy_timeout) as con:
            return gpkg_write.append_layer(con, layer)


def _to_storage(name: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    from pyproj import CRS

    from geo.crs import STORAGE_CRS

    if gdf.crs is None:
        raise StoreError(f"layer {name!r} has no CRS; refusing to store it")
    return gdf.to_crs(STORAGE_CRS) if CRS(gdf.crs) != STORAGE_CRS else gdf


def open_store(url: str | os.PathLike[str]) -> Store:
    """Open a store from a path (``*.gpkg``) or URL."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from layers.postgis import PostGISStore  # type: ignore[import-not-found]
        except ImportError as exc:  # pragma: no cover - until the PostGIS store lands
            raise StoreError("PostGIS stores are not available in this installation") from exc
        return PostGISStore(text)  # type: ignore[no-any-return]
    if text.startswith("file:"):
        text = text[5:]
    if not text.lower().endswith(".gpkg"):
        raise StoreError(f"store {text!r}: expected a GeoPackage path ending in .gpkg "
                         "or a postgresql:// URL")
    return GeoPackageStore(text)
