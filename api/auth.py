"""Access control: API keys (``X-API-Key`` header or ``Authorization: Bearer``) mapped to roles.

Who may see what lives in two small tables here (:data:`LAYER_ROLES`, :data:`OWNER_ROLES`) so
routers only ask :func:`can_read` / :func:`require_read` / :func:`require_role`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from api.errors import Forbidden, Unauthorized
from api.settings import Settings

__all__ = [
    "LAYER_ROLES",
    "OWNER_ROLES",
    "Principal",
    "can_read",
    "get_principal",
    "owner_role",
    "principal_of",
    "require_read",
    "require_role",
]

_ALL = frozenset({"planner", "admin"})

# Roles that may read each layer / analysis collection (besides admin, who reads everything).
# ``public`` sees published hazmat routes and restricted zones only (and aggregate stats).
LAYER_ROLES: dict[str, frozenset[str]] = {
    "pipelines": _ALL,
    "hca": _ALL,
    "buildings": _ALL | {"police", "fire"},
    "sites": _ALL | {"police", "fire"},
    "cameras": _ALL | {"police"},
    "roads": _ALL | {"police", "fire"},
    "restricted_zones": _ALL | {"police", "fire", "public"},
    "hazmat_routes": _ALL | {"police", "fire", "public"},
    "fire_lanes": _ALL | {"fire"},
    "fire_stations": _ALL | {"fire", "police"},
    "hydrants": _ALL | {"fire"},
    "compounds": _ALL | {"fire"},
}

# Registry: which role owns (may change) hazards found on each layer.
OWNER_ROLES: dict[str, str] = {
    "pipelines": "planner", "hca": "planner", "buildings": "planner", "sites": "planner",
    "cameras": "planner",
    "roads": "police", "restricted_zones": "police", "hazmat_routes": "police",
    "fire_lanes": "fire", "fire_stations": "fire", "hydrants": "fire", "compounds": "fire",
}


@dataclass(frozen=True)
class Principal:
    """The caller: ``role`` and ``name`` (written as "who" in the audit log)."""

    role: str
    name: str
    authenticated: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def principal_of(settings: Settings, authorization: str | None, api_key: str | None) -> Principal:
    """Resolve the caller from the ``Authorization`` / ``X-API-Key`` header values."""
    key = api_key
    if key is None and authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <api key>'")
        key = token.strip()
    if key is None:
        return Principal(role=settings.anonymous_role, name="anonymous", authenticated=False)
    found = settings.lookup_key(key)
    if found is None:
        raise Unauthorized("unknown API key")
    return Principal(role=found.role, name=found.name, authenticated=True)


def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller of this request (cached on ``request.state``)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    settings: Settings = request.app.state.settings
    p = principal_of(settings, request.headers.get("authorization"),
                     request.headers.get("x-api-key"))
    request.state.principal = p
    return p


def can_read(principal: Principal, roles: frozenset[str]) -> bool:
    """True when ``principal`` may read something readable by ``roles`` (admin reads all)."""
    return principal.is_admin or principal.role in roles


def require_read(principal: Principal, roles: frozenset[str], what: str) -> None:
    """Raise 401 (anonymous) or 403 (wrong role) unless ``principal`` may read ``what``."""
    if can_read(principal, roles):
        return
    if not principal.authenticated:
        raise Unauthorized(f"{what} requires an API key with role "
                           + " or ".join(sorted(roles | {"admin"})))
    raise Forbidden(f"role {principal.role!r} may not read {what}")


def require_role(*roles: str) -> Callable[[Request], Principal]:
    """Dependency factory: the caller must have one of ``roles`` (or be admin)."""
    allowed = frozenset(roles)

    def dep(request: Request) -> Principal:
        p = get_principal(request)
        require_read(p, allowed, request.url.path)
        return p

    return dep


def owner_role(layer: str | None) -> str:
    """Role owning hazards found on ``layer`` (planner when unknown)."""
    return OWNER_ROLES.get(layer or "", "planner")
