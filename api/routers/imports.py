"""``POST /layers/{layer}/import``: import a file into a layer (admin only; all or nothing)."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from api.auth import Principal, get_principal, require_read
from api.errors import BadRequest
from api.ogc import check_params
from layers.errors import InputFileError
from layers.schema import LAYER_NAMES

__all__ = ["IMPORT_PREFIX", "ImportReport", "router"]

router = APIRouter(tags=["Layers"])

IMPORT_PREFIX = "/layers/"
_FORMATS = {"geojson": ".geojson", "gpkg": ".gpkg", "zip": ".zip", "csv": ".csv",
            "pbf": ".osm.pbf"}


class ImportNote(BaseModel):
    feature: str | None = None
    field: str | None = None
    kind: str
    message: str


class ImportReport(BaseModel):
    layer: str
    imported: int
    total: int
    replaced: bool
    source_crs: str | None = None
    notes: list[ImportNote]
    summary: str


@router.post(
    "/layers/{layer}/import", response_model=ImportReport, operation_id="importLayer",
    summary="Import a file into a layer (admin; validated, all or nothing)",
    description="The request body is the file itself (GeoJSON, GeoPackage, zipped Shapefile, "
    "CSV with WKT, OSM PBF; say which with `format`). `replace=true` replaces the layer, else "
    "features are appended (ids must be new). `crs` states the file's CRS when it carries "
    "none; `map=source:ours,…` renames fields. Every problem is reported (422) and the store "
    "is left unchanged.",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def import_layer(
    request: Request,
    layer: Annotated[Literal[LAYER_NAMES], Path(description="target layer")],  # type: ignore[valid-type]
    principal: Annotated[Principal, Depends(get_principal)],
    format: Annotated[Literal["geojson", "gpkg", "zip", "csv", "pbf"], Query()] = "geojson",
    replace: Annotated[bool, Query()] = False,
    crs: Annotated[str | None, Query(max_length=100)] = None,
    map: Annotated[str | None, Query(max_length=2000, description="source:ours,…")] = None,
) -> ImportReport:
    check_params(request, ("format", "replace", "crs", "map"))
    require_read(principal, frozenset({"admin"}), "layer imports")
    mapping = None
    if map:
        mapping = {}
        for item in map.split(","):
            src, sep, ours = item.partition(":")
            if not sep or not src.strip() or not ours.strip():
                raise BadRequest(f"map={map!r}: expected source:ours pairs separated by commas")
            mapping[src.strip()] = ours.strip()
    body = await request.body()
    if not body:
        raise BadRequest("the request body (the file to import) is empty")
    from starlette.concurrency import run_in_threadpool

    from layers.importing import import_file

    fd, tmp = tempfile.mkstemp(suffix=_FORMATS[format], prefix="riskmap-import-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        try:
            result = await run_in_threadpool(
                import_file, request.app.state.store, layer, tmp, crs=crs, mapping=mapping,
                replace=replace)
        except InputFileError as exc:  # name the upload, not the temporary file
            raise InputFileError(str(exc).replace(tmp, f"upload.{format}")) from None
    finally:
        os.unlink(tmp)
    notes = [ImportNote(feature=n.feature, field=n.field, kind=n.kind, message=n.message)
             for n in result.notes]
    return ImportReport(layer=result.layer, imported=result.imported, total=result.total,
                        replaced=result.replaced, source_crs=result.source_crs, notes=notes,
                        summary=result.summary().replace(tmp, f"upload.{format}"))
