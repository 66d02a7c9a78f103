"""The hazard registry over HTTP: the two lists, workflow transitions, sync, audit, stats.

Optimistic concurrency: every hazard and measure has a ``version``, served as a strong
``ETag: "<version>"``. A change (PATCH, transition, PUT of an existing measure) must name the
version it was made on — ``If-Match: "<version>"`` or ``"version": n`` in the body: without one
the answer is 428 Precondition Required; with a stale one 409 Conflict carrying the current
record (``current``); on success 200 with the new ETag. The check happens inside the write
transaction, so of two editors sending the same version exactly one wins.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api import analysis as an
from api.auth import Principal, get_principal, require_read
from api.deps import get_service
from api.errors import BadRequest, Conflict, ErrorBody, Forbidden, NotFound, Unauthorized
from api.ogc import check_params
from api.service import finding_records
from layers.registry import (
    DETECTIONS,
    MEASURE_STATUSES,
    STATUSES,
    Actor,
    EditConflict,
    RecordNotFound,
    Registry,
)
from layers.store import Store

__all__ = ["Hazard", "registry_of", "registry_stats", "router"]

router = APIRouter(prefix="/registry", tags=["Hazard registry"])

_STAFF = frozenset({"planner", "police", "fire", "admin"})
_PLANNERS = frozenset({"planner", "admin"})


def registry_of(request: Request) -> Registry:
    """The registry kept beside the layers of the app's store (GeoPackage or PostGIS)."""
    from layers.registry_pg import registry_for

    store: Store = request.app.state.store
    return registry_for(store)  # type: ignore[no-any-return]


RegistryDep = Annotated[Registry, Depends(registry_of)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
HazardId = Annotated[str, Path(description="hazard id (= the finding_id it came from)")]
MeasureId = Annotated[str, Path(max_length=200, pattern=r"^[\w.:-]+$")]
IfMatch = Annotated[str | None, Header(
    alias="If-Match", max_length=64,
    description='The version the change was made on, as served in the ETag: "3". '
                'Required (or "version" in the body) to change an existing record.')]
_VERSION_DOC = ("the record's version as read (the ETag of GET, or its \"version\" field); "
                "alternative to the If-Match header")


# --- models ---------------------------------------------------------------------------------
class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    href: str = Field(min_length=1, description="reference (URL or document number), not a file")
    name: str | None = None
    type: str | None = None


class Hazard(BaseModel):
    """A hazard record (问题隐患清单)."""

    hazard_id: str
    analysis: str
    kind: str
    severity: str | None = None
    layer: str | None = None
    feature_id: str | None = None
    other_layer: str | None = None
    other_id: str | None = None
    rule_id: str | None = None
    rule_source: str | None = None
    station: str | None = None
    message_zh: str | None = None
    message_en: str | None = None
    lon: float | None = None
    lat: float | None = None
    owner_role: str
    status: Literal["identified", "rectifying", "rectified", "verified", "closed"]
    detection: Literal["detected", "no_longer_detected"]
    department: str | None = None
    responsible: str | None = None
    deadline: str | None = None
    measures: str | None = None
    notes: str | None = None
    attachments: list[dict[str, str]] = Field(default_factory=list)
    first_detected: str | None = None
    last_detected: str | None = None
    created_at: str
    updated_at: str
    rectified_at: str | None = None
    closed_at: str | None = None
    version: int = Field(ge=0, description="bumped by every change; served as the ETag")


class HazardList(BaseModel):
    hazards: list[Hazard]
    numberMatched: int
    numberReturned: int


class HazardFields(BaseModel):
    """Editable fields of a hazard."""

    model_config = ConfigDict(extra="forbid")

    department: str | None = Field(None, max_length=200)
    responsible: str | None = Field(None, max_length=200,
                                    description="person responsible for the rectification")
    deadline: dt.date | None = None
    measures: str | None = Field(None, max_length=10_000)
    notes: str | None = Field(None, max_length=10_000)
    attachments: list[Attachment] | None = Field(None, max_length=100)
    severity: Literal["critical", "high", "medium", "low", "info"] | None = None


class HazardEdit(HazardFields):
    """Editable fields of a hazard, and the version they were edited on."""

    version: int | None = Field(None, ge=0, description=_VERSION_DOC)


class RegisterRequest(HazardFields):
    """Register the finding ``finding_id`` of analysis ``analysis`` as a hazard."""

    finding_id: str = Field(min_length=1, max_length=500)
    analysis: str = Field(min_length=1, max_length=100)


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Literal["identified", "rectifying", "rectified", "verified", "closed"]
    note: str | None = Field(None, max_length=10_000)
    version: int | None = Field(None, ge=0, description=_VERSION_DOC)


class SyncResult(BaseModel):
    analysis: str
    registered: int
    still_detected: int
    redetected: int
    no_longer_detected: int


class AuditEntry(BaseModel):
    seq: int
    at: str
    who: str
    role: str
    action: str
    record_type: str
    record_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class AuditList(BaseModel):
    entries: list[AuditEntry]
    numberMatched: int
    numberReturned: int


class MeasureFields(BaseModel):
    """A measure (制度措施清单)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=500)
    department: str | None = Field(None, max_length=200)
    kind: str | None = Field(None, max_length=100)
    status: Literal["planned", "in_progress", "in_effect", "withdrawn"] | None = None
    deadline: dt.date | None = None
    description: str | None = Field(None, max_length=10_000)
    hazard_ids: list[str] | None = Field(None, max_length=10_000)
    version: int | None = Field(None, ge=0, description=_VERSION_DOC + " (updates only)")


class Measure(BaseModel):
    measure_id: str
    title: str
    department: str | None = None
    kind: str | None = None
    status: str
    deadline: str | None = None
    description: str | None = None
    hazard_ids: list[str] = Field(default_factory=list)
    owner_role: str
    created_at: str
    updated_at: str
    version: int = Field(ge=0, description="bumped by every change; served as the ETag")


class MeasureList(BaseModel):
    measures: list[Measure]


class RateRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    total: int
    rectified: int
    closed: int
    open: int
    no_longer_detected: int
    rate: float | None = None


class MonitoringYear(BaseModel):
    year: int
    target: float
    met: bool | None = None


class Monitoring(BaseModel):
    """Video-monitoring coverage of people-dense HCAs (from the ``hca`` layer)."""

    people_dense_hca: int
    monitored: int
    coverage: float | None = None
    basis: str | None = Field(None, description="what coverage measures: camera coverage of "
                              "people-dense HCA length (computed, as on the maps) or HCAs "
                              "flagged video_monitored (when cameras cannot be analysed)")
    targets: list[MonitoringYear]
    current_target: float | None = None
    met: bool | None = None


class Stats(BaseModel):
    """Aggregate statistics (readable by every role, including public)."""

    total: int
    rectified: int
    rate: float | None = None
    by_kind: dict[str, RateRow]
    by_department: dict[str, RateRow]
    by_year: dict[str, RateRow]
    monitoring: Monitoring | None = None


class ConflictBody(BaseModel):
    """409: the record changed since the version sent; ``current`` is the record now."""

    code: str
    description: str
    current: dict[str, Any] | None = None


_ETAG_HEADER = {"ETag": {"description": 'the record\'s version, strong and quoted: "3"',
                         "schema": {"type": "string"}}}
_READ_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"headers": _ETAG_HEADER}}
_EDIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": _ETAG_HEADER},
    409: {"model": ConflictBody,
          "description": "the record changed since the version sent (body: current record), "
                         "or the status change is not allowed"},
    428: {"model": ErrorBody,
          "description": "no version sent: add If-Match with the ETag of GET"},
}


# --- helpers --------------------------------------------------------------------------------
def _actor(p: Principal) -> Actor:
    return Actor(who=p.name, role=p.role)


def _staff(p: Principal) -> None:
    require_read(p, _STAFF, "the hazard registry")


def _visible_roles(p: Principal) -> list[str] | None:
    return None if p.role in _PLANNERS else [p.role]


def _visible_hazard(reg: Registry, p: Principal, hazard_id: str) -> dict[str, Any]:
    """Hazard ``hazard_id`` if ``p`` may see it; one that belongs to a role ``p`` cannot see
    answers exactly like a missing one (404), so no role learns that it exists."""
    rec = reg.hazard(hazard_id)
    roles = _visible_roles(p)
    if roles is not None and rec["owner_role"] not in roles:
        raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
    return rec


def _require_owner(p: Principal, owner: str, what: str) -> None:
    if p.is_admin or p.role == owner:
        return
    if not p.authenticated:
        raise Unauthorized(f"{what} requires an API key with role {owner} or admin")
    raise Forbidden(f"role {p.role!r} may not change {what}; it belongs to role {owner!r}")


def _analysis_def(analysis_id: str) -> an.AnalysisDef:
    d = next((d for d in an.available() if d.id == analysis_id), None)
    if d is None:
        raise NotFound(f"no analysis {analysis_id!r}; available: "
                       + (", ".join(x.id for x in an.available()) or "none"))
    return d


_IF_MATCH = re.compile(r'^"(\d{1,18})"$|^(\d{1,18})$')


def _etag(version: int) -> str:
    return f'"{int(version)}"'


def _with_etag(response: Response, rec: dict[str, Any]) -> dict[str, Any]:
    response.headers["ETag"] = _etag(rec["version"])
    return rec


def _sent_version(if_match: str | None, body_version: int | None) -> int | None:
    """The version the client sent (If-Match or body), None when it sent none."""
    header = None
    if if_match is not None and if_match.strip():
        text = if_match.strip()
        if text == "*":
            raise BadRequest('If-Match: * does not protect against lost updates; send the '
                             'version you edited, as served in the ETag (e.g. If-Match: "3")')
        m = _IF_MATCH.match(text)
        if m is None:
            raise BadRequest(f"If-Match is {text!r}; expected the ETag of the record as served "
                             'by GET, one strong tag such as "3"')
        header = int(m.group(1) or m.group(2))
    if header is not None and body_version is not None and header != body_version:
        raise BadRequest(f"If-Match says version {header} but the body says {body_version}; "
                         "send one version")
    return header if header is not None else body_version


def _version_required(what: str, url: str) -> JSONResponse:
    return JSONResponse(status_code=428, content={
        "code": "PreconditionRequired",
        "description": f"changing {what} needs the version you edited: send If-Match with the "
                       f"ETag of GET {url} (e.g. If-Match: \"3\"), or \"version\": 3 in the "
                       "body; a stale version is refused with 409 so no change is lost"})


def _conflict(exc: EditConflict, model: type[Hazard] | type[Measure]) -> JSONResponse:
    current = None if exc.current is None else model(**exc.current).model_dump(mode="json")
    headers = None if current is None else {"ETag": _etag(current["version"])}
    return JSONResponse(status_code=409, headers=headers, content={
        "code": "Conflict", "description": str(exc), "current": current})


def _fields(body: BaseModel, exclude: set[str] | None = None) -> dict[str, Any]:
    d = body.model_dump(exclude_unset=True, exclude=exclude or set())
    if "deadline" in d and d["deadline"] is not None:
        d["deadline"] = d["deadline"].isoformat()
    return d


# --- hazards --------------------------------------------------------------------------------
@router.get("/hazards", response_model=HazardList, operation_id="listHazards",
            summary="Hazard records (the caller's own role's, all for planner/admin)")
def list_hazards(
    request: Request, reg: RegistryDep, principal: PrincipalDep,
    status: Annotated[Literal["identified", "rectifying", "rectified", "verified", "closed"]
                      | None, Query()] = None,
    detection: Annotated[Literal["detected", "no_longer_detected"] | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    analysis: Annotated[str | None, Query(max_length=100)] = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, description="clamped to the maximum page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> HazardList:
    check_params(request, ("status", "detection", "kind", "analysis", "department", "limit",
                           "offset"))
    _staff(principal)
    assert status is None or status in STATUSES
    assert detection is None or detection in DETECTIONS
    where = {k: v for k, v in (("status", status), ("detection", detection), ("kind", kind),
                               ("analysis", analysis), ("department", department))
             if v is not None}
    limit = min(limit, request.app.state.settings.max_limit)
    rows, total = reg.hazards(where=where, roles=_visible_roles(principal), limit=limit,
                              offset=offset)
    return HazardList(hazards=[Hazard(**r) for r in rows], numberMatched=total,
                      numberReturned=len(rows))


@router.get("/hazards/{hazard_id}", response_model=Hazard, operation_id="getHazard",
            summary="One hazard record (ETag: its version)", responses=_READ_RESPONSES)
def get_hazard(request: Request, response: Response, hazard_id: HazardId, reg: RegistryDep,
               principal: PrincipalDep) -> Any:
    if "text/html" in request.headers.get("accept", "").split(",")[0]:  # a browser: the page
        from api.routers.registry_pages import hazard_page

        return hazard_page(request, hazard_id, reg, principal)
    check_params(request, ())
    _staff(principal)
    rec = _visible_hazard(reg, principal, hazard_id)
    return Hazard(**_with_etag(response, rec))


@router.post("/hazards", response_model=Hazard, status_code=201, operation_id="registerHazard",
             summary="Register a finding as a hazard (idempotent; ETag: its version)",
             responses={201: {"headers": _ETAG_HEADER}})
def register_hazard(request: Request, response: Response, body: RegisterRequest,
                    reg: RegistryDep, principal: PrincipalDep) -> Hazard:
    check_params(request, ())
    d = _analysis_def(body.analysis)
    _require_owner(principal, d.owner, f"hazards of analysis {d.id!r}")
    frame = get_service(request).result(d.id)
    if "finding_id" not in frame.columns:
        raise BadRequest(f"analysis {d.id!r} does not produce findings")
    hit = frame[frame["finding_id"] == body.finding_id]
    if hit.empty:
        raise NotFound(f"analysis {d.id!r} has no finding {body.finding_id!r} in the current "
                       "data")
    rec = finding_records(hit)[0]
    rec["finding_id"] = body.finding_id
    fields = _fields(body, exclude={"finding_id", "analysis"})
    return Hazard(**_with_etag(response, reg.register(
        rec, analysis=d.id, owner_role=d.owner, actor=_actor(principal),
        fields=fields or None)))


@router.patch("/hazards/{hazard_id}", response_model=Hazard, operation_id="updateHazard",
              summary="Change department, deadline, measures, notes, attachments, severity "
                      "(If-Match: the version edited)", responses=_EDIT_RESPONSES)
def update_hazard(request: Request, response: Response, hazard_id: HazardId, body: HazardEdit,
                  reg: RegistryDep, principal: PrincipalDep, if_match: IfMatch = None
                  ) -> Hazard | JSONResponse:
    check_params(request, ())
    _staff(principal)
    rec = _visible_hazard(reg, principal, hazard_id)
    _require_owner(principal, rec["owner_role"], f"hazard {hazard_id!r}")
    sent = _sent_version(if_match, body.version)
    if sent is None:
        return _version_required(f"hazard {hazard_id!r}", f"/registry/hazards/{hazard_id}")
    fields = _fields(body, exclude={"version"})
    if "attachments" in fields and fields["attachments"] is not None:
        fields["attachments"] = [{k: v for k, v in a.items() if v is not None}
                                 for a in fields["attachments"]]
    try:
        after = reg.update(hazard_id, fields, actor=_actor(principal), expected_version=sent)
    except EditConflict as exc:
        return _conflict(exc, Hazard)
    return Hazard(**_with_etag(response, after))


@router.post("/hazards/{hazard_id}/transition", response_model=Hazard,
             operation_id="transitionHazard",
             summary="Move a hazard along identified → rectifying → rectified → verified → "
                     "closed (If-Match: the version edited; 409 when stale or not allowed)",
             responses=_EDIT_RESPONSES)
def transition_hazard(request: Request, response: Response, hazard_id: HazardId,
                      body: TransitionRequest, reg: RegistryDep, principal: PrincipalDep,
                      if_match: IfMatch = None) -> Hazard | JSONResponse:
    check_params(request, ())
    _staff(principal)
    rec = _visible_hazard(reg, principal, hazard_id)
    _require_owner(principal, rec["owner_role"], f"hazard {hazard_id!r}")
    sent = _sent_version(if_match, body.version)
    if sent is None:
        return _version_required(f"hazard {hazard_id!r}", f"/registry/hazards/{hazard_id}")
    try:
        after = reg.transition(hazard_id, body.to, actor=_actor(principal), note=body.note,
                               expected_version=sent)
    except EditConflict as exc:
        return _conflict(exc, Hazard)
    return Hazard(**_with_etag(response, after))


@router.post("/sync/{analysis_id}", response_model=SyncResult, operation_id="syncRegistry",
             summary="Re-run an analysis and update the registry (new → registered, "
                     "vanished → no longer detected)")
def sync(request: Request, analysis_id: Annotated[str, Path(max_length=100)], reg: RegistryDep,
         principal: PrincipalDep) -> SyncResult:
    check_params(request, ())
    d = _analysis_def(analysis_id)
    _require_owner(principal, d.owner, f"hazards of analysis {d.id!r}")
    frame = get_service(request).result(d.id)
    if "finding_id" not in frame.columns:
        raise BadRequest(f"analysis {d.id!r} does not produce findings")
    counts = reg.sync(d.id, finding_records(frame), owner_role=d.owner,
                      actor=_actor(principal))
    return SyncResult(analysis=d.id, **counts)


# --- audit ----------------------------------------------------------------------------------
@router.get("/audit", response_model=AuditList, operation_id="listAudit",
            summary="Append-only audit log (planner/admin)")
def audit(request: Request, reg: RegistryDep, principal: PrincipalDep,
          record_id: Annotated[str | None, Query(max_length=500)] = None,
          limit: Annotated[int, Query(ge=1)] = 100,
          offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> AuditList:
    check_params(request, ("record_id", "limit", "offset"))
    require_read(principal, _PLANNERS, "the audit log")
    rows, total = reg.audit(record_id=record_id,
                            limit=min(limit, request.app.state.settings.max_limit),
                            offset=offset)
    return AuditList(entries=[AuditEntry(**r) for r in rows], numberMatched=total,
                     numberReturned=len(rows))


# --- measures -------------------------------------------------------------------------------
@router.get("/measures", response_model=MeasureList, operation_id="listMeasures",
            summary="Measures list (制度措施清单)")
def list_measures(request: Request, reg: RegistryDep, principal: PrincipalDep) -> MeasureList:
    check_params(request, ())
    _staff(principal)
    return MeasureList(measures=[Measure(**m) for m in reg.measures(
        roles=_visible_roles(principal))])


@router.get("/measures/{measure_id}", response_model=Measure, operation_id="getMeasure",
            summary="One measure (ETag: its version)", responses=_READ_RESPONSES)
def get_measure(request: Request, response: Response, measure_id: MeasureId, reg: RegistryDep,
                principal: PrincipalDep) -> Measure:
    check_params(request, ())
    _staff(principal)
    rec = reg.measure(measure_id)
    roles = _visible_roles(principal)
    if roles is not None and rec["owner_role"] not in roles:
        raise RecordNotFound(f"no measure {measure_id!r} in the registry")  # as if missing
    return Measure(**_with_etag(response, rec))


@router.put("/measures/{measure_id}", response_model=Measure, operation_id="putMeasure",
            summary="Create a measure, or update one (If-Match: the version edited)",
            responses=_EDIT_RESPONSES)
def put_measure(request: Request, response: Response, measure_id: MeasureId,
                body: MeasureFields, reg: RegistryDep, principal: PrincipalDep,
                if_match: IfMatch = None) -> Measure | JSONResponse:
    check_params(request, ())
    _staff(principal)
    if principal.role == "public":
        raise Forbidden("role 'public' may not change measures")
    try:
        existing = reg.measure(measure_id)
    except LookupError:
        existing = None
    roles = _visible_roles(principal)
    if existing is not None and roles is not None and existing["owner_role"] not in roles:
        # Another role's measure: say only that the id is taken (never whose, nor what).
        raise Conflict(f"measure id {measure_id!r} cannot be used; choose another id")
    owner = existing["owner_role"] if existing else ("planner" if principal.is_admin
                                                     else principal.role)
    _require_owner(principal, owner, f"measure {measure_id!r}")
    sent = _sent_version(if_match, body.version)
    if sent is None:
        if existing is not None:
            return _version_required(f"measure {measure_id!r}",
                                     f"/registry/measures/{measure_id}")
        sent = 0  # a create: refused with 409 if someone creates it first
    fields = _fields(body, exclude={"version"})
    if fields.get("status") is not None:
        assert fields["status"] in MEASURE_STATUSES
    try:
        after = reg.put_measure(measure_id, fields, owner_role=owner, actor=_actor(principal),
                                expected_version=sent)
    except EditConflict as exc:
        return _conflict(exc, Measure)
    return Measure(**_with_etag(response, after))


# --- stats ----------------------------------------------------------------------------------
@router.get("/stats", response_model=Stats, operation_id="getRegistryStats",
            summary="Rectification rate by kind / department / year vs the plan's targets; "
                    "HCA video-monitoring coverage vs 30/70/100 %")
def stats(request: Request, reg: RegistryDep) -> Stats:
    check_params(request, ())
    s = registry_stats(request, reg)
    mon = s.pop("monitoring")
    return Stats(**s, monitoring=Monitoring(**mon) if mon is not None else None)


def registry_stats(request: Request, reg: Registry) -> dict[str, Any]:
    """The numbers of ``GET /registry/stats`` (rates by kind / department / year against the
    plan's targets, ``monitoring``: HCA coverage) on the district's date — also the
    dashboard's, page and PNG."""
    today = get_service(request).district.now().date()
    s = reg.rectification_stats(today=today)
    s["monitoring"] = get_service(request).monitoring()
    return s
