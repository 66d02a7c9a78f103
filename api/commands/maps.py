"""``riskmap map NAME --store STORE --out FILE.html|.pdf|.png``: export an audience map.

``.html`` is one standalone file (assets inlined; large layers reduced to the features that
findings refer to, with a note saying what was left out). ``.pdf`` / ``.png`` render the page
in headless Chromium (Debian ``chromium``), except the police publish view: ``riskmap map
police --publish --out routes.pdf|png`` prints the public notice sheet (A4/A3, the same as
``riskmap publish notice``). Publishing (any format) first runs the route check: a published
route with a critical finding is refused (exit 2) unless ``--override "reason"`` is given.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from api.commands import add_district
from api.commands.options import BASEMAPS, MAP_NAMES

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("map", help="export an audience map (HTML, PDF or PNG)",
                       description=__doc__)
    p.add_argument("name", choices=MAP_NAMES, help="which map")
    p.add_argument("--store", required=True, help="GeoPackage path or postgresql:// URL")
    p.add_argument("--out", required=True, help="output file: .html, .pdf or .png")
    p.add_argument("--findings", action="append", default=[], metavar="FILE",
                   help="findings file from `riskmap check …` (repeatable); by default the "
                        "available analyses are run on the store")
    p.add_argument("--no-analysis", action="store_true",
                   help="do not run analyses (only --findings files)")
    p.add_argument("--basemap", choices=tuple(BASEMAPS), default=None,
                   help="basemap (default: $RISKMAP_MAP_BASEMAP or none)")
    p.add_argument("--tile-url", default=None, help="local tile URL template (basemap local)")
    p.add_argument("--lang", choices=("zh", "en"), default="zh")
    p.add_argument("--publish", action="store_true",
                   help="police: the clean public view (no internal findings)")
    add_district(p)
    p.add_argument("--authority", default=None, help="publish view: issuing authority")
    p.add_argument("--notice", default=None, help="publish view: notice number")
    p.add_argument("--date", default=None, help="publish view (HTML): date (default the "
                   "district's today; the printed notice always prints the district's today)")
    p.add_argument("--tz", metavar="ZONE", default=None,
                   help="publish view: district time zone of its date (default "
                        "$RISKMAP_TIMEZONE or Asia/Shanghai)")
    from api.commands.publish import add_notice_options

    add_notice_options(p, with_text=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from api.commands import service, stamp
    from api.settings import Settings
    from maps.compose import concat_findings
    from maps.offline import render_html
    from maps.sources import build, map_options, read_findings, read_layers

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf", ".png"):
        raise SystemExit(f"riskmap map: --out {out.name!r}: expected .html, .pdf or .png")
    if args.publish and args.name != "police":
        raise SystemExit("riskmap map: --publish is only offered for the police map")
    if args.override is not None and not args.publish:
        raise SystemExit("riskmap map: --override is only offered with --publish")
    if args.publish and suffix in (".pdf", ".png"):
        from api.commands.publish import write_notice

        if args.date:
            raise SystemExit("riskmap map: --date is not offered for the printed notice: it "
                             "prints the district's today (set the zone with --tz)")

        return write_notice(args, out)  # the print layout, after the route check
    svc = service(args)  # a bad --rules / $RISKMAP_RULES is named before anything runs
    if args.publish:
        from api.runs.notice import require_publishable

        require_publishable(svc, override=args.override)
    store = svc.store
    settings = Settings(store=args.store, rules=svc.district.rules)
    options = map_options(settings, mode="standalone", basemap=args.basemap, lang=args.lang)
    if args.tile_url:
        options = replace(options, tile_url=args.tile_url)
    frames = [read_findings(args.findings)] if args.findings else []
    extra: dict = {}
    if not args.no_analysis and not args.publish:
        found, extra = svc.map_inputs(args.name)
        frames.append(found)
    findings = None if args.publish else concat_findings([f for f in frames if f is not None])
    layers = read_layers(store, args.name, options=options, findings=findings)
    layers.update(extra)
    kwargs: dict = svc.map_options(args.name)
    if args.name == "police":
        notice = (args.notice or settings.notice_no or "未编号 / no number") if args.publish \
            else args.notice  # never a zone's notice text
        kwargs = {"publish": args.publish,
                  "authority": args.authority or settings.notice_authority, "notice": notice,
                  "date": args.date or svc.district.now().date().isoformat(),
                  "route_url": None}
    m = build(args.name, layers, findings, options=options, **kwargs)
    html = render_html(m, mode="inline")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".html", ".htm"):
        out.write_text(html, encoding="utf-8")
    else:
        from maps.browser import export_page

        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp) / "map.html"
            page.write_text(html, encoding="utf-8")
            export_page(page.as_uri(), out)
    size = os.path.getsize(out)
    print(f"riskmap: wrote {out} ({size / 1e6:.2f} MB)")
    if not args.no_analysis and not args.publish:
        print(stamp(svc))
    return 0
