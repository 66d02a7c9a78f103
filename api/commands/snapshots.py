"""``riskmap snapshot`` (keep, list, delete named snapshots) and ``riskmap changes``.

``riskmap snapshot --store S NAME [--layer L …]`` keeps the current state of the store's
layers as snapshot NAME inside the store (:mod:`layers.snapshots`), stamped with the
district's time; ``--list`` lists the snapshots, ``--delete NAME`` deletes one.

``riskmap changes --store S --since NAME --out F [--analysis ID …]`` writes the features
added, removed or changed per layer since the snapshot (changed: geometry moved more than
0.01 m, or named fields differ) and the findings new or gone — the analyses run on the
snapshot (judged on its date) and on the store now, through the analysis service
(:func:`api.runs.patrol.changes_since`) — and prints the counts.
"""

from __future__ import annotations

import argparse
import json

from api.commands import add_district, open_existing, service, stamp

__all__ = ["register"]


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from layers.errors import InputFileError
    from layers.snapshots import create_snapshot, delete_snapshot, list_snapshots

    store = open_existing(args.store)
    if args.list:
        snaps = list_snapshots(store)
        if args.json:
            print(json.dumps([i.as_dict() for i in snaps], ensure_ascii=False, indent=1))
            return 0
        for i in snaps:
            layers = ", ".join(f"{k} {v}" for k, v in i.layers.items())
            print(f"{i.name}\t{i.created}\t{layers}")
        print(f"riskmap: {len(snaps)} snapshot(s) in {store.url}")
        return 0
    if args.delete:
        info = delete_snapshot(store, args.delete)
        print(f"riskmap: deleted snapshot {info.name!r} (taken {info.created}) from {store.url}")
        return 0
    if not args.name:
        raise InputFileError("riskmap snapshot: give a NAME to take a snapshot, or --list, or "
                             "--delete NAME")
    svc = service(args)
    created = svc.district.now().isoformat(timespec="seconds")
    info = create_snapshot(store, args.name, created=created, layers=args.layer or None)
    total = sum(info.layers.values())
    print(f"riskmap: snapshot {info.name!r} of {len(info.layers)} layer(s), {total:,} "
          f"feature(s), taken {info.created} in {store.url}")
    return 0


def _cmd_changes(args: argparse.Namespace) -> int:
    from api.commands.pipelines import _check_out, _table
    from api.runs.patrol import changes_since
    from layers.writers import write_findings

    _check_out(args.out)
    svc = service(args)
    ch = changes_since(svc, args.since, analyses=tuple(args.analysis) if args.analysis else None)
    write_findings(ch.frame, args.out, layer="changes")
    rows = [[layer, c["added"], c["removed"], c["changed"]]
            for layer, c in ch.counts["layers"].items() if any(c.values())]
    print(f"changes since snapshot {ch.since['name']!r} (taken {ch.since['created']}):\n")
    print(_table(["layer", "added", "removed", "changed"], rows) if rows else "no feature changed")
    print()
    frows = [[a, c["new"], c["gone"], c["changed"]] for a, c in ch.counts["findings"].items()]
    print(_table(["analysis", "new", "gone", "changed"], frows) if frows
          else "no analysis compared")
    for aid, why in ch.skipped.items():
        print(f"note: {aid} not compared: {why}")
    print(f"\nriskmap: {len(ch.frame)} change(s) → {args.out}")
    print(stamp(svc))
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "snapshot", help="keep, list or delete a named snapshot of the store's layers",
        description="Keep the current state of the layers as a named snapshot inside the "
        "store (GeoPackage tables / a PostGIS schema), to compare with later (riskmap changes).")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="snapshot name (letters, digits, '.', '-', '_'; e.g. survey-2026-11)")
    p.add_argument("--store", default="data/demo.gpkg",
                   help="GeoPackage path or postgresql:// URL (default data/demo.gpkg)")
    p.add_argument("--layer", action="append", metavar="LAYER",
                   help="keep only this layer (repeatable; default every layer)")
    p.add_argument("--list", action="store_true", help="list the snapshots")
    p.add_argument("--json", action="store_true", help="with --list: print JSON")
    p.add_argument("--delete", metavar="NAME", help="delete snapshot NAME")
    add_district(p, tz=True)
    p.set_defaults(func=_cmd_snapshot)
    c = sub.add_parser(
        "changes", help="features and findings changed since a snapshot",
        description="List features added, removed or changed per layer since snapshot NAME "
        "(by id; moved > 0.01 m or fields differing) and findings new or gone.")
    c.add_argument("--store", default="data/demo.gpkg",
                   help="GeoPackage path or postgresql:// URL (default data/demo.gpkg)")
    c.add_argument("--since", metavar="NAME", required=True, help="the snapshot to compare with")
    c.add_argument("--out", metavar="FILE", required=True,
                   help="changes file: .geojson, .gpkg or .csv")
    c.add_argument("--analysis", action="append", metavar="ID",
                   help="compare this findings analysis (repeatable; default the pipeline ones: "
                        "pipeline_findings, hca_findings, protection_findings, patrol_findings, "
                        "inspection_findings)")
    add_district(c, tz=True)
    c.set_defaults(func=_cmd_changes)
