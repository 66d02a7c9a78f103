"""Changes since a survey: ``GET /snapshots`` and ``GET /changes?since=NAME`` (planner, admin).

``/changes`` answers a GeoJSON FeatureCollection (RFC 7946, lon/lat): a feature per feature
added, removed or changed in a layer since snapshot NAME (``section`` = feature; ``change``,
``layer``, ``feature_id``, ``fields``, ``moved_m``) and per finding new or gone (``section``
= finding; ``analysis``, ``finding_id``, ``kind``, ``severity``, messages), with the
snapshot (``since``), the ``counts`` and the analyses ``skipped`` as foreign members. The
work is :func:`api.runs.patrol.changes_since` — what ``riskmap changes`` writes.
Snapshots are taken with ``riskmap snapshot`` (not over HTTP).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, get_principal, require_read
from api.deps import get_service
from api.errors import BadRequest
from api.ogc import check_params

__all__ = ["SnapshotList", "router"]

router = APIRouter(tags=["Changes"])

CHANGE_ROLES = frozenset({"planner", "admin"})


class SnapshotOut(BaseModel):
    name: str
    created: str = Field(description="district time the snapshot was taken (ISO 8601)")
    store_version: str
    layers: dict[str, int] = Field(description="feature count per layer")


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


@router.get("/snapshots", response_model=SnapshotList, operation_id="listSnapshots",
            summary="Named snapshots of the store's layers (riskmap snapshot)",
            description="Roles: planner, admin.")
def snapshots(request: Request, principal: Annotated[Principal, Depends(get_principal)]
              ) -> SnapshotList:
    check_params(request, ())
    require_read(principal, CHANGE_ROLES, "snapshots")
    from layers.snapshots import list_snapshots

    store = get_service(request).store
    return SnapshotList(snapshots=[SnapshotOut(**i.as_dict()) for i in list_snapshots(store)])


def _analyses(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    from api import analysis as an

    offered = sorted(d.id for d in an.available() if d.findings)
    ids = tuple(a.strip() for a in text.split(",") if a.strip())
    if not ids or any(a not in offered for a in ids):
        raise BadRequest("analysis: expected a comma-separated list of findings analyses out "
                         f"of {', '.join(offered)}")
    return ids


@router.get(
    "/changes", operation_id="getChanges",
    summary="Features and findings changed since a snapshot",
    description="Features added, removed or changed (moved > 0.01 m, or fields differing) per "
    "layer since snapshot `since`, and findings new or gone (the analyses run on the snapshot, "
    "judged on its date, and on the store now). `analysis` = comma-separated findings "
    "analyses (default: the pipeline ones the store can run). Roles: planner, admin.",
    responses={200: {"content": {"application/geo+json": {}}},
               404: {"description": "no such snapshot"}},
)
def changes(request: Request, principal: Annotated[Principal, Depends(get_principal)],
            since: str, analysis: str | None = None) -> Response:
    check_params(request, ("since", "analysis"))
    require_read(principal, CHANGE_ROLES, "changes")
    from layers.snapshots import NAME_PATTERN

    if not re.fullmatch(NAME_PATTERN, since) or "__" in since:
        raise BadRequest("since: expected a snapshot name (1-40 letters, digits, '.', '-', '_')")
    from api.runs.patrol import changes_since
    from geo.crs import to_geojson

    ch = changes_since(get_service(request), since, analyses=_analyses(analysis))
    doc: dict[str, Any] = to_geojson(ch.frame)
    doc["since"] = ch.since
    doc["counts"] = ch.counts
    doc["skipped"] = ch.skipped
    return Response(json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                               allow_nan=False, default=str),
                    media_type="application/geo+json")
