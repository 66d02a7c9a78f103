"""GB 50028-2006 Table 6.1.6 pressure classes of urban gas mains.

A pure lookup used by the setback rules (:mod:`geo.pipelines`); :mod:`layers.schema`
re-exports it for validation and the maps' styling. Standard library only.

Example
-------
>>> pressure_class(0.2), pressure_class(0.21), pressure_class(4.5)
('medium_b', 'medium_a', 'above_high_a')
"""

from __future__ import annotations

__all__ = ["PRESSURE_CLASSES", "pressure_class"]

# GB 50028-2006 Table 6.1.6 pressure classes (upper bound inclusive, MPa gauge).
PRESSURE_CLASSES: tuple[tuple[str, float], ...] = (
    ("low", 0.01),  # < 0.01 (strict)
    ("medium_b", 0.2),
    ("medium_a", 0.4),
    ("sub_high_b", 0.8),
    ("sub_high_a", 1.6),
    ("high_b", 2.5),
    ("high_a", 4.0),
)


def pressure_class(pressure_mpa: float) -> str:
    """GB 50028-2006 Table 6.1.6 pressure class of an urban gas main.

    ``low`` is P < 0.01 MPa; every other class includes its upper bound. Above 4.0 MPa the
    main is outside GB 50028 and ``"above_high_a"`` is returned.
    """
    if pressure_mpa < 0.01:
        return "low"
    for name, upper in PRESSURE_CLASSES[1:]:
        if pressure_mpa <= upper:
            return name
    return "above_high_a"
