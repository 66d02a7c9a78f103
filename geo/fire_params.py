"""Fire-coverage rule values as ``geo`` takes them: :class:`FireRules` and :class:`RuleRow`.

``geo`` owns these types; :func:`layers.fire_rules.load_fire_rules` parses
``layers/rule_tables/fire.toml`` (and a district's overrides) into them. This module imports
nothing but the standard library, so a rule loader can use it without loading the analyses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FireRules", "RuleRow"]


@dataclass(frozen=True)
class RuleRow:
    """One rule row: value, unit, source (standard and clause), confidence tag, note."""

    key: str
    value: Any
    unit: str
    source: str
    confidence: str
    note: str = ""


@dataclass(frozen=True)
class FireRules:
    """The fire-coverage rule values (see ``layers/rule_tables/fire.toml`` for each row's source)."""

    lane_min_width_m: float
    lane_min_height_m: float
    lane_obstruction: bool
    lane_marking: bool
    dead_end_max_m: float
    turnaround_min_m: float
    turnaround_high_rise_m: float
    turnaround_heavy_m: float
    heavy_engines: bool
    high_rise_min_floors: int
    turnaround_search_m: float
    station_reach_s: float
    station_turnout_s: float
    micro_reach_s: float
    micro_turnout_s: float
    micro_speed_kmh: float
    micro_min_width_m: float
    micro_pass_obstructed: bool
    hose_m: float
    lane_speed_kmh: float
    engine_speed_factor: float
    snap_m: float
    station_snap_m: float
    hydrant_radius_m: float
    hydrant_spacing_m: float
    hydrant_snap_m: float
    hydrant_road_classes: tuple[str, ...]
    hydrant_distance: str
    service_area_minutes: tuple[float, ...]
    service_area_buffer_m: float
    risk_weight_engine: float
    risk_weight_micro: float
    risk_weight_hydrant: float
    risk_weight_lanes: float
    risk_weight_station: float
    engine_speeds_kmh: Mapping[str, float]
    rows: Mapping[str, RuleRow] = field(default_factory=dict, repr=False, compare=False)

    def source(self, key: str) -> str:
        """The source (standard and clause) of rule ``key``."""
        row = self.rows.get(key)
        return row.source if row is not None else "riskmap default"

    def confidence(self, key: str) -> str:
        """The confidence tag of rule ``key`` (``LOCAL`` when it has no row)."""
        row = self.rows.get(key)
        return row.confidence if row is not None else "LOCAL"

    def replace(self, **values: Any) -> FireRules:
        """A copy with some values changed (sources keep their text)."""
        return dataclasses.replace(self, **values)
