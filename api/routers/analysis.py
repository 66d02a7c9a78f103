"""Analysis endpoints beyond the collections: the list of analyses and hazmat routing.

Analysis *results* are served as OGC collections (``/collections/pipeline_findings/items``
…, paged and filtered like any layer); this router adds ``GET /analyses`` and
``POST /routes``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api import analysis as an
from api.auth import Principal, can_read, get_principal, require_read
from api.crs import CRS84, parse_crs
from api.deps import get_service
from api.errors import BadRequest
from api.features import FrameSource, ItemsQuery, feature_collection_bytes
from api.ogc import check_params, href

__all__ = ["AnalysisInfo", "AnalysisList", "RouteRequest", "router"]

router = APIRouter(tags=["Analyses"])

ROUTE_ROLES = frozenset({"police", "planner", "admin"})


class AnalysisInfo(BaseModel):
    id: str
    title: str
    description: str
    findings: bool = Field(description="true when the result is in the common findings schema")
    owner_role: str
    items: str = Field(description="URL of the result's items")


class AnalysisList(BaseModel):
    analyses: list[AnalysisInfo]
    rules: str = Field(description="short SHA-256 of the effective rule files the results apply")
    rules_file: str | None = Field(None, description="name of the district rule file (None: "
                                   "the shipped rule tables)")
    timezone: str = Field(description="district time zone times without an offset are read in")


@router.get("/analyses", response_model=AnalysisList, operation_id="listAnalyses",
            summary="Analyses offered on this store (results are collections)")
def analyses(request: Request, principal: Annotated[Principal, Depends(get_principal)]
             ) -> AnalysisList:
    check_params(request, ())
    from api.routers.collections import get_catalog

    cat = get_catalog(request)
    ids = {d.id for d in an.collection_defs(cat)}
    out = [AnalysisInfo(id=d.id, title=d.title, description=d.description, findings=d.findings,
                        owner_role=d.owner,
                        items=href(request, f"/collections/{d.id}/items"))
           for d in an.available() if d.id in ids and can_read(principal, d.roles)]
    district = get_service(request).district
    return AnalysisList(analyses=out, rules=district.rules_version,
                        rules_file=district.rules.name if district.rules is not None else None,
                        timezone=district.timezone)


class VehicleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight_t: float | None = Field(None, gt=0, le=200)
    height_m: float | None = Field(None, gt=0, le=10)


class RouteRequest(BaseModel):
    """A hazmat route request; coordinates are lon/lat (EPSG:4490 / CRS84)."""

    model_config = ConfigDict(extra="forbid")

    origin: tuple[float, float] = Field(description="[lon, lat]")
    destination: tuple[float, float] = Field(description="[lon, lat]")
    depart_at: dt.datetime | dt.time | None = Field(
        None, description="departure (ISO datetime or HH:MM), read in the district's time "
        "zone unless it carries an offset; zones are evaluated at it; absent = now in the "
        "district")
    permits: list[str] = Field(default_factory=list, max_length=100,
                               description="ids of permit zones the vehicle holds permits for")
    alternatives: int = Field(1, ge=1, le=5)
    objective: Literal["time", "distance", "risk"] = "time"
    vehicle: VehicleIn | None = None

    @field_validator("origin", "destination")
    @classmethod
    def _lonlat(cls, v: tuple[float, float]) -> tuple[float, float]:
        lon, lat = v
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"{list(v)} is not [lon, lat] in degrees")
        return v


@router.post(
    "/routes", operation_id="routeHazmat",
    summary="Route a hazmat vehicle (zones with hours, permits, alternatives, objective)",
    description="Returns a GeoJSON FeatureCollection: one `route` feature per alternative "
    "(rank, cost, length_m, time_s, risk_score, zones, roads), the snapped `origin` and "
    "`destination`, and the `refused` stretches the unrestricted shortest way would use, "
    "each with its reason. `applied` (also the `Riskmap-At` / `Riskmap-Rules` headers) says "
    "which departure time (district zone) and which rules (file hash) were applied. 422 when "
    "no permitted route exists (the message says what blocks it). Roles: police, planner, "
    "admin.",
    responses={200: {"content": {"application/geo+json": {}}},
               422: {"description": "no permitted route"}},
)
def routes(request: Request, body: RouteRequest,
           principal: Annotated[Principal, Depends(get_principal)]) -> Response:
    check_params(request, ("crs",))
    require_read(principal, ROUTE_ROLES, "hazmat routing")
    store = request.app.state.store
    for layer in ("roads",):
        if not store.has_layer(layer):
            raise BadRequest(f"the store has no {layer!r} layer (needed by routing); add it "
                             f"with `riskmap import --store STORE {layer} FILE`")
    from geo.routing import Vehicle

    out_crs = parse_crs(request.query_params.get("crs", CRS84), [CRS84])
    vehicle = (Vehicle(weight_t=body.vehicle.weight_t, height_m=body.vehicle.height_m)
               if body.vehicle is not None else None)
    answer = get_service(request).route(
        body.origin, body.destination, body.depart_at, vehicle=vehicle, permits=body.permits,
        alternatives=body.alternatives, objective=body.objective)
    frame = answer.result.to_frame()
    page = FrameSource(frame).page(ItemsQuery(limit=len(frame) + 1))
    page.ids = list(range(len(page.ids)))
    text = feature_collection_bytes(page, out_crs, links=[], number_matched=False)
    doc = json.loads(text)
    doc["applied"] = answer.applied
    return Response(json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
                    media_type="application/geo+json",
                    headers={"Content-Crs": f"<{out_crs.uri}>",
                             "Riskmap-At": str(answer.applied.get("at")),
                             "Riskmap-Rules": str(answer.applied["rules"])})
