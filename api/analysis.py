"""Analysis results served as collections and endpoints, computed lazily and cached per store
version (a rewritten layer changes the version, so results are recomputed on next use).

Each :class:`AnalysisDef` names the ``geo`` module(s) it needs; analyses whose modules are not
installed are simply not offered. ``run`` reads the layers it needs from the store and calls
the pure ``geo`` function; the result is a findings GeoDataFrame (``geo.findings`` schema) or
another GeoDataFrame.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd

from geo.findings import FINDING_COLUMNS, SEVERITIES
from layers.store import Store

if TYPE_CHECKING:
    from api.catalog import Catalog, CollectionDef, Queryable

__all__ = [
    "ANALYSES",
    "AnalysisDef",
    "ResultCache",
    "available",
    "collection_defs",
    "finding_queryables",
    "result",
]

_PLANNERS = frozenset({"planner", "admin"})


@dataclass(frozen=True)
class AnalysisDef:
    """An analysis served as collection ``id``: needs ``modules``; read by ``roles``."""

    id: str
    title: str
    description: str
    modules: tuple[str, ...]
    roles: frozenset[str]
    run: Callable[[Store], gpd.GeoDataFrame]
    findings: bool = True


ANALYSES: list[AnalysisDef] = []


def register(defn: AnalysisDef) -> AnalysisDef:
    """Add an analysis (replacing one with the same id)."""
    for i, d in enumerate(ANALYSES):
        if d.id == defn.id:
            ANALYSES[i] = defn
            return defn
    ANALYSES.append(defn)
    return defn


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[AnalysisDef]:
    """The analyses whose modules are installed."""
    return [d for d in ANALYSES if all(_has(m) for m in d.modules)]


class ResultCache:
    """Results per (analysis id, store version), least recently used evicted."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            klock = self._key_locks.setdefault(key, threading.Lock())
        with klock:
            with self._lock:
                if key in self._data:
                    return self._data[key]
            value = compute()
            with self._lock:
                self._data[key] = value
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
                self._key_locks.pop(key, None)
            return value

    def peek(self, key: tuple[str, str]) -> Any | None:
        with self._lock:
            return self._data.get(key)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_CACHES: dict[int, ResultCache] = {}


def cache_for(store: Store, size: int = 16) -> ResultCache:
    """The result cache of ``store`` (one per store object)."""
    return _CACHES.setdefault(id(store), ResultCache(size))


def result(store: Store, analysis_id: str) -> gpd.GeoDataFrame:
    """Result of ``analysis_id`` for the current store version (computed at most once)."""
    defn = next((d for d in available() if d.id == analysis_id), None)
    if defn is None:
        from api.errors import NotFound

        raise NotFound(f"no analysis {analysis_id!r}; available: "
                       + ", ".join(d.id for d in available()))
    return cache_for(store).get((analysis_id, store.version()), lambda: defn.run(store))


def finding_queryables() -> dict[str, Queryable]:
    from api.catalog import Queryable

    out = {c: Queryable(c, "str") for c in FINDING_COLUMNS
           if c not in ("chainage_from_m", "chainage_to_m", "message_zh", "message_en")}
    out["severity"] = Queryable("severity", "str", SEVERITIES)
    return out


def collection_defs(catalog: Catalog) -> list[CollectionDef]:
    """A collection per available analysis."""
    from api.catalog import frame_collection

    store = catalog.store
    out = []
    for d in available():
        cached = cache_for(store).peek((d.id, store.version()))
        extent = None
        if cached is not None and len(cached):
            b = cached.to_crs(4490).total_bounds if cached.crs is not None else None
            extent = tuple(float(v) for v in b) if b is not None else None
        out.append(frame_collection(
            d.id, d.title, d.description, d.roles,
            (lambda aid=d.id: result(store, aid)),
            finding_queryables() if d.findings else {},
            extent=extent))  # type: ignore[arg-type]
    return out


# --- the analyses ---------------------------------------------------------------------------
# Adapters are added here as the geo modules land (pipelines, hca, location_class, routing,
# route_check, coverage, compounds). Each reads its layers from the store and calls geo.
def _read(store: Store, layer: str) -> gpd.GeoDataFrame:
    return store.read(layer)


def _maybe(store: Store, layer: str) -> gpd.GeoDataFrame | None:
    return store.read(layer) if store.has_layer(layer) else None


def _import(name: str) -> Any:
    return importlib.import_module(name)
