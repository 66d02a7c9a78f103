"""Rule tables: numeric rules as data files citing their standard, with district overrides.

Default rule files ship as package data in ``layers/rule_tables/*.toml``. Each file holds tables of
rows (TOML arrays of tables, ``[[setback]]``); every row has an ``id`` (unique in its table),
a ``source`` (standard and clause) and a ``confidence`` tag::

    C2 · C1 · PARTIAL · CONFLICT · LOCAL · UNCONFIRMED

``UNCONFIRMED`` rows are kept for reference and are **inactive** unless a file sets
``active = true``. A district passes its own file (``--rules FILE``): a row whose id exists
overrides the default row field by field, a new id adds a row (it must carry ``source`` and
``confidence``), and rows the district omits fall back to the defaults.

Example
-------
>>> rules = load_rules("pipelines")
>>> rules.get("occupancy", "ppl_art30_corridor")["half_width_m"]
5.0
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from layers.errors import RuleError

__all__ = [
    "CONFIDENCES",
    "RULES_DIR",
    "Rule",
    "RuleSet",
    "default_rule_files",
    "load_rules",
]

RULES_DIR = Path(__file__).with_name("rule_tables")
CONFIDENCES = ("C2", "C1", "PARTIAL", "CONFLICT", "LOCAL", "UNCONFIRMED")
_SEVERITIES = ("critical", "high", "medium", "low", "info")
_RESERVED = ("id", "source", "confidence", "active")


@dataclass(frozen=True)
class Rule(Mapping[str, Any]):
    """One row of a rule table; reads like a read-only mapping of its fields.

    ``origin`` is the file the row (or its last override) came from.
    """

    table: str
    id: str
    source: str
    confidence: str
    active: bool
    origin: str
    fields: Mapping[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __hash__(self) -> int:
        return hash((self.table, self.id, self.origin))

    @property
    def label(self) -> str:
        """``table/id [confidence]`` for logs and summaries."""
        return f"{self.table}/{self.id} [{self.confidence}]"


class RuleSet:
    """Rule tables by name; rows keep file order (defaults first, then added rows)."""

    def __init__(self, tables: Mapping[str, Iterable[Rule]], files: Iterable[str]) -> None:
        self._tables = {name: tuple(rows) for name, rows in tables.items()}
        self.files = tuple(files)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self._tables)

    def rows(self, table: str, *, include_inactive: bool = False) -> tuple[Rule, ...]:
        """Rows of ``table`` (active ones unless ``include_inactive``)."""
        if table not in self._tables:
            raise RuleError(f"no rule table {table!r}; loaded tables: {', '.join(self._tables)}")
        rows = self._tables[table]
        return rows if include_inactive else tuple(r for r in rows if r.active)

    def get(self, table: str, rule_id: str) -> Rule:
        """The row ``rule_id`` of ``table`` (active or not)."""
        for r in self.rows(table, include_inactive=True):
            if r.id == rule_id:
                return r
        raise RuleError(f"rule table {table!r} has no row {rule_id!r}")

    def one(self, table: str) -> Rule:
        """The single active row of a one-row table (e.g. the PIR coefficient)."""
        rows = self.rows(table)
        if len(rows) != 1:
            raise RuleError(f"rule table {table!r} must have exactly one active row; "
                            f"found {len(rows)}: {', '.join(r.id for r in rows) or 'none'}")
        return rows[0]

    def inactive(self) -> tuple[Rule, ...]:
        """Every inactive row (UNCONFIRMED rows not switched on, rows switched off)."""
        return tuple(r for rows in self._tables.values() for r in rows if not r.active)

    def __repr__(self) -> str:
        counts = ", ".join(f"{t}={len(r)}" for t, r in self._tables.items())
        return f"RuleSet({counts})"


# Per-table field checks: name -> (kind, required). kind: "num", "num+", "str", "strs",
# a tuple of allowed strings, or "int".
_TABLE_FIELDS: dict[str, dict[str, tuple[Any, bool]]] = {
    "occupancy": {
        "pipeline_kind": (("long_distance", "urban_gas"), True),
        "measure_from": (("centre_line", "pipe_wall"), True),
        "half_width_m": ("num+", True),
        "severity": (_SEVERITIES, True),
    },
    "setback": {
        "pipeline_kind": (("long_distance", "urban_gas"), True),
        "required_m": ("num+", True),
        "measure_to": (("foundation", "outer_wall"), True),
        "severity": (_SEVERITIES, True),
        "min_wall_mm": ("num", False),
        "media": ("strs", False),
        "building_uses": ("strs", False),
        "pressure_class": ("str", False),
        "group": ("str", False),
    },
    "location_class": {
        "window_m": ("num+", True),
        "half_width_m": ("num+", True),
        "class2_min_households": ("num+", True),
        "class3_min_households": ("num+", True),
        "class4_min_households": ("num", True),
        "class4_min_floors": ("num+", True),
        "class4_min_share": ("num", True),
        "boundary_m": ("num", True),
    },
    "households": {"household_area_m2": ("num+", True), "residential_uses": ("strs", True),
                   "zero_uses": ("strs", True)},
    "pir": {"coefficient": ("num+", True)},
    "gas": {"grade": (("I", "II", "III"), True), "criterion": ("str", True),
            "radius_m": ("num+", False)},
    "oil": {"grade": (("I", "II", "III"), True), "criterion": ("str", True),
            "radius_m": ("num+", False)},
    "monitoring": {"year": ("int", True), "target": ("num", True),
                   "severity": (_SEVERITIES, True)},
}


def _check_value(kind: Any, value: Any) -> str | None:
    """Return what was expected when ``value`` does not fit ``kind``, else None."""
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "num":
        return None if is_num else "a number"
    if kind == "num+":
        return None if is_num and value > 0 else "a number > 0"
    if kind == "int":
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if kind == "str":
        return None if isinstance(value, str) else "a text"
    if kind == "strs":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "a list of texts"
    if isinstance(kind, tuple):
        return None if value in kind else "one of " + ", ".join(kind)
    return None


def _validate(rule: Rule, problems: list[str]) -> None:
    where = f"{rule.origin}: [[{rule.table}]] id {rule.id!r}"
    if not rule.source:
        problems.append(f"{where}: source is missing; expected the standard and clause")
    if rule.confidence not in CONFIDENCES:
        problems.append(f"{where}: confidence is {rule.confidence!r}; expected one of "
                        + ", ".join(CONFIDENCES))
    for name, (kind, required) in _TABLE_FIELDS.get(rule.table, {}).items():
        if name not in rule.fields:
            if required:
                problems.append(f"{where}: {name} is missing")
            continue
        expected = _check_value(kind, rule.fields[name])
        if expected:
            problems.append(f"{where}: {name} is {rule.fields[name]!r}; expected {expected}")


def _make_rule(table: str, row: Mapping[str, Any], origin: str) -> Rule:
    confidence = str(row.get("confidence", ""))
    active = row.get("active", confidence != "UNCONFIRMED")
    return Rule(
        table=table,
        id=str(row["id"]),
        source=str(row.get("source", "")),
        confidence=confidence,
        active=bool(active),
        origin=origin,
        fields=MappingProxyType(dict(row)),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RuleError(f"rule file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"rule file {path} is not valid TOML: {exc}") from None


def _rows_of(doc: Mapping[str, Any], origin: str, problems: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table, rows in doc.items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            problems.append(f"{origin}: {table!r} is not a table of rows; write rows as "
                            f"[[{table}]] with an id, source and confidence")
            continue
        seen: set[str] = set()
        for i, row in enumerate(rows):
            rid = row.get("id")
            if not isinstance(rid, str) or not rid:
                problems.append(f"{origin}: [[{table}]] row {i + 1} has no id")
                continue
            if rid in seen:
                problems.append(f"{origin}: [[{table}]] id {rid!r} appears twice")
                continue
            seen.add(rid)
            out.setdefault(table, []).append(row)
    return out


def default_rule_files() -> dict[str, Path]:
    """The shipped rule files by name (``pipelines`` → ``layers/rule_tables/pipelines.toml``)."""
    return {p.stem: p for p in sorted(RULES_DIR.glob("*.toml"))}


def load_rules(
    *names: str, override: str | os.PathLike[str] | None = None
) -> RuleSet:
    """Load the default rule files ``names`` and apply the district file ``override``.

    Parameters
    ----------
    names
        Stems of files in ``layers/rule_tables/`` in this row format (``"pipelines"``,
        ``"location_class"``, ``"hca"``); at least one.
    override
        A district rule file. Rows override default rows by (table, id) field by field; a new
        id adds a row; tables that belong to default files not loaded here are ignored.

    Raises
    ------
    RuleError
        Listing every problem found (unknown table, missing source, bad value …).
    """
    available = default_rule_files()
    wanted = list(names)
    if not wanted:
        raise RuleError("load_rules needs the names of the default rule files to load, "
                        f"e.g. 'pipelines'; available: {', '.join(available)}")
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise RuleError(f"no default rule file {', '.join(unknown)}; "
                        f"available: {', '.join(available)}")
    problems: list[str] = []
    merged: dict[str, dict[str, Rule]] = {}
    for name in wanted:
        path = available[name]
        for table, rows in _rows_of(_read_toml(path), path.name, problems).items():
            if table in merged:
                problems.append(f"{path.name}: table {table!r} is also defined in another "
                                "default rule file")
                continue
            merged[table] = {str(r["id"]): _make_rule(table, r, path.name) for r in rows}
    if override is not None:
        opath = Path(override)
        other_tables: set[str] = set()
        for name, path in available.items():
            if name not in wanted:
                other_tables.update(_read_toml(path))
        for table, rows in _rows_of(_read_toml(opath), str(opath), problems).items():
            if table not in merged:
                if table not in other_tables:
                    problems.append(f"{opath}: unknown rule table {table!r}; expected one of "
                                    + ", ".join(sorted(set(merged) | other_tables)))
                continue
            for row in rows:
                rid = str(row["id"])
                base = merged[table].get(rid)
                if base is None:
                    merged[table][rid] = _make_rule(table, row, str(opath))
                    continue
                fields = dict(base.fields)
                if "active" not in row and "confidence" in row:
                    fields.pop("active", None)  # re-derive from the new confidence
                fields.update(row)
                changed = any(k not in _RESERVED and base.fields.get(k) != v
                              for k, v in row.items())
                if changed and "source" not in row:
                    fields["source"] = f"{base.source} (overridden by {opath.name})"
                merged[table][rid] = _make_rule(table, fields, str(opath))
    for rows_by_id in merged.values():
        for rule in rows_by_id.values():
            _validate(rule, problems)
    if problems:
        raise RuleError(f"{len(problems)} problem(s) in the rule files:\n"
                        + "\n".join(f"  - {p}" for p in problems))
    files = [str(available[n]) for n in wanted] + ([str(override)] if override else [])
    return RuleSet({t: tuple(r.values()) for t, r in merged.items()}, files)
