"""geo.protection: construction sites and machine positions against the protection zones,
exact at every boundary (Pipeline Protection Law Arts 30, 32, 33, 35)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.errors import CRSError
from geo.protection import check_construction, check_positions, held_areas, prepare_zones
from layers.protection_rules import load_protection_rules

E0, N0 = 500_000.0, 3_850_000.0
CRS = 4548
ON = dt.date(2026, 12, 7)
RULES = load_protection_rules()


def _pipes() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["P-1", "P-U"], "kind": ["long_distance", "urban_gas"],
         "diameter_mm": [610.0, 200.0], "status": ["in_service", "in_service"]},
        geometry=[shapely.LineString([(E0, N0), (E0 + 2000, N0)]),
                  shapely.LineString([(E0, N0 + 5000), (E0 + 2000, N0 + 5000)])], crs=CRS)


def _facilities() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["F-V", "F-R", "F-T"], "kind": ["valve", "river_crossing", "tunnel"],
         "pipeline_id": ["P-1", "P-1", None]},
        geometry=[shapely.Point(E0 + 8000, N0), shapely.Point(E0 + 12000, N0),
                  shapely.LineString([(E0 + 20000, N0), (E0 + 21000, N0)])], crs=CRS)


def _sites(rows: list[dict[str, object]]) -> gpd.GeoDataFrame:
    geoms = [r.pop("geometry") for r in rows]
    for r in rows:
        r.setdefault("status", "active")
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS)


def _at(dy: float, x: float = 1000.0) -> shapely.Point:
    return shapely.Point(E0 + x, N0 + dy)


def _check(rows: list[dict[str, object]], on: dt.date = ON, rules=RULES) -> gpd.GeoDataFrame:
    return check_construction(_sites(rows), _pipes(), _facilities(), rules=rules, on=on)


def _by_site(f: gpd.GeoDataFrame) -> dict[str, tuple[str, str, str]]:
    return {r.feature_id: (r.kind, r.severity, r.rule_id) for r in f.itertuples()}


VALID = {"permit_no": "许-1", "permit_from": dt.date(2026, 1, 1),
         "permit_to": dt.date(2026, 12, 31)}


def test_art30_boundary_4_99_5_00_5_01() -> None:
    f = _check([
        {"id": "A", "work": "excavation", "geometry": _at(4.99), **VALID},
        {"id": "B", "work": "excavation", "geometry": _at(-5.0), **VALID},
        {"id": "C", "work": "excavation", "geometry": _at(5.01), **VALID},
        {"id": "D", "work": "excavation", "geometry": _at(5.01)},
        {"id": "E", "work": "building", "geometry": _at(5.01)},
    ])
    assert _by_site(f) == {
        "A": ("construction_forbidden", "critical", "ppl_art30_forbidden"),
        "B": ("construction_forbidden", "critical", "ppl_art30_forbidden"),
        "D": ("construction_no_permit", "high", "ppl_art35_3_line"),
    }
    a = f.set_index("feature_id").loc["A"]
    assert (a.distance_m, a.required_m, a.chainage_from_m, a.station) == (
        4.99, 5.0, 1000.0, "K1+000.0")
    assert (a.other_layer, a.other_id, a.pipeline_id, a.clause) == (
        "pipelines", "P-1", "P-1", "Art 30")
    assert a.message_en == ("construction site A (excavation) is 4.99 m from pipeline P-1 "
                            "centre line, within 5 m: excavation is forbidden there (Art 30)")
    assert a.message_zh.startswith("第三方施工A(开挖)距管道P-1中心线4.99米,在5米范围内:禁止开挖作业")
    assert a.finding_id == "construction_forbidden:A"
    d = f.set_index("feature_id").loc["D"]
    assert d.message_en == ("construction site D (excavation) is 5.01 m from pipeline P-1 "
                            "centre line, within 200 m: needs a permit (Art 35(3)); none "
                            "recorded")
    assert d.rules_matched == "ppl_art35_3_line"


def test_art35_2_and_35_3_boundaries() -> None:
    f = _check([
        {"id": "R1", "work": "road", "geometry": _at(49.99)},
        {"id": "R2", "work": "road", "geometry": _at(50.01)},
        {"id": "K1", "work": "cable", "geometry": _at(-49.99)},
        {"id": "B1", "work": "blasting", "geometry": _at(199.99)},
        {"id": "B2", "work": "blasting", "geometry": _at(200.01)},
        {"id": "S1", "work": "seismic", "geometry": _at(-199.99)},
        {"id": "X1", "work": "crossing", "geometry": _at(49.99)},
        {"id": "X2", "work": "crossing", "geometry": _at(50.01)},
    ])
    assert _by_site(f) == {
        "R1": ("construction_no_permit", "high", "ppl_art35_2_line"),
        "K1": ("construction_no_permit", "high", "ppl_art35_2_line"),
        "B1": ("construction_no_permit", "high", "ppl_art35_3_line"),
        "S1": ("construction_no_permit", "high", "ppl_art35_3_line"),
        "X1": ("construction_no_permit", "high", "ppl_art35_1_crossing"),
    }


def test_permit_dates_are_inclusive() -> None:
    base = {"work": "drilling", "permit_no": "许-9"}
    f = _check([
        {"id": "exp", **base, "permit_to": dt.date(2026, 12, 6), "geometry": _at(100)},
        {"id": "last", **base, "permit_to": dt.date(2026, 12, 7), "geometry": _at(100)},
        {"id": "first", **base, "permit_from": dt.date(2026, 12, 7), "geometry": _at(100)},
        {"id": "early", **base, "permit_from": dt.date(2026, 12, 8), "geometry": _at(100)},
        {"id": "open", **base, "geometry": _at(100)},
        {"id": "plan", **base, "status": "planned", "permit_from": dt.date(2027, 1, 1),
         "geometry": _at(100)},
        {"id": "plan0", "work": "drilling", "status": "planned", "geometry": _at(100)},
        {"id": "done", "work": "drilling", "status": "finished", "geometry": _at(1)},
    ])
    assert _by_site(f) == {
        "exp": ("construction_permit_expired", "high", "ppl_art35_3_line"),
        "early": ("construction_permit_not_yet_valid", "high", "ppl_art35_3_line"),
        "plan0": ("construction_no_permit", "high", "ppl_art35_3_line"),
    }
    e = f.set_index("feature_id")
    assert e.loc["exp", "message_en"].endswith("needs a permit (Art 35(3)); permit 许-9 "
                                               "expired after 2026-12-06")
    assert e.loc["early", "message_en"].endswith("permit 许-9 is valid only from 2026-12-08")
    assert e.loc["exp", "permit_state"] == "expired"
    # the day before / the day of / the day after a permit's last day
    last = [{"id": "L", **base, "permit_to": dt.date(2026, 12, 7), "geometry": _at(100)}]
    states = [_check([dict(r) for r in last], on=day)["permit_state"].tolist()
              for day in (dt.date(2026, 12, 6), ON, dt.date(2026, 12, 8))]
    assert states == [[], [], ["expired"]]


def test_facility_river_crossing_and_tunnel_zones() -> None:
    f = _check([
        {"id": "V1", "work": "road", "geometry": _at(99.99, 8000)},
        {"id": "V2", "work": "road", "geometry": _at(100.01, 8000)},
        {"id": "V3", "work": "blasting", "geometry": _at(499.99, 8000)},
        {"id": "V4", "work": "blasting", "geometry": _at(500.01, 8000)},
        {"id": "D1", "work": "dredging", "geometry": _at(499.99, 12000)},
        {"id": "D2", "work": "dredging", "geometry": _at(500.01, 12000)},
        {"id": "D3", "work": "dredging", "geometry": _at(100, 12000), **VALID},
        {"id": "T1", "work": "mining", "geometry": _at(999.99, 20500)},
        {"id": "T2", "work": "mining", "geometry": _at(1000.01, 20500)},
    ])
    assert _by_site(f) == {
        "V1": ("construction_no_permit", "high", "ppl_art35_2_facility"),
        "V3": ("construction_no_permit", "high", "ppl_art35_3_facility"),
        "D1": ("construction_forbidden", "critical", "ppl_art32_river_crossing"),
        "D3": ("construction_forbidden", "critical", "ppl_art32_river_crossing"),
        "T1": ("construction_forbidden", "critical", "ppl_art33_tunnel"),
    }
    v1 = f.set_index("feature_id").loc["V1"]
    assert (v1.other_layer, v1.other_id, v1.pipeline_id, v1.chainage_from_m) == (
        "pipeline_facilities", "F-V", "P-1", 2000.0)  # past the line's end: its last metre
    assert v1.message_en.startswith("construction site V1 (road) is 99.99 m from facility F-V "
                                    "(valve), within 100 m")
    assert pd.isna(f.set_index("feature_id").loc["T1"].pipeline_id)


def test_polygon_crossing_the_line_needs_a_permit_and_forbidden_wins() -> None:
    box = shapely.box(E0 + 500, N0 - 20, E0 + 540, N0 + 20)
    f = _check([
        {"id": "P1", "work": "other", "geometry": box},
        {"id": "P2", "work": "other", "geometry": shapely.box(E0 + 500, N0 + 0.01, E0 + 540,
                                                              N0 + 20)},
        {"id": "P3", "work": "building", "geometry": box, **VALID},
    ])
    assert _by_site(f) == {
        "P1": ("construction_no_permit", "high", "ppl_art35_1_any_crossing"),
        "P3": ("construction_forbidden", "critical", "ppl_art30_forbidden"),
    }
    p1 = f.set_index("feature_id").loc["P1"]
    assert (p1.chainage_from_m, p1.chainage_to_m, p1.distance_m) == (500.0, 540.0, 0.0)
    # P3's permit covers the crossing; no permit covers a building in the 5 m corridor
    assert f.set_index("feature_id").loc["P3"].rules_matched == "ppl_art30_forbidden"
    assert f.set_index("feature_id").loc["P1"].rules_matched == "ppl_art35_1_any_crossing"


def test_urban_gas_rows_are_inactive_until_a_district_sets_them(tmp_path: Path) -> None:
    # 0.59 m from the centre line: 0.49 m from the wall of a 200 mm main
    near = [{"id": "U1", "work": "piling", "geometry": shapely.Point(E0 + 1000, N0 + 5000.59)}]
    assert _check([dict(r) for r in near]).empty
    f = tmp_path / "district.toml"
    f.write_text('[[protection_zone]]\nid = "urban_gas_protection_range"\nwithin_m = 0.5\n'
                 'source = "枣庄市燃气设施保护办法 第十条"\nconfidence = "LOCAL"\n',
                 encoding="utf-8")
    rules = load_protection_rules(f)
    got = _check([dict(r) for r in near], rules=rules)
    assert _by_site(got) == {"U1": ("construction_forbidden", "critical",
                                    "urban_gas_protection_range")}
    assert got.loc[0, "required_m"] == 0.6 and got.loc[0, "distance_m"] == 0.59
    assert got.loc[0, "rule_source"] == "枣庄市燃气设施保护办法 第十条"
    far = [{"id": "U2", "work": "piling", "geometry": shapely.Point(E0 + 1000, N0 + 5000.61)}]
    assert _check(far, rules=rules).empty


def test_lonlat_input_is_refused() -> None:
    s = _sites([{"id": "A", "work": "road", "geometry": shapely.Point(117.2, 34.8)}]).set_crs(
        4490, allow_override=True)
    with pytest.raises(CRSError, match="construction_sites is in EPSG:4490"):
        check_construction(s, _pipes(), None, rules=RULES, on=ON)


# --- machine positions ----------------------------------------------------------------------
def _positions(zones, held, rows: list[tuple[float, float, str, dt.date]]):
    x = np.array([E0 + r[0] for r in rows])
    y = np.array([N0 + r[1] for r in rows])
    work = [r[2] for r in rows]
    day = np.array([r[3].toordinal() for r in rows])
    a = check_positions(zones, held, x=x, y=y, work=work, day=day)
    return {int(p): zones.rules[r].id for p, r in zip(a["position"], a["rule"], strict=True)}


def test_positions_boundaries_and_held_permits() -> None:
    zones = prepare_zones(_pipes(), _facilities(), rules=RULES)
    site = _sites([
        {"id": "S1", "work": "excavation", "geometry": shapely.box(E0 + 300, N0 + 20, E0 + 400,
                                                                   N0 + 120), **VALID},
        {"id": "S2", "work": "drilling", "geometry": _at(100, 600), **VALID},  # a point site
        {"id": "S3", "work": "blasting", "geometry": shapely.box(E0 + 700, N0 + 20, E0 + 800,
                                                                 N0 + 120), **VALID,
         "status": "planned"},
    ])
    held = held_areas(site, zones)
    late = dt.date(2027, 1, 1)
    got = _positions(zones, held, [
        (1000, 4.99, "excavation", ON),     # 0 forbidden
        (1000, 5.01, "excavation", ON),     # 1 needs a permit, none
        (350, 50, "excavation", ON),        # 2 inside S1, permit valid: no alert
        (350, 50, "excavation", late),      # 3 S1's permit expired by then
        (350, 50, "blasting", ON),          # 4 S1 is not a blasting site
        (350, 4.0, "excavation", ON),       # 5 forbidden even beside a permitted site
        (600, 149.99, "drilling", ON),      # 6 within 50 m of the point site S2
        (600, 150.01, "drilling", ON),      # 7 just outside it
        (750, 50, "blasting", ON),          # 8 S3 only planned
        (1000, 200.01, "blasting", ON),     # 9 outside every zone
        (8000, 99.99, "挖掘机", ON),         # 10 an excavator near the valve: unknown kind
        (1000, 0.0, "other", ON),           # 11 on the centre line: any work needs a permit
    ])
    assert got == {0: "ppl_art30_forbidden", 1: "ppl_art35_3_line", 3: "ppl_art35_3_line",
                   4: "ppl_art35_3_line", 5: "ppl_art30_forbidden", 7: "ppl_art35_3_line",
                   8: "ppl_art35_3_line", 11: "ppl_art35_1_any_crossing"}


def test_positions_equal_site_check_distances() -> None:
    """Points checked as machines and as sites give the same rule and distance."""
    zones = prepare_zones(_pipes(), _facilities(), rules=RULES)
    rng = np.random.default_rng(5)
    x = rng.uniform(-300, 22000, 3000)
    y = rng.uniform(-1100, 1100, 3000)
    kinds = np.array(["excavation", "road", "blasting", "dredging", "mining"])[
        rng.integers(0, 5, 3000)]
    a = check_positions(zones, held_areas(None, zones), x=E0 + x, y=N0 + y, work=kinds,
                        day=np.full(3000, ON.toordinal()))
    sites = gpd.GeoDataFrame({"id": [f"S{i}" for i in range(3000)], "work": kinds,
                              "status": "active"},
                             geometry=shapely.points(E0 + x, N0 + y), crs=CRS)
    f = check_construction(sites, _pipes(), _facilities(), rules=RULES, on=ON)
    assert len(a["position"]) == len(f) > 200
    want = dict(zip(f["feature_id"], zip(f["rule_id"], f["distance_m"], strict=True),
                    strict=True))
    got = {f"S{p}": (zones.rules[r].id, round(float(d), 3))
           for p, r, d in zip(a["position"], a["rule"], a["distance_m"], strict=True)}
    assert got == want
