"""The Dask engine gives the same findings as the default in-process engine."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from geopandas.testing import assert_geodataframe_equal
from postgis_support import postgis_url, scratch_schema

from bench import district
from geo.pipelines import check_pipelines
from layers.rules import load_rules
from layers.store import GeoPackageStore

N = 5_000


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rules = load_rules("pipelines")
    occ, sb = rules.rows("occupancy"), rules.rows("setback")
    pipes, blds = district.pipelines(N), district.buildings(N)
    path = tmp_path_factory.mktemp("dask") / "district.gpkg"
    GeoPackageStore(path).write({"pipelines": pipes, "buildings": blds})
    store = GeoPackageStore(path)
    ref = check_pipelines(store.read("pipelines", crs=district.CRS),
                          store.read("buildings", crs=district.CRS),
                          occupancy_rules=occ, setback_rules=sb)
    assert set(ref["kind"]) == {"occupancy", "setback"} and len(ref) > 100
    return {"occ": occ, "sb": sb, "path": path, "store": store, "ref": ref}


def _run(case: dict, buildings: object, out: Path, **kw: object) -> gpd.GeoDataFrame:
    from layers.dask_engine import check_pipelines_dask, read_findings

    run = check_pipelines_dask(case["store"].read("pipelines"), buildings,
                               occupancy_rules=case["occ"], setback_rules=case["sb"], out=out,
                               crs=district.CRS, **kw)
    assert run.buildings == N and run.findings == len(case["ref"])
    assert 0 < run.candidates < N  # only buildings within reach were shuffled
    return read_findings(out)


def test_gpkg_source_hilbert_partitions_parquet_parts(case: dict, tmp_path: Path) -> None:
    from layers.dask_engine import buildings_frame

    ddf = buildings_frame(case["path"], partition_rows=1_000)
    assert ddf.npartitions == 5
    out = tmp_path / "findings"
    got = _run(case, ddf, out, scheduler="threads", npartitions=5)
    assert 1 < len(list(out.glob("part.*.parquet"))) <= 5
    assert_geodataframe_equal(got, case["ref"])


def test_gpkg_output_written_part_by_part(case: dict, tmp_path: Path) -> None:
    out = tmp_path / "findings.gpkg"
    got = _run(case, str(case["path"]), out, scheduler="synchronous", npartitions=3)
    assert not (tmp_path / "findings.gpkg.parts").exists()
    ref = case["ref"]
    assert got["finding_id"].tolist() == ref["finding_id"].tolist()
    assert got["distance_m"].tolist() == ref["distance_m"].tolist()


@pytest.mark.slow
def test_local_cluster_two_workers(case: dict, tmp_path: Path) -> None:
    got = _run(case, str(case["path"]), tmp_path / "out", scheduler=None, n_workers=2,
               npartitions=4)
    assert_geodataframe_equal(got, case["ref"])


def test_scheduler_by_address(case: dict, tmp_path: Path) -> None:
    """A running scheduler given by address (here an in-process cluster on loopback)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", scheduler_port=0, dashboard_address=None) as cluster:
        got = _run(case, str(case["path"]), tmp_path / "out",
                   scheduler=cluster.scheduler_address, npartitions=3)
    assert_geodataframe_equal(got, case["ref"])


@pytest.mark.server
def test_postgis_source(case: dict, tmp_path: Path) -> None:
    from layers.dask_engine import buildings_frame
    from layers.postgis import PostGISStore

    with scratch_schema(postgis_url()) as url:
        store = PostGISStore(url)
        store.write({"buildings": case["store"].read("buildings")})
        ddf = buildings_frame(store, partition_rows=2_000)
        assert ddf.npartitions == 3
        got = _run(case, ddf, tmp_path / "out", scheduler="threads")
    assert_geodataframe_equal(got, case["ref"])


def test_demo_district_same_findings(demo_store: tuple, tmp_path: Path) -> None:
    """On the demo district: the Dask engine's findings are the default engine's."""
    from api.commands.pipelines import run_pipeline_check
    from layers.dask_engine import check_pipelines_dask, read_findings

    store, _ = demo_store
    run = run_pipeline_check(store)
    rules = load_rules("pipelines")
    res = check_pipelines_dask(store.read("pipelines"), store, crs=run.crs,
                               occupancy_rules=rules.rows("occupancy"),
                               setback_rules=rules.rows("setback"), out=tmp_path / "f",
                               scheduler="threads")
    assert res.findings == len(run.findings) > 0
    assert_geodataframe_equal(read_findings(tmp_path / "f"), run.findings)
