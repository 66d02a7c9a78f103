"""Access control: API keys (``X-API-Key`` header or ``Authorization: Bearer``) mapped to roles,
and browser sessions (a signed cookie obtained by exchanging a key at ``POST /signin``).

Who may see what lives in two small tables here (:data:`LAYER_ROLES`, :data:`OWNER_ROLES`) so
routers only ask :func:`can_read` / :func:`require_read` / :func:`require_role`.

Sessions are stateless and signed (HMAC-SHA256 with ``Settings.session_key``): the cookie holds
a fingerprint of the key (an HMAC of its hash, never the key), a random nonce and the issue and
expiry times (the district's clock). A session ends at its expiry, when its key is removed from
``RISKMAP_API_KEYS`` or when the secret changes. A header key wins over the cookie. A write
(POST/PUT/PATCH/DELETE) authenticated by the cookie must carry the session's CSRF token in
``X-CSRF-Token`` (the pages expose it in ``<meta name="csrf-token">``), else 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from api.errors import Forbidden, Unauthorized
from api.settings import ApiKey, Settings

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LAYER_ROLES",
    "OWNER_ROLES",
    "SESSION_COOKIE",
    "Principal",
    "Session",
    "can_read",
    "csrf_token",
    "get_principal",
    "issue_session",
    "owner_role",
    "principal_of",
    "read_session",
    "request_session",
    "require_read",
    "require_role",
]

SESSION_COOKIE = "riskmap_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"  # the form field of HTML forms (POST /signout)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

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
    # issue 16: police watch construction machinery (the live early-warning page); facilities,
    # signs and patrol paths are the pipeline operator's and the planners'
    "construction_sites": _ALL | {"police"},
    "pipeline_facilities": _ALL,
    "warning_signs": _ALL,
    "patrol_paths": _ALL,
}

# Registry: which role owns (may change) hazards found on each layer.
OWNER_ROLES: dict[str, str] = {
    "pipelines": "planner", "hca": "planner", "buildings": "planner", "sites": "planner",
    "cameras": "planner",
    "roads": "police", "restricted_zones": "police", "hazmat_routes": "police",
    "fire_lanes": "fire", "fire_stations": "fire", "hydrants": "fire", "compounds": "fire",
    "construction_sites": "planner", "pipeline_facilities": "planner",
    "warning_signs": "planner", "patrol_paths": "planner",
}


@dataclass(frozen=True)
class Principal:
    """The caller: ``role`` and ``name`` (written as "who" in the audit log)."""

    role: str
    name: str
    authenticated: bool
    session: bool = False  # authenticated by the session cookie (not a header key)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Session:
    """A verified browser session: its key, nonce and times (epoch seconds)."""

    key: ApiKey
    nonce: str
    issued: int
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(settings: Settings, purpose: str, data: str) -> bytes:
    return hmac.new(settings.session_key, f"{purpose}:{data}".encode(), hashlib.sha256).digest()


def _fingerprint(settings: Settings, key: ApiKey) -> str:
    return _b64(_mac(settings, "key", key.digest)[:16])


def issue_session(settings: Settings, key: ApiKey, *, now: float) -> tuple[str, Session]:
    """A new session for ``key`` starting at ``now`` (epoch seconds): (cookie value, session)."""
    issued = int(now)
    expires = issued + int(settings.session_hours * 3600)
    nonce = secrets.token_urlsafe(16)
    payload = _b64(json.dumps({"k": _fingerprint(settings, key), "n": nonce, "i": issued,
                               "e": expires}, separators=(",", ":")).encode())
    value = payload + "." + _b64(_mac(settings, "session", payload))
    return value, Session(key=key, nonce=nonce, issued=issued, expires=expires)


def read_session(settings: Settings, value: str | None, *, now: float) -> Session | None:
    """The session of cookie ``value`` when its signature holds, it has not expired at
    ``now`` and its key is still configured; else None (a stale cookie is no error)."""
    if not value or len(value) > 512 or value.count(".") != 1:
        return None
    payload, sig = value.split(".")
    try:
        good = hmac.compare_digest(_unb64(sig), _mac(settings, "session", payload))
        data = json.loads(_unb64(payload)) if good else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    fp, nonce, issued, expires = data.get("k"), data.get("n"), data.get("i"), data.get("e")
    if not (isinstance(fp, str) and isinstance(nonce, str) and isinstance(issued, int)
            and isinstance(expires, int)) or not issued <= now < expires:
        return None
    key = _by_fingerprint(settings).get(fp)  # the signature holds: fp is ours
    return None if key is None else Session(key=key, nonce=nonce, issued=issued, expires=expires)


_FINGERPRINTS: dict[int, tuple[Settings, dict[str, ApiKey]]] = {}


def _by_fingerprint(settings: Settings) -> dict[str, ApiKey]:
    """The configured keys by fingerprint (made once per settings object)."""
    hit = _FINGERPRINTS.get(id(settings))
    if hit is not None and hit[0] is settings:
        return hit[1]
    table = {_fingerprint(settings, k): k for k in settings.configured_keys()}
    if len(_FINGERPRINTS) >= 16:
        _FINGERPRINTS.pop(next(iter(_FINGERPRINTS)))
    _FINGERPRINTS[id(settings)] = (settings, table)
    return table


def csrf_token(settings: Settings, session: Session) -> str:
    """The CSRF token of ``session`` (derived from its nonce; same for its whole life)."""
    return _b64(_mac(settings, "csrf", session.nonce)[:18])


def _now(request: Request) -> float:
    service = getattr(request.app.state, "service", None)
    if service is not None:
        return float(service.district.now().timestamp())
    import time

    return time.time()  # pragma: no cover - apps always have a service


def request_session(request: Request) -> Session | None:
    """The valid session of this request's cookie (cached on ``request.state``), or None."""
    if hasattr(request.state, "session"):
        return request.state.session  # type: ignore[no-any-return]
    value = request.cookies.get(SESSION_COOKIE)
    s = read_session(request.app.state.settings, value, now=_now(request)) if value else None
    request.state.session = s
    return s


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
    """FastAPI dependency: the caller of this request (cached on ``request.state``).

    A header key (``Authorization`` / ``X-API-Key``) wins; without one, a valid session
    cookie; else anonymous. A write authenticated by the cookie needs the session's CSRF
    token in ``X-CSRF-Token`` (403 otherwise)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    settings: Settings = request.app.state.settings
    authorization = request.headers.get("authorization")
    api_key = request.headers.get("x-api-key")
    session = None
    if authorization is None and api_key is None:
        session = request_session(request)
    if session is not None:
        if request.method in _UNSAFE:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf_token(settings, session).encode()):
                raise Forbidden(f"a change made with the session cookie needs the {CSRF_HEADER} "
                                "header of the page (riskmapFetch sends it); it was "
                                + ("wrong" if sent else "missing"))
        p = Principal(role=session.key.role, name=session.key.name, authenticated=True,
                      session=True)
    else:
        p = principal_of(settings, authorization, api_key)
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
