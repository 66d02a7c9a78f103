"""``riskmap import`` and ``riskmap layers``: bring files into a store and list what it holds."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from api.commands.options import IMPORT_FORMATS, IMPORT_MAX_MB
from layers.schema import LAYER_NAMES

if TYPE_CHECKING:
    from layers.errors import LayerValidationError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    """Add the ``import`` and ``layers`` commands."""
    p = sub.add_parser(
        "import",
        help="import a file into a store layer (all or nothing)",
        description="Read a file, validate every feature against the layer schema and write "
        "the layer atomically. Formats: " + "; ".join(IMPORT_FORMATS) + ". Nothing is written when "
        "any feature has a problem; every problem is listed.",
    )
    p.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    p.add_argument("layer", metavar="LAYER", choices=LAYER_NAMES,
                   help="target layer: " + ", ".join(LAYER_NAMES))
    p.add_argument("file", metavar="FILE", type=Path, help="file to import")
    p.add_argument("--crs", help="CRS of the file's coordinates when it states none "
                   "(e.g. EPSG:4490, EPSG:4548)")
    p.add_argument("--map", dest="mapping", metavar="SOURCE=OURS", action="extend", nargs="+",
                   default=[], help="rename a field of the file to a layer field "
                   "(repeatable, e.g. --map YALI=pressure_mpa GUANJING=diameter_mm)")
    p.add_argument("--default", dest="defaults", metavar="FIELD=VALUE", action="extend",
                   nargs="+", default=[], help="set a layer field on every feature that lacks "
                   "it or leaves it empty (repeatable, e.g. --default pressure_mpa=1.6 "
                   "kind=urban_gas for OSM gas mains); the value is checked like the field")
    p.add_argument("--make-ids", metavar="PREFIX", nargs="?", const="",
                   help="number the features PREFIX1, PREFIX2 … in file order when the file "
                   "has no usable id (a field id is kept as source_id)")
    p.add_argument("--drop-clipped", action="store_true",
                   help="OSM: leave out ways and buildings cut at the extract edge (too few "
                   "nodes left), listing each as a note, instead of failing the import")
    p.add_argument("--replace", action="store_true",
                   help="replace the layer instead of appending to it")
    p.add_argument("--source-layer", help="layer inside a GeoPackage or zip to read")
    p.add_argument("--max-size-mb", type=float, default=IMPORT_MAX_MB,
                   help="refuse files larger than this (default %(default).0f MB)")
    p.add_argument("--problems", type=Path, metavar="CSV",
                   help="on failure, also write every problem to this CSV file")
    p.set_defaults(func=_cmd_import)

    q = sub.add_parser("layers", help="list the layers of a store with counts, CRS and bbox")
    q.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=_cmd_layers)


def _cmd_import(args: argparse.Namespace) -> int:
    from layers.errors import LayerValidationError
    from layers.importing import import_file, parse_defaults
    from layers.readers import parse_mapping
    from layers.store import open_store

    try:
        mapping = parse_mapping(args.mapping)
        defaults = parse_defaults(args.defaults)
    except ValueError as exc:
        print(f"riskmap: error: {exc}", file=sys.stderr)
        return 2
    store = open_store(args.store)
    try:
        result = import_file(
            store, args.layer, args.file, crs=args.crs, mapping=mapping, replace=args.replace,
            source_layer=args.source_layer, max_bytes=int(args.max_size_mb * 1024**2),
            defaults=defaults, make_ids=args.make_ids, drop_clipped=args.drop_clipped,
        )
    except LayerValidationError as exc:
        if args.problems is not None:
            _write_problems(args.problems, exc)
            print(f"riskmap: all {len(exc.problems)} problem(s) written to {args.problems}",
                  file=sys.stderr)
        raise
    print(result.summary())
    for note in result.notes[:_NOTES_SHOWN]:
        print(f"  note: {note}")
    if len(result.notes) > _NOTES_SHOWN:
        print(f"  … and {len(result.notes) - _NOTES_SHOWN} more note(s)")
    return 0


_NOTES_SHOWN = 20


def _write_problems(path: Path, exc: LayerValidationError) -> None:
    rows = [p.as_dict() for p in exc.problems]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["layer", "feature", "field", "received", "expected",
                                           "message"])
        w.writeheader()
        w.writerows(rows)


def _cmd_layers(args: argparse.Namespace) -> int:
    from layers.errors import StoreError
    from layers.schema import SCHEMAS
    from layers.store import GeoPackageStore, open_store

    store = open_store(args.store)
    if isinstance(store, GeoPackageStore) and not store.path.exists():
        raise StoreError(f"store {store.path} does not exist; create it with riskmap import "
                         "or riskmap demo")
    infos = store.layers()
    if args.json:
        print(json.dumps([
            {"name": i.name, "count": i.count, "crs": i.crs, "geometry_type": i.geometry_type,
             "bbox": list(i.bbox) if i.bbox else None,
             "title": SCHEMAS[i.name].title_en if i.name in SCHEMAS else None}
            for i in infos
        ], ensure_ascii=False, indent=2))
        return 0
    if not infos:
        print(f"store {store.url} holds no layers")
        return 0
    header = ("layer", "features", "CRS", "geometry", "bbox (lon/lat)")
    rows = [
        (i.name, str(i.count), i.crs, i.geometry_type,
         "—" if i.bbox is None else " ".join(f"{v:.5f}" for v in i.bbox))
        for i in infos
    ]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
