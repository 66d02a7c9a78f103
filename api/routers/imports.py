"""``POST /layers/{layer}/import``: import a file into a layer (admin only; all or nothing)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel

from api.auth import Principal, get_principal, require_read
from api.errors import BadRequest
from api.ogc import check_params
from layers.errors import CRSError, InputFileError
from layers.readers import user_crs
from layers.schema import LAYER_NAMES

__all__ = ["IMPORT_PREFIX", "ImportReport", "clean_stale_uploads", "install", "router"]

log = logging.getLogger("riskmap.api")

router = APIRouter(tags=["Layers"])

IMPORT_PREFIX = "/layers/"
_FORMATS = {"geojson": ".geojson", "gpkg": ".gpkg", "zip": ".zip", "csv": ".csv",
            "pbf": ".osm.pbf"}


_PREFIX = "riskmap-import-"  # + the pid of the process spooling the upload


def clean_stale_uploads(directory: str | None = None) -> list[str]:
    """Delete uploads spooled by import processes that are gone (killed mid-import: their
    ``finally`` never ran); return the paths removed. Files of live processes are kept."""
    root = Path(directory or tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{_PREFIX}*"):
        pid_text = path.name[len(_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)) or not path.is_file():
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(str(path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or not a pid we can judge): leave it
    return True


def install(app: FastAPI) -> None:
    """Include the router and remove uploads left behind by killed imports."""
    removed = clean_stale_uploads()
    if removed:
        log.warning("removed %d upload(s) left by killed imports", len(removed))
    app.include_router(router)


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
    layer: Annotated[Literal[LAYER_NAMES], PathParam(description="target layer")],  # type: ignore[valid-type]
    principal: Annotated[Principal, Depends(get_principal)],
    format: Annotated[Literal["geojson", "gpkg", "zip", "csv", "pbf"], Query()] = "geojson",
    replace: Annotated[bool, Query()] = False,
    crs: Annotated[str | None, Query(max_length=100)] = None,
    map: Annotated[str | None, Query(max_length=2000, description="source:ours,…")] = None,
) -> ImportReport:
    check_params(request, ("format", "replace", "crs", "map"))
    require_read(principal, frozenset({"admin"}), "layer imports")
    user_crs(crs)  # 400 naming an unknown CRS before the upload is spooled
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

    fd, tmp = tempfile.mkstemp(suffix=_FORMATS[format], prefix=f"{_PREFIX}{os.getpid()}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        try:
            result = await run_in_threadpool(
                import_file, request.app.state.store, layer, tmp, crs=crs, mapping=mapping,
                replace=replace)
        except (InputFileError, CRSError) as exc:  # name the upload, not the temporary file
            raise type(exc)(str(exc).replace(tmp, f"upload.{format}")) from None
    finally:
        os.unlink(tmp)
    notes = [ImportNote(feature=n.feature, field=n.field, kind=n.kind, message=n.message)
             for n in result.notes]
    return ImportReport(layer=result.layer, imported=result.imported, total=result.total,
                        replaced=result.replaced, source_crs=result.source_crs, notes=notes,
                        summary=result.summary().replace(tmp, f"upload.{format}"))
