"""Stores holding only some layers, built with ``riskmap import`` from real files as a user
would: every CLI command and API endpoint gives a result or names the missing layers and the
``riskmap import`` that adds them — never a traceback, never a 500."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.analysis import ANALYSES
from api.app import create_app
from api.cli import main
from api.settings import Settings
from layers.schema import LAYER_NAMES
from tests.api.conftest import API_KEYS, auth

DATA = Path(__file__).resolve().parents[1] / "data"
HELSINKI = str(DATA / "real" / "helsinki.osm.pbf")
BUBENEC = str(DATA / "bubenec_fire.gpkg")
PIPE_DEFAULTS = ["--default", "kind=urban_gas", "pressure_mpa=0.4", "diameter_mm=110",
                 "medium=natural_gas"]

STATION = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"id": "FS-1", "kind": "station", "name": "Bubeneč"},
     "geometry": {"type": "Point", "coordinates": [14.402, 50.102]}}]}
ZONE = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"id": "Z-1", "kind": "school_area", "rule": "forbidden"},
     "geometry": {"type": "Polygon", "coordinates": [[[14.401, 50.101], [14.404, 50.101],
                                                      [14.404, 50.103], [14.401, 50.103],
                                                      [14.401, 50.101]]]}}]}

# variant -> imports (layer, file, extra args); files named "@x" are written from the dicts above
VARIANTS: dict[str, list[tuple[str, str, list[str]]]] = {
    "pipelines_buildings": [("pipelines", HELSINKI, [*PIPE_DEFAULTS, "--drop-clipped"]),
                            ("buildings", HELSINKI, ["--drop-clipped"])],
    "roads_buildings": [("roads", HELSINKI, ["--drop-clipped"]),
                        ("buildings", HELSINKI, ["--drop-clipped"])],
    "fire_no_lanes": [("roads", BUBENEC, ["--source-layer", "streets", "--make-ids", "R-"]),
                      ("buildings", BUBENEC, ["--source-layer", "buildings", "--make-ids", "B-"]),
                      ("fire_stations", "@station", [])],
    "zones_roads": [("roads", BUBENEC, ["--source-layer", "streets", "--make-ids", "R-"]),
                    ("restricted_zones", "@zone", [])],
    "hydrants_only": [("hydrants", str(DATA / "hydrants_lonlat.csv"),
                       ["--crs", "EPSG:4490", "--map", "编号=id"])],
}
# a road-to-road trip inside each district (Helsinki centre, Bubeneč)
TRIPS = {"roads_buildings": ("24.940,60.170", "24.950,60.175")}
BUBENEC_TRIP = ("14.400,50.101", "14.405,50.104")
# command -> optional layers whose absence is noted (what was not checked, how to add it)
NOTED = {"check hca": ("hca", "cameras", "sites"), "check routes": ("restricted_zones", "roads"),
         "coverage": ("fire_lanes", "hydrants")}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("partial")
    files = {"@station": root / "station.geojson", "@zone": root / "zone.geojson"}
    files["@station"].write_text(json.dumps(STATION), encoding="utf-8")
    files["@zone"].write_text(json.dumps(ZONE), encoding="utf-8")
    out = {}
    for name, imports in VARIANTS.items():
        path = root / f"{name}.gpkg"
        for layer, src, extra in imports:
            src = str(files.get(src, src))
            assert main(["import", "--store", str(path), layer, src, *extra]) == 0, (name, layer)
        out[name] = path
    return out


def _layers(name: str) -> set[str]:
    return {layer for layer, _, _ in VARIANTS[name]}


def _commands(path: Path, out: Path, name: str) -> list[tuple[list[str], tuple[str, ...]]]:
    """(argv, layers the command needs) for every command."""
    s = ["--store", str(path)]
    a, b = TRIPS.get(name, BUBENEC_TRIP)
    fire = ("roads", "buildings", "fire_stations")
    cmds: list[tuple[list[str], tuple[str, ...]]] = [
        (["layers", *s], ()),
        (["check", "pipelines", *s, "--out", str(out / "p.gpkg")], ("pipelines", "buildings")),
        (["check", "pipelines", *s, "--engine", "dask", "--out", str(out / "pd.gpkg")],
         ("pipelines", "buildings")),
        (["check", "hca", *s, "--out", str(out / "h.gpkg")], ("pipelines", "buildings")),
        (["check", "routes", *s, "--out", str(out / "r.gpkg")], ("hazmat_routes",)),
        (["route", *s, "--from", a, "--to", b, "--out", str(out / "route.geojson")],
         ("roads",)),
        (["coverage", *s, "--out", str(out / "c.gpkg")], fire),
        (["compounds", *s, "--out", str(out / "k.csv")], ("compounds", *fire)),
        (["publish", "routes", *s, "--out", str(out / "pub.geojson")], ("hazmat_routes",)),
        (["registry", "sync", *s, "pipeline_findings"], ("pipelines", "buildings")),
        (["registry", "sync", *s, "fire_findings"], fire),
        (["registry", "stats", *s], ()),
    ]
    cmds += [(["map", m, *s, "--out", str(out / f"{m}.html")], ())
             for m in ("planner", "police", "fire", "overview")]
    return cmds


@pytest.mark.parametrize("name", list(VARIANTS))
def test_cli_on_partial_store(name, stores, tmp_path, capsys, caplog):
    path = stores[name]
    have = _layers(name)
    for argv, needs in _commands(path, tmp_path, name):
        missing = [n for n in needs if n not in have]
        if "dask" in argv and not missing:
            continue  # a local Dask cluster takes too long here (tests/layers/test_dask_engine)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            rc = main(argv)
        err = capsys.readouterr().err
        if missing:
            assert rc == 2, (argv, err)
            for m in missing:  # each missing layer named with the import that adds it
                assert f"`riskmap import --store {path} {m} FILE`" in err, (argv, err)
        elif argv[0] == "route" and name == "zones_roads":
            assert rc == 2 and "forbidden zone Z-1" in err, err  # the zone blocks every way
        else:
            assert rc == 0, (argv, err)
            for m in NOTED.get(" ".join(argv[:2]) if argv[0] == "check" else argv[0], ()):
                assert (f"note: no layer {m!r}" in err) == (m not in have), (argv, m, err)
        # maps leave out analyses whose layers are absent instead of reporting them as failed
        assert not [r for r in caplog.records if "failed" in r.getMessage()], (argv,
                                                                               caplog.text)


def test_store_path_typo_is_an_error_not_an_empty_store(tmp_path, capsys):
    path = tmp_path / "typo.gpkg"
    for argv, _ in _commands(path, tmp_path, "typo"):
        if argv[0] == "layers":
            continue
        assert main(argv) == 2, argv
        assert f"store {path} does not exist" in capsys.readouterr().err, argv
    assert not path.exists()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_api_on_partial_store(name, stores):
    have = _layers(name)
    client = TestClient(create_app(Settings(store=str(stores[name]), api_keys=API_KEYS)),
                        raise_server_exceptions=False)
    h = auth("admin")
    r = client.get("/collections", headers=h)
    assert r.status_code == 200
    listed = {c["id"] for c in r.json()["collections"]}
    for defn in ANALYSES:
        r = client.get(f"/collections/{defn.id}/items", headers=h)
        missing = [n for n in defn.layers if n not in have]
        if missing:
            assert defn.id not in listed
            assert r.status_code == 404, (defn.id, r.text)
            text = r.json()["description"]
            for m in missing:
                assert f"riskmap import --store STORE {m} FILE" in text, text
        else:
            assert defn.id in listed
            assert r.status_code == 200, (defn.id, r.text)
            assert r.json()["type"] == "FeatureCollection"
    for layer in LAYER_NAMES:
        r = client.get(f"/collections/{layer}/items?limit=5", headers=h)
        if layer in have:
            assert r.status_code == 200 and r.json()["features"], (layer, r.text)
        else:
            assert r.status_code == 404, r.text
            assert f"riskmap import --store STORE {layer} FILE" in r.text, r.text
    for m in ("planner", "police", "fire", "overview"):
        assert client.get(f"/maps/{m}", headers=h).status_code == 200, m
    r = client.get("/maps/density/buildings", headers=h)
    if "buildings" in have:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 404 and "riskmap import --store STORE buildings FILE" in r.text
    r = client.post("/registry/sync/pipeline_findings", headers=h)
    if {"pipelines", "buildings"} <= have:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 404 and "riskmap import --store STORE" in r.text, r.text
    a, b = TRIPS.get(name, BUBENEC_TRIP)
    body = {"origin": [float(v) for v in a.split(",")],
            "destination": [float(v) for v in b.split(",")]}
    r = client.post("/routes", json=body, headers=h)
    if "roads" not in have:
        assert r.status_code == 400 and "riskmap import --store STORE roads FILE" in r.text
    elif name == "zones_roads":
        assert r.status_code == 422 and "forbidden zone Z-1" in r.text, r.text
    else:
        assert r.status_code == 200, r.text
        kinds = [f["properties"]["feature"] for f in r.json()["features"]]
        assert "route" in kinds


def test_no_hydrant_findings_without_hydrant_data(stores):
    """A store without a hydrants layer has no hydrant data: no hydrant gap is reported (it
    would go into the hazard registry as a false hazard); the other fire findings are."""
    from api.commands.fire import run_fire
    from layers.store import GeoPackageStore

    kinds = set(run_fire(GeoPackageStore(stores["fire_no_lanes"])).findings["kind"])
    assert kinds == {"building_beyond_engine_reach", "building_beyond_micro_reach"}
