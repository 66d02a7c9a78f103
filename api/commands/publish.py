"""``riskmap publish notice``: the printed public notice of the hazmat routes (PDF / PNG).

``riskmap publish notice --store STORE --out notice.pdf|png [--paper a4|a3]
[--orientation portrait|landscape] [--notice NO] [--authority NAME] [--valid-until DATE]
[--override "reason"]`` runs the designated-route check over the published routes first: a
route with a critical finding (e.g. one crossing a forbidden zone) is refused with exit
status 2 and a message naming the route, the zone and the finding, unless ``--override``
gives the reason to publish anyway, which the sheet then prints. The number, authority and
validity default to $RISKMAP_NOTICE_NO, $RISKMAP_NOTICE_AUTHORITY and
$RISKMAP_NOTICE_VALID_UNTIL; the date is the district's today (``--tz``, default
Asia/Shanghai). ``riskmap map police --publish --out FILE.pdf|png`` prints the same sheet.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.commands import add_district, group, service

if TYPE_CHECKING:
    from api.runs.notice import NoticeOptions

__all__ = ["add_notice_options", "notice_options", "register", "write_notice"]

PAPERS = ("a4", "a3")
ORIENTATIONS = ("portrait", "landscape")


def add_notice_options(p: argparse.ArgumentParser, *, with_text: bool = True) -> None:
    """Add the printed notice's options (paper, orientation, dpi, validity, override;
    ``with_text``: also ``--notice`` and ``--authority``)."""
    p.add_argument("--paper", choices=PAPERS, default="a4", help="paper size (default a4)")
    p.add_argument("--orientation", choices=ORIENTATIONS, default="portrait",
                   help="page orientation (default portrait)")
    p.add_argument("--dpi", type=int, default=200, help="PNG resolution, 72-600 (default 200)")
    if with_text:
        p.add_argument("--notice", default=None,
                       help="notice number (default $RISKMAP_NOTICE_NO; else 未编号 / no number)")
        p.add_argument("--authority", default=None,
                       help="issuing authority (default $RISKMAP_NOTICE_AUTHORITY, else the "
                            "routes' authority)")
    p.add_argument("--valid-until", default=None, metavar="DATE",
                   help="valid until (ISO date; default $RISKMAP_NOTICE_VALID_UNTIL, else "
                        "until further notice)")
    p.add_argument("--override", default=None, metavar="REASON",
                   help="publish although a route has a critical route-check finding; the "
                        "reason is printed on the notice beside the finding")


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    """Add ``publish notice``."""
    pub = group(sub, groups, "publish", "export a layer set for publication")
    p = pub.add_parser("notice", help="the printed hazmat route notice (PDF/PNG, A4/A3), "
                       "refused while a published route has a critical route-check finding",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="GeoPackage path or postgresql:// URL")
    p.add_argument("--out", required=True, type=Path, help="output file: .pdf or .png")
    add_notice_options(p)
    add_district(p, tz=True)
    p.set_defaults(func=_cmd_notice)


def notice_options(args: argparse.Namespace, fmt: str) -> NoticeOptions:
    """The notice options of a command: its arguments, else the settings
    ($RISKMAP_NOTICE_*)."""
    from api.runs.notice import NoticeOptions
    from api.settings import Settings

    s = Settings(store=args.store)
    return NoticeOptions(paper=args.paper, orientation=args.orientation, fmt=fmt,
                         dpi=args.dpi, notice_no=args.notice or s.notice_no,
                         authority=args.authority or s.notice_authority,
                         valid_until=args.valid_until or s.notice_valid_until,
                         override=args.override, font=s.notice_font)


def write_notice(args: argparse.Namespace, out: Path) -> int:
    """Check, draw and write the notice to ``out`` (.pdf / .png); prints what was done."""
    from api.commands import stamp
    from api.runs.notice import render_notice_for
    from layers.errors import InputFileError

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("pdf", "png"):
        raise InputFileError(f"--out {out.name!r}: expected a .pdf or .png file")
    if not 72 <= args.dpi <= 600:
        raise InputFileError(f"--dpi is {args.dpi}; expected 72 to 600")
    svc = service(args)
    opts = notice_options(args, fmt)
    data, check = render_notice_for(svc, opts)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    _report(out, data, check, opts)
    print(stamp(svc))
    return 0


def _report(out: Path, data: bytes, check: Any, opts: NoticeOptions) -> None:
    ids = ", ".join(check.route_ids) or "none"
    print(f"riskmap: wrote {out} ({len(data) / 1e6:.2f} MB, {opts.paper.upper()} "
          f"{opts.orientation}): published route(s) {ids}")
    for b in check.blockers:
        print(f"warning: published by override ({opts.override}): {b.short_en} "
              f"[{b.kind}, finding {b.finding_id}] / {b.short_zh}")


def _cmd_notice(args: argparse.Namespace) -> int:
    return write_notice(args, args.out)
