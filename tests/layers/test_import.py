"""Import: all or nothing, append vs replace, and the ``import``/``layers`` CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

import api.cli
from layers.errors import InputFileError, LayerValidationError
from layers.importing import import_file
from layers.schema import LAYER_NAMES
from layers.store import GeoPackageStore

DATA = Path(__file__).parents[1] / "data"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(store: GeoPackageStore) -> tuple[str, dict[str, list[object]]]:
    """File hash and every layer's content."""
    content = {}
    for info in store.layers():
        gdf = store.read(info.name)
        content[info.name] = [tuple(map(str, row)) for row in gdf.to_wkt().itertuples()]
    return sha256(store.path), content


def _make_store(path: Path) -> GeoPackageStore:
    s = GeoPackageStore(path)
    import_file(s, "pipelines", DATA / "pipelines.geojson")
    import_file(s, "hydrants", DATA / "hydrants_lonlat.csv", crs="EPSG:4490",
                mapping={"编号": "id"})
    return s


@pytest.fixture
def store(tmp_path: Path) -> GeoPackageStore:
    return _make_store(tmp_path / "district.gpkg")


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> GeoPackageStore:
    """For tests whose imports must fail (and so never change it)."""
    return _make_store(tmp_path_factory.mktemp("shared") / "district.gpkg")


def test_import_writes_typed_layer(store: GeoPackageStore) -> None:
    infos = {i.name: i for i in store.layers()}
    assert sorted(infos) == ["hydrants", "pipelines"]
    assert infos["pipelines"].count == 2
    assert infos["pipelines"].crs == "EPSG:4490"
    gdf = store.read("pipelines")
    assert gdf["id"].tolist() == ["P-01", "P-02"]
    assert gdf["pressure_class"].fillna("-").tolist() == ["-", "medium_a"]
    assert gdf["status"].tolist() == ["in_service", "in_service"]
    assert str(gdf["last_inspection"].iloc[0]) == "2024-05-01"


def test_failed_import_leaves_store_unchanged(store: GeoPackageStore, tmp_path: Path) -> None:
    before = snapshot(store)
    bad = tmp_path / "bad.geojson"
    text = (DATA / "pipelines.geojson").read_text().replace('"pressure_mpa": 0.4',
                                                           '"pressure_mpa": -1.2')
    bad.write_text(text.replace('"P-01"', '"P-11"').replace('"P-02"', '"P-12"'))
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "pipelines", bad, replace=True)
    assert [str(p) for p in info.value.problems] == [
        "layer 'pipelines', feature 'P-12': pressure_mpa is -1.2; expected a number > 0"]
    assert snapshot(store) == before


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_not_geodata_is_refused_and_store_unchanged(shared_store: GeoPackageStore,
                                                    layer: str) -> None:
    store = shared_store
    before = snapshot(store)
    p = DATA / "not_geodata.gpkg"
    with pytest.raises(InputFileError) as info:
        import_file(store, layer, p)
    assert str(info.value) == (f"{p} cannot be read as geodata ('{p}' not recognized as being "
                               "in a supported file format); expected a GeoPackage")
    assert snapshot(store) == before


def test_append_and_duplicate_ids(store: GeoPackageStore, tmp_path: Path) -> None:
    more = tmp_path / "more.geojson"
    more.write_text((DATA / "pipelines.geojson").read_text().replace('"P-0', '"P-1'))
    result = import_file(store, "pipelines", more)
    assert (result.imported, result.total, result.replaced) == (2, 4, False)
    assert store.read("pipelines")["id"].tolist() == ["P-01", "P-02", "P-11", "P-12"]
    before = snapshot(store)
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "pipelines", more)
    assert [str(p) for p in info.value.problems] == [
        "layer 'pipelines', feature 'P-11': id is 'P-11'; expected an id not already in layer "
        "'pipelines' (use --replace to replace the layer)",
        "layer 'pipelines', feature 'P-12': id is 'P-12'; expected an id not already in layer "
        "'pipelines' (use --replace to replace the layer)",
    ]
    assert snapshot(store) == before


def test_replace(store: GeoPackageStore, tmp_path: Path) -> None:
    result = import_file(store, "pipelines", DATA / "pipelines.geojson", replace=True)
    assert (result.imported, result.total, result.replaced) == (2, 2, True)
    assert store.read("pipelines")["id"].tolist() == ["P-01", "P-02"]
    assert store.read("hydrants")["id"].tolist() == ["H-1", "H-2"]  # other layers untouched


def test_web_mercator_shapefile_import(store: GeoPackageStore) -> None:
    result = import_file(store, "buildings", DATA / "buildings_3857.zip")
    assert result.source_crs == "EPSG:3857"
    assert result.summary() == (f"imported 3 feature(s) from {DATA / 'buildings_3857.zip'} into "
                                "layer 'buildings' (now 3); source CRS EPSG:3857, stored in "
                                "EPSG:4490")
    gdf = store.read("buildings")
    assert gdf["households_estimated"].tolist() == [True, False, False]


def test_osm_roads_import(store: GeoPackageStore) -> None:
    result = import_file(store, "roads", DATA / "district.osm.pbf")
    assert result.imported == 5
    assert [n.feature for n in result.notes] == ["w105"]


def test_osm_pipelines_import_fails_without_pressure(store: GeoPackageStore) -> None:
    before = snapshot(store)
    with pytest.raises(LayerValidationError) as info:
        import_file(store, "pipelines", DATA / "district.osm.pbf", replace=True)
    assert len(info.value.problems) == 3
    assert snapshot(store) == before


def test_unknown_layer(store: GeoPackageStore) -> None:
    from layers.errors import UnknownLayerError

    with pytest.raises(UnknownLayerError):
        import_file(store, "pipes", DATA / "pipelines.geojson")


def test_appending_keeps_types(store: GeoPackageStore, tmp_path: Path) -> None:
    import_file(store, "buildings", DATA / "buildings_3857.zip")
    src = tmp_path / "b.zip"
    shutil.copy(DATA / "buildings_3857.zip", src)
    import_file(store, "buildings", DATA / "district.osm.pbf")
    gdf = store.read("buildings")
    assert gdf["id"].tolist() == ["B-1", "B-2", "B-3", "w200", "w201", "r300"]
    assert gdf["households_estimated"].tolist() == [True, False, False, True, False, False]
    assert gdf["floors"].tolist() == [6, 3, 2, 6, 1, 2]


# --- CLI -----------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _only_data_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the CLI with this module's commands only (others may be absent or in progress)."""
    monkeypatch.setattr(api.cli, "COMMAND_MODULES", ("api.commands.data",))


def main(argv: list[str]) -> int:
    return api.cli.main(argv)


def test_cli_import_and_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gpkg = tmp_path / "s.gpkg"
    rc = main(["import", "--store", str(gpkg), "hydrants", str(DATA / "hydrants_lonlat.csv"),
               "--crs", "EPSG:4490", "--map", "编号=id"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0] == (f"imported 2 feature(s) from {DATA / 'hydrants_lonlat.csv'} "
                                   "into layer 'hydrants' (now 2); source CRS EPSG:4490, stored "
                                   "in EPSG:4490")
    assert main(["layers", "--store", str(gpkg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["layer", "features", "CRS", "geometry", "bbox", "(lon/lat)"]
    assert lines[1].split() == ["hydrants", "2", "EPSG:4490", "Point", "117.25100", "34.80100",
                                "117.25200", "34.80200"]
    assert main(["layers", "--store", str(gpkg), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"name": "hydrants", "count": 2, "crs": "EPSG:4490",
                       "geometry_type": "Point", "bbox": [117.251, 34.801, 117.252, 34.802],
                       "title": "Outdoor hydrants"}]


def test_cli_import_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gpkg = tmp_path / "s.gpkg"
    problems = tmp_path / "problems.csv"
    rc = main(["import", "--store", str(gpkg), "pipelines", str(DATA / "district.osm.pbf"),
               "--problems", str(problems)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "riskmap: error: layer 'pipelines': 3 problem(s), nothing imported:\n" in err
    assert ("  - layer 'pipelines', feature 'w401': pressure_mpa is missing; expected a number "
            "> 0 (fill it in, or use --default pressure_mpa=VALUE)\n") in err
    assert not gpkg.exists()
    with open(problems, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["feature"], r["field"]) for r in rows] == [
        ("w401", "kind"), ("w401", "pressure_mpa"), ("w401", "diameter_mm")]


def test_cli_map_several_and_bad_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gpkg = tmp_path / "s.gpkg"
    rc = main(["import", "--store", str(gpkg), "pipelines", str(DATA / "pipelines.geojson"),
               "--map", "owner_ref=operator", "--map", "name=title"])
    assert rc == 0
    gdf = GeoPackageStore(gpkg).read("pipelines")
    assert gdf["operator"].tolist()[0] == "X-1" and gdf["title"].tolist()[0] == "鲁皖成品油管道"
    capsys.readouterr()
    assert main(["import", "--store", str(gpkg), "pipelines", str(DATA / "pipelines.geojson"),
                 "--map", "owner_ref"]) == 2
    assert capsys.readouterr().err == ("riskmap: error: --map 'owner_ref': expected "
                                       "SOURCE_FIELD=OUR_FIELD\n")


def test_cli_layers_of_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", "--store", str(tmp_path / "none.gpkg")]) == 2
    assert capsys.readouterr().err == (f"riskmap: error: store {tmp_path / 'none.gpkg'} does not "
                                       "exist; create it with riskmap import or riskmap demo\n")
