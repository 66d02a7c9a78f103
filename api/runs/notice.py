"""Publishing the hazmat notice: the route check decides, then :mod:`maps.notice` draws it.

:func:`publish_check` runs the designated-route check of the service (the one
:meth:`api.service.AnalysisService.route_check`, the district's rules, cached per store and
rules version — the same findings the API serves) and keeps the critical findings on the
routes to be published (``status = published``). :func:`require_publishable` refuses them
with :class:`PublishRefused` (HTTP 409, CLI exit 2) naming the route, the zone (or road) and
the finding in Chinese and English, unless an override reason is given: the sheet then says
so on its face. :func:`render_notice_for` reads the layers, fills the
:class:`~maps.notice.NoticeInfo` (number, authority, date = the district's today, validity)
and returns the PDF / PNG bytes. The CLI (``riskmap publish notice``, ``riskmap map police
--publish``) and ``GET /maps/police/notice.{pdf,png}`` all go through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import geopandas as gpd

from api.errors import Conflict
from layers.errors import InputFileError, MissingExtraError, RiskmapError

if TYPE_CHECKING:
    from api.service import AnalysisService
    from maps.notice import NoticeInfo

__all__ = [
    "MAX_REASON",
    "Blocker",
    "NoticeOptions",
    "PublishCheck",
    "PublishRefused",
    "notice_info",
    "publish_check",
    "render_notice_for",
    "require_publishable",
]

#: Longest override reason accepted (it is printed on the sheet).
MAX_REASON = 200

_VERB = {
    "route_in_forbidden_zone": ("穿越禁行区域", "crosses forbidden zone"),
    "route_in_permit_zone": ("穿越凭证通行区域", "crosses permit zone"),
    "route_over_bridge_tunnel_zone": ("经过桥隧限行区域", "passes bridge/tunnel zone"),
    "route_on_hazmat_no_road": ("沿禁止危化品车辆通行道路行驶", "runs along hazmat=no road"),
    "route_off_network": ("偏离路网", "leaves the road network"),
}


def _s(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


@dataclass(frozen=True)
class Blocker:
    """A critical route-check finding on a route to be published."""

    route_id: str
    route_name: str
    finding_id: str
    kind: str
    other_layer: str
    other_id: str
    other_name: str
    station: str
    message_zh: str
    message_en: str

    @property
    def short_zh(self) -> str:
        """``通行路线 HR-02 穿越禁行区域 Z-01（岩马水库饮用水水源保护区）``."""
        verb = _VERB.get(self.kind, (self.kind, self.kind))[0]
        named = f"（{self.other_name}）" if self.other_name else ""
        other = f" {self.other_id}{named}" if self.other_id else ""
        return f"通行路线 {self.route_id} {verb}{other}"

    @property
    def short_en(self) -> str:
        """``route HR-02 crosses forbidden zone Z-01 (…)``."""
        verb = _VERB.get(self.kind, (self.kind, self.kind))[1]
        named = f" ({self.other_name})" if self.other_name else ""
        other = f" {self.other_id}{named}" if self.other_id else ""
        return f"route {self.route_id} {verb}{other}"

    def as_dict(self) -> dict[str, str]:
        """The blocker as JSON-ready fields (the 409 body's ``refused`` items)."""
        return {"route_id": self.route_id, "route_name": self.route_name,
                "finding_id": self.finding_id, "kind": self.kind,
                "other_layer": self.other_layer, "other_id": self.other_id,
                "other_name": self.other_name, "station": self.station,
                "message_zh": self.message_zh, "message_en": self.message_en}


class PublishRefused(Conflict, RiskmapError):
    """Publishing refused: a route to publish has a critical route-check finding (409 in the
    API, exit status 2 on the command line). ``blockers`` lists them."""

    def __init__(self, description: str, blockers: tuple[Blocker, ...]) -> None:
        super().__init__(description)
        self.blockers = blockers


@dataclass(frozen=True)
class PublishCheck:
    """The routes to publish (analysis CRS) and the critical findings on them."""

    routes: gpd.GeoDataFrame
    blockers: tuple[Blocker, ...]
    flagged: gpd.GeoDataFrame | None = None  # the blocking findings' stretches

    @property
    def route_ids(self) -> list[str]:
        return [_s(v) for v in self.routes["id"]] if len(self.routes) else []

    def refusal(self, *, how: str) -> str:
        """The refusal message (en, then zh), ``how`` naming the override (e.g.
        ``--override "reason"``)."""
        ids = sorted({b.route_id for b in self.blockers})
        head = (f"publishing refused: {len(ids)} route(s) to publish ({', '.join(ids)}) have a "
                f"critical route-check finding / 拒绝发布：待发布路线 {'、'.join(ids)} 存在严重"
                "路线核查问题")
        lines = [head]
        for b in self.blockers:
            lines.append(f"- {b.short_en} [{b.kind}, finding {b.finding_id}]: {b.message_en}")
            lines.append(f"  {b.short_zh}：{b.message_zh}")
        lines.append("fix the route in the store or withdraw it (status = draft), or publish "
                     f"anyway with {how} (the notice then says so on its face) / 请修正或撤回该"
                     f"路线（status = draft），或以 {how} 说明理由后发布（公告上将注明）")
        return "\n".join(lines)


def publish_check(svc: AnalysisService) -> PublishCheck:
    """The published routes of ``svc``'s store and the critical route-check findings on them
    (the service's cached route check, the district's rules)."""
    from api.runs.routes import published_routes

    pub = published_routes(svc.store)
    routes = pub[pub["feature"] == "route"]
    findings = svc.route_check()
    ids = {_s(v) for v in routes["id"]}
    crit = findings[(findings["severity"].astype(str) == "critical")
                    & findings["feature_id"].astype(str).isin(ids)] if len(findings) else findings
    blockers = tuple(
        Blocker(route_id=_s(r.get("feature_id")), route_name=_s(r.get("route_name")),
                finding_id=_s(r.get("finding_id")), kind=_s(r.get("kind")),
                other_layer=_s(r.get("other_layer")), other_id=_s(r.get("other_id")),
                other_name=_s(r.get("zone_name")), station=_s(r.get("station")),
                message_zh=_s(r.get("message_zh")), message_en=_s(r.get("message_en")))
        for _, r in crit.iterrows())  # a handful of rows: the critical findings only
    return PublishCheck(routes=routes, blockers=blockers, flagged=crit)


def _reason(override: str | None) -> str | None:
    if override is None:
        return None
    text = " ".join(str(override).split())
    if not text:
        raise InputFileError("override reason is empty; expected a short text saying who "
                             "approved publishing and why, e.g. \"市局批准，临时保供\"")
    if len(text) > MAX_REASON:
        raise InputFileError(f"override reason is {len(text)} characters long; expected at "
                             f"most {MAX_REASON} (it is printed on the notice)")
    return text


def require_publishable(svc: AnalysisService, *, override: str | None = None,
                        how: str = '--override "reason"') -> PublishCheck:
    """:func:`publish_check`, raising :class:`PublishRefused` when a route to publish has a
    critical finding and no ``override`` reason is given (a blank reason is refused too)."""
    reason = _reason(override)
    check = publish_check(svc)
    if check.blockers and reason is None:
        raise PublishRefused(check.refusal(how=how), check.blockers)
    return check


@dataclass(frozen=True)
class NoticeOptions:
    """How to print: paper, orientation, format, resolution and the sheet's texts (None:
    the setting, else the default)."""

    paper: str = "a4"
    orientation: str = "portrait"
    fmt: str = "pdf"
    dpi: int = 200
    notice_no: str | None = None
    authority: str | None = None
    valid_until: str | None = None
    override: str | None = None
    font: str | None = None


def _valid_until(text: str | None, today: date) -> str | None:
    if text is None or not str(text).strip():
        return None
    try:
        until = date.fromisoformat(str(text).strip())
    except ValueError:
        raise InputFileError(f"valid-until is {str(text)[:40]!r}; expected an ISO date "
                             "YYYY-MM-DD, e.g. 2027-12-31") from None
    if until < today:
        raise InputFileError(f"valid-until {until.isoformat()} is before the notice date "
                             f"{today.isoformat()} (the district's today); expected a later date")
    return until.isoformat()


def notice_info(svc: AnalysisService, check: PublishCheck, opts: NoticeOptions) -> NoticeInfo:
    """The sheet's texts: number (option, never a zone's notice text; else 未编号), authority
    (option, else the routes' authority), date = the district's today, validity, the route
    check's line and the overrides."""
    from maps.notice import NoticeInfo, Override

    today = svc.district.now().date()
    authority = opts.authority
    if not authority and len(check.routes) and "authority" in check.routes.columns:
        vals = [a for a in check.routes["authority"].map(_s) if a]
        authority = vals[0] if vals else None
    reason = _reason(opts.override)
    overrides: tuple[Override, ...] = ()
    if check.blockers and reason is not None:
        seen: dict[tuple[str, str], Override] = {}
        for b in check.blockers:
            seen.setdefault((b.route_id, b.other_id), Override(
                route_id=b.route_id, other_id=b.other_id or None, message_zh=b.short_zh,
                message_en=b.short_en, reason=reason))
        overrides = tuple(seen.values())
    n = len(check.routes)
    if check.blockers:
        zh = f"路线核查：{n} 条路线，{len(check.blockers)} 处严重问题经批准发布"
        en = f"route check: {n} route(s), {len(check.blockers)} critical finding(s) overridden"
    else:
        zh = f"路线核查：{n} 条路线，无严重问题"
        en = f"route check: {n} route(s), no critical finding"
    return NoticeInfo(date=today.isoformat(), authority=authority or None,
                      notice_no=(opts.notice_no or "").strip() or None,
                      valid_until=_valid_until(opts.valid_until, today),
                      check_zh=f"{zh}（规则 {svc.rules_version}）",
                      check_en=f"{en} (rules {svc.rules_version})", overrides=overrides)


def render_notice_for(svc: AnalysisService, opts: NoticeOptions, *,
                      how: str = '--override "reason"') -> tuple[bytes, PublishCheck]:
    """Check, then draw the notice of ``svc``'s store; returns the file bytes and the check.

    Raises :class:`PublishRefused` (see :func:`require_publishable`), InputFileError for a
    bad option (validity, reason), LayerNotFoundError when the store has no routes or roads,
    MissingExtraError (501) when no CJK font is found (naming the package and the setting).
    """
    from geo.crs import analysis_crs, to_analysis
    from layers.errors import missing_layer
    from maps.notice import find_cjk_font, render_notice

    check = require_publishable(svc, override=opts.override, how=how)
    info = notice_info(svc, check, opts)
    try:
        font = str(find_cjk_font(opts.font))
    except FileNotFoundError as exc:  # a missing package or a wrong setting: say which
        raise MissingExtraError(str(exc)) from None
    store = svc.store
    if not store.has_layer("roads"):
        raise missing_layer(store.url, "roads", "the printed notice (its road network)")
    routes = check.routes
    crs = analysis_crs(routes) if len(routes) else analysis_crs(store.read("roads").head(50))
    routes = to_analysis(routes, crs=crs)
    zones = (to_analysis(store.read("restricted_zones"), crs=crs)
             if store.has_layer("restricted_zones")
             else gpd.GeoDataFrame({"id": [], "rule": []}, geometry=[], crs=crs))
    parts = [g for g in (routes, zones) if len(g)]
    if parts:
        b = [g.total_bounds for g in parts]
        pad = 0.5 * max(max(x[2] for x in b) - min(x[0] for x in b),
                        max(x[3] for x in b) - min(x[1] for x in b), 500.0)
        bbox = (min(x[0] for x in b) - pad, min(x[1] for x in b) - pad,
                max(x[2] for x in b) + pad, max(x[3] for x in b) + pad)
        roads = store.read("roads", bbox=bbox, bbox_crs=crs)
    else:
        roads = store.read("roads")
    roads = to_analysis(roads, crs=crs)
    flagged = (to_analysis(check.flagged, crs=crs)
               if info.overrides and check.flagged is not None and len(check.flagged) else None)
    data = render_notice(roads=roads, routes=routes, zones=zones, info=info, paper=opts.paper,
                         orientation=opts.orientation, fmt=opts.fmt, dpi=opts.dpi,
                         font=font, flagged=flagged)
    return data, check
