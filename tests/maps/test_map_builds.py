"""Bounded map builds (maps.builds.BuildGate and GET /maps/{name}) and the read right of
GET /maps/density/{layer}: at most k builds at once, a bounded queue (503 + Retry-After),
one build per key with the HTML reused, a rebuild on a new store version; density only for
roles that may read the layer, with their row filter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from crafted_maps import crafted_findings, crafted_layers
from fastapi.testclient import TestClient

from maps.builds import BuildGate, BuildsBusy

KEYS = {"planner": "planner-key-0001", "police": "police-key-0001",
        "fire": "fire-key-00000001", "admin": "admin-key-0000001"}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


class Counter:
    """A build function factory that records how many builds run at once."""

    def __init__(self, seconds: float = 0.1) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0

    def __call__(self, value: str) -> Callable[[], str]:
        def build() -> str:
            with self.lock:
                self.now += 1
                self.calls += 1
                self.peak = max(self.peak, self.now)
            time.sleep(self.seconds)
            with self.lock:
                self.now -= 1
            return value
        return build


# --- the gate -------------------------------------------------------------------------------
def test_gate_runs_at_most_workers_builds_at_once() -> None:
    gate, c = BuildGate(workers=2, queue=10, trim=False), Counter(0.1)
    with ThreadPoolExecutor(12) as ex:
        out = list(ex.map(lambda i: gate.get(("map", i), c(f"<html>{i}</html>")), range(12)))
    assert out == [f"<html>{i}</html>" for i in range(12)]
    assert c.calls == 12 and c.peak == 2
    st = gate.stats()
    assert (st.builds, st.peak_running, st.running, st.admitted, st.cached) == (12, 2, 0, 0, 12)


def test_gate_builds_a_key_once_and_reuses_it() -> None:
    gate, c = BuildGate(workers=2, queue=0, trim=False), Counter(0.2)
    with ThreadPoolExecutor(8) as ex:
        out = list(ex.map(lambda _i: gate.get("overview", c("<html>same</html>")), range(8)))
    assert out == ["<html>same</html>"] * 8 and c.calls == 1  # 7 joined the one build
    assert gate.get("overview", c("<html>other</html>")) == "<html>same</html>"
    st = gate.stats()
    assert (st.builds, st.joined + st.hits, st.refused) == (1, 8, 0)


def test_gate_refuses_beyond_its_queue_with_a_retry_time() -> None:
    gate = BuildGate(workers=1, queue=1, trim=False)
    release = threading.Event()

    def blocked() -> str:
        release.wait(5)
        return "x"

    with ThreadPoolExecutor(2) as ex:
        running = ex.submit(gate.get, "a", blocked)
        queued = ex.submit(gate.get, "b", blocked)
        deadline = time.time() + 5
        while gate.stats().admitted < 2 and time.time() < deadline:
            time.sleep(0.01)
        with pytest.raises(BuildsBusy, match=r"2 map builds are running or queued \(limit 1 "
                                              r"at once \+ 1 waiting\)") as exc:
            gate.get("c", lambda: "never")
        assert 1 <= exc.value.retry_after_s <= 60
        release.set()
        assert running.result(5) == "x" and queued.result(5) == "x"
    assert gate.stats().refused == 1
    assert gate.get("c", lambda: "now") == "now"  # room again


def test_gate_failure_reaches_every_waiter_and_is_not_cached() -> None:
    gate = BuildGate(workers=1, queue=4, trim=False)
    calls = []

    def failing() -> str:
        calls.append(1)
        time.sleep(0.1)
        raise RuntimeError("store unreadable")

    with ThreadPoolExecutor(3) as ex:
        futs = [ex.submit(gate.get, "k", failing) for _ in range(3)]
        for f in futs:
            with pytest.raises(RuntimeError, match="store unreadable"):
                f.result(5)
    assert len(calls) == 1
    assert gate.get("k", lambda: "ok") == "ok"
    assert gate.stats().admitted == 0


def test_gate_cache_is_bounded_by_entries_and_size() -> None:
    gate = BuildGate(workers=1, queue=0, cache_entries=2, cache_bytes=10, trim=False)
    for k in "abc":
        gate.get(k, lambda k=k: k * 3)  # type: ignore[misc]
    assert gate.stats().cached == 2  # "a" evicted
    assert gate.get("a", lambda: "new") == "new"
    gate.get("big", lambda: "x" * 11)  # larger than the cache: returned, not kept
    assert gate.get("big", lambda: "rebuilt") == "rebuilt"
    assert gate.stats().cached_bytes <= 10
    with pytest.raises(ValueError, match="workers=0"):
        BuildGate(workers=0)


# --- the API --------------------------------------------------------------------------------
@pytest.fixture
def app_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Counter]]:
    import api.routers.maps as maps_router
    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore

    store = GeoPackageStore(tmp_path / "store.gpkg")
    store.write(crafted_layers())
    monkeypatch.setattr(maps_router, "analysis_inputs", lambda service, name: (crafted_findings(), {}))
    counter = Counter(0.15)
    real = maps_router.build

    def counted(*a: Any, **k: Any) -> Any:
        m = real(*a, **k)
        counter(m)()  # records the overlap of the (slowed) builds
        return m

    monkeypatch.setattr(maps_router, "build", counted)
    keys = ",".join(f"{r}:{r}-user:{k}" for r, k in KEYS.items())
    app = create_app(Settings(store=str(tmp_path / "store.gpkg"), api_keys=keys), store=store)
    with TestClient(app) as c:
        yield c, counter


def test_concurrent_map_requests_build_each_page_once_at_most_two_at_once(
        app_client: tuple[Any, Counter]) -> None:
    client, counter = app_client
    variants = [f"?basemap={b}&lang={lang}" for b in ("none", "osm", "gaode")
                for lang in ("zh", "en")]
    urls = [f"/maps/overview{v}" for v in variants] * 2  # 6 pages, each asked for twice
    with ThreadPoolExecutor(12) as ex:
        rs = list(ex.map(lambda u: client.get(u, headers=auth("planner")), urls))
    assert [r.status_code for r in rs] == [200] * 12
    assert counter.calls == 6 and counter.peak == 2
    for i in range(6):
        assert rs[i].text == rs[i + 6].text  # the same page, built once
    gate = client.app.state.map_builds
    assert (gate.workers, gate.queue) == (2, 8)
    again = client.get(f"/maps/overview{variants[0]}", headers=auth("admin"))
    import re  # the role bar names the caller (issue 14): compare the pages without it

    bar = re.compile(r'<div class="riskmap-rolebar.*?</div>')
    same = bar.sub("", again.text) == bar.sub("", rs[0].text)
    assert same and counter.calls == 6  # admin sees the same layers

    # a new store version: the page is built again, with the new data
    store = client.app.state.store
    layers = crafted_layers()
    sites = layers["sites"].copy()
    sites.loc[0, "name"] = "新建学校"
    store.write({"sites": sites})
    fresh = client.get(f"/maps/overview{variants[0]}", headers=auth("planner"))
    assert fresh.status_code == 200 and counter.calls == 7
    assert "新建学校" in fresh.text and "新建学校" not in rs[0].text


def test_map_builds_beyond_the_queue_get_503_with_retry_after(
        app_client: tuple[Any, Counter], monkeypatch: pytest.MonkeyPatch) -> None:
    import api.routers.maps as maps_router

    client, _counter = app_client
    client.app.state.map_builds = BuildGate(workers=1, queue=0, trim=False)
    release, started = threading.Event(), threading.Event()
    real = maps_router.build

    def slow(*a: Any, **k: Any) -> Any:
        started.set()
        release.wait(10)
        return real(*a, **k)

    monkeypatch.setattr(maps_router, "build", slow)
    with ThreadPoolExecutor(1) as ex:
        first = ex.submit(client.get, "/maps/fire", headers=auth("fire"))
        assert started.wait(10)
        r = client.get("/maps/planner", headers=auth("planner"))
        release.set()
        assert first.result(20).status_code == 200
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["code"] == "ServiceUnavailable"
    assert "1 map builds are running or queued" in r.json()["description"]


def test_publish_view_holds_only_its_public_layers(app_client: tuple[Any, Counter]) -> None:
    import json
    import re

    from api.auth import Principal
    from api.routers.maps import visible_layers

    client, _ = app_client
    r = client.get("/maps/police?publish=true")  # anonymous (public)
    assert r.status_code == 200
    cfg = json.loads(re.search(r"RiskMap\.init\([^,]+, (\{.*\})\);\n", r.text).group(1))  # type: ignore[union-attr]
    assert [li["id"] for li in cfg["layers"]] == ["restricted_zones", "roads_hazmat_no",
                                                  "hazmat_routes"]
    assert "HR-02" not in r.text and "S-1" not in r.text  # the draft route, the depot
    fire = Principal(role="fire", name="f", authenticated=True)
    assert visible_layers(fire, "fire") == ("fire_stations", "fire_lanes", "hydrants",
                                            "compounds", "buildings", "roads")
    police = Principal(role="police", name="p", authenticated=True)
    assert visible_layers(police, "overview") == ("buildings", "sites", "cameras", "roads",
                                                  "restricted_zones", "hazmat_routes",
                                                  "fire_stations", "construction_sites")


# --- density ---------------------------------------------------------------------------------
DENSITY_CASES = [
    (None, "hydrants", 401),
    ("police", "hydrants", 403),  # police may not read hydrants
    ("planner", "hydrants", 200),
    ("fire", "hydrants", 200),
    ("admin", "hydrants", 200),
    ("police", "buildings", 200),
    ("fire", "roads", 200),
    ("police", "pipelines", 404),  # no overview of pipelines
]


def test_density_needs_the_read_right_on_the_layer(app_client: tuple[Any, Counter]) -> None:
    client, _ = app_client
    for role, layer, status in DENSITY_CASES:
        r = client.get(f"/maps/density/{layer}", headers=auth(role) if role else {})
        assert r.status_code == status, (role, layer, r.text)
        if status == 200:
            assert r.headers["Cache-Control"] == "private, no-store"
            assert sum(f["properties"]["count"] for f in r.json()["features"]) == \
                len(crafted_layers()[layer])


def test_density_applies_the_role_row_filter_and_checks_cells(
        app_client: tuple[Any, Counter], monkeypatch: pytest.MonkeyPatch) -> None:
    import api.catalog

    client, _ = app_client
    monkeypatch.setitem(api.catalog.ROW_FILTERS, ("hydrants", "fire"), {"status": "ok"})
    r = client.get("/maps/density/hydrants", headers=auth("fire"))
    assert [f["properties"]["count"] for f in r.json()["features"]] == [1]  # H-01 only
    r = client.get("/maps/density/hydrants", headers=auth("planner"))  # no filter
    assert sum(f["properties"]["count"] for f in r.json()["features"]) == 2
    for bad in ("abc", "0", "513", "9" * 30, "-1", "1.5"):
        r = client.get(f"/maps/density/hydrants?cells={bad}", headers=auth("fire"))
        assert r.status_code == 400, (bad, r.text)
        assert "cells=" in r.json()["description"]
