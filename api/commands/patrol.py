"""``riskmap check patrol`` (HCA warning signs, patrol paths) and ``riskmap check inspection``.

``riskmap check patrol --store S --out F [--at DATE] [--year Y]`` writes the sign-gap and
patrol-gap findings (chainage ranges along the HCAs and pipelines), prints the patrol
coverage per pipeline and the rates against the plan's years; ``--coverage FILE`` also writes
the per-pipeline coverage, ``--stats FILE.json`` the rates (what the dashboard reads,
:func:`api.runs.patrol.protection_stats`).

``riskmap check inspection --store S --out F [--at DATE]`` writes the pipelines in service
overdue for statutory inspection or without a record, and prints the inspection rate.

``--at DATE`` judges on that date in the district (default: today in the district's zone);
the analyses run in :class:`api.service.AnalysisService` (``api.runs.patrol``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from api.commands import add_district, group, note_absent, service, stamp

if TYPE_CHECKING:
    from api.service import AnalysisService

__all__ = ["register", "service_at"]


def service_at(args: argparse.Namespace) -> AnalysisService:
    """The command's service; with ``--at DATE`` its district clock stands at noon of that
    date in the district's zone."""
    from datetime import date, datetime, time

    from api.district import District
    from api.service import AnalysisService
    from layers.errors import InputFileError

    svc = service(args)
    at = getattr(args, "at", None)
    if not at:
        return svc
    try:
        day = date.fromisoformat(str(at))
    except ValueError:
        raise InputFileError(f"--at {str(at)[:40]!r}: expected a date YYYY-MM-DD") from None
    when = datetime.combine(day, time(12), tzinfo=svc.district.tz)
    d = District(svc.district.rules, timezone=svc.district.timezone, clock=lambda: when)
    return AnalysisService(svc.store, d)


def _check_out(path: str | None, flag: str) -> None:
    from api.commands.pipelines import _check_out as check

    check(path, flag)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _cmd_patrol(args: argparse.Namespace) -> int:
    import json

    from api.commands.pipelines import _table
    from api.runs.patrol import patrol_run, protection_stats
    from layers.writers import write_findings

    _check_out(args.out, "--out")
    _check_out(args.coverage, "--coverage")
    svc = service_at(args)
    if args.year is not None:
        from api.runs.patrol import run_patrol

        day = svc.district.now().date()
        run = run_patrol(svc.store, rules=svc.district.rules, on=day, svc=svc, year=args.year)
    else:
        run = patrol_run(svc)
    note_absent(svc.store, {"warning_signs": "warning signs (every HCA counts as unsigned)",
                            "patrol_paths": "patrol paths (every pipeline counts as unserved)",
                            "hca": "registered HCAs (only identified ones are checked)"})
    write_findings(run.findings, args.out)
    if args.coverage:
        write_findings(run.patrol_coverage, args.coverage, layer="patrol_coverage")
    cov = run.patrol_coverage
    if len(cov):
        print(_table(["pipeline", "km", "served", "target"],
                     [[p, f"{ln / 1000:.2f}", _pct(s),
                       (f"{run.targets[p]['year']}: {float(run.targets[p]['target']):.0%}"
                        if p in run.targets else "-")]
                      for p, ln, s in zip(cov["pipeline_id"], cov["length_m"], cov["share"],
                                          strict=True)]))
        print()
    stats = protection_stats(svc, on=run.on)
    s = stats["signs"]
    print(f"HCA warning signs: {_pct(s['rate'])} of {s['hca_m'] / 1000:.2f} km signed, "
          f"{s['gaps']} gap(s) (target {s['year']}: {s['target']:.0%})")
    for t in stats["patrol"]:
        print(f"patrol paths {t['rule_id']}: {_pct(t['rate'])} of {t['length_m'] / 1000:.2f} km "
              f"on {', '.join(t['pipelines']) or 'no pipeline'} (target {t['year']}: "
              f"{t['target']:.0%})")
    if args.stats:
        Path(args.stats).write_text(json.dumps(stats, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")
    kinds = run.findings["kind"].value_counts().to_dict() if len(run.findings) else {}
    print(f"\nriskmap: {len(run.findings)} finding(s) "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'}) on "
          f"{run.on.isoformat()} → {args.out}")
    print(stamp(svc))
    return 0


def _cmd_inspection(args: argparse.Namespace) -> int:
    from api.runs.patrol import inspection_run
    from layers.writers import write_findings

    _check_out(args.out, "--out")
    svc = service_at(args)
    run = inspection_run(svc)
    write_findings(run.findings, args.out)
    r = run.rate
    print(f"statutory inspection on {run.on.isoformat()}: {r['valid']} of {r['pipelines']} "
          f"pipeline(s) in service valid ({_pct(r['rate_count'])}; by length "
          f"{_pct(r['rate_length'])} of {r['length_m'] / 1000:.2f} km); {r['overdue']} overdue, "
          f"{r['no_record']} without a record")
    print(f"\nriskmap: {len(run.findings)} finding(s) → {args.out}")
    print(stamp(svc))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="data/demo.gpkg",
                   help="GeoPackage path or postgresql:// URL (default data/demo.gpkg)")
    add_district(p, tz=True)
    p.add_argument("--out", metavar="FILE", required=True,
                   help="findings file: .geojson, .gpkg or .csv")
    p.add_argument("--at", metavar="DATE", default=None,
                   help="judge on this date in the district (YYYY-MM-DD; default today there)")


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    check = group(sub, groups, "check", "run a safety analysis and write its findings")
    p = check.add_parser(
        "patrol", help="HCA warning-sign gaps (警示标识) and patrol-path gaps (巡护通道)",
        description="Find stretches of HCAs without a warning sign in good order within the "
        "spacing and stretches of pipelines without a passable patrol path within reach; "
        "print the rates against the plan's years (2020 鲁宁线, 2022 all lines).")
    _common(p)
    p.add_argument("--year", type=int, default=None,
                   help="patrol targets due by this year (default: the year of --at)")
    p.add_argument("--coverage", metavar="FILE", help="also write the per-pipeline coverage")
    p.add_argument("--stats", metavar="FILE.json",
                   help="also write the signs/patrol/inspection rates as JSON")
    p.set_defaults(func=_cmd_patrol)
    i = check.add_parser(
        "inspection", help="statutory inspection (法定检验): overdue pipelines and the rate",
        description="Find pipelines in service overdue for statutory inspection "
        "(next_inspection_due past, or last_inspection older than the interval) or without a "
        "record, on the district's date.")
    _common(i)
    i.set_defaults(func=_cmd_inspection)
