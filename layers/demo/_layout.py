"""Fixed layout of the demo district, in local metres.

Local (x, y) = EPSG:4548 (E − E0, N − N0). The core street grid (44 × 40 blocks of 150 m)
spans x 0–6600, y 0–6000 and is centred on 117.25°E, 34.80°N; ``--scale`` grows the grid to
the east and north. A 3 km rural margin surrounds the grid. Block (i, j) is the cell
[i·B, (i+1)·B] × [j·B, (j+1)·B]; grid line k is arterial when k % 8 == 0, collector when
k % 4 == 0, else local.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CORE_NX", "CORE_NY", "E0", "MARGIN", "N0", "B", "Grid"]

E0 = 519577.0  # EPSG:4548 easting of local x = 0 (core centre 3300 m east = 117.25°E)
N0 = 3849434.0  # EPSG:4548 northing of local y = 0 (core centre 3000 m north = 34.80°N)
B = 150.0  # street-block pitch (GB 50016 7.1.1: road centre lines <= 160 m apart)
MARGIN = 3000.0  # rural margin around the street grid
CORE_NX, CORE_NY = 44, 40

# road class per grid-line rank: (class, width_m, lanes, speed_kmh)
LINE_CLASSES = {
    "arterial": (40.0, 6, 60.0),
    "collector": (24.0, 4, 50.0),
    "local": (14.0, 2, 30.0),
}
RIVER_ROW = 12  # block row j = 12 is the river (y 1800–1950)

# special block ranges (inclusive i0, i1, j0, j1)
COMPOUND_COLS = range(1, 7)  # 6 columns × 5 rows = 30 old compounds
COMPOUND_ROWS = range(17, 22)
CITY_CENTRE = (16, 25, 18, 27)
WATER_BLOCKS = (36, 39, 30, 33)
WATER_ZONE = (5300.0, 4400.0, 6100.0, 5200.0)  # Z-01 bbox
RESERVOIR = (5420.0, 4520.0, 5980.0, 5080.0)
INDUSTRIAL = (34, 43, 0, 11)
AVOID_BLOCKS = (10, 12, 24, 26)
OIL_DEPOT = (32, 33, 4, 5)
DEPOTS = {"D1": (40, 3), "D2": (41, 37)}
GAS_STATION = (12, 14)
SCHOOLS = [(5, 7), (9, 3), (14, 7), (22, 13), (24, 15), (10, 29), (30, 22), (33, 26),
           (12, 35), (24, 36), (6, 36), (42, 20)]  # fmt: skip
HOSPITALS = [(11, 25), (26, 10), (35, 17)]
MARKETS = [(18, 20), (3, 23), (26, 33)]
SQUARE = (20, 22)
STADIUM = (23, 31)
FIRE_STATIONS = {"FS-01": (10, 22), "FS-02": (31, 9)}
HYDRANT_GAP = {"h": [(12, 20), (13, 20)], "v": [(13, 19), (13, 20)]}  # (i, j) segments


def line_class(k: np.ndarray) -> np.ndarray:
    """Road class of grid lines ``k``."""
    k = np.asarray(k)
    return np.where(k % 8 == 0, "arterial", np.where(k % 4 == 0, "collector", "local"))


def half_width(k: np.ndarray) -> np.ndarray:
    """Half carriageway+verge width of grid lines ``k`` (m)."""
    k = np.asarray(k)
    return np.where(k % 8 == 0, 20.0, np.where(k % 4 == 0, 12.0, 7.0))


@dataclass
class Grid:
    """The street grid for one scale."""

    nx: int
    ny: int
    b: float = B
    hw_v: np.ndarray = field(init=False)  # half widths of vertical lines x = i·B
    hw_h: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.hw_v = half_width(np.arange(self.nx + 1))
        self.hw_h = half_width(np.arange(self.ny + 1))

    @classmethod
    def for_scale(cls, scale: float) -> Grid:
        f = math.sqrt(max(scale, 1.0))
        return cls(max(CORE_NX, round(CORE_NX * f)), max(CORE_NY, round(CORE_NY * f)))

    @property
    def width(self) -> float:
        return self.nx * self.b

    @property
    def height(self) -> float:
        return self.ny * self.b

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return (-MARGIN, -MARGIN, self.width + MARGIN, self.height + MARGIN)

    def interior(self, i: np.ndarray, j: np.ndarray, setback: float = 5.0):
        """Buildable interior (x0, y0, x1, y1) of blocks (i, j)."""
        i = np.asarray(i)
        j = np.asarray(j)
        return (
            i * self.b + self.hw_v[i] + setback,
            j * self.b + self.hw_h[j] + setback,
            (i + 1) * self.b - self.hw_v[i + 1] - setback,
            (j + 1) * self.b - self.hw_h[j + 1] - setback,
        )
