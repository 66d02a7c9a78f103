"""Import a file into a store layer, all or nothing: read → map fields → validate → write.

Nothing is written unless every feature passes validation; the store's own write is one
transaction (a failed write leaves the store as it was). With ``replace`` the layer is replaced
(:meth:`Store.write`); without it the features are appended (:meth:`Store.append`): their ids
are checked against the stored ones inside the same transaction, so concurrent imports never
lose each other's features.

Three options help with real files: ``defaults`` fills a field where features lack it
(``--default pressure_mpa=1.6`` for OSM gas mains), ``make_ids`` numbers the features when the
file has no usable id, and ``drop_clipped`` leaves out the features of a clipped OSM extract
that cannot be built (ways and rings cut at the extract edge), each listed as a note.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
from pyproj import CRS

from layers.errors import InputFileError
from layers.readers import DEFAULT_MAX_BYTES, read_file, user_crs
from layers.schema import get_schema
from layers.store import Store
from layers.validate import (
    READ_CLIPPED,
    READ_NOTES,
    READ_PROBLEM,
    Note,
    check_value,
    validate_layer,
)

__all__ = ["ImportResult", "import_file", "import_frame", "parse_defaults", "prepare_frame"]


@dataclass
class ImportResult:
    """What an import did."""

    layer: str
    source: str
    imported: int
    total: int
    replaced: bool
    source_crs: str | None = None
    notes: list[Note] = field(default_factory=list)

    def summary(self) -> str:
        how = "replaced layer" if self.replaced else "into layer"
        text = (f"imported {self.imported} feature(s) from {self.source} {how} "
                f"{self.layer!r} (now {self.total})")
        if self.source_crs:
            text += f"; source CRS {self.source_crs}, stored in EPSG:4490"
        return text


def import_file(
    store: Store,
    layer: str,
    path: str | os.PathLike[str],
    *,
    crs: CRS | str | int | None = None,
    mapping: Mapping[str, str] | None = None,
    replace: bool = False,
    source_layer: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    defaults: Mapping[str, object] | None = None,
    make_ids: str | None = None,
    drop_clipped: bool = False,
) -> ImportResult:
    """Read ``path``, validate it as ``layer`` and write it to ``store`` (all or nothing).

    Parameters
    ----------
    defaults
        ``{field: value}`` set on features that lack the field or leave it empty (``--default``).
    make_ids
        Give features the ids ``<make_ids>1``, ``<make_ids>2`` … in file order (``--make-ids``);
        a field ``id`` in the file is kept as ``source_id``.
    drop_clipped
        Leave out features a clipped OSM extract cannot build, each reported as a note.

    Raises
    ------
    InputFileError
        The file cannot be read as geodata, holds no features, or an option is malformed.
    LayerValidationError
        Any feature fails validation, or (appending) an id is already in the layer.
    """
    get_schema(layer)
    crs = user_crs(crs)  # CRSError naming an unknown CRS before any file is read
    if defaults:
        _check_defaults(layer, defaults)
    gdf = read_file(path, crs=crs, layer=source_layer, mapping=mapping, target=layer,
                    max_bytes=max_bytes)
    gdf, notes = prepare_frame(gdf, layer, defaults=defaults, make_ids=make_ids,
                               drop_clipped=drop_clipped, source=str(Path(path)))
    result = import_frame(store, layer, gdf, crs=crs, replace=replace, source=str(Path(path)))
    result.notes[:0] = notes
    return result


def parse_defaults(items: list[str] | None) -> dict[str, str]:
    """``["field=value", ...]`` → ``{"field": "value"}``; raise ValueError on a malformed item."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"--default {item!r}: expected FIELD=VALUE, e.g. pressure_mpa=1.6")
        out[name.strip()] = value.strip()
    return out


def _check_defaults(layer: str, defaults: Mapping[str, object]) -> None:
    schema = get_schema(layer)
    errors = []
    for name, value in defaults.items():
        if name == "id":
            errors.append("--default cannot set id (ids must differ); use --make-ids")
        elif name not in schema:
            errors.append(f"--default {name}: layer {layer!r} has no field {name!r}; its "
                          f"fields are {', '.join(f.name for f in schema.fields)}")
        else:
            why = check_value(layer, name, value)
            if why is not None:
                errors.append(f"--default {why}")
    if errors:
        raise InputFileError("; ".join(errors))


def prepare_frame(
    gdf: gpd.GeoDataFrame,
    layer: str,
    *,
    defaults: Mapping[str, object] | None = None,
    make_ids: str | None = None,
    drop_clipped: bool = False,
    source: str = "<frame>",
) -> tuple[gpd.GeoDataFrame, list[Note]]:
    """Apply the import options to features as read; refuse a file with no features."""
    notes: list[Note] = []
    attrs = dict(gdf.attrs)
    if len(gdf) == 0:
        raise InputFileError(f"{source} holds no features; nothing to import into {layer!r} "
                             "(wrong --source-layer, or an empty export?)")
    if drop_clipped and READ_CLIPPED in gdf.columns:
        clipped = gdf[READ_CLIPPED].eq(True).to_numpy()
        if clipped.any():
            for fid, why in zip(gdf["id"].to_numpy()[clipped],
                                gdf[READ_PROBLEM].to_numpy()[clipped], strict=True):
                notes.append(Note(layer, str(fid), "geometry", f"left out (--drop-clipped): {why}",
                                  "skip"))
            gdf = gdf.loc[~clipped]
            if len(gdf) == 0:
                raise InputFileError(f"{source}: every feature was clipped at the extract edge; "
                                     "nothing to import into " + repr(layer))
    if make_ids is not None:
        gdf = gdf.copy()
        old = [c for c in gdf.columns if isinstance(c, str) and c.lower() == "id"]
        kept = ""
        if old and "source_id" not in gdf.columns:
            gdf = gdf.rename(columns={old[0]: "source_id"})
            kept = f"; the file's field {old[0]!r} is kept as source_id"
        gdf.insert(0, "id", [f"{make_ids}{k}" for k in range(1, len(gdf) + 1)])
        notes.append(Note(layer, None, "id", f"ids made from the feature order (--make-ids): "
                          f"{make_ids}1 … {make_ids}{len(gdf)}{kept}", "derive"))
    for name, value in (defaults or {}).items():
        col = name if name in gdf.columns else next(
            (c for c in gdf.columns if isinstance(c, str) and c.lower() == name), name)
        gdf = gdf.copy()
        if col not in gdf.columns:
            gdf[col] = value
            n = len(gdf)
        else:
            text = gdf[col].astype("string").str.strip()
            lacking = (gdf[col].isna() | text.eq("").fillna(True)).to_numpy(dtype=bool)
            n = int(lacking.sum())
            if n:
                gdf[col] = gdf[col].astype(object).where(~lacking, value)
        if n:
            notes.append(Note(layer, None, name, f"{name} set to {value!r} (--default) on "
                              f"{n} feature(s) that lacked it", "default"))
    gdf.attrs.update(attrs)
    if READ_NOTES in attrs:
        gdf.attrs[READ_NOTES] = attrs[READ_NOTES]
    return gdf, notes


def import_frame(
    store: Store,
    layer: str,
    gdf: gpd.GeoDataFrame,
    *,
    crs: CRS | str | int | None = None,
    replace: bool = False,
    source: str = "<frame>",
) -> ImportResult:
    """Validate ``gdf`` as ``layer`` and write it to ``store`` (all or nothing)."""
    clean, report = validate_layer(gdf, layer, crs=crs)
    if replace:
        store.write({layer: clean})
        total = len(clean)
    else:  # the id check and the append are one transaction in the store
        total = store.append(layer, clean)
    return ImportResult(layer=layer, source=source, imported=len(clean), total=total,
                        replaced=replace, source_crs=report.source_crs, notes=report.notes)
