"""Hazmat routing rules: load ``layers/rule_tables/hazmat.toml`` and a district's overrides.

The TOML file is the only place the numbers live; :func:`load_hazmat_rules` turns them into
the :class:`geo.hazmat_params.RoutingParams` and check parameters the ``geo`` functions take.

Example
-------
>>> rules = load_hazmat_rules()
>>> rules.routing.speed_caps_kmh["expressway"], rules.routing.corridor_m
(80.0, 200.0)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from geo.hazmat_params import RouteCheckParams, RoutingParams
from layers.errors import RuleError
from layers.rules import Rule, load_rules

__all__ = ["CheckRule", "HazmatRules", "load_hazmat_rules"]

_SEVERITIES = ("critical", "high", "medium", "low", "info")
_CHECK_IDS = ("forbidden_zone", "permit_zone", "bridge_tunnel_zone", "hazmat_no_road",
              "off_network")
_CHECK_PARAMS = ("min_stretch_m", "road_match_m")
_ROUTING_IDS = ("corridor_m", "snap_max_m", "graph_snap_m", "avoid_penalty",
                "alternative_max_stretch", "alternative_max_overlap", "sensitive_site_kinds")


@dataclass(frozen=True)
class CheckRule:
    """One designated-route check: severity, optional value, source, confidence."""

    id: str
    severity: str
    value: float | None
    source: str
    confidence: str


@dataclass(frozen=True)
class HazmatRules:
    """Hazmat routing parameters plus the designated-route check rules (by id)."""

    routing: RoutingParams
    check: RouteCheckParams
    checks: Mapping[str, CheckRule]
    rows: Mapping[str, Rule] = field(default_factory=dict, repr=False)

    def source(self, key: str) -> str:
        """Source (standard and clause) of routing rule ``key`` or check ``key``."""
        if key in self.checks:
            return self.checks[key].source
        row = self.rows.get(key)
        return row.source if row is not None else "riskmap default"


def _num(r: Rule, key: str, problems: list[str], *, positive: bool = True) -> float:
    v = r.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (positive and v <= 0):
        problems.append(f"{r.origin}: [[{r.table}]] id {r.id!r}: {key} is {v!r}; expected a "
                        f"number{' > 0' if positive else ''}")
        return float("nan")
    return float(v)


def load_hazmat_rules(path: str | os.PathLike[str] | None = None) -> HazmatRules:
    """Load ``layers/rule_tables/hazmat.toml``, then the rows a district file ``path`` overrides.

    Raises
    ------
    RuleError
        Listing every missing or malformed rule.
    """
    rs = load_rules("hazmat", override=path)
    problems: list[str] = []
    caps: dict[str, float] = {}
    default_cap = float("nan")
    for r in rs.rows("hazmat_speed_cap"):
        v = _num(r, "value", problems)
        classes = r.get("road_classes", [])
        if not isinstance(classes, list):
            problems.append(f"{r.origin}: [[hazmat_speed_cap]] id {r.id!r}: road_classes is "
                            f"{classes!r}; expected a list of road classes")
            continue
        for c in classes:
            caps[str(c)] = v
        if r.id == "other":
            default_cap = v
    if default_cap != default_cap:
        problems.append("hazmat.toml: [[hazmat_speed_cap]] id 'other' (cap on ordinary roads) "
                        "is missing")
    speeds: dict[str, float] = {}
    for r in rs.rows("hazmat_road_speed"):
        speeds[r.id] = _num(r, "kmh", problems)
    default_speed = speeds.pop("default", float("nan"))
    if default_speed != default_speed:
        problems.append("hazmat.toml: [[hazmat_road_speed]] id 'default' is missing")
    rows = {r.id: r for r in rs.rows("hazmat_routing")}
    missing = [k for k in _ROUTING_IDS if k not in rows]
    if missing:
        problems.append(f"missing or inactive hazmat routing rule(s): {', '.join(missing)}")
    vals: dict[str, float] = {}
    for k in _ROUTING_IDS:
        if k in rows and k != "sensitive_site_kinds":
            vals[k] = _num(rows[k], "value", problems)
    kinds_row = rows.get("sensitive_site_kinds")
    kinds = kinds_row.get("value") if kinds_row is not None else []
    if not isinstance(kinds, list) or not all(isinstance(x, str) for x in kinds):
        problems.append(f"sensitive_site_kinds is {kinds!r}; expected a list of site kinds")
        kinds = []
    for k in ("alternative_max_overlap",):
        if k in vals and not 0 < vals[k] <= 1:
            problems.append(f"{k} is {vals[k]}; expected a share in (0, 1]")
    if "alternative_max_stretch" in vals and vals["alternative_max_stretch"] < 1:
        problems.append("alternative_max_stretch is below 1; expected a factor >= 1")
    checks: dict[str, CheckRule] = {}
    for r in rs.rows("hazmat_check"):
        sev = r.get("severity")
        if sev not in _SEVERITIES:
            problems.append(f"{r.origin}: [[hazmat_check]] id {r.id!r}: severity is {sev!r}; "
                            f"expected one of {', '.join(_SEVERITIES)}")
            continue
        value = _num(r, "value", problems) if "value" in r else None
        checks[r.id] = CheckRule(r.id, str(sev), value, r.source, r.confidence)
    missing = [k for k in _CHECK_IDS if k not in checks]
    if missing:
        problems.append(f"missing or inactive hazmat check rule(s): {', '.join(missing)}")
    if "off_network" in checks and checks["off_network"].value is None:
        problems.append("hazmat check 'off_network' needs a value in metres")
    cparams = {r.id: r for r in rs.rows("hazmat_check_param")}
    missing = [k for k in _CHECK_PARAMS if k not in cparams]
    if missing:
        problems.append(f"missing or inactive hazmat check parameter(s): {', '.join(missing)}")
    cvals = {k: _num(cparams[k], "value", problems) for k in _CHECK_PARAMS if k in cparams}
    if problems:
        raise RuleError(f"{len(problems)} problem(s) in the hazmat rules:\n"
                        + "\n".join(f"  - {p}" for p in problems))
    params = RoutingParams(
        speeds_kmh=speeds, default_speed_kmh=default_speed, speed_caps_kmh=caps,
        default_speed_cap_kmh=default_cap, corridor_m=vals["corridor_m"],
        snap_max_m=vals["snap_max_m"], graph_snap_m=vals["graph_snap_m"],
        avoid_penalty=vals["avoid_penalty"], max_stretch=vals["alternative_max_stretch"],
        max_overlap=vals["alternative_max_overlap"], sensitive_site_kinds=tuple(kinds),
    )
    check = RouteCheckParams(
        off_network_m=float(checks["off_network"].value),  # type: ignore[arg-type]
        road_match_m=cvals["road_match_m"], min_stretch_m=cvals["min_stretch_m"],
        severity={k: c.severity for k, c in checks.items()},
        source={k: c.source for k, c in checks.items()},
    )
    return HazmatRules(routing=params, check=check, checks=checks,
                       rows={**rows, **cparams})
