"""Pipeline-protection rule values as ``geo`` takes them: :class:`ZoneRule` and
:class:`ProtectionRules`.

``geo`` owns these types; :func:`layers.protection_rules.load_protection_rules` parses
``layers/rule_tables/protection.toml`` (and a district's overrides) into them. Standard library
only, so the rule loader does not load the analyses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ProtectionRules", "ZoneRule"]


@dataclass(frozen=True)
class ZoneRule:
    """One protection zone: works ``action`` (forbidden | permit) within ``within_m`` of a
    reference.

    ``reference`` is ``line`` (the centre line of pipelines of ``pipeline_kind``; with
    ``measure_from = pipe_wall`` the outside diameter / 2 is added) or ``facility`` (the
    footprint of ``pipeline_facilities`` of ``facility_kinds``). ``works`` lists the kinds of
    work (``construction_sites.work``) it applies to; ``("*",)`` means every kind. A site or a
    machine is in the zone when its distance is <= the threshold (the edge belongs to the zone:
    以内/范围内 include the number).
    """

    id: str
    action: str
    reference: str
    works: tuple[str, ...]
    within_m: float
    severity: str
    source: str
    confidence: str
    clause: str
    name_zh: str
    name_en: str
    pipeline_kind: str = "long_distance"
    measure_from: str = "centre_line"
    facility_kinds: tuple[str, ...] = ()

    def applies_to(self, work: str) -> bool:
        """True when this rule covers work kind ``work``."""
        return "*" in self.works or work in self.works


@dataclass(frozen=True)
class ProtectionRules:
    """The active zone rules plus the parameters of the construction and position checks.

    ``point_site_radius_m``: a construction site stored as a point holds its permit within this
    distance of the point (machines of that site are covered there). ``machine_kinds`` maps
    machine names (excavator, 挖掘机 …) to the work kind they do.
    """

    zones: tuple[ZoneRule, ...]
    point_site_radius_m: float = 50.0
    machine_kinds: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
