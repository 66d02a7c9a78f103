"""``riskmap check protection`` and ``riskmap check positions`` (issue 16, pipeline external
protection).

``riskmap check protection --store STORE --out FILE [--at DATE]`` checks every construction
site against the protection zones of the pipelines and their facilities (Pipeline Protection
Law Arts 30, 32, 33, 35) on DATE (default: today in the district's time zone).

``riskmap check positions --store STORE --in positions.csv|.geojson --out FILE`` is the
machine early warning on a file of machine positions (``machine_id,kind,time,lon,lat``;
EPSG:4326 unless a ``crs`` column / member says EPSG:4490 or GCJ-02): one alert per position
inside a zone where its kind of work is forbidden or needs a permit that no active site
containing it holds valid that day. Rows it cannot use are named on stderr.

Both run in :class:`api.service.AnalysisService` (zones built once per store and rules
version, shared with the API); this module only parses the arguments and prints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from api.commands import add_district, group, note_absent, service, stamp
from api.commands.options import FINDING_FORMATS
from layers.errors import InputFileError

__all__ = ["parse_day", "register"]


def parse_day(text: str | None) -> dt.date | None:
    """``"2026-12-07"`` → a date (None stays None); InputFileError saying what was wrong."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputFileError(f"--at is {text!r}; expected a date YYYY-MM-DD, e.g. "
                             "2026-12-07") from None


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    """Add ``check protection`` and ``check positions``."""
    check = group(sub, groups, "check", "run a check and write its findings")
    c = check.add_parser(
        "protection", help="construction sites in pipeline protection zones (permits)",
        description="Every construction site whose work is forbidden where it stands "
        "(critical: Art 30 within 5 m, Art 32 river crossings, Art 33 tunnels) or needs a permit "
        "it does not hold valid on --at (high: Art 35), with the pipeline, distance and "
        "chainage. Permits are valid from permit_from to permit_to inclusive.")
    c.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    c.add_argument("--at", metavar="DATE", help="judge permits on this date (YYYY-MM-DD); "
                   "default today in the district's time zone")
    add_district(c, tz=True)
    c.add_argument("--out", required=True, type=Path,
                   help="findings file: " + ", ".join(FINDING_FORMATS))
    c.set_defaults(func=_cmd_protection)
    p = check.add_parser(
        "positions", help="machine early warning on a file of machine positions",
        description="One alert per machine position inside a zone where its kind of work is "
        "forbidden (critical) or needs a permit that no active construction site of that work "
        "containing it holds valid on the position's date (high). Input: CSV "
        "machine_id,kind,time,lon,lat (optional crs column) or GeoJSON points; lon/lat in "
        "EPSG:4326 unless stated (EPSG:4490, GCJ-02); times without an offset are district "
        "time.")
    p.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    p.add_argument("--in", dest="positions", required=True, type=Path, metavar="FILE",
                   help="positions file (.csv or .geojson)")
    add_district(p, tz=True)
    p.add_argument("--out", required=True, type=Path,
                   help="alerts file: " + ", ".join(FINDING_FORMATS))
    p.set_defaults(func=_cmd_positions)


def _check_out(path: Path) -> None:
    if path.suffix.lower() not in FINDING_FORMATS:
        raise InputFileError(f"--out {path}: extension {path.suffix or '(none)'!r} is not "
                             f"supported; use one of {', '.join(FINDING_FORMATS)}")


def _cmd_protection(args: argparse.Namespace) -> int:
    from api.runs.protection import protection_findings
    from layers.writers import write_findings

    _check_out(args.out)
    day = parse_day(args.at)
    svc = service(args)
    on = day if day is not None else svc.district.now().date()
    findings = protection_findings(svc, on)
    note_absent(svc.store, {"pipeline_facilities": "zones around facilities, river crossings "
                                                   "(Art 32) and tunnels (Art 33)"})
    write_findings(findings, args.out, layer="findings")
    print(f"{len(findings)} construction site finding(s) on {on.isoformat()} "
          f"({svc.district.timezone})")
    for r in findings.itertuples():
        print(f"  {r.severity:<8} {r.message_en}")
    print(f"written: {args.out}")
    print(stamp(svc))
    return 0


def _cmd_positions(args: argparse.Namespace) -> int:
    from api.runs.protection import alerts_geodataframe, check_records, read_positions
    from layers.writers import write_findings

    _check_out(args.out)
    records, crs = read_positions(args.positions)
    svc = service(args)
    alerts, batch = check_records(svc, records, crs=crs)
    write_findings(alerts_geodataframe(alerts), args.out, layer="alerts")
    for r in batch.rejected:
        got = "missing" if r["received"] is None else repr(r["received"])
        print(f"riskmap: row {r['row'] + 1} (machine {r['machine_id']}): {r['field']} is "
              f"{got}; expected {r['expected']}", file=sys.stderr)
    n_crit = int((alerts["severity"] == "critical").sum()) if len(alerts) else 0
    print(f"{len(batch)} position(s) checked ({batch.crs}), {len(alerts)} alert(s) "
          f"({n_crit} critical), {len(batch.rejected)} row(s) refused")
    for r in alerts.itertuples():
        print(f"  {r.severity:<8} {r.time} {r.message_en}")
    print(f"written: {args.out}")
    print(stamp(svc))
    return 1 if batch.rejected else 0
