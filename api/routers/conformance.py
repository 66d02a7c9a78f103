"""``/conformance``: the conformance classes this service implements (and its tests check)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.ogc import check_params, esc, html_page, wants_html

__all__ = ["CONFORMANCE", "ConformanceDeclaration", "router"]

router = APIRouter(tags=["Capabilities"])

_F1 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
CONFORMANCE: tuple[str, ...] = (
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    _F1 + "core",
    _F1 + "geojson",
    _F1 + "html",
    _F1 + "oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
)


class ConformanceDeclaration(BaseModel):
    conformsTo: list[str]


@router.get("/conformance", response_model=ConformanceDeclaration,
            operation_id="getConformanceDeclaration", summary="Conformance classes",
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}})
def conformance(request: Request) -> Any:
    check_params(request, ())
    if wants_html(request):
        return html_page("Conformance", "<ul>" + "".join(
            f"<li>{esc(c)}</li>" for c in CONFORMANCE) + "</ul>", request=request)
    return ConformanceDeclaration(conformsTo=list(CONFORMANCE))
