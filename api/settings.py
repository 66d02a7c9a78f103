"""Service settings (pydantic-settings, env prefix ``RISKMAP_``), built once at the app edge.

API keys come from ``RISKMAP_API_KEYS`` and are hashed (SHA-256) as soon as they are read; the
plain keys are not kept. Two forms are accepted:

- ``role:key,role:key,…`` or ``role:name:key,…`` (``name`` is the "who" in the audit log);
- JSON: ``[{"role": "planner", "key": "…", "name": "alice"}, …]`` or ``{"key": "role", …}``.

Roles: ``public``, ``planner``, ``police``, ``fire``, ``admin``. There are no default keys: with
none configured every request is anonymous (role ``anonymous_role``, default ``public``).

Browser sessions (``POST /signin``, see :mod:`api.auth`): ``RISKMAP_SESSION_HOURS`` (default 12)
and ``RISKMAP_SESSION_SECRET`` (32+ characters; unset: a random secret per process, so a restart
signs everyone out and several workers do not share sign-ins).

The district: ``RISKMAP_RULES`` (one rule file overriding rows of every shipped rule table) and
``RISKMAP_TIMEZONE`` (default ``Asia/Shanghai``), used by the API, the served maps and registry
sync, and by the CLI as the default of ``--rules`` / ``--tz``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.district import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from api.district import District

__all__ = ["DEFAULT_TRUSTED_HOSTS", "ROLES", "ApiKey", "Settings", "hash_key", "parse_api_keys"]

ROLES: tuple[str, ...] = ("public", "planner", "police", "fire", "admin")
DEFAULT_TRUSTED_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
_HOST_RE = re.compile(r"^(\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|[0-9a-f:]+)$")
# Characters an API key may hold: visible ASCII (an HTTP header carries nothing else).
_KEY_RE = re.compile(r"^[\x21-\x7e]+$")


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key (what is stored and compared)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One configured key, hashed: ``role`` and ``name`` (the "who" written to the audit log)."""

    digest: str
    role: str
    name: str


def _check_role(role: str, where: str = "RISKMAP_ANONYMOUS_ROLE") -> str:
    role = role.strip()
    if role not in ROLES:
        # The text is not echoed: in RISKMAP_API_KEYS a swapped "key:role" would print a key.
        raise ValueError(f"{where}: the role is not one of " + ", ".join(ROLES))
    return role


def parse_api_keys(text: str) -> list[ApiKey]:
    """Parse the ``RISKMAP_API_KEYS`` text (see module docstring) into hashed keys."""
    text = text.strip()
    if not text:
        return []
    entries: list[tuple[str, str, str | None]] = []
    if text[0] in "[{":
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"RISKMAP_API_KEYS is not valid JSON: {exc.msg}") from None
        if isinstance(data, dict):
            entries = [(str(role), str(key), None) for key, role in data.items()]
        elif isinstance(data, list):
            for item in data:
                if not isinstance(item, dict) or "role" not in item or "key" not in item:
                    raise ValueError("RISKMAP_API_KEYS JSON list items need 'role' and 'key'")
                entries.append((str(item["role"]), str(item["key"]), item.get("name")))
        else:
            raise ValueError("RISKMAP_API_KEYS JSON must be an object or a list")
    else:
        for i, raw in enumerate(text.split(",")):
            raw = raw.strip()
            if not raw:
                continue
            parts = raw.split(":")
            if len(parts) < 2:
                raise ValueError(f"RISKMAP_API_KEYS entry {i + 1} is not 'role:key' or "
                                 "'role:name:key'")
            if len(parts) == 2:
                entries.append((parts[0], parts[1], None))
            else:
                entries.append((parts[0], ":".join(parts[2:]), parts[1]))
    out = []
    seen: set[str] = set()
    for i, (role, key, name) in enumerate(entries):
        role = _check_role(role, f"RISKMAP_API_KEYS entry {i + 1}")
        if len(key) < 8:
            raise ValueError(f"RISKMAP_API_KEYS entry {i + 1} (role {role}): key shorter than "
                             "8 characters")
        if not _KEY_RE.match(key):
            raise ValueError(f"RISKMAP_API_KEYS entry {i + 1} (role {role}): the key holds a "
                             "space, a control or a non-ASCII character, which no HTTP header "
                             "can carry (it could never log in); use visible ASCII only, "
                             "e.g. letters, digits and -._~")
        digest = hash_key(key)
        if digest in seen:
            raise ValueError(f"RISKMAP_API_KEYS entry {i + 1}: duplicate key")
        seen.add(digest)
        out.append(ApiKey(digest=digest, role=role, name=name or f"{role}-{digest[:8]}"))
    return out


class Settings(BaseSettings):
    """riskmap service settings; every field can be set as ``RISKMAP_<FIELD>``."""

    # Never quote a setting's value in a validation error (RISKMAP_API_KEYS holds secrets).
    model_config = SettingsConfigDict(env_prefix="RISKMAP_", extra="ignore",
                                      hide_input_in_errors=True)

    store: str = Field(default="data/demo.gpkg", description="store path (.gpkg) or postgresql:// URL")
    title: str = "riskmap"
    description: str = "District safety layers and findings (OGC API – Features)"
    api_keys: SecretStr | None = Field(default=None, description="role:key[,…] or JSON; hashed on load, never echoed")
    anonymous_role: str = Field(default="public", description="role of requests without a key")
    default_limit: int = Field(default=100, ge=1, description="items per page when limit is absent")
    max_limit: int = Field(default=10_000, ge=1, description="larger limits are clamped to this")
    max_request_bytes: int = Field(default=1_000_000, ge=1024, description="largest request body")
    max_import_bytes: int = Field(default=200_000_000, ge=1024,
                                  description="largest file accepted by POST /layers/{layer}/import")
    max_attachment_bytes: int = Field(default=10_000_000, ge=1024, description="largest "
                                      "hazard attachment (photo, PDF) accepted")
    attachments_dir: Path | None = Field(default=None, description="folder for hazard "
                                         "attachments (default: <store>.attachments beside a "
                                         "GeoPackage; required for a PostGIS store)")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated allowed origins ('*' for any)")
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_TRUSTED_HOSTS),
        description="comma-separated host names the service answers to (the Host header; "
        "'*.example.org' matches subdomains, '*' any host); any other Host gets 400 and is "
        "never written into links. `riskmap serve --host H` adds H")
    analysis_cache_size: int = Field(
        default=64, ge=1, description="entries of the process's analysis cache (results, runs, "
        "networks, loaded rules; about 20 per store and rules file); never below 64")
    map_basemap: str = Field(default="none", description="map basemap: none, osm, tianditu, gaode, local")
    map_tile_url: str | None = Field(default=None, description="local tile URL template for basemap=local")
    map_build_workers: int = Field(default=2, ge=1, description="served map builds run at once")
    map_build_queue: int = Field(default=8, ge=0, description="map builds that may wait for a slot "
                                 "(more get 503 with Retry-After)")
    tianditu_key: SecretStr | None = Field(default=None, description="Tianditu key (basemap=tianditu)")
    rules: Path | None = Field(default=None, description="district rule file overriding rows of "
                               "every shipped rule table (pipelines, location_class, hca, fire, "
                               "hazmat) by id")
    timezone: str = Field(default=DEFAULT_TIMEZONE, description="district time zone (IANA): "
                          "times without an offset and 'now' are read in it")
    notice_no: str | None = Field(default=None, description="printed hazmat notice: its number "
                                  "(`--notice` wins); unset prints 未编号 / no number")
    notice_authority: str | None = Field(default=None, description="printed hazmat notice: "
                                         "issuing authority (`--authority` wins)")
    notice_valid_until: str | None = Field(default=None, description="printed hazmat notice: "
                                           "valid until (ISO date; `--valid-until` wins)")
    notice_font: str | None = Field(default=None, description="printed hazmat notice: CJK font "
                                    "file (default: fc-match WenQuanYi Micro Hei)")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 31, description="a browser "
                                 "session (POST /signin) ends this many hours after sign-in")
    session_secret: SecretStr | None = Field(
        default=None, description="secret signing the session cookies (32+ characters); set "
        "it when several workers or servers share the sign-ins or they should survive a "
        "restart. Unset: a random secret per process (a restart signs everyone out)")

    _keys: dict[str, ApiKey] = PrivateAttr(default_factory=dict)
    _session_key: bytes = PrivateAttr(default=b"")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("trusted_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: object) -> object:
        if isinstance(v, str):
            v = [h.strip() for h in v.split(",") if h.strip()]
        if isinstance(v, list):
            out = [str(h).strip().lower() for h in v if str(h).strip()]
            bad = [h for h in out if not _HOST_RE.match(h)]
            if bad:
                raise ValueError(f"RISKMAP_TRUSTED_HOSTS: {bad[0]!r} is not a host name, IP "
                                 "address, '*.domain' or '*'")
            if not out:
                raise ValueError("RISKMAP_TRUSTED_HOSTS is empty; name at least one host "
                                 "(or '*' to accept any Host header)")
            return out
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from api.district import zone

        zone(v)
        return v

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        from api.district import rule_files

        rule_files(str(v))
        return v

    @field_validator("anonymous_role")
    @classmethod
    def _anon_role(cls, v: str) -> str:
        return _check_role(v)

    @model_validator(mode="after")
    def _hash_keys(self) -> Settings:
        if self.api_keys is not None:
            keys = parse_api_keys(self.api_keys.get_secret_value())
            self._keys = {k.digest: k for k in keys}
            self.api_keys = None  # the plain keys are not kept
        if self.session_secret is not None:
            secret = self.session_secret.get_secret_value()
            if len(secret) < 32:
                raise ValueError("RISKMAP_SESSION_SECRET is shorter than 32 characters; use "
                                 "e.g. the output of `python -c \"import secrets; "
                                 "print(secrets.token_urlsafe(32))\"`")
            self._session_key = hashlib.sha256(b"riskmap-session:" + secret.encode()).digest()
            self.session_secret = None  # not kept in clear either
        else:
            self._session_key = secrets.token_bytes(32)
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit must not exceed max_limit")
        return self

    def district(self, clock: Callable[[], datetime] | None = None) -> District:
        """The district these settings describe (rules file, time zone; ``clock`` for tests)."""
        from api.district import District

        return District(self.rules, timezone=self.timezone, clock=clock)

    def lookup_key(self, key: str) -> ApiKey | None:
        """The configured key matching ``key`` (compared by hash), or None."""
        return self._keys.get(hash_key(key))

    def configured_keys(self) -> tuple[ApiKey, ...]:
        """The configured keys (hashed)."""
        return tuple(self._keys.values())

    @property
    def session_key(self) -> bytes:
        """The key signing session cookies (from ``session_secret``, else random per process)."""
        return self._session_key

    @property
    def key_count(self) -> int:
        return len(self._keys)
