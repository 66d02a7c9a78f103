"""Fire-lane coverage rules: load ``layers/rule_tables/fire.toml`` and a district's overrides.

The TOML file is the only place the numbers live; :class:`FireRules` (defined in
:mod:`geo.fire_params`, re-exported here) carries them (and the clause each one comes from)
into the ``geo`` fire analyses as an argument.

Example
-------
>>> rules = load_fire_rules()                       # packaged defaults
>>> rules.lane_min_width_m, rules.source("lane_min_width_m")
(4.0, 'GB 50016-2014(2018年版) 7.1.8')
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from geo.fire_params import FireRules, RuleRow
from layers.errors import RuleError
from layers.rules import load_rules

__all__ = ["DEFAULT_FIRE_RULES_PATH", "FireRules", "RuleRow", "load_fire_rules"]

DEFAULT_FIRE_RULES_PATH = Path(__file__).with_name("rule_tables") / "fire.toml"

_RULE_FIELDS = {f.name: f for f in dataclasses.fields(FireRules)
                if f.name not in ("engine_speeds_kmh", "rows")}
_TABLES = ("fire_lane", "fire_dead_end", "fire_reach", "fire_hydrant", "fire_service_area",
           "fire_risk")
_SPEED_TABLE = "fire_engine_speed"


def _coerce(key: str, value: Any, where: str) -> Any:
    ftype = str(_RULE_FIELDS[key].type)
    if ftype == "bool":
        if not isinstance(value, bool):
            raise RuleError(f"{where}: {key} value is {value!r}; expected true or false")
        return value
    if ftype == "str":
        if key == "hydrant_distance" and value not in ("straight", "network"):
            raise RuleError(f"{where}: hydrant_distance value is {value!r}; expected "
                            "'straight' or 'network'")
        return str(value)
    if ftype == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RuleError(f"{where}: {key} value is {value!r}; expected a list of texts")
        return tuple(value)
    if ftype.startswith("tuple"):
        if not isinstance(value, list) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value):
            raise RuleError(f"{where}: {key} value is {value!r}; expected a list of numbers > 0")
        return tuple(float(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{where}: {key} value is {value!r}; expected a number")
    if value < 0 or (value == 0 and not key.startswith("risk_weight")):
        raise RuleError(f"{where}: {key} value is {value!r}; expected a number > 0")
    return int(value) if ftype == "int" else float(value)


def load_fire_rules(path: str | os.PathLike[str] | None = None) -> FireRules:
    """Load ``layers/rule_tables/fire.toml``, then the rows a district file ``path`` overrides.

    Uses the generic row loader :func:`layers.rules.load_rules` (tables ``fire_lane``,
    ``fire_dead_end``, ``fire_reach``, ``fire_hydrant``, ``fire_service_area``, ``fire_risk``
    with one row per rule ``id`` holding a ``value``; ``fire_engine_speed`` rows per road class
    with ``kmh``). Missing or malformed rules raise :class:`RuleError`.
    """
    ruleset = load_rules("fire", override=path)
    rows: dict[str, RuleRow] = {}
    problems: list[str] = []
    for table in _TABLES:
        for r in ruleset.rows(table):
            where = f"{r.origin}: [[{table}]] id {r.id!r}"
            if r.id not in _RULE_FIELDS:
                problems.append(f"{where}: unknown rule; expected one of "
                                + ", ".join(sorted(_RULE_FIELDS)))
                continue
            if "value" not in r:
                problems.append(f"{where}: value is missing")
                continue
            try:
                value = _coerce(r.id, r["value"], where)
            except RuleError as exc:
                problems.append(str(exc))
                continue
            rows[r.id] = RuleRow(key=r.id, value=value, unit=str(r.get("unit", "")),
                                 source=r.source, confidence=r.confidence,
                                 note=str(r.get("note", "")))
    missing = sorted(set(_RULE_FIELDS) - set(rows))
    if missing:
        problems.append(f"missing or inactive fire rule(s): {', '.join(missing)}")
    speeds: dict[str, float] = {}
    for r in ruleset.rows(_SPEED_TABLE):
        kmh = r.get("kmh")
        if isinstance(kmh, bool) or not isinstance(kmh, (int, float)) or kmh <= 0:
            problems.append(f"{r.origin}: [[{_SPEED_TABLE}]] id {r.id!r}: kmh is {kmh!r}; "
                            "expected a number > 0")
            continue
        speeds[r.id] = float(kmh)
    if not problems and sum(rows[k].value for k in rows if k.startswith("risk_weight")) <= 0:
        problems.append("the risk_weight_* rules add up to 0; expected a positive sum")
    if problems:
        raise RuleError(f"{len(problems)} problem(s) in the fire rules:\n"
                        + "\n".join(f"  - {p}" for p in problems))
    values = {k: rows[k].value for k in _RULE_FIELDS}
    return FireRules(**values, engine_speeds_kmh=speeds, rows=rows)
