"""Serve the OpenAPI document as OpenAPI 3.0 (OGC API – Features ``oas30``).

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12); :func:`downgrade` rewrites the few 3.1-only
constructs it emits (``type: null`` unions, ``const``, numeric ``exclusiveMinimum``,
``prefixItems``, ``examples``) to their 3.0 equivalents.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["add_error_responses", "downgrade", "install_openapi30"]

_ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["code", "description"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}
_ERRORS = {
    "400": "Unknown or malformed parameter or body",
    "401": "An API key is needed (or the key given is unknown)",
    "403": "The caller's role may not read or change this",
    "404": "No such collection, feature, record or analysis input",
    "503": "The store cannot be read",
}
_WRITE_ERRORS = {"409": "Illegal status transition", "413": "Request body too large",
                 "422": "Invalid input (file, features) or no permitted route"}


def _schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _schema(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        if key in out and isinstance(out[key], list):
            alts = out[key]
            non_null = [a for a in alts if not (isinstance(a, dict) and a.get("type") == "null")]
            if len(non_null) < len(alts):
                if len(non_null) == 1:
                    merged = dict(non_null[0])
                    del out[key]
                    if "$ref" in merged:
                        out["allOf"] = [merged]
                    else:
                        for k, v in merged.items():
                            out.setdefault(k, v)
                else:
                    out[key] = non_null
                out["nullable"] = True
    t = out.get("type")
    if isinstance(t, list):
        types = [x for x in t if x != "null"]
        if len(types) < len(t):
            out["nullable"] = True
        if len(types) == 1:
            out["type"] = types[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": x} for x in types]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, ex in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        v = out.get(ex)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[bound] = v
            out[ex] = True
    if "prefixItems" in out:
        items = out.pop("prefixItems")
        n = len(items)
        uniq = [i for j, i in enumerate(items) if i not in items[:j]]
        out["items"] = uniq[0] if len(uniq) == 1 else {"anyOf": uniq}
        out.setdefault("minItems", n)
        if out.get("items") is False or "maxItems" not in out:
            out.setdefault("maxItems", n)
    if isinstance(out.get("items"), bool):
        out["items"] = {}
    if "examples" in out and isinstance(out["examples"], list):
        ex = out.pop("examples")
        if ex:
            out["example"] = ex[0]
    for k in ("$schema", "$id", "contentMediaType", "contentEncoding", "unevaluatedProperties"):
        out.pop(k, None)
    return out


def downgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0.3 copy of a FastAPI (3.1) document."""
    doc = copy.deepcopy(doc)
    doc["openapi"] = "3.0.3"
    comps = doc.get("components", {})
    if "schemas" in comps:
        comps["schemas"] = {k: _schema(v) for k, v in comps["schemas"].items()}
    for path_item in doc.get("paths", {}).values():
        for op in path_item.values():
            if not isinstance(op, dict):
                continue
            for p in op.get("parameters", []):
                if "schema" in p:
                    p["schema"] = _schema(p["schema"])
            for holder in [op.get("requestBody", {}), *op.get("responses", {}).values()]:
                for media in holder.get("content", {}).values():
                    if "schema" in media:
                        media["schema"] = _schema(media["schema"])
    return doc


def add_error_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Document the error statuses every operation can return (validation errors are 400,
    not FastAPI's 422), all with the ``Error`` body."""
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in doc.get("paths", {}).values():
        for method, op in path_item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            resp = op["responses"]
            resp.pop("422", None)
            codes = dict(_ERRORS)
            if method in ("post", "put", "patch"):
                codes.update(_WRITE_ERRORS)
            for code, text in codes.items():
                entry = resp.setdefault(code, {})
                entry.setdefault("description", text)
                entry["content"] = {"application/json": {"schema": ref}}
    comps = doc["components"]["schemas"]
    comps.pop("HTTPValidationError", None)
    comps.pop("ValidationError", None)
    return doc


def install_openapi30(app: Any) -> None:
    """Make ``app.openapi()`` return (and cache) the 3.0 document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_error_responses(downgrade(original()))
        return app.openapi_schema  # type: ignore[no-any-return]

    app.openapi = openapi
