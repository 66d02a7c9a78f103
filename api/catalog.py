"""The collections served: every layer of the store plus analysis results, with their roles,
extents and queryables, cached per store version."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.auth import LAYER_ROLES, Principal, can_read
from api.features import FrameSource, Source, source_for
from geo.crs import analysis_crs
from layers.schema import SCHEMAS
from layers.store import LayerInfo, Store

__all__ = ["ROW_FILTERS", "Catalog", "CollectionDef", "Queryable"]

# Rows a role sees of a collection it may read only in part: {(collection, role): filter}.
ROW_FILTERS: dict[tuple[str, str], dict[str, object]] = {
    ("hazmat_routes", "public"): {"status": "published"},
}

_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
               "date": "string", "datetime": "string", "blob": "string"}


@dataclass(frozen=True)
class Queryable:
    """A property that can be filtered on by equality."""

    name: str
    kind: str  # str, int, float, bool, date, datetime
    enum: tuple[str, ...] | None = None
    description: str = ""

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.name, "type": _JSON_TYPES.get(self.kind, "string")}
        if self.kind == "date":
            out["format"] = "date"
        if self.enum:
            out["enum"] = list(self.enum)
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class CollectionDef:
    """One collection: a store layer or an analysis result."""

    id: str
    title: str
    description: str
    roles: frozenset[str]
    kind: str  # "layer" or "analysis"
    make_source: Callable[[], Source]
    extent: tuple[float, float, float, float] | None
    queryables: dict[str, Queryable] = field(default_factory=dict)
    count: int | None = None

    def row_filter(self, principal: Principal) -> dict[str, object]:
        if principal.is_admin or principal.role in ("planner",):
            return {}
        return dict(ROW_FILTERS.get((self.id, principal.role), {}))


def _layer_queryables(info_columns: list[tuple[str, str]], layer: str) -> dict[str, Queryable]:
    schema = SCHEMAS.get(layer)
    out = {}
    for name, kind in info_columns:
        spec = schema.field_index.get(name) if schema else None
        if spec is not None:
            out[name] = Queryable(name, spec.type, spec.enum, spec.description)
        elif kind != "blob":
            out[name] = Queryable(name, kind)
    return out


class Catalog:
    """Collections of one store, rebuilt when ``store.version()`` changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version: str | None = None
        self._layers: dict[str, CollectionDef] = {}
        self._infos: list[LayerInfo] = []
        self._epsg: int | None = None

    def _refresh(self) -> None:
        version = self.store.version()
        if version == self._version:
            return
        with self._lock:
            if version == self._version:
                return
            infos = self.store.layers()
            layers: dict[str, CollectionDef] = {}
            for info in infos:
                schema = SCHEMAS.get(info.name)
                src_cols = source_for(self.store, info.name).columns()
                layers[info.name] = CollectionDef(
                    id=info.name,
                    title=(f"{schema.title_en} / {schema.title_zh}" if schema else info.name),
                    description=(schema.description or schema.title_en) if schema else
                    f"layer {info.name}",
                    roles=LAYER_ROLES.get(info.name, frozenset({"planner", "admin"})),
                    kind="layer",
                    make_source=self._layer_source(info.name),
                    extent=info.bbox,
                    queryables=_layer_queryables(src_cols, info.name),
                    count=info.count,
                )
            boxes = [i.bbox for i in infos if i.bbox is not None]
            epsg = None
            if boxes:
                lon = (min(b[0] for b in boxes) + max(b[2] for b in boxes)) / 2
                lat = (min(b[1] for b in boxes) + max(b[3] for b in boxes)) / 2
                try:
                    epsg = analysis_crs((lon, lat)).to_epsg()
                except Exception:
                    epsg = None
            self._layers, self._infos, self._epsg = layers, infos, epsg
            self._version = version

    def _layer_source(self, name: str) -> Callable[[], Source]:
        return lambda: source_for(self.store, name)

    @property
    def version(self) -> str:
        self._refresh()
        return self._version or ""

    @property
    def analysis_epsg(self) -> int | None:
        """EPSG code of the store's metric analysis CRS (the GK zone), if any data."""
        self._refresh()
        return self._epsg

    def infos(self) -> list[LayerInfo]:
        self._refresh()
        return list(self._infos)

    def all(self) -> dict[str, CollectionDef]:
        """Every collection (layers, then analysis results)."""
        self._refresh()
        out = dict(self._layers)
        from api import analysis

        for d in analysis.collection_defs(self):
            out.setdefault(d.id, d)
        return out

    def get(self, cid: str) -> CollectionDef | None:
        self._refresh()
        if cid in self._layers:
            return self._layers[cid]
        from api import analysis

        for d in analysis.collection_defs(self):
            if d.id == cid:
                return d
        return None

    def visible(self, principal: Principal) -> list[CollectionDef]:
        return [d for d in self.all().values() if can_read(principal, d.roles)]


def frame_collection(cid: str, title: str, description: str, roles: frozenset[str],
                     make_frame: Callable[[], Any], queryables: dict[str, Queryable],
                     extent: tuple[float, float, float, float] | None = None) -> CollectionDef:
    """A collection over an in-memory frame produced by ``make_frame`` (called lazily)."""
    return CollectionDef(id=cid, title=title, description=description, roles=roles,
                         kind="analysis", make_source=lambda: FrameSource(make_frame()),
                         extent=extent, queryables=queryables)


__all__ += ["frame_collection"]
