"""Layer stores: read a layer as a GeoDataFrame in a given CRS, write/replace layers atomically.

The GeoPackage store is the embedded default. Layers are stored in EPSG:4490 (lon/lat);
GeoPackage keeps an R-tree per layer so bbox reads go through the index.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import geopandas as gpd
import pyogrio
from pyproj import CRS, Transformer

from geo.crs import STORAGE_CRS
from layers.errors import StoreError, missing_layer

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

    def version(self) -> str: ...


def _bbox_to_storage(bbox: Bbox, bbox_crs: CRS | str | int | None) -> Bbox:
    if bbox_crs is None:
        return bbox
    src = CRS.from_user_input(bbox_crs)
    if src == STORAGE_CRS or src.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return bbox
    t = Transformer.from_crs(src, STORAGE_CRS, always_xy=True)
    minx, miny, maxx, maxy = t.transform_bounds(*bbox, densify_pts=21)
    return (minx, miny, maxx, maxy)


class GeoPackageStore:
    """A store in one GeoPackage file.

    Writes are all-or-nothing: the file is copied, the layers written into the copy, and the
    copy renamed over the original (a failed write leaves the original untouched). A lock
    file serialises writers.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.url = str(self.path)

    # -- reading ---------------------------------------------------------------------------
    def _layer_names(self) -> list[str]:
        if not self.path.exists():
            return []
        try:
            listed = pyogrio.list_layers(self.path)
        except Exception as exc:  # pyogrio raises DataSourceError and friends
            raise StoreError(f"cannot open GeoPackage {self.path}: {exc}") from exc
        return [str(name) for name, _gt in listed]

    def has_layer(self, layer: str) -> bool:
        return layer in self._layer_names()

    def layers(self) -> list[LayerInfo]:
        out = []
        for name, gtype in (pyogrio.list_layers(self.path) if self.path.exists() else []):
            if gtype is None:  # attribute-only tables (registry, audit)
                continue
            info = pyogrio.read_info(self.path, layer=name, force_feature_count=True,
                                     force_total_bounds=True)
            bounds = info.get("total_bounds")
            out.append(
                LayerInfo(
                    name=str(name),
                    count=int(info["features"]),
                    crs=str(info["crs"]),
                    geometry_type=str(info["geometry_type"]),
                    bbox=tuple(float(v) for v in bounds) if bounds is not None  # type: ignore[arg-type]
                    and int(info["features"]) > 0 else None,
                )
            )
        return out

    def read(
        self,
        layer: str,
        *,
        crs: CRS | str | int | None = None,
        bbox: Bbox | None = None,
        bbox_crs: CRS | str | int | None = None,
        columns: list[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Read ``layer``; ``bbox`` (in ``bbox_crs``, default EPSG:4490) uses the R-tree."""
        if not self.has_layer(layer):
            raise missing_layer(self.url, layer)
        kwargs: dict[str, object] = {"use_arrow": True}
        if bbox is not None:
            kwargs["bbox"] = _bbox_to_storage(bbox, bbox_crs)
        if columns is not None:
            kwargs["columns"] = columns
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gdf = pyogrio.read_dataframe(self.path, layer=layer, **kwargs)
        if gdf.crs is None:
            gdf = gdf.set_crs(STORAGE_CRS)
        if crs is not None:
            gdf = gdf.to_crs(crs)
        return gdf

    def version(self) -> str:
        """Changes whenever the file is rewritten (used as a cache key)."""
        if not self.path.exists():
            return "empty"
        st = self.path.stat()
        return f"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive writer lock (a ``.lock`` file beside the GeoPackage)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(str(self.path) + ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def write(self, layers: Mapping[str, gpd.GeoDataFrame]) -> None:
        """Write (replacing) every given layer in one all-or-nothing step.

        Each frame must carry a CRS; it is stored in EPSG:4490.
        """
        prepared = {}
        for name, gdf in layers.items():
            if gdf.crs is None:
                raise StoreError(f"layer {name!r} has no CRS; refusing to store it")
            prepared[name] = gdf.to_crs(STORAGE_CRS) if CRS(gdf.crs) != STORAGE_CRS else gdf
        with self.lock():
            fd, tmp = tempfile.mkstemp(prefix=".riskmap-", suffix=".gpkg", dir=self.path.parent)
            os.close(fd)
            os.unlink(tmp)
            try:
                if self.path.exists():
                    shutil.copy2(self.path, tmp)
                for name, gdf in prepared.items():
                    pyogrio.write_dataframe(
                        gdf, tmp, layer=name, driver="GPKG", use_arrow=True,
                        layer_options={"OVERWRITE": "YES", "SPATIAL_INDEX": "YES"},
                    )
                os.replace(tmp, self.path)
            except Exception as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise StoreError(f"writing {', '.join(prepared)} to {self.path} failed; "
                                 f"the store is unchanged: {exc}") from exc


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
