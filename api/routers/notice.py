"""The printed public notice: ``GET /maps/police/notice.pdf`` and ``/maps/police/notice.png``.

Public, like the notice view (``/maps/police?publish=true``), which links both. Publishing
runs the route check first (:func:`api.runs.notice.require_publishable`, the app's service and
district): a published route with a critical finding answers 409 with the route, the zone and
the finding in Chinese and English (``refused`` lists them). ``override=REASON`` (role police
or admin) prints the sheet anyway, saying so on its face. The number, authority and validity
come from the settings (``RISKMAP_NOTICE_NO``, ``RISKMAP_NOTICE_AUTHORITY``,
``RISKMAP_NOTICE_VALID_UNTIL``), the date is the district's today. Sheets are built through
the app's map build gate (bounded, cached per store version, rules version, date and options).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.auth import Principal, get_principal, require_read
from api.deps import get_service
from api.errors import BadRequest
from api.ogc import check_params, esc, wants_html
from api.runs.notice import NoticeOptions, PublishRefused, render_notice_for, require_publishable

__all__ = ["notice_links", "publish_guard", "publish_texts", "router"]

router = APIRouter(tags=["Maps"])

_MEDIA = {"pdf": "application/pdf", "png": "image/png"}
_OVERRIDE_ROLES = frozenset({"police"})
_HOW = "override=REASON (role police)"


def _refused(exc: PublishRefused) -> JSONResponse:
    return JSONResponse(status_code=409, content={
        "code": "Conflict", "description": exc.description,
        "refused": [b.as_dict() for b in exc.blockers]})


def publish_texts(request: Request) -> dict[str, Any]:
    """The notice view's number and authority from the settings (the number never a zone's
    notice text: 未编号 / no number when unset)."""
    s = request.app.state.settings
    return {"notice": getattr(s, "notice_no", None) or "未编号 / no number",
            "authority": getattr(s, "notice_authority", None)}


def publish_guard(request: Request, principal: Principal | None = None) -> Response | None:
    """Refuse the notice view like the sheet while a published route has a critical
    route-check finding: a 409 HTML page for a browser (naming route, zone and finding in zh
    and en), else PublishRefused (409 JSON). None when the notice may be published."""
    try:
        require_publishable(get_service(request), how="the sheet's override=REASON (role police)")
    except PublishRefused as exc:
        if not wants_html(request):
            raise
        return _refused_page(request, exc, principal or get_principal(request))
    return None


def _refused_page(request: Request, exc: PublishRefused, principal: Principal) -> Response:
    from api.pages import page

    root = request.scope.get("root_path", "").rstrip("/")
    items = "".join(
        f'<li class="riskmap-refused" data-route="{esc(b.route_id)}" data-other="'
        f'{esc(b.other_id)}"><b>{esc(b.short_zh)}</b><br>{esc(b.short_en)} '
        f"<small>[{esc(b.kind)}, {esc(b.finding_id)}]</small><br>{esc(b.message_zh)}<br>"
        f"{esc(b.message_en)}</li>" for b in exc.blockers)
    body = ("<p>以下已公布路线存在严重路线核查问题，公告暂不发布。The notice is not published: "
            "these published routes have a critical route-check finding.</p>"
            f"<ul>{items}</ul><p>请在数据中修正或撤回（status = draft）该路线。Fix the route in the "
            "store or withdraw it (status = draft). 交警可说明理由后强制打印 The police may print "
            f'the sheet anyway with a reason: <code>{esc(root)}/maps/police/notice.pdf?'
            "override=理由</code> (role police).</p>"
            f'<pre class="riskmap-refusal">{esc(exc.description)}</pre>')
    return page("拒绝发布 · Publishing refused", body, principal, request=request,
                status_code=409)


def notice_links(html: str, root: str) -> str:
    """The notice view's HTML with links to the printable sheets (PDF A4/A3, PNG)."""
    links = (f'<nav class="riskmap-notice-links" style="position:fixed;right:10px;bottom:28px;'
             'z-index:1000;background:#fff;padding:4px 8px;border:1px solid #999;'
             'font:13px sans-serif">打印 Print: '
             f'<a href="{root}/maps/police/notice.pdf">PDF A4</a> · '
             f'<a href="{root}/maps/police/notice.pdf?paper=a3&amp;orientation=landscape">'
             'PDF A3</a> · '
             f'<a href="{root}/maps/police/notice.png">PNG</a></nav>')
    end = html.lower().rfind("</body>")
    return html[:end] + links + html[end:] if end >= 0 else html + links


def _options(request: Request, fmt: str) -> NoticeOptions:
    q = request.query_params
    paper = q.get("paper", "a4").lower()
    if paper not in ("a4", "a3"):
        raise BadRequest(f"paper={paper[:20]!r}; expected a4 or a3")
    orientation = q.get("orientation", "portrait").lower()
    if orientation not in ("portrait", "landscape"):
        raise BadRequest(f"orientation={orientation[:20]!r}; expected portrait or landscape")
    raw = q.get("dpi", "200")
    if fmt != "png" and "dpi" in q:
        raise BadRequest("dpi is only offered for the PNG sheet")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 72 <= int(raw) <= 300):
        raise BadRequest(f"dpi={raw[:20]!r}; expected a whole number 72 to 300")
    override = q.get("override")
    if override is not None:
        require_read(get_principal(request), _OVERRIDE_ROLES,
                     "overriding the route check of the public notice")
    s = request.app.state.settings
    return NoticeOptions(paper=paper, orientation=orientation, fmt=fmt, dpi=int(raw),
                         notice_no=s.notice_no, authority=s.notice_authority,
                         valid_until=s.notice_valid_until, override=override, font=s.notice_font)


def _sheet(request: Request, fmt: str) -> Response:
    check_params(request, ("paper", "orientation", "dpi", "override"))
    opts = _options(request, fmt)
    service = get_service(request)
    from api.routers.maps import build_gate
    from api.service import layers_version
    from maps.builds import BuildsBusy

    store = service.store
    key = ("notice", opts, str(getattr(store, "url", id(store))), layers_version(store),
           service.rules_version, service.district.now().date().isoformat())
    try:
        require_publishable(service, override=opts.override, how=_HOW)  # before the gate
        text = build_gate(request.app).get(
            key, lambda: render_notice_for(service, opts, how=_HOW)[0].decode("latin-1"))
    except PublishRefused as exc:
        return _refused(exc)
    except BuildsBusy as exc:
        return JSONResponse(status_code=503, headers={"Retry-After": str(exc.retry_after_s)},
                            content={"code": "ServiceUnavailable", "description": str(exc)})
    name = f"notice-{opts.paper}-{opts.orientation}.{fmt}"
    return Response(text.encode("latin-1"), media_type=_MEDIA[fmt],
                    headers={"Content-Disposition": f'inline; filename="{name}"',
                             "Cache-Control": "no-store"})


_DOC = ("The printed public notice (A4/A3, portrait/landscape): title, authority, number, "
        "date, validity, roads with names, published routes with hours, restricted zones with "
        "rule and hours, legend, north arrow, metric scale bar, CRS. Public. 409 while a "
        "published route has a critical route-check finding (`refused` names the route, the "
        "zone and the finding), unless `override` (a reason; role police or admin) is given: "
        "the sheet then says so.")
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {}, 401: {}, 403: {},
    409: {"description": "refused: a published route has a critical route-check finding"},
    503: {"description": "too many map builds at once; see Retry-After"}}


@router.get("/maps/police/notice.pdf", operation_id="getNoticePdf", description=_DOC,
            summary="The printed hazmat route notice as PDF (vector, text searchable)",
            responses={200: {"content": {"application/pdf": {}}}, **_RESPONSES},
            response_class=Response)
def notice_pdf(request: Request) -> Response:
    return _sheet(request, "pdf")


@router.get("/maps/police/notice.png", operation_id="getNoticePng", description=_DOC,
            summary="The printed hazmat route notice as PNG (dpi 72-300, default 200)",
            responses={200: {"content": {"image/png": {}}}, **_RESPONSES},
            response_class=Response)
def notice_png(request: Request) -> Response:
    return _sheet(request, "png")
