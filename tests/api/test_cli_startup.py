"""``riskmap --help`` builds the parser without importing the analyses or their libraries
(issue 11 item 10); the choices spelled out for it match the modules that implement them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.commands import options

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("geopandas", "shapely", "pyogrio", "fastapi", "folium", "scipy", "networkx", "pandas",
         "numpy", "pyproj", "pydantic", "uvicorn", "api.service", "api.runs")

_PROBE = """\
import json, sys
from api.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = None
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy} or
               any(m == h or m.startswith(h + '.') for h in {heavy}))
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def _probe(*argv: str) -> dict:
    code = _PROBE.format(heavy=repr(set(HEAVY)))
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ("--help",), ("check", "pipelines", "--help"), ("route", "--help"), ("map", "--help"),
    ("serve", "--help"), ("import", "--help"), ("registry", "sync", "--help"),
])
def test_help_imports_nothing_heavy(argv):
    got = _probe(*argv)
    assert got == {"code": 0, "heavy": []}


def test_the_parser_offers_every_command():
    from api.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"import", "layers", "demo", "serve", "check", "coverage",
                                "compounds", "db", "map", "route", "publish", "registry",
                                "snapshot", "changes"}


def test_spelled_out_choices_match_their_modules():
    from geo.routing import OBJECTIVES
    from layers.readers import DEFAULT_MAX_BYTES, FORMATS
    from layers.writers import FORMATS as WRITE_FORMATS
    from maps.base import BASEMAPS
    from maps.sources import MAP_NAMES

    assert tuple(WRITE_FORMATS) == options.FINDING_FORMATS
    assert tuple(FORMATS) == options.IMPORT_FORMATS
    assert options.IMPORT_MAX_MB == DEFAULT_MAX_BYTES / 1024**2
    assert tuple(OBJECTIVES) == options.OBJECTIVES
    assert tuple(MAP_NAMES) == options.MAP_NAMES
    assert tuple(BASEMAPS) == options.BASEMAPS


def test_moved_analyses_still_importable_from_the_command_modules():
    from api.commands import fire, pipelines
    from api.runs import fire as run_fire
    from api.runs import pipelines as run_pipes

    assert pipelines.run_pipeline_check is run_pipes.run_pipeline_check
    assert pipelines.Progress is run_pipes.Progress
    assert fire.run_fire is run_fire.run_fire
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = pipelines.nothing


def test_map_export_does_not_import_the_web_app(small_store_path, tmp_path):
    """``riskmap map`` runs the analyses through the service, not through a router."""
    out = tmp_path / "planner.html"
    code = ("import json, sys\nfrom api.cli import main\nrc = main(sys.argv[1:])\n"
            "print(json.dumps({'rc': rc, 'web': sorted(m for m in sys.modules if "
            "m.startswith(('api.routers', 'fastapi', 'starlette', 'uvicorn')))}))")
    proc = subprocess.run([sys.executable, "-c", code, "map", "planner", "--store",
                           str(small_store_path), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rc": 0, "web": []}
    from api.service import AnalysisService
    from layers.store import GeoPackageStore

    ids = AnalysisService(GeoPackageStore(small_store_path)).result("pipeline_findings")[
        "finding_id"]
    html = out.read_text(encoding="utf-8")
    assert len(ids) and all(i in html for i in ids)


def test_listing_a_store_imports_nothing_heavy(tmp_path):
    """``riskmap layers`` reads the catalogue with sqlite3 alone (layers.gpkg_catalog)."""
    import geopandas as gpd
    from shapely.geometry import Point

    from layers.store import GeoPackageStore

    path = tmp_path / "s.gpkg"
    GeoPackageStore(path).write({"sites": gpd.GeoDataFrame(
        {"id": ["S-1"]}, geometry=[Point(117.2, 34.8)], crs=4490)})
    got = _probe("layers", "--store", str(path))
    assert got == {"code": None, "heavy": []}


def test_the_console_script_writes_everything_then_exits_with_the_commands_code(
        demo_store, tmp_path):
    """``riskmap`` (api.cli:run) freezes the objects left before the interpreter exits (no
    last collection over them): the output is complete, the findings file whole, and the
    exit code the command's own — 0, or 2 for a refused input."""
    store, _manifest = demo_store
    out = tmp_path / "f.gpkg"
    script = "from api.cli import run; run()"
    ok = subprocess.run([sys.executable, "-c", script, "check", "pipelines", "--quiet",
                         "--store", str(store.path), "--out", str(out)], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    import pyogrio

    n = pyogrio.read_info(out)["features"]
    assert n > 0 and f"riskmap: {n} finding(s) for " in ok.stdout
    assert ok.stdout.rstrip().splitlines()[-1].startswith("riskmap: rules ")
    bad = subprocess.run([sys.executable, "-c", script, "check", "pipelines", "--store",
                          str(store.path), "--out", str(tmp_path / "f.txt")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "expected a file ending in" in bad.stderr


def test_finish_is_quiet_when_the_reader_has_gone():
    """``riskmap … | head``: the reader closes the pipe before the output is flushed; the
    command ends with its own exit code and no traceback."""
    script = ("import sys, time\nfrom api.cli import finish\nprint('x' * 100)\n"
              "time.sleep(0.5)\nfinish(0)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away at once
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipeError" not in err
