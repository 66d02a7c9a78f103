"""The "two lists" workspace: registry web pages, Excel in and out, attachments, dashboard.

- ``GET /registry`` (HTML): the hazards the caller's role may see (planner and admin: all),
  filtered by department, kind, status, severity, year found, overdue; sorted; paged.
- ``GET /registry/hazards/{id}`` with ``Accept: text/html``: the hazard page (map, rule and
  measurement, fields, attachments, transitions, history); edits go through the JSON API with
  ``If-Match`` — a stale page is told who changed the hazard and when, and keeps what was typed.
- ``GET /registry/dashboard`` (HTML, charts drawn on the server as SVG) and
  ``GET /registry/dashboard.png``: the numbers of ``GET /registry/stats``
  (:func:`api.routers.registry.registry_stats`) plus open hazards by age and the overdue list.
- ``GET /registry/export.xlsx`` / ``POST /registry/import.xlsx``: the two lists as a workbook
  (:mod:`layers.registry_xlsx`), role-filtered; the import is all or nothing.
- ``GET /registry/hazards/{id}/history``: the hazard's audit entries (whoever may see it).
- ``POST /registry/hazards/{id}/attachments`` (multipart ``file``) and ``GET …/{aid}``: photos
  and PDFs checked by content (:mod:`layers.attachments`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.auth import LAYER_ROLES, Principal, can_read, get_principal
from api.deps import get_service
from api.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from api.ogc import check_params, esc
from api.routers.registry import (
    _STAFF,
    Hazard,
    IfMatch,
    _conflict,
    _require_owner,
    _sent_version,
    _staff,
    _visible_hazard,
    _visible_roles,
    _with_etag,
    registry_of,
    registry_stats,
)
from layers.errors import RiskmapError
from layers.registry import DONE, STATUSES, TRANSITIONS, Actor, EditConflict, Registry

__all__ = ["dashboard_numbers", "hazard_page", "registry_workbook", "router"]

router = APIRouter(prefix="/registry", tags=["Hazard registry"])

RegistryDep = Annotated[Registry, Depends(registry_of)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
HazardId = Annotated[str, Path(description="hazard id (= the finding_id it came from)")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_AGES = ((30, "< 30 天 days"), (90, "30–90 天"), (180, "90–180 天"), (365, "180–365 天"),
         (None, "> 1 年 year"))
_ALL = 2**62


# --- shared ---------------------------------------------------------------------------------
def _today(request: Request) -> dt.date:
    return get_service(request).district.now().date()


def _visible(reg: Registry, principal: Principal) -> list[dict[str, Any]]:
    rows, _ = reg.hazards(roles=_visible_roles(principal), limit=_ALL)
    return rows


def _folder(request: Request) -> Any:
    from layers.attachments import attachments_dir

    store = request.app.state.store
    return attachments_dir(getattr(store, "path", None),
                           request.app.state.settings.attachments_dir)


def _href(hazard_id: str) -> str:
    return "/registry/hazards/" + quote(hazard_id, safe="")


# --- Excel ----------------------------------------------------------------------------------
def finding_measurements(service: Any, analyses: set[str]) -> dict[str, dict[str, Any]]:
    """``finding_id → {distance_m, required_m, shortfall_m}`` of the current results of
    ``analyses`` (those that cannot run now, e.g. a layer is missing, are left out)."""
    out: dict[str, dict[str, Any]] = {}
    for a in sorted(analyses):
        try:
            frame = service.result(a)
        except (RiskmapError, LookupError, ValueError):
            continue
        cols = [c for c in ("distance_m", "required_m", "shortfall_m") if c in frame.columns]
        if "finding_id" not in frame.columns or not cols:
            continue
        recs = frame[cols].astype(float).to_dict("records")
        out.update(zip(frame["finding_id"].astype(str), recs, strict=True))
    return out


def registry_workbook(service: Any, reg: Any, *, roles: list[str] | None, out: Any,
                      measurements: bool = True) -> int:
    """Write the workbook of what ``roles`` may see (None: everything) to ``out``; the
    summary sheet's rates are those of the same rows. Returns the number of hazards."""
    from layers.registry import rectification_stats
    from layers.registry_xlsx import write_workbook

    now = service.district.now()
    rows, _ = reg.hazards(roles=roles, limit=_ALL)
    stats = rectification_stats(
        [(r["kind"], r.get("department") or "", (r.get("first_detected") or "")[:4],
          r["status"], r["detection"]) for r in rows], today=now.date())
    found = (finding_measurements(service, {r["analysis"] for r in rows})
             if measurements else {})
    write_workbook(out, hazards=rows, measures=reg.measures(roles=roles), stats=stats,
                   monitoring=service.monitoring(),
                   measurements=found, exported_at=now.isoformat(timespec="seconds"),
                   tz=now.tzinfo)
    return len(rows)


@router.get("/export.xlsx", operation_id="exportRegistryXlsx",
            summary="The two lists (隐患清单, 整改措施清单) and a summary as an Excel workbook "
                    "(the caller's role's hazards; all for planner/admin)",
            response_class=Response,
            responses={200: {"content": {XLSX: {"schema": {"type": "string",
                                                           "format": "binary"}}}}})
def export_xlsx(request: Request, reg: RegistryDep, principal: PrincipalDep) -> Response:
    import io

    check_params(request, ())
    _staff(principal)
    buf = io.BytesIO()
    registry_workbook(get_service(request), reg, roles=_visible_roles(principal), out=buf)
    name = f"riskmap-registry-{_today(request):%Y%m%d}.xlsx"
    return Response(buf.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


class ImportResult(BaseModel):
    """What an Excel import changed (nothing when it answers 422)."""

    hazards_updated: int
    transitions: int
    measures_created: int
    measures_updated: int
    unchanged: int
    summary: str


@router.post(
    "/import.xlsx", response_model=ImportResult, operation_id="importRegistryXlsx",
    summary="Read back an edited workbook (owner roles; all or nothing, 422 naming every "
            "problem)",
    description="The request body is the .xlsx file exported by GET /registry/export.xlsx, "
    "edited: 整改状态 (one allowed step), 整改措施, 整改时限, 责任单位, 责任人, and the measures "
    "sheet. A row whose 版本 is older than the store's is refused, named; so is an unknown "
    "hazard id or a status the workflow does not allow. Nothing changes unless every row "
    "can be applied; the audit log records every change.",
    openapi_extra={"requestBody": {"required": True, "content": {
        XLSX: {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    responses={422: {"description": "the workbook's problems (sheet, row, column, value "
                                    "received, expected); nothing changed"}})
async def import_xlsx(request: Request, principal: PrincipalDep) -> ImportResult:
    from layers.registry_xlsx import apply_workbook, read_workbook

    check_params(request, ())
    if principal.role not in _STAFF and not principal.is_admin:
        if not principal.authenticated:
            raise Unauthorized("importing the registry requires an API key with role "
                               "planner, police, fire or admin")
        raise Forbidden(f"role {principal.role!r} may not change the registry")
    body = await request.body()
    if not body:
        raise BadRequest("the request body (the .xlsx workbook) is empty")
    reg = registry_of(request)
    edits = await run_in_threadpool(read_workbook, body, name="upload.xlsx")
    report = await run_in_threadpool(
        apply_workbook, reg.batch, edits, actor=Actor(principal.name, principal.role),
        roles=_visible_roles(principal),
        may_change=lambda owner: principal.is_admin or principal.role == owner,
        measure_owner="planner" if principal.is_admin else principal.role)
    return ImportResult(**report.__dict__, summary=report.summary())


# --- history --------------------------------------------------------------------------------
class HistoryEntry(BaseModel):
    seq: int
    at: str
    who: str
    role: str
    action: str
    at_district: str = Field(description="``at`` on the district's clock")
    changes: dict[str, list[Any]] = Field(
        description="field → [before, after] for each field the entry changed")


class History(BaseModel):
    hazard_id: str
    entries: list[HistoryEntry]


_HIDDEN = {"updated_at", "version", "last_detected"}


def _history(reg: Registry, hazard_id: str, tz: dt.tzinfo) -> list[HistoryEntry]:
    rows, _ = reg.audit(record_id=hazard_id, limit=10_000)
    out = []
    for r in rows:
        before, after = r.get("before") or {}, r.get("after") or {}
        changes = {k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after))
                   if k not in _HIDDEN and before.get(k) != after.get(k)}
        if not before:
            changes = {}
        at = dt.datetime.fromisoformat(str(r["at"]).replace("Z", "+00:00"))
        out.append(HistoryEntry(seq=r["seq"], at=r["at"], who=r["who"], role=r["role"],
                                action=r["action"], changes=changes,
                                at_district=at.astimezone(tz).isoformat(timespec="seconds")))
    return out


@router.get("/hazards/{hazard_id}/history", response_model=History,
            operation_id="getHazardHistory",
            summary="A hazard's history from the audit log (whoever may see the hazard)")
def hazard_history(request: Request, hazard_id: HazardId, reg: RegistryDep,
                   principal: PrincipalDep) -> History:
    check_params(request, ())
    _staff(principal)
    _visible_hazard(reg, principal, hazard_id)
    return History(hazard_id=hazard_id,
                   entries=_history(reg, hazard_id, get_service(request).district.tz))


# --- attachments ----------------------------------------------------------------------------
@router.post(
    "/hazards/{hazard_id}/attachments", response_model=Hazard, status_code=201,
    operation_id="addHazardAttachment",
    summary="Attach a photo (JPEG, PNG, WebP) or PDF to a hazard (multipart field 'file'; "
            "the content decides the type; If-Match optional)",
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}}}}}}},
    responses={201: {"description": "the hazard with the attachment listed (ETag: its "
                                    "version)"},
               400: {"description": "not a photo or PDF (e.g. an executable), or a file name "
                                    "with a path"},
               409: {"description": "stale If-Match, or the hazard is closed"},
               413: {"description": "larger than RISKMAP_MAX_ATTACHMENT_BYTES"}})
async def add_attachment(request: Request, response: Response, hazard_id: HazardId,
                         principal: PrincipalDep, if_match: IfMatch = None) -> Any:
    from layers.attachments import store_file

    check_params(request, ())
    _staff(principal)
    reg = registry_of(request)
    rec = await run_in_threadpool(_visible_hazard, reg, principal, hazard_id)
    _require_owner(principal, rec["owner_role"], f"hazard {hazard_id!r}")
    sent = _sent_version(if_match, None)
    limit = int(request.app.state.settings.max_attachment_bytes)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + 65_536:
        raise PayloadTooLarge(f"the upload is {int(length)} bytes; the largest attachment "
                              f"accepted is {limit} bytes (RISKMAP_MAX_ATTACHMENT_BYTES)")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send the file as multipart/form-data in the field 'file'")
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("multipart field 'file' is missing; send the photo or PDF in it")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"file {upload.filename!r} is larger than {limit} bytes, the "
                                  "largest attachment accepted (RISKMAP_MAX_ATTACHMENT_BYTES)")
        folder = _folder(request)
        stored = await run_in_threadpool(store_file, folder, data, upload.filename,
                                         max_bytes=limit)
    finally:
        await form.close()
    actor = Actor(principal.name, principal.role)
    meta = {"id": stored.id, "name": stored.name, "type": stored.type,
            "size": str(stored.size), "sha256": stored.sha256,
            "href": f"{_href(hazard_id)}/attachments/{stored.id}",
            "uploaded_by": principal.name,
            "uploaded_at": get_service(request).district.now().isoformat(timespec="seconds")}

    def attach() -> dict[str, Any]:
        with reg.batch() as tx:
            now = tx.hazard(hazard_id)
            assert now is not None
            return tx.update(hazard_id, {"attachments": [*now["attachments"], meta]},
                             actor=actor, action="attachment:add",
                             expected_version=sent if sent is not None else now["version"])

    try:
        after = await run_in_threadpool(attach)
    except EditConflict as exc:
        (folder / stored.id).unlink(missing_ok=True)
        return _conflict(exc, Hazard)
    except BaseException:
        (folder / stored.id).unlink(missing_ok=True)
        raise
    response.status_code = 201
    return Hazard(**_with_etag(response, after))


@router.get("/hazards/{hazard_id}/attachments/{attachment_id}",
            operation_id="getHazardAttachment", response_class=FileResponse,
            summary="An attachment's file (served as a download, never rendered in place)",
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {},
                                         "application/pdf": {}}}})
def get_attachment(request: Request, hazard_id: HazardId,
                   attachment_id: Annotated[str, Path(max_length=40)], reg: RegistryDep,
                   principal: PrincipalDep) -> FileResponse:
    from api.errors import NotFound
    from layers.attachments import attachment_path

    check_params(request, ())
    _staff(principal)
    rec = _visible_hazard(reg, principal, hazard_id)
    meta = next((a for a in rec.get("attachments") or [] if a.get("id") == attachment_id),
                None)
    if meta is None:
        raise NotFound(f"hazard {hazard_id!r} has no attachment {attachment_id!r}")
    path = attachment_path(_folder(request), attachment_id)
    if not path.is_file():
        raise NotFound(f"the file of attachment {attachment_id!r} is missing from the "
                       "attachments folder")
    name = meta.get("name") or attachment_id
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return FileResponse(path, media_type=meta.get("type") or "application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{ascii_name}";'
                                 f" filename*=UTF-8''{quote(name, safe='')}",
                                 "X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "private, no-store"})


# --- dashboard ------------------------------------------------------------------------------
def dashboard_numbers(request: Request, reg: Registry, principal: Principal
                      ) -> dict[str, Any]:
    """``stats``: exactly ``GET /registry/stats`` (:func:`registry_stats`); ``open_by_age``
    and ``overdue``: of the hazards ``principal`` may see."""
    import pandas as pd

    today = _today(request)
    stats = registry_stats(request, reg)
    rows = _visible(reg, principal)
    frame = pd.DataFrame(rows, columns=["hazard_id", "kind", "status", "department",
                                        "deadline", "first_detected", "severity"])
    open_ = frame[~frame["status"].isin(list(DONE))]
    found = pd.to_datetime(open_["first_detected"].str[:10], errors="coerce")
    age = (pd.Timestamp(today) - found).dt.days
    ages, low = [], 0
    for high, label in _AGES:
        sel = (age >= low) if high is None else (age >= low) & (age < high)
        ages.append({"label": label, "count": int(sel.sum())})
        low = high or 0
    late = open_[open_["deadline"].notna() & (open_["deadline"].astype(str)
                                              < today.isoformat())]
    late = late.sort_values(["deadline", "hazard_id"])
    overdue = [{"hazard_id": r.hazard_id, "kind": r.kind, "department": r.department,
                "deadline": r.deadline, "status": r.status,
                "days_late": (today - dt.date.fromisoformat(str(r.deadline)[:10])).days}
               for r in late.itertuples()]
    rate = stats.get("rate")
    mine = "" if _visible_roles(principal) is None else f" ({principal.role})"
    summary = (f"{today.isoformat()}: {stats['rectified']}/{stats['total']} 已整改 rectified"
               + (f" ({100 * rate:.1f} %)" if rate is not None else "")
               + f"; 逾期 overdue{mine} {len(overdue)}; 未整改 open{mine} {len(open_)}")
    return {"today": today.isoformat(), "stats": stats, "open_by_age": ages,
            "overdue": overdue, "summary_text": summary,
            # pipeline data: only for the roles that may read the pipelines layer
            "protection": (_protection(request)
                           if can_read(principal, LAYER_ROLES["pipelines"]) else None)}


def _protection(request: Request) -> dict[str, Any] | None:
    """HCA warning signs, patrol paths and statutory inspection against the plan's years
    (:func:`api.runs.patrol.protection_stats`); None when the store has no pipelines."""
    from api.runs.patrol import protection_stats
    from layers.errors import LayerNotFoundError

    try:
        return protection_stats(get_service(request))
    except LayerNotFoundError:
        return None


def _protection_html(p: dict[str, Any] | None) -> str:
    """The dashboard's table of sign, patrol and inspection rates against their targets."""
    if p is None:
        return "<p>无管道图层 no pipelines layer</p>"

    def row(what: str, year: int, rate: float | None, target: float | None, met: bool | None,
            detail: str, rule: str) -> str:
        verdict = ("–" if rate is None or met is None or target is None  # nothing to measure
                   else "是 yes" if met else "否 no")
        return (f"<tr data-rule='{esc(rule)}'><td>{what}</td><td>{year}</td>"
                f"<td class='rate'>{_pct(rate)}</td><td>{_pct(target)}</td><td>{verdict}</td>"
                f"<td>{esc(detail)}</td></tr>")

    s, ins = p["signs"], p["inspection"]
    rows = [row("高后果区警示标识 HCA warning signs", s["year"], s["rate"], s["target"], s["met"],
                f"{s['signed_m'] / 1000:.2f} / {s['hca_m'] / 1000:.2f} km; 缺口 gaps {s['gaps']}",
                s["rule_id"])]
    rows += [row("巡护通道 patrol paths", t["year"], t["rate"], t["target"], t["met"],
                 f"{t['served_m'] / 1000:.2f} / {t['length_m'] / 1000:.2f} km; "
                 + (", ".join(t["pipelines"]) or "无此类管道 no such pipeline"), t["rule_id"])
             for t in p["patrol"]]
    target = ins.get("target")
    rows.append(row("法定检验 statutory inspection", ins["year"], ins.get("rate_count"),
                    None if target is None else float(target),
                    None if target is None else ins.get("rate_count", 0) >= float(target),
                    f"逾期 overdue {ins.get('overdue', 0)}; 无记录 no record "
                    f"{ins.get('no_record', 0)}; 按长度 by length {_pct(ins.get('rate_length'))}",
                    ins["rule_id"]))
    head = ("<tr><th>项目 item</th><th>年度 year</th><th>完成率 rate</th><th>目标 target</th>"
            "<th>达标 met</th><th>说明 detail</th></tr>")
    return (f"<div class='scroll'><table id='protection'>{head}{''.join(rows)}</table></div>"
            f"<p class='riskmap-note'>{esc(p['as_of'])} · {esc(p['rules'])}</p>")


@router.get("/dashboard.png", operation_id="getRegistryDashboardPng",
            summary="The dashboard's charts as one PNG (for reports)", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def dashboard_png(request: Request, reg: RegistryDep, principal: PrincipalDep) -> Response:
    from maps.registry_charts import dashboard_png as draw

    check_params(request, ())
    _staff(principal)
    numbers = dashboard_numbers(request, reg, principal)
    png = draw(numbers, title=f"隐患整改进展 rectification progress — {numbers['today']}")
    return Response(png, media_type="image/png")


def _need_staff_page(request: Request, principal: Principal) -> Response | None:
    """None when ``principal`` may use the registry pages; else a redirect to sign-in (not
    signed in) or a 403 page."""
    if can_read(principal, _STAFF):
        return None
    if not principal.authenticated:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(path, safe='/')}", status_code=303)
    from api.pages import page

    return page("隐患台账 Hazard registry", f"<p class='riskmap-error'>角色 role "
                f"{esc(principal.role)} 无权查看隐患台账 may not see the hazard registry.</p>",
                principal, request=request, status_code=403)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _floor_pct(v: float | None) -> str:
    """A coverage share as the maps print it: never rounded up to a target it misses."""
    return "–" if v is None else f"{math.floor(v * 1000 + 1e-9) / 10:.1f} %"


def _rate_table(groups: dict[str, Any], label: str, cls: str) -> str:
    head = (f"<tr><th>{label}</th><th>总数 total</th><th>已整改 rectified</th>"
            "<th>已销号 closed</th><th>未整改 open</th><th>整改率 rate</th>"
            "<th>目标 target</th><th>达标 met</th></tr>")
    body = "".join(
        f"<tr data-key='{esc(k)}'><td>{esc(k)}</td><td>{d['total']}</td>"
        f"<td>{d['rectified']}</td><td>{d['closed']}</td><td>{d['open']}</td>"
        f"<td class='rate'>{_pct(d['rate'])}</td>"
        f"<td>{_pct(d.get('target')) if 'target' in d else ''}"
        f"{' (' + esc(d['deadline']) + ')' if d.get('deadline') else ''}</td>"
        f"<td>{'' if 'met' not in d else ('是 yes' if d['met'] else '否 no')}</td></tr>"
        for k, d in groups.items())
    return f"<div class='scroll'><table class='{cls}'>{head}{body}</table></div>"


@router.get("/dashboard", include_in_schema=False)
def dashboard(request: Request, reg: RegistryDep, principal: PrincipalDep) -> Response:
    from api.pages import page
    from maps.registry_charts import chart_svg

    refused = _need_staff_page(request, principal)
    if refused is not None:
        return refused
    n = dashboard_numbers(request, reg, principal)
    s = n["stats"]
    mon = s.get("monitoring")
    charts = "".join(f"<figure>{chart_svg(name, n)}</figure>"
                     for name in ("by_kind", "by_department", "by_year", "monitoring", "ages"))
    mon_html = ("<p>无高后果区图层 no hca layer</p>" if not mon else
                f"<p id='monitoring' data-coverage='{mon['coverage']}'>人员密集型高后果区 "
                f"people-dense HCAs: {mon['people_dense_hca']} (登记已监控 flagged monitored "
                f"{mon['monitored']}); 视频覆盖率 coverage <b>{_floor_pct(mon['coverage'])}</b> "
                f"({esc(mon.get('basis') or '')}); 目标 targets "
                + ", ".join(f"{t['year']}: {_pct(t['target'])}"
                            f"{'' if t['met'] is None else (' ✓' if t['met'] else ' ✗')}"
                            for t in mon["targets"]) + "</p>")
    overdue = "".join(
        f"<tr><td><a href='{_href(o['hazard_id'])}'>{esc(o['hazard_id'])}</a></td>"
        f"<td>{esc(o['kind'])}</td><td>{esc(o['department'] or '')}</td>"
        f"<td>{esc(o['deadline'])}</td><td>{o['days_late']}</td>"
        f"<td>{esc(_STATUS_ZH[o['status']])}</td></tr>" for o in n["overdue"][:200])
    body = (
        f"<p class='riskmap-note'>{esc(n['summary_text'])} · 与 the same numbers as "
        "<a href='/registry/stats'>/registry/stats</a> · "
        "<a href='/registry/dashboard.png'>PNG</a> · <a href='/registry'>隐患清单 list</a> · "
        "<a href='/registry/export.xlsx'>Excel</a></p>"
        f"<p id='overall' data-rate='{s['rate']}'>总整改率 overall: <b>{_pct(s['rate'])}</b> "
        f"({s['rectified']}/{s['total']})</p>"
        f"<div class='charts'>{charts}</div>"
        "<h2>按类别 by kind</h2>" + _rate_table(s["by_kind"], "类别 kind", "by-kind")
        + "<h2>按责任单位 by department</h2>"
        + _rate_table(s["by_department"], "责任单位 department", "by-department")
        + "<h2>按年度 by year found</h2>" + _rate_table(s["by_year"], "年度 year", "by-year")
        + f"<h2>视频监控 HCA monitoring</h2>{mon_html}"
        + ("" if not can_read(principal, LAYER_ROLES["pipelines"]) else
           "<h2>管道外部保护 pipeline external protection</h2>"
           + _protection_html(n["protection"]))
        + "<h2>未整改隐患 按时长 open hazards by age</h2><p id='ages'>"
        + " · ".join(f"{esc(a['label'])}: {a['count']}" for a in n["open_by_age"]) + "</p>"
        + f"<h2>逾期 overdue ({len(n['overdue'])})</h2><div class='scroll'>"
        "<table id='overdue'><tr><th>隐患 hazard</th><th>类别 kind</th><th>责任单位</th>"
        f"<th>时限 deadline</th><th>逾期天数 days late</th><th>状态</th></tr>{overdue}"
        "</table></div>")
    return page("隐患整改进展 Rectification dashboard", body, principal, request=request,
                head=f"<style>{_CSS}</style>")


# --- the list page --------------------------------------------------------------------------
_STATUS_ZH = {"identified": "待整改 identified", "rectifying": "整改中 rectifying",
              "rectified": "已整改 rectified", "verified": "已验收 verified",
              "closed": "已销号 closed"}
_SEVERITY_ZH = {"critical": "重大 critical", "high": "较大 high", "medium": "一般 medium",
                "low": "低 low", "info": "提示 info"}
_SORTS = {"hazard_id": "编号 id", "deadline": "整改时限 deadline", "status": "状态 status",
          "severity": "严重程度 severity", "first_detected": "发现 found",
          "department": "责任单位 department", "kind": "类别 kind"}
_SEV_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
_CSS = (
    "main{max-width:90em}.scroll{overflow-x:auto;max-width:100%}"
    "table.list td,table.list th{white-space:nowrap}table.list td.msg{white-space:normal;"
    "min-width:16em}tr.overdue td.deadline{color:#b00;font-weight:bold}"
    "form.filters{display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:flex-end}"
    "form.filters label{margin:0;font-size:90%}form.filters select,form.filters input"
    "{font:inherit;display:block}.pager{margin:.6em 0}.pager a{margin-right:1em}"
    ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(22em,1fr));gap:1em}"
    ".charts figure{margin:0}svg.chart{width:100%;height:auto}"
    ".badge{padding:1px 6px;border-radius:8px;background:#eee}"
    ".badge.closed,.badge.verified,.badge.rectified{background:#d9f2dc}"
    ".badge.rectifying{background:#fff1c2}.badge.identified{background:#fde0dc}"
    "@media (max-width:640px){main{margin:.5em}.hide-narrow{display:none}"
    "form.filters select,form.filters input{max-width:10em}}"
)


def _options(name: str, values: list[tuple[str, str]], chosen: str | None) -> str:
    opts = "".join(f"<option value='{esc(v)}'{' selected' if v == chosen else ''}>"
                   f"{esc(label)}</option>" for v, label in values)
    return f"<select name='{name}' id='f-{name}'><option value=''>全部 all</option>{opts}</select>"


@router.get("", include_in_schema=False)
def list_page(request: Request, reg: RegistryDep, principal: PrincipalDep,
              department: Annotated[str | None, Query(max_length=200)] = None,
              kind: Annotated[str | None, Query(max_length=100)] = None,
              status: Annotated[str | None, Query(max_length=20)] = None,
              severity: Annotated[str | None, Query(max_length=20)] = None,
              year: Annotated[str | None, Query(max_length=4)] = None,
              overdue: Annotated[str | None, Query(max_length=5)] = None,
              sort: Annotated[str, Query(max_length=20)] = "hazard_id",
              order: Annotated[str, Query(max_length=4)] = "asc",
              page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
              per_page: Annotated[int, Query(alias="per", ge=1, le=500)] = 50) -> Response:
    import pandas as pd

    from api.pages import page

    refused = _need_staff_page(request, principal)
    if refused is not None:
        return refused
    if sort not in _SORTS:
        raise BadRequest(f"sort is {sort!r}; expected one of " + ", ".join(_SORTS))
    if order not in ("asc", "desc"):
        raise BadRequest(f"order is {order!r}; expected asc or desc")
    today = _today(request).isoformat()
    cols = ["hazard_id", "kind", "severity", "status", "detection", "department",
            "responsible", "deadline", "first_detected", "message_zh", "owner_role", "version"]
    df = pd.DataFrame(_visible(reg, principal), columns=cols).astype(object)
    df = df.where(df.notna(), None)
    df["year"] = df["first_detected"].fillna("").str[:4]
    df["late"] = (df["deadline"].notna() & (df["deadline"].fillna("") < today)
                  & ~df["status"].isin(list(DONE)))
    choices = {c: sorted(x for x in df[c].dropna().unique() if x)
               for c in ("department", "kind", "year")}
    sel = pd.Series(True, index=df.index)
    for col, val in (("department", department), ("kind", kind), ("status", status),
                     ("severity", severity), ("year", year)):
        if val:
            sel &= df[col] == val
    if overdue in ("1", "true", "yes"):
        sel &= df["late"]
    df = df[sel]
    key = df[sort].fillna("")
    if sort == "severity":
        key = df["severity"].map(_SEV_ORDER).fillna(9)
    elif sort == "status":
        key = df["status"].map({s: i for i, s in enumerate(STATUSES)})
    df = df.assign(_k=key).sort_values(["_k", "hazard_id"], ascending=[order == "asc", True],
                                       kind="stable")
    total = len(df)
    pages = max(1, -(-total // per_page))
    page_no = min(page_no, pages)
    shown = df.iloc[(page_no - 1) * per_page: page_no * per_page]
    params = {k: v for k, v in (("department", department), ("kind", kind),
                                ("status", status), ("severity", severity), ("year", year),
                                ("overdue", overdue), ("sort", sort), ("order", order),
                                ("per", str(per_page))) if v}

    def link(**change: Any) -> str:
        return "/registry?" + esc(urlencode({**params, **{k: str(v) for k, v in
                                                          change.items()}}))

    def th(col: str, label: str, cls: str = "") -> str:
        nxt = "desc" if sort == col and order == "asc" else "asc"
        arrow = (" ▲" if order == "asc" else " ▼") if sort == col else ""
        return (f"<th class='{cls}'><a href='{link(sort=col, order=nxt, page=1)}'>"
                f"{label}{arrow}</a></th>")

    rows = "".join(
        f"<tr class='{'overdue' if r.late else ''}' data-id='{esc(r.hazard_id)}'>"
        f"<td><a href='{_href(r.hazard_id)}'>{esc(r.hazard_id)}</a></td>"
        f"<td><span class='badge {esc(r.status)}'>{esc(_STATUS_ZH[r.status])}</span></td>"
        f"<td class='deadline'>{esc(r.deadline or '')}{' 逾期 overdue' if r.late else ''}</td>"
        f"<td>{esc(r.department or '')}</td>"
        f"<td class='hide-narrow'>{esc(r.kind)}</td>"
        f"<td class='hide-narrow'>{esc(_SEVERITY_ZH.get(r.severity, r.severity))}</td>"
        f"<td class='hide-narrow'>{esc(r.responsible or '')}</td>"
        f"<td class='hide-narrow'>{esc((r.first_detected or '')[:10])}</td>"
        f"<td class='msg hide-narrow'>{esc((r.message_zh or '')[:80])}</td></tr>"
        for r in shown.itertuples())
    filters = (
        "<form class='filters' method='get' action='/registry'>"
        f"<label>责任单位 department{_options('department', [(v, v) for v in choices['department']], department)}</label>"
        f"<label>类别 kind{_options('kind', [(v, v) for v in choices['kind']], kind)}</label>"
        f"<label>状态 status{_options('status', list(_STATUS_ZH.items()), status)}</label>"
        f"<label>严重程度 severity{_options('severity', list(_SEVERITY_ZH.items()), severity)}"
        "</label>"
        f"<label>发现年度 year{_options('year', [(v, v) for v in choices['year']], year)}"
        "</label>"
        f"<label><input type='checkbox' name='overdue' value='1' id='f-overdue'"
        f"{' checked' if overdue in ('1', 'true', 'yes') else ''}> 仅逾期 overdue only</label>"
        f"<input type='hidden' name='sort' value='{esc(sort)}'>"
        f"<input type='hidden' name='order' value='{esc(order)}'>"
        "<button type='submit' id='apply'>筛选 filter</button></form>")
    pager = (f"<div class='pager'><span id='count' data-total='{total}'>共 {total} 条 "
             f"hazards · 第 {page_no}/{pages} 页 page</span> "
             + (f"<a id='prev' href='{link(page=page_no - 1)}'>← 上一页 prev</a>"
                if page_no > 1 else "")
             + (f"<a id='next' href='{link(page=page_no + 1)}'>下一页 next →</a>"
                if page_no < pages else "") + "</div>")
    body = (
        "<p class='riskmap-note'><a href='/registry/dashboard'>进展 dashboard</a> · "
        "<a href='/registry/export.xlsx'>导出 Excel export</a> · 角色 role "
        f"{esc(principal.role)}: "
        + ("全部隐患 all hazards" if _visible_roles(principal) is None
           else f"本部门隐患 {esc(principal.role)}'s hazards only") + "</p>"
        + filters + pager
        + "<div class='scroll'><table class='list' id='hazards'><tr>"
        + th("hazard_id", "隐患编号 hazard") + th("status", "状态 status")
        + th("deadline", "整改时限 deadline") + th("department", "责任单位 department")
        + th("kind", "类别 kind", "hide-narrow")
        + th("severity", "严重程度 severity", "hide-narrow")
        + "<th class='hide-narrow'>责任人 responsible</th>"
        + th("first_detected", "发现 found", "hide-narrow")
        + f"<th class='hide-narrow'>说明 finding</th></tr>{rows}</table></div>" + pager)
    return page("隐患清单 Hazard list", body, principal, request=request,
                head=f"<style>{_CSS}</style>")


# --- the hazard page ------------------------------------------------------------------------
_REQUIRED = {
    "rectifying": ["measures", "responsible", "deadline"],
    "rectified": ["measures", "responsible"],
    "closed": ["attachment"],
}


def hazard_page(request: Request, hazard_id: str, reg: Registry, principal: Principal
                ) -> Response:
    """The HTML page of one hazard (``GET /registry/hazards/{id}``, Accept: text/html)."""
    from api.pages import page
    from maps.html import script_json

    refused = _need_staff_page(request, principal)
    if refused is not None:
        return refused
    rec = _visible_hazard(reg, principal, hazard_id)  # 404 as if missing
    may_edit = principal.is_admin or principal.role == rec["owner_role"]
    data = {"hazard": Hazard(**rec).model_dump(mode="json"), "url": _href(hazard_id),
            "transitions": TRANSITIONS, "status_zh": _STATUS_ZH, "required": _REQUIRED,
            "may_edit": may_edit}
    r = rec
    rule = " ".join(x for x in (r.get("rule_id"), r.get("rule_source")) if x)
    body = (
        f"<p class='riskmap-note'><a href='/registry'>← 隐患清单 list</a> · "
        f"<a href='/registry/dashboard'>进展 dashboard</a></p>"
        f"<div id='hazard' data-id='{esc(hazard_id)}'>"
        f"<p>状态 status: <span id='status' class='badge'></span> · 版本 version "
        f"<span id='version'></span> · {esc(_SEVERITY_ZH.get(r.get('severity') or '', ''))}"
        f" · 检出 {esc(r['detection'])}</p>"
        "<div id='map' style='height:280px;max-width:48em;border:1px solid #ccc'></div>"
        "<h2>发现 Finding</h2><dl class='facts'>"
        f"<dt>类别 kind</dt><dd>{esc(r['kind'])}</dd>"
        f"<dt>规则/条款 rule</dt><dd id='rule'>{esc(rule)}</dd>"
        f"<dt>说明 measurement</dt><dd id='message'>{esc(r.get('message_zh') or '')}<br>"
        f"<span class='riskmap-note'>{esc(r.get('message_en') or '')}</span></dd>"
        f"<dt>位置 location</dt><dd>{esc(r.get('lon'))}, {esc(r.get('lat'))} (lon, lat, "
        f"EPSG:4490){' · 桩号 ' + esc(r['station']) if r.get('station') else ''}</dd>"
        f"<dt>对象 features</dt><dd>{esc(r.get('layer'))} {esc(r.get('feature_id'))}"
        f"{' · ' + esc(r.get('other_layer')) + ' ' + esc(r.get('other_id')) if r.get('other_id') else ''}</dd>"
        f"<dt>负责角色 owner</dt><dd>{esc(r['owner_role'])} · 首次发现 found "
        f"{esc((r.get('first_detected') or '')[:10])}</dd></dl>"
        "<div id='msg' role='alert' aria-live='polite'></div>"
        "<h2>整改 Rectification</h2><form id='fields' onsubmit='return false'>"
        "<label>责任单位 department<input type='text' name='department' id='department'>"
        "</label><label>责任人 responsible person<input type='text' name='responsible' "
        "id='responsible'></label><label>整改时限 deadline<input type='date' name='deadline' "
        "id='deadline'></label><label>整改措施 measures<textarea name='measures' "
        "id='measures' rows='3' style='width:100%;max-width:40em'></textarea></label>"
        "<button type='button' id='save' class='primary'>保存 save</button></form>"
        "<h2>附件 Attachments</h2><ul id='attachments'></ul>"
        "<form id='upload' onsubmit='return false'><input type='file' id='file' "
        "accept='image/jpeg,image/png,image/webp,application/pdf'> "
        "<button type='button' id='upload-btn'>上传 upload</button>"
        "<span class='riskmap-note'> 照片或PDF photos or PDF</span></form>"
        "<h2>状态流转 Status</h2><label>说明 note<textarea id='note' rows='2' "
        "style='width:100%;max-width:40em'></textarea></label><div id='transitions'></div>"
        "<h2>历史 History</h2><div class='scroll'><table id='history'></table></div></div>"
        f"<script type='application/json' id='hazard-data'>"
        f"{script_json(json.dumps(data, ensure_ascii=False))}</script>"
        "<script src='/ogc-assets/leaflet/leaflet.js'></script>"
        f"<script>{_PAGE_JS}</script>")
    head = ("<link rel='stylesheet' href='/ogc-assets/leaflet/leaflet.css'>"
            f"<style>{_CSS}dl.facts dt{{font-weight:bold;margin-top:.4em}}"
            "dl.facts dd{margin-left:1em}#msg .stale{color:#a00;border:1px solid #e0a0a0;"
            "background:#fff4f4;padding:6px 10px}#msg .ok{color:#075}"
            "#transitions button{margin:.3em .6em .3em 0;font:inherit;padding:6px 12px}"
            "#fields input,#fields textarea{display:block;font:inherit;padding:4px;width:100%;"
            "max-width:30em;box-sizing:border-box}#fields input[type=date]{max-width:12em}"
            "#fields textarea,textarea#note{max-width:40em;width:100%}</style>")
    return page(f"隐患 {hazard_id}", body, principal, request=request, head=head)


_PAGE_JS = r"""
(function(){
const D=JSON.parse(document.getElementById('hazard-data').textContent);
let rec=D.hazard;const url=D.url;const FIELDS=['department','responsible','deadline','measures'];
const dirty={};const $=id=>document.getElementById(id);
function el(tag,attrs,text){const e=document.createElement(tag);
  for(const k in (attrs||{}))e.setAttribute(k,attrs[k]);if(text!=null)e.textContent=text;return e;}
function say(text,cls){const m=$('msg');m.textContent='';const p=el('p',{'class':cls||'ok'},text);
  m.appendChild(p);return p;}
function fill(force){for(const f of FIELDS){const i=$(f);if(force||!dirty[f])
  {i.value=rec[f]||'';dirty[f]=false;}}}
function render(){$('status').textContent=D.status_zh[rec.status];$('status').className='badge '+rec.status;
  $('version').textContent=rec.version;const ul=$('attachments');ul.textContent='';
  for(const a of rec.attachments||[]){const li=el('li');const l=el('a',{href:a.href},a.name||a.href);
    li.appendChild(l);li.appendChild(document.createTextNode(' '+(a.type||'')+' '+(a.size?a.size+' B':'')
      +(a.uploaded_by?' · '+a.uploaded_by:'')+(a.uploaded_at?' '+a.uploaded_at:'')));ul.appendChild(li);}
  const t=$('transitions');t.textContent='';const closed=rec.status==='closed';
  for(const f of FIELDS)$(f).disabled=closed||!D.may_edit;
  $('save').disabled=closed||!D.may_edit;$('upload-btn').disabled=closed||!D.may_edit;
  if(!D.may_edit){t.appendChild(el('p',{'class':'riskmap-note'},'只读 read-only: this hazard belongs to role '+rec.owner_role));return;}
  for(const to of D.transitions[rec.status]){const b=el('button',{type:'button','data-to':to,id:'to-'+to},
    '→ '+D.status_zh[to]);b.onclick=()=>transition(to);t.appendChild(b);
    const req=D.required[to];if(req)t.appendChild(el('span',{'class':'riskmap-note'},
      ' 需要 requires: '+req.join(', ')+' '));}
  if(closed)t.appendChild(el('p',{'class':'riskmap-note'},'已销号 closed: the record is final'));}
async function call(method,u,body,isForm){const h={'If-Match':'"'+rec.version+'"','Accept':'application/json'};
  const o={method:method,headers:h};if(body!=null){if(isForm){o.body=body;}else{h['Content-Type']='application/json';
  o.body=JSON.stringify(body);}}const r=await riskmapFetch(u,o);let j=null;try{j=await r.json();}catch(e){}
  return [r.status,j];}
async function stale(cur){let who='',at=cur?cur.updated_at:'?';try{const r=await riskmapFetch(url+'/history',{headers:{'Accept':'application/json'}});
  const h=await r.json();const last=h.entries[h.entries.length-1];if(last){who=last.who+' ('+last.role+')';at=last.at_district;}}catch(e){}
  const p=say('有人已修改此隐患 someone changed this hazard at '+at+(who?' ('+who+')':'')
    +'; 请重新载入 reload — 您输入的内容已保留 what you typed is kept. ','stale');p.id='stale';
  const b=el('button',{type:'button',id:'reload'},'重新载入 reload');b.onclick=reload;p.appendChild(b);}
async function handle(st,j,okText){if(st>=200&&st<300){rec=j;render();history();say(okText);return true;}
  if(st===409&&j&&j.current){await stale(j.current);return false;}
  say((j&&j.description)||('error '+st),'stale');return false;}
async function reload(){const r=await riskmapFetch(url,{headers:{'Accept':'application/json'}});
  if(r.ok){rec=await r.json();fill(false);render();history();say('已载入最新版本 reloaded version '+rec.version
    +'; 您的输入未丢失 your edits are kept — save again');}}
function changed(){const b={};for(const f of FIELDS){const v=$(f).value.trim();if(v!==(rec[f]||''))b[f]=v===''?null:v;}return b;}
async function save(){const b=changed();if(!Object.keys(b).length){say('无修改 nothing to save');return true;}
  const [st,j]=await call('PATCH',url,b);const ok=await handle(st,j,'已保存 saved (version '+(j&&j.version)+')');
  if(ok){for(const f of FIELDS)dirty[f]=false;fill(true);}return ok;}
async function upload(){const f=$('file').files[0];if(!f){say('请选择文件 choose a file','stale');return false;}
  const fd=new FormData();fd.append('file',f);const [st,j]=await call('POST',url+'/attachments',fd,true);
  const ok=await handle(st,j,'已上传 uploaded '+f.name);if(ok)$('file').value='';return ok;}
async function transition(to){const req=D.required[to]||[];const miss=[];
  for(const r of req){if(r==='attachment'){if(!(rec.attachments||[]).length&&!$('file').files.length)miss.push('附件 evidence (photo/PDF)');}
    else if(!$(r).value.trim())miss.push(r);}
  if(miss.length){say('缺少 missing: '+miss.join(', '),'stale');return;}
  if(Object.keys(changed()).length&&!(await save()))return;
  if($('file').files.length&&!(await upload()))return;
  const note=$('note').value.trim();const [st,j]=await call('POST',url+'/transition',{to:to,note:note||null});
  if(await handle(st,j,'状态已更新 status now '+D.status_zh[to]))$('note').value='';}
async function history(){const r=await riskmapFetch(url+'/history',{headers:{'Accept':'application/json'}});
  if(!r.ok)return;const h=await r.json();const t=$('history');t.textContent='';
  const hr=el('tr');for(const c of ['时间 at','人 who','操作 action','变更 changes'])hr.appendChild(el('th',{},c));t.appendChild(hr);
  for(const e of h.entries.slice().reverse()){const tr=el('tr');tr.appendChild(el('td',{},e.at_district));
    tr.appendChild(el('td',{},e.who+' ('+e.role+')'));tr.appendChild(el('td',{},e.action));
    const fmt=v=>v==null?'':(typeof v==='object'?(Array.isArray(v)?'['+v.length+']':'{…}'):String(v));
    const ch=Object.entries(e.changes).map(([k,v])=>k+': '+fmt(v[0])+' → '+fmt(v[1])).join('; ');
    tr.appendChild(el('td',{},ch));t.appendChild(tr);}}
for(const f of FIELDS)$(f).addEventListener('input',()=>{dirty[f]=true;});
$('save').onclick=save;$('upload-btn').onclick=upload;
fill(true);render();history();
if(window.L&&rec.lat!=null&&rec.lon!=null){const m=L.map('map',{attributionControl:false}).setView([rec.lat,rec.lon],17);
  const pt=L.circleMarker([rec.lat,rec.lon],{radius:8,color:'#c62828',weight:3}).addTo(m).bindTooltip(rec.hazard_id);
  const group=L.featureGroup([pt]).addTo(m);
  const feats=[[rec.layer,rec.feature_id,'#1565c0'],[rec.other_layer,rec.other_id,'#ef6c00']];
  for(const [layer,fid,color] of feats){if(!layer||!fid)continue;
    riskmapFetch('/collections/'+encodeURIComponent(layer)+'/items/'+encodeURIComponent(fid)+'?f=json',
      {headers:{'Accept':'application/geo+json'}}).then(r=>r.ok?r.json():null).then(g=>{if(!g)return;
      const l=L.geoJSON(g,{style:{color:color,weight:3},pointToLayer:(f,ll)=>L.circleMarker(ll,{radius:6,color:color})})
        .bindTooltip(layer+' '+fid);group.addLayer(l);m.fitBounds(group.getBounds(),{maxZoom:18,padding:[20,20]});}).catch(()=>{});}}
})();
"""
