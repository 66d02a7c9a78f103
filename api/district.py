"""The district's settings every answer is judged by: its rule file and its clock.

A :class:`District` names the district rule file (one file may override rows of every rule
table: pipelines, location_class, hca, fire, hazmat — each loader reads the tables it knows),
the district time zone and a clock. It is light (standard library and :mod:`layers.errors`) so the command line can
build it before any analysis is imported.

- ``rules_version`` is the short SHA-256 of the effective rule files (the shipped tables and
  the district file), part of every cache key: editing the district file changes it.
- ``resolve_at`` reads a departure time in the district's zone: ISO text or a ``datetime``
  without an offset is district time; one with an offset is converted to district time; a
  clock time (``08:30``) is a time of day in the district; nothing means *now* in the
  district (never the OS zone, never a naive ``datetime.now()``).

Example
-------
>>> d = District(timezone="Asia/Shanghai")
>>> d.resolve_at("2026-12-02T23:30Z").isoformat()
'2026-12-03T07:30:00+08:00'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from layers.errors import InputFileError

__all__ = [
    "ANY_TIME",
    "DEFAULT_TIMEZONE",
    "District",
    "rule_files",
    "rules_version",
    "system_clock",
    "zone",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"
ANY_TIME = ("any", "anytime")


def system_clock() -> datetime:
    """Now, as an aware UTC instant (the default clock; tests inject their own)."""
    return datetime.now(UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises InputFileError (a ValueError) naming it when it is unknown."""
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise InputFileError(f"time zone {name!r} is not a known IANA zone; expected e.g. "
                         "Asia/Shanghai or UTC (install the tzdata package where the "
                         "system has no zone database)") from None


def rule_files(rules: str | os.PathLike[str] | None) -> tuple[Path, ...]:
    """The effective rule files: the shipped tables, then the district file (if any).

    Raises InputFileError when ``rules`` names a file that does not exist.
    """
    from layers.rules import default_rule_files

    shipped = tuple(default_rule_files().values())
    if rules is None or str(rules) == "":
        return shipped
    path = Path(rules)
    if not path.is_file():
        raise InputFileError(f"district rule file {str(path)!r} does not exist; expected a TOML "
                         "file overriding rows of layers/rule_tables/*.toml by id")
    return (*shipped, path)


_HASHES: dict[tuple[Path, ...], tuple[tuple[tuple[int, int], ...], str]] = {}


def rules_version(rules: str | os.PathLike[str] | None) -> str:
    """Short SHA-256 (12 hex digits) over the contents of the effective rule files.

    Re-read only when a file's size or modification time changes.
    """
    files = rule_files(rules)
    stamp = tuple((st.st_mtime_ns, st.st_size) for st in (p.stat() for p in files))
    hit = _HASHES.get(files)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode("utf-8") + b"\0" + p.read_bytes() + b"\0")
    digest = h.hexdigest()[:12]
    _HASHES[files] = (stamp, digest)
    return digest


class District:
    """The district rule file, time zone and clock (see the module docstring).

    Parameters
    ----------
    rules
        District rule file overriding the shipped rule tables (None: the shipped ones).
    timezone
        IANA zone the district's clock times are read in (default Asia/Shanghai).
    clock
        Returns the current instant as an aware ``datetime`` (default: the system clock in
        UTC); tests inject a fixed one.
    """

    def __init__(self, rules: str | os.PathLike[str] | None = None, *,
                 timezone: str = DEFAULT_TIMEZONE,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.rules: Path | None = Path(rules) if rules not in (None, "") else None
        rule_files(self.rules)  # a missing district file is an error now, not at first use
        self.timezone = str(timezone)
        self.tz = zone(self.timezone)
        self.clock = clock if clock is not None else system_clock

    @property
    def rules_version(self) -> str:
        """Short hash of the effective rule files (changes when the district file does)."""
        return rules_version(self.rules)

    @property
    def rules_label(self) -> str:
        """``"district.toml (3fa2b1c0d4e5)"`` or ``"shipped defaults (…)"``."""
        name = self.rules.name if self.rules is not None else "shipped defaults"
        return f"{name} ({self.rules_version})"

    def now(self) -> datetime:
        """Now in the district's zone (aware)."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the district clock returned a naive datetime; it must return "
                             "an aware one (e.g. datetime.now(UTC))")
        return now.astimezone(self.tz)

    def resolve_at(self, at: str | datetime | time | None) -> datetime | time | None:
        """A departure time read in the district's zone (see the module docstring).

        ``"any"`` → None (every zone counts as in force at some time of day). Raises
        InputFileError for text that is not an ISO time.
        """
        if at is None:
            return self.now()
        if isinstance(at, str):
            text = at.strip()
            if text.lower() in ANY_TIME:
                return None
            at = _parse_iso(text)
        if isinstance(at, datetime):
            if at.tzinfo is None:
                return at.replace(tzinfo=self.tz)
            return at.astimezone(self.tz)
        if at.tzinfo is not None:  # a clock time with an offset: today's date there
            day = self.now().astimezone(at.tzinfo).date()
            return datetime.combine(day, at).astimezone(self.tz)
        return at

    def describe_at(self, at: datetime | time | None) -> str:
        """``"2026-12-03T07:30+08:00 (Asia/Shanghai)"`` / ``"08:30 (Asia/Shanghai)"`` /
        ``"any time (every zone in force)"``."""
        if at is None:
            return "any time (every zone in force)"
        return f"{at.isoformat(timespec='minutes')} ({self.timezone})"

    def applied(self, *at: datetime | time | None) -> dict[str, str | None]:
        """What an answer was judged by: the rules (file name, hash) and the time zone, and
        ``at`` when one is given (None = any time)."""
        out: dict[str, str | None] = {
            "rules": self.rules_version,
            "rules_file": self.rules.name if self.rules is not None else None,
            "timezone": self.timezone,
        }
        for when in at[:1]:
            out["at"] = None if when is None else when.isoformat(timespec="minutes")
        return out

    @classmethod
    def from_env(cls, *, rules: str | os.PathLike[str] | None = None,
                 timezone: str | None = None,
                 clock: Callable[[], datetime] | None = None) -> District:
        """The district given, else from ``RISKMAP_RULES`` / ``RISKMAP_TIMEZONE`` (the
        variables :class:`api.settings.Settings` reads), else the shipped rules and
        Asia/Shanghai."""
        return cls(rules or os.environ.get("RISKMAP_RULES") or None,
                   timezone=timezone or os.environ.get("RISKMAP_TIMEZONE") or DEFAULT_TIMEZONE,
                   clock=clock)

    def __repr__(self) -> str:
        return f"District(rules={self.rules_label!r}, timezone={self.timezone!r})"


def _parse_iso(text: str) -> datetime | time:
    t = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return datetime.fromisoformat(t)
    except ValueError:
        pass
    try:
        return time.fromisoformat(t)
    except ValueError:
        raise InputFileError(f"at is {text!r}; expected an ISO time such as 2024-05-06T08:30, "
                         "2024-05-06T08:30+08:00 or 08:30, or 'any'") from None

