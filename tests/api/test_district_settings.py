"""The district's rules and clock everywhere: one rules file changes the findings of the CLI,
the API, the served planner map and registry sync alike; times are read in the district zone
whatever the OS clock says."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time as time_mod
from datetime import UTC, datetime, time
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from shapely.geometry import LineString, box

from api.app import create_app
from api.cli import main
from api.district import District, rules_version
from api.service import AnalysisService
from api.settings import Settings
from layers.errors import InputFileError
from layers.store import GeoPackageStore
from tests.api.conftest import API_KEYS, auth

ROOT = Path(__file__).resolve().parents[2]
CRS = "EPSG:4548"
X0, Y0 = 500000.0, 3850000.0
# clear distances of B-1 … B-5 to the sub-high-A main: 13.5 m flags B-1, B-2; 20 m adds B-3, B-4
GAPS = (8.0, 12.0, 16.0, 18.0, 25.0)
DEFAULT_IDS = {"setback:G-1:B-1", "setback:G-1:B-2"}
DISTRICT_IDS = DEFAULT_IDS | {"setback:G-1:B-3", "setback:G-1:B-4"}
DISTRICT_RULES = """\
# one district file for every domain: each loader reads the tables it knows
[[setback]]
id = "gb50028_sub_high_a_wall"
required_m = 20.0
source = "District decision 2026-07 (setback widened)"

[[fire_lane]]
id = "lane_min_width_m"
value = 4.5

[[hazmat_routing]]
id = "snap_max_m"
value = 300.0
"""


def _gas_store(path: Path) -> GeoPackageStore:
    pipes = gpd.GeoDataFrame([{
        "id": "G-1", "name": "sub-high-A main", "medium": "natural_gas", "kind": "urban_gas",
        "pressure_mpa": 1.2, "diameter_mm": 323.9, "status": "in_service",
        "geometry": LineString([(X0, Y0), (X0 + 400, Y0)])}], crs=CRS)
    blds = gpd.GeoDataFrame([
        {"id": f"B-{i + 1}", "use": "residential", "floors": 3, "households": 12,
         "geometry": box(X0 + 20 + 60 * i, Y0 + d, X0 + 35 + 60 * i, Y0 + d + 12)}
        for i, d in enumerate(GAPS)], crs=CRS)
    st = GeoPackageStore(path)
    st.write({"pipelines": pipes, "buildings": blds})
    return st


@pytest.fixture()
def gas(tmp_path: Path) -> tuple[GeoPackageStore, Path]:
    rules = tmp_path / "district.toml"
    rules.write_text(DISTRICT_RULES, encoding="utf-8")
    return _gas_store(tmp_path / "gas.gpkg"), rules


# -- one rules file, every domain ---------------------------------------------------------------
def test_one_district_file_overrides_every_domain(gas):
    store, rules = gas
    svc = AnalysisService(store, District(rules))
    assert svc.pipeline_rules().get("setback", "gb50028_sub_high_a_wall")["required_m"] == 20.0
    assert svc.fire_rules().lane_min_width_m == 4.5
    assert svc.hazmat_rules().routing.snap_max_m == 300.0
    shipped = AnalysisService(store, District())
    assert shipped.fire_rules().lane_min_width_m == 4.0
    assert shipped.hazmat_rules().routing.snap_max_m == 500.0


def test_planner_setback_lines_follow_the_district_rules(gas, tmp_path):
    """The served planner map and `riskmap map planner` draw the required setback line of the
    district's row (20 m), not the shipped one (13.5 m) — the check and the map agree."""
    store, rules = gas
    shipped = make_district_client(store.path, None).get("/maps/planner",
                                                         headers=auth("planner")).text
    assert "间距 13.5m" in shipped and "间距 20m" not in shipped
    served = make_district_client(store.path, rules).get("/maps/planner",
                                                         headers=auth("planner")).text
    assert "间距 20m" in served and "间距 13.5m" not in served
    out = tmp_path / "planner.html"
    assert main(["map", "planner", "--store", str(store.path), "--rules", str(rules),
                 "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "间距 20m" in html and "间距 13.5m" not in html


def make_district_client(store_path: Path, rules: Path | None) -> TestClient:
    return TestClient(create_app(Settings(store=str(store_path), api_keys=API_KEYS,
                                          rules=rules)))


def test_rules_version_is_a_hash_of_the_effective_files(tmp_path):
    f = tmp_path / "d.toml"
    f.write_text(DISTRICT_RULES, encoding="utf-8")
    base, with_file = rules_version(None), rules_version(f)
    assert len(base) == len(with_file) == 12 and base != with_file
    assert all(c in "0123456789abcdef" for c in with_file)
    f.write_text(DISTRICT_RULES.replace("20.0", "21.0"), encoding="utf-8")
    os.utime(f, ns=(1, 1))  # a different stamp even within the same clock tick
    changed = rules_version(f)
    assert changed not in (base, with_file)
    assert District(f).rules_label == f"d.toml ({changed})"
    with pytest.raises(InputFileError, match=r"district rule file .*nope\.toml' does not exist"):
        District(tmp_path / "nope.toml")


def test_findings_follow_the_rules_version(gas):
    store, rules = gas
    ids = set(AnalysisService(store, District()).result("pipeline_findings")["finding_id"])
    assert ids == DEFAULT_IDS
    svc = AnalysisService(store, District(rules))
    assert set(svc.result("pipeline_findings")["finding_id"]) == DISTRICT_IDS
    rules.write_text(DISTRICT_RULES.replace("20.0", "17.0"), encoding="utf-8")
    os.utime(rules, ns=(2, 2))
    assert set(svc.result("pipeline_findings")["finding_id"]) == DEFAULT_IDS | {
        "setback:G-1:B-3"}


# -- the acceptance test: CLI, API, planner map, registry sync ------------------------------
def _cli_ids(store: Path, tmp: Path, *extra: str) -> set[str]:
    out = tmp / f"f{len(list(tmp.glob('f*.csv')))}.csv"
    assert main(["check", "pipelines", "--store", str(store), "--out", str(out), "--quiet",
                 *extra]) == 0
    with open(out, encoding="utf-8-sig") as fh:
        return {r["finding_id"] for r in csv.DictReader(fh)}


def _api_ids(c: TestClient) -> set[str]:
    r = c.get("/collections/pipeline_findings/items", headers=auth("planner"))
    assert r.status_code == 200, r.text
    return {f["properties"]["finding_id"] for f in r.json()["features"]}


def _map_ids(c: TestClient) -> set[str]:
    r = c.get("/maps/planner", headers=auth("planner"))
    assert r.status_code == 200, r.text
    return {i for i in DISTRICT_IDS if i in r.text}


def _synced(c: TestClient) -> set[str]:
    r = c.post("/registry/sync/pipeline_findings", headers=auth("admin"))
    assert r.status_code == 200, r.text
    r = c.get("/registry/hazards", params={"analysis": "pipeline_findings"},
              headers=auth("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    items = body["hazards"] if isinstance(body, dict) else body
    return {f"{h['kind']}:{h['other_id']}:{h['feature_id']}" for h in items}


def test_a_district_rules_file_gives_the_same_findings_everywhere(gas, tmp_path, capsys):
    store, rules = gas
    for rules_arg, expected in ((None, DEFAULT_IDS), (rules, DISTRICT_IDS)):
        copy = tmp_path / f"copy-{expected == DISTRICT_IDS}.gpkg"
        copy.write_bytes(Path(store.url).read_bytes())
        extra = ("--rules", str(rules_arg)) if rules_arg else ()
        assert _cli_ids(copy, tmp_path, *extra) == expected
        assert f"riskmap: rules {District(rules_arg).rules_label}" in capsys.readouterr().out
        settings = Settings(store=str(copy), api_keys=API_KEYS, rules=rules_arg)
        with TestClient(create_app(settings)) as c:
            assert _api_ids(c) == expected
            assert _map_ids(c) == expected
            assert _synced(c) == expected
            desc = c.get("/collections/pipeline_findings", headers=auth("planner")).json()[
                "description"]
            assert desc.endswith(f"Rules: {District(rules_arg).rules_label}.")
            r = c.get("/collections/pipeline_findings/items", headers=auth("planner"))
            assert r.headers["Riskmap-Rules"] == District(rules_arg).rules_version
            r = c.get("/collections/buildings/items", headers=auth("planner"))
            assert r.status_code == 200 and "Riskmap-Rules" not in r.headers
        # riskmap map: the exported planner map embeds the same findings
        html = tmp_path / f"planner-{expected == DISTRICT_IDS}.html"
        assert main(["map", "planner", "--store", str(copy), "--out", str(html), *extra]) == 0
        assert {i for i in DISTRICT_IDS if i in html.read_text(encoding="utf-8")} == expected
        assert f"riskmap: rules {District(rules_arg).rules_label}" in capsys.readouterr().out
        # riskmap registry sync: the same service function as the endpoint
        again = tmp_path / f"again-{expected == DISTRICT_IDS}.gpkg"
        again.write_bytes(Path(store.url).read_bytes())
        assert main(["registry", "sync", "--store", str(again), "pipeline_findings",
                     "--who", "tester", *extra]) == 0
        assert f"registered {len(expected)}" in capsys.readouterr().out


def test_rules_from_the_environment(gas, tmp_path, monkeypatch, capsys):
    store, rules = gas
    monkeypatch.setenv("RISKMAP_RULES", str(rules))
    assert Settings().rules == rules
    assert _cli_ids(Path(store.url), tmp_path) == DISTRICT_IDS
    # an explicit --rules wins over the environment
    shipped = tmp_path / "shipped.toml"
    shipped.write_text("", encoding="utf-8")
    assert _cli_ids(Path(store.url), tmp_path, "--rules", str(shipped)) == DEFAULT_IDS


def test_settings_refuse_a_bad_zone_or_rules_file(tmp_path):
    with pytest.raises(ValidationError, match="time zone 'Mars/Olympus' is not a known IANA"):
        Settings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="does not exist"):
        Settings(rules=tmp_path / "missing.toml")
    s = Settings(timezone="Europe/Prague")
    assert s.district().tz.key == "Europe/Prague"
    assert Settings().timezone == "Asia/Shanghai"


def test_serve_refuses_a_missing_rules_file(tmp_path, capsys):
    assert main(["serve", "--store", str(tmp_path / "x.gpkg"), "--rules",
                 str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml' does not exist" in capsys.readouterr().err


# -- the clock ------------------------------------------------------------------------------------
SH = District()  # Asia/Shanghai


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-03T07:30", "2026-12-03T07:30:00+08:00"),        # no offset: district time
    ("2026-12-02T23:30Z", "2026-12-03T07:30:00+08:00"),       # UTC converted
    ("2026-12-03T07:30+08:00", "2026-12-03T07:30:00+08:00"),
    ("2026-12-03T01:30+02:00", "2026-12-03T07:30:00+08:00"),
])
def test_at_is_read_in_the_district_zone(text, expected):
    assert SH.resolve_at(text).isoformat() == expected


def test_at_clock_times_any_and_now():
    fixed = District(clock=lambda: datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
    assert fixed.resolve_at("08:30") == time(8, 30)
    assert fixed.resolve_at("any") is None and fixed.resolve_at("ANY") is None
    assert fixed.resolve_at(None).isoformat() == "2026-12-03T07:30:00+08:00"
    assert fixed.resolve_at("23:30+00:00").isoformat() == "2026-12-03T07:30:00+08:00"
    assert fixed.describe_at(fixed.now()) == "2026-12-03T07:30+08:00 (Asia/Shanghai)"
    with pytest.raises(InputFileError, match="at is 'half past eight'; expected an ISO time"):
        fixed.resolve_at("half past eight")
    naive = District(clock=lambda: datetime(2026, 12, 3, 7, 30))
    with pytest.raises(ValueError, match="naive datetime"):
        naive.now()


@pytest.fixture()
def ladder(tmp_path: Path) -> GeoPackageStore:
    """Roads OA-R1-RZ-R3-BD with a north detour; Z-1 (07:00-09:00) forbids RZ."""
    def line(*pts):
        return LineString([(X0 + x, Y0 + y) for x, y in pts])

    rows = [("OA", [(-200, 0), (0, 0)]), ("R1", [(0, 0), (900, 0)]),
            ("RZ", [(900, 0), (1100, 0)]), ("R3", [(1100, 0), (2000, 0)]),
            ("BD", [(2000, 0), (2200, 0)]), ("N1", [(0, 0), (0, 500)]),
            ("N2", [(0, 500), (2000, 500)]), ("N3", [(2000, 500), (2000, 0)])]
    roads = gpd.GeoDataFrame([{"id": r, "name": r, "road_class": "local", "speed_kmh": 36.0,
                               "hazmat": "yes", "oneway": False, "geometry": line(*p)}
                              for r, p in rows], crs=CRS)
    zones = gpd.GeoDataFrame([{"id": "Z-1", "name": "school", "kind": "school",
                               "rule": "forbidden", "hours": "07:00-09:00",
                               "geometry": box(X0 + 900, Y0 - 50, X0 + 1100, Y0 + 50)}], crs=CRS)
    st = GeoPackageStore(tmp_path / "ladder.gpkg")
    st.write({"roads": roads, "restricted_zones": zones})
    return st


def _ends() -> tuple[str, str]:
    from pyproj import Transformer

    t = Transformer.from_crs(CRS, "EPSG:4490", always_xy=True)
    a, b = t.transform(X0 - 200, Y0 + 20), t.transform(X0 + 2200, Y0 - 10)
    return f"{a[0]:.8f},{a[1]:.8f}", f"{b[0]:.8f},{b[1]:.8f}"


def test_cli_route_at_0730_district_time_on_a_utc_server(ladder, tmp_path):
    """``TZ=UTC`` in the environment: 07:30 district time (given plain, with +08:00 or as the
    UTC instant) is refused through the 07:00-09:00 zone; 07:30 UTC (15:30 district) is not."""
    a, b = _ends()
    env = {**os.environ, "TZ": "UTC", "RISKMAP_TIMEZONE": "Asia/Shanghai"}
    script = (
        "import sys\nfrom api.cli import main\n"
        "for at in sys.argv[3:]:\n"
        "    main(['route', '--store', sys.argv[1], '--from', sys.argv[2].split('|')[0],"
        " '--to', sys.argv[2].split('|')[1], '--at', at, '--out', sys.argv[1] + '.geojson'])\n")
    ats = ["2026-12-03T07:30", "2026-12-03T07:30+08:00", "2026-12-02T23:30Z",
           "2026-12-03T07:30Z"]
    proc = subprocess.run([sys.executable, "-c", script, ladder.url, f"{a}|{b}", *ats],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    heads = [ln for ln in proc.stdout.splitlines() if " route(s) at " in ln]
    refused = [ln for ln in proc.stdout.splitlines() if ln.startswith("refused: ")]
    assert [h.split(" at ")[1].split(",")[0] for h in heads] == [
        "2026-12-03T07:30+08:00 (Asia/Shanghai)"] * 3 + ["2026-12-03T15:30+08:00 (Asia/Shanghai)"]
    assert len(refused) == 3 and all("forbidden zone Z-1" in r for r in refused)
    assert proc.stdout.count("riskmap: rules shipped defaults (") == 4


def _utc_os_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(time_mod, "tzset"):  # pragma: no cover - Windows
        pytest.skip("time.tzset is POSIX-only")
    monkeypatch.setenv("TZ", "UTC")
    time_mod.tzset()


def test_api_route_without_at_is_judged_now_in_the_district(ladder, monkeypatch):
    """The OS clock is UTC; now = 23:30 UTC = 07:30 in Shanghai: the school zone is on."""
    _utc_os_clock(monkeypatch)
    try:
        a, b = (tuple(float(v) for v in e.split(",")) for e in _ends())
        settings = Settings(store=ladder.url, api_keys=API_KEYS)
        for utc_hour, on in ((23, True), (3, False)):  # 07:30 / 11:30 district time
            now = datetime(2026, 12, 2, utc_hour, 30, tzinfo=UTC)
            with TestClient(create_app(settings, store=ladder, clock=lambda n=now: n)) as c:
                r = c.post("/routes", json={"origin": a, "destination": b},
                           headers=auth("police"))
                assert r.status_code == 200, r.text
                doc = r.json()
                local = now.astimezone(District().tz).isoformat(timespec="minutes")
                assert doc["applied"]["at"] == local
                assert doc["applied"]["timezone"] == "Asia/Shanghai"
                assert doc["applied"]["rules"] == rules_version(None)
                assert r.headers["Riskmap-At"] == local
                roads = doc["features"][0]["properties"]["roads"]
                assert roads == ("OA;N1;N2;N3;BD" if on else "OA;R1;RZ;R3;BD")
                refused = [f for f in doc["features"] if f["properties"]["feature"] == "refused"]
                assert [f["properties"]["zone_id"] for f in refused] == (["Z-1"] if on else [])
                # an explicit at without offset is district time, not UTC
                r = c.post("/routes", json={"origin": a, "destination": b,
                                            "depart_at": "2026-12-03T07:30"},
                           headers=auth("police"))
                assert r.json()["features"][0]["properties"]["roads"] == "OA;N1;N2;N3;BD"
    finally:
        monkeypatch.delenv("TZ")
        time_mod.tzset()


def test_cli_route_without_at_is_now_in_the_district(ladder, tmp_path, monkeypatch, capsys):
    import api.district

    _utc_os_clock(monkeypatch)
    try:
        monkeypatch.setattr(api.district, "system_clock",
                            lambda: datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
        a, b = _ends()
        out = tmp_path / "r.geojson"
        assert main(["route", "--store", ladder.url, "--from", a, "--to", b,
                     "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "1 route(s) at 2026-12-03T07:30+08:00 (Asia/Shanghai)" in text
        assert "refused: road RZ refused: in forbidden zone Z-1" in text
        feats = json.loads(out.read_text(encoding="utf-8"))["features"]
        assert feats[0]["properties"]["roads"] == "OA;N1;N2;N3;BD"
        # --tz moves the district: 23:30 UTC is 00:30 in Prague, the zone is off
        assert main(["route", "--store", ladder.url, "--from", a, "--to", b, "--tz",
                     "Europe/Prague", "--out", str(out)]) == 0
        assert "at 2026-12-03T00:30+01:00 (Europe/Prague)" in capsys.readouterr().out
        assert main(["route", "--store", ladder.url, "--from", a, "--to", b, "--tz",
                     "Mars/Olympus", "--out", str(out)]) == 2
        assert "time zone 'Mars/Olympus' is not a known IANA zone" in capsys.readouterr().err
    finally:
        monkeypatch.delenv("TZ")
        time_mod.tzset()


# -- the district's date in registry stats ---------------------------------------------------------
def test_registry_stats_judge_targets_on_the_district_date(small_store_path, tmp_path):
    """01:00 on 31 Dec 2021 in Shanghai is still 30 Dec in UTC: the 2021 target (70 %) is due
    by the district's date, not by the OS's."""
    import shutil

    from tests.api.conftest import API_KEYS

    store = tmp_path / "s.gpkg"
    shutil.copy(small_store_path, store)
    clock = lambda: datetime(2021, 12, 30, 17, 0, tzinfo=UTC)  # noqa: E731
    with TestClient(create_app(Settings(store=str(store), api_keys=API_KEYS),
                               clock=clock)) as c:
        mon = c.get("/registry/stats").json()["monitoring"]
    assert mon["people_dense_hca"] == 1 and mon["coverage"] == 0.0
    assert mon["current_target"] == 0.7
    with TestClient(create_app(Settings(store=str(store), api_keys=API_KEYS, timezone="UTC"),
                               clock=clock)) as c:
        assert c.get("/registry/stats").json()["monitoring"]["current_target"] == 0.3
