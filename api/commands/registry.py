"""``riskmap registry …``: keep the hazard registry in line with the analyses from the shell.

``riskmap registry sync --store STORE ANALYSIS [--who NAME] [--rules FILE]`` re-runs
``ANALYSIS`` (e.g. ``pipeline_findings``) on the store under the district's rules (the same
service function ``POST /registry/sync/{analysis}`` uses) and updates the registry: new findings registered, those
found again re-marked detected, vanished ones marked ``no_longer_detected`` (never deleted);
every change is audited with ``--who`` (role ``admin``). ``riskmap registry stats --store STORE``
prints the rectification rates and the HCA monitoring coverage as JSON.

``riskmap registry export --store STORE --format xlsx --out F.xlsx`` writes the two lists
(隐患清单, 整改措施清单) and a summary sheet; ``riskmap registry import --store STORE F.xlsx
[--who NAME]`` reads a department's edited copy back: all or nothing, every problem named
(exit 2), the changes audited under ``--who`` (role admin).
"""

from __future__ import annotations

import argparse
import getpass
import json

from api.commands import add_district, group, service, stamp

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    g = group(sub, groups, "registry", "hazard registry (the two lists, audit, stats)")
    p = g.add_parser("sync", help="re-run an analysis into the registry")
    p.add_argument("--store", default="data/demo.gpkg", help="GeoPackage path or postgresql:// URL")
    p.add_argument("analysis", help="analysis id, e.g. pipeline_findings, fire_findings")
    p.add_argument("--who", default=None, help="name written to the audit log "
                   "(default: the login name)")
    add_district(p)
    p.set_defaults(func=_sync)
    s = g.add_parser("stats", help="rectification rates and monitoring coverage (JSON)")
    s.add_argument("--store", default="data/demo.gpkg", help="GeoPackage path or postgresql:// URL")
    add_district(s)
    s.set_defaults(func=_stats)
    e = g.add_parser("export", help="the two lists as an Excel workbook")
    e.add_argument("--store", default="data/demo.gpkg", help="GeoPackage path or postgresql:// URL")
    e.add_argument("--format", choices=["xlsx"], default="xlsx", help="file format (xlsx)")
    e.add_argument("--out", required=True, help="workbook to write (.xlsx)")
    e.add_argument("--no-measurements", action="store_true",
                   help="leave the distance/required/shortfall columns empty (does not re-run "
                   "the analyses)")
    add_district(e)
    e.set_defaults(func=_export)
    i = g.add_parser("import", help="read back an edited workbook (all or nothing)")
    i.add_argument("--store", default="data/demo.gpkg", help="GeoPackage path or postgresql:// URL")
    i.add_argument("workbook", help="the edited .xlsx (as written by registry export)")
    i.add_argument("--who", default=None, help="name written to the audit log "
                   "(default: the login name)")
    add_district(i)
    i.set_defaults(func=_import)


def _registry(store_path: str):  # type: ignore[no-untyped-def]
    from api.commands import open_existing
    from layers.registry_pg import registry_for

    store = open_existing(store_path)
    return store, registry_for(store)


def _sync(args: argparse.Namespace) -> int:
    from api.service import finding_records
    from layers.registry import Actor
    from layers.registry_pg import registry_for

    svc = service(args)
    defn, frame = svc.findings(args.analysis)
    reg = registry_for(svc.store)
    who = args.who or getpass.getuser()
    counts = reg.sync(defn.id, finding_records(frame), owner_role=defn.owner,
                      actor=Actor(who=who, role="admin"))
    print(f"{defn.id}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    print(stamp(svc))
    return 0


def _stats(args: argparse.Namespace) -> int:
    _store, reg = _registry(args.store)
    svc = service(args)
    out = reg.rectification_stats(today=svc.district.now().date())
    out["monitoring"] = svc.monitoring()
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


def _export(args: argparse.Namespace) -> int:
    from api.routers.registry_pages import registry_workbook
    from layers.registry_pg import registry_for

    svc = service(args)
    n = registry_workbook(svc, registry_for(svc.store), roles=None, out=args.out,
                          measurements=not args.no_measurements)
    print(f"{args.out}: {n} hazard(s) in 隐患清单, the measures in 整改措施清单, rates in 汇总")
    return 0


def _import(args: argparse.Namespace) -> int:
    from layers.registry import Actor
    from layers.registry_xlsx import apply_workbook, read_workbook

    _store, reg = _registry(args.store)
    who = args.who or getpass.getuser()
    report = apply_workbook(reg.batch, read_workbook(args.workbook), actor=Actor(who, "admin"))
    print(f"{args.workbook}: {report.summary()}")
    return 0
