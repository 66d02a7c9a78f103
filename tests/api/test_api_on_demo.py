"""The API over the demo district: every layer served, planted cases reachable by role."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from layers.schema import LAYER_NAMES
from tests.api.conftest import API_KEYS, auth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_client(demo_store):
    store, manifest = demo_store
    with TestClient(create_app(Settings(store=str(store.path), api_keys=API_KEYS),
                               store=store)) as c:
        yield c, store, manifest


def test_layers_lists_all_twelve_with_counts(demo_client):
    c, store, _ = demo_client
    body = c.get("/layers", headers=auth("planner")).json()
    counts = {li["name"]: li["count"] for li in body["layers"]}
    assert set(counts) == set(LAYER_NAMES)
    assert counts == {i.name: i.count for i in store.layers()}
    assert counts["buildings"] >= 20_000


def test_collections_per_role(demo_client):
    c, _, _ = demo_client
    anon = {x["id"] for x in c.get("/collections").json()["collections"]}
    assert anon == {"hazmat_routes", "restricted_zones"}
    planner = {x["id"] for x in c.get("/collections", headers=auth("planner")).json()[
        "collections"]}
    assert set(LAYER_NAMES) <= planner and "pipeline_findings" in planner
    routes = c.get("/collections/hazmat_routes/items").json()["features"]
    assert routes and all(f["properties"]["status"] == "published" for f in routes)


def test_planted_occupancy_reachable(demo_client):
    c, _, manifest = demo_client
    case = next(x for x in manifest["cases"] if x["case"] == "occupancy"
                and x["expect"] == "finding" and x["distance_m"] > 0)
    h = auth("planner")
    near = c.get(f"/collections/buildings/items?near=pipelines:{case['pipeline_id']}"
                 f"&within_m={case['distance_m'] + 0.5}&limit=10000", headers=h).json()
    assert case["id"] in {f["id"] for f in near["features"]}
    tight = c.get(f"/collections/buildings/items?near=pipelines:{case['pipeline_id']}"
                  f"&within_m={max(case['distance_m'] - 1.0, 0)}&limit=10000", headers=h).json()
    assert case["id"] not in {f["id"] for f in tight["features"]}
    r = c.get(f"/collections/pipeline_findings/items?kind=occupancy&feature_id={case['id']}",
              headers=h)
    assert r.status_code == 200
    assert [f["properties"]["other_id"] for f in r.json()["features"]] == [case["pipeline_id"]]
    assert c.get("/collections/pipeline_findings/items", headers=auth("police")).status_code \
        == 403


def test_bbox_pages_on_the_demo(demo_client):
    c, store, _ = demo_client
    minx, miny, maxx, maxy = next(i.bbox for i in store.layers() if i.name == "buildings")
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    q = f"bbox={cx - 0.005},{cy - 0.005},{cx + 0.005},{cy + 0.005}"
    h = auth("planner")
    first = c.get(f"/collections/buildings/items?{q}&limit=100", headers=h).json()
    n = first["numberMatched"]
    assert n > 100 and first["numberReturned"] == 100
    want = store.read("buildings", bbox=(cx - 0.005, cy - 0.005, cx + 0.005, cy + 0.005))
    assert n <= len(want)  # exact intersection, never more than the envelope candidates
