"""Pipeline-protection rules: load ``layers/rule_tables/protection.toml`` and a district's
overrides into :class:`geo.protection_params.ProtectionRules`.

The TOML file is the only place the numbers live (Pipeline Protection Law Arts 30, 32, 33, 35;
the local urban-gas rows stay inactive until a district sets them).

Example
-------
>>> rules = load_protection_rules()
>>> [(z.id, z.within_m) for z in rules.zones][:2]
[('ppl_art30_forbidden', 5.0), ('ppl_art35_1_crossing', 50.0)]
"""

from __future__ import annotations

import os
from typing import Any

from geo.protection_params import ProtectionRules, ZoneRule
from layers.errors import RuleError
from layers.rules import Rule, load_rules
from layers.schema import CONSTRUCTION_WORKS, FACILITY_KINDS

__all__ = ["ProtectionRules", "ZoneRule", "load_protection_rules"]

_SEVERITIES = ("critical", "high", "medium", "low", "info")
_CHOICES: dict[str, tuple[str, ...]] = {
    "action": ("forbidden", "permit"),
    "reference": ("line", "facility"),
    "pipeline_kind": ("long_distance", "urban_gas"),
    "measure_from": ("centre_line", "pipe_wall"),
    "severity": _SEVERITIES,
}


def _where(r: Rule) -> str:
    return f"{r.origin}: [[{r.table}]] id {r.id!r}"


def _texts(r: Rule, key: str, allowed: tuple[str, ...], problems: list[str]) -> tuple[str, ...]:
    v = r.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        problems.append(f"{_where(r)}: {key} is {v!r}; expected a list of texts")
        return ()
    bad = [x for x in v if x not in allowed]
    if bad:
        problems.append(f"{_where(r)}: {key} has {', '.join(map(repr, bad))}; expected some of "
                        + ", ".join(allowed))
    return tuple(v)


def _zone(r: Rule, problems: list[str]) -> ZoneRule | None:
    n = len(problems)
    vals: dict[str, Any] = {}
    for key, allowed in _CHOICES.items():
        default = {"pipeline_kind": "long_distance", "measure_from": "centre_line"}.get(key)
        v = r.get(key, default)
        if v not in allowed:
            problems.append(f"{_where(r)}: {key} is {v!r}; expected one of {', '.join(allowed)}")
        vals[key] = v
    within = r.get("within_m")
    if isinstance(within, bool) or not isinstance(within, (int, float)) or within < 0:
        problems.append(f"{_where(r)}: within_m is {within!r}; expected a number >= 0 (metres)")
    works = _texts(r, "works", (*CONSTRUCTION_WORKS, "*"), problems)
    if not works:
        problems.append(f"{_where(r)}: works is empty; expected the kinds of work it covers")
    kinds = _texts(r, "facility_kinds", FACILITY_KINDS, problems)
    if vals["reference"] == "facility" and not kinds:
        problems.append(f"{_where(r)}: facility_kinds is missing; a facility zone needs the "
                        "kinds of pipeline_facilities it is measured from")
    if len(problems) > n:
        return None
    return ZoneRule(
        id=r.id, action=vals["action"], reference=vals["reference"], works=works,
        within_m=float(within or 0.0), severity=vals["severity"], source=r.source,
        confidence=r.confidence, clause=str(r.get("clause", "")),
        name_zh=str(r.get("name_zh", r.id)), name_en=str(r.get("name_en", r.id)),
        pipeline_kind=vals["pipeline_kind"], measure_from=vals["measure_from"],
        facility_kinds=kinds)


def load_protection_rules(path: str | os.PathLike[str] | None = None) -> ProtectionRules:
    """Load ``layers/rule_tables/protection.toml``, then the rows a district file ``path``
    overrides (by id) or adds.

    Raises
    ------
    RuleError
        Listing every missing or malformed row.
    """
    rs = load_rules("protection", override=path)
    problems: list[str] = []
    zones = [z for r in rs.rows("protection_zone") if (z := _zone(r, problems)) is not None]
    params = {r.id: r for r in rs.rows("protection_param")}
    radius = params.get("point_site_radius_m")
    value = radius.get("value") if radius is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.append(f"protection_param 'point_site_radius_m' is {value!r}; expected a "
                        "number > 0 (metres)")
        value = 0.0
    machines: dict[str, str] = {}
    for r in rs.rows("machine_kind"):
        work = r.get("work")
        if work not in CONSTRUCTION_WORKS:
            problems.append(f"{_where(r)}: work is {work!r}; expected one of "
                            + ", ".join(CONSTRUCTION_WORKS))
            continue
        names = r.get("names", [])
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            problems.append(f"{_where(r)}: names is {names!r}; expected a list of texts")
            continue
        for name in [r.id, *names]:
            machines[name.strip().lower()] = str(work)
    if problems:
        raise RuleError(f"{len(problems)} problem(s) in the protection rules:\n"
                        + "\n".join(f"  - {p}" for p in problems))
    return ProtectionRules(zones=tuple(zones), point_site_radius_m=float(value),
                           machine_kinds=machines,
                           sources={r.id: r.source for r in (*params.values(),)})
