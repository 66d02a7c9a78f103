"""Landing page, health, layer list, settings and the serve command."""

from __future__ import annotations

import pytest

from api.settings import Settings, hash_key, parse_api_keys
from tests.api.conftest import auth, small_layers


def test_landing_links(client):
    r = client.get("/")
    assert r.status_code == 200
    rels = {li["rel"] for li in r.json()["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= rels


def test_landing_html(client):
    r = client.get("/?f=html")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/collections" in r.text


def test_health(client, small_store_path):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["layers"] == len(small_layers())
    assert set(body) == {"status", "version", "layers"}  # no store path
    assert str(small_store_path) not in r.text and small_store_path.name not in r.text


def test_layers_counts(client):
    r = client.get("/layers", headers=auth("planner"))
    assert r.status_code == 200
    counts = {li["name"]: li["count"] for li in r.json()["layers"]}
    assert counts == {name: len(gdf) for name, gdf in small_layers().items()}
    assert set(r.json()) == {"layers"}  # no store path


def test_unknown_param_400(client):
    r = client.get("/layers?foo=1")
    assert r.status_code == 400
    assert "foo" in r.json()["description"]


def test_bad_format_400(client):
    r = client.get("/?f=xml")
    assert r.status_code == 400


def test_keys_hashed_and_not_kept():
    s = Settings(store="x.gpkg", api_keys="planner:alice:secret-key-1,admin:admin-key-123")
    assert s.api_keys is None
    assert "secret-key-1" not in repr(s) and "secret-key-1" not in s.model_dump_json()
    assert s.lookup_key("secret-key-1").role == "planner"
    assert s.lookup_key("secret-key-1").name == "alice"
    assert s.lookup_key("admin-key-123").role == "admin"
    assert s.lookup_key("nope") is None
    assert s.key_count == 2


def test_keys_json_forms():
    keys = parse_api_keys('[{"role": "fire", "key": "fire-key-123", "name": "brigade"}]')
    assert keys[0].role == "fire" and keys[0].name == "brigade"
    assert keys[0].digest == hash_key("fire-key-123")
    keys = parse_api_keys('{"police-key-1": "police"}')
    assert keys[0].role == "police"


@pytest.mark.parametrize("text, msg", [
    ("boss:some-long-key", "entry 1: the role is not one of public, planner"),
    ("planner:short", "shorter than 8"),
    ("planner", "not 'role:key'"),
    ("planner:aaaaaaaa1,admin:aaaaaaaa1", "duplicate key"),
])
def test_keys_invalid(text, msg):
    with pytest.raises(ValueError, match=msg):
        parse_api_keys(text)


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("RISKMAP_STORE", "other.gpkg")
    monkeypatch.setenv("RISKMAP_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("RISKMAP_MAX_LIMIT", "500")
    s = Settings()
    assert s.store == "other.gpkg"
    assert s.cors_origins == ["http://a.example", "http://b.example"]
    assert s.max_limit == 500
    assert s.key_count == 0


def test_settings_default_store(monkeypatch):
    monkeypatch.delenv("RISKMAP_STORE", raising=False)
    assert Settings().store == "data/demo.gpkg"


def test_body_limit(small_store_path):
    from tests.api.conftest import make_client

    with make_client(small_store_path, max_request_bytes=2048) as c:
        r = c.post("/registry/hazards", content=b"x" * 5000,
                   headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_serve_parser():
    import argparse

    from api.commands import serve

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    serve.register(sub, {})
    args = parser.parse_args(["serve", "--store", "x.gpkg", "--port", "8123"])
    assert args.store == "x.gpkg" and args.port == 8123 and args.host == "127.0.0.1"
    assert args.func is serve.run
