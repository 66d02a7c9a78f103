"""Publishing the hazmat notice on the demo district: refused while HR-02 crosses the
drinking-water zone Z-01, printed with a visible note when overridden, printed cleanly once
HR-02 is fixed or withdrawn — on the command line (``riskmap publish notice``, ``riskmap map
police --publish``) and over HTTP (``GET /maps/police/notice.pdf|png``, the notice view).
"""

from __future__ import annotations

import io
import shutil
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.settings import Settings
from layers.store import GeoPackageStore

pypdf = pytest.importorskip("pypdf")

KEYS = {"police": "police-key-0001", "public": "public-key-000001",
        "planner": "planner-key-0001"}
API_KEYS = ",".join(f"{role}:{role}-user:{key}" for role, key in KEYS.items())
TITLE = "危险化学品运输车辆通行路线及限行区域公告"
OVERRIDE_ZH = ("注意：通行路线 HR-02 穿越禁行区域 Z-01（岩马水库饮用水水源保护区），经批准发布"
               "（理由：市局批准 临时保供）")
# 2026-12-06 20:00 UTC is already 2026-12-07 in the district (Asia/Shanghai, +08:00)
CLOCK = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)


@pytest.fixture()
def store_path(demo_path: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "demo.gpkg"
    shutil.copyfile(demo_path, dst)
    return dst


def _text(data: bytes) -> tuple[str, tuple[float, float]]:
    page = pypdf.PdfReader(io.BytesIO(data)).pages[0]
    return page.extract_text(), (float(page.mediabox.width), float(page.mediabox.height))


def _fix_hr02(path: Path, *, withdraw: bool = False) -> None:
    """Reroute HR-02 along HR-01 (clear of every zone), or set it to draft."""
    store = GeoPackageStore(path)
    routes = store.read("hazmat_routes")
    hr2 = routes["id"] == "HR-02"
    if withdraw:
        routes.loc[hr2, "status"] = "draft"
    else:
        routes.loc[hr2, "geometry"] = routes.loc[routes["id"] == "HR-01", "geometry"].iloc[0]
    store.write({"hazmat_routes": routes})


# --- command line --------------------------------------------------------------------------
def test_cli_refuses_hr02_then_override_prints_it(store_path: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "notice.pdf"
    assert main(["publish", "notice", "--store", str(store_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert ("riskmap: error: publishing refused: 1 route(s) to publish (HR-02) have a critical "
            "route-check finding / 拒绝发布：待发布路线 HR-02 存在严重路线核查问题") in err
    assert ("- route HR-02 crosses forbidden zone Z-01 (岩马水库饮用水水源保护区) "
            "[route_in_forbidden_zone, finding route_in_forbidden_zone:HR-02:Z-01:") in err
    assert "通行路线 HR-02 穿越禁行区域 Z-01（岩马水库饮用水水源保护区）：通行路线 HR-02 在 K" in err
    assert 'publish anyway with --override "reason"' in err
    assert not out.exists()

    rc = main(["publish", "notice", "--store", str(store_path), "--out", str(out),
               "--override", "市局批准 临时保供", "--notice", "枣公交通〔2026〕12号"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "warning: published by override (市局批准 临时保供): route HR-02 crosses forbidden " \
           "zone Z-01" in printed
    text, (w, h) = _text(out.read_bytes())
    assert abs(w - 595.28) <= 1 and abs(h - 841.89) <= 1  # A4 portrait
    assert OVERRIDE_ZH in text.replace("\n", "")
    assert "注意：经批准发布的违规路段\nStretch published by override" in text  # in red on the map
    assert TITLE in text and "\nN\n" in f"\n{text}\n" and "北" in text
    for road in ("京台高速", "光明大道", "衡山路"):  # road names from the roads layer
        assert road in text, road
    assert "枣公交通〔2026〕12号" in text and "岩马水库饮用水水源保护区" in text
    assert "HR-01  09:00-16:00;20:00-06:00" in text and "EPSG:4548" in text


def test_cli_publishes_after_the_route_is_fixed(store_path: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _fix_hr02(store_path)
    out = tmp_path / "notice.pdf"
    rc = main(["publish", "notice", "--store", str(store_path), "--out", str(out),
               "--paper", "a3", "--orientation", "landscape"])
    assert rc == 0, capsys.readouterr().err
    text, (w, h) = _text(out.read_bytes())
    assert abs(w - 1190.55) <= 1 and abs(h - 841.89) <= 1  # A3 landscape
    assert "注意" not in text and "Warning" not in text
    assert "未编号 / no number" in text  # no --notice, no setting: never a zone's notice text
    assert "枣公交通〔2024〕7号" not in text.split("Valid until")[0]
    assert "路线核查：2 条路线，无严重问题" in text


def test_cli_publishes_after_the_route_is_withdrawn(store_path: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _fix_hr02(store_path, withdraw=True)
    monkeypatch.setenv("RISKMAP_NOTICE_NO", "枣公交通〔2026〕3号")
    monkeypatch.setenv("RISKMAP_NOTICE_VALID_UNTIL", "2099-12-31")
    out = tmp_path / "notice.png"
    assert main(["map", "police", "--publish", "--store", str(store_path),
                 "--out", str(out), "--dpi", "100"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (826, 1169)  # A4 at 100 dpi
    pdf = tmp_path / "notice.pdf"
    assert main(["publish", "notice", "--store", str(store_path), "--out", str(pdf)]) == 0
    text, _ = _text(pdf.read_bytes())
    assert "枣公交通〔2026〕3号" in text and "2099-12-31" in text
    assert "HR-02" not in text and "HR-01" in text
    assert "路线核查：1 条路线，无严重问题" in text


def test_cli_map_publish_refused_in_every_format(store_path: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("v.html", "v.png"):
        assert main(["map", "police", "--publish", "--store", str(store_path),
                     "--out", str(tmp_path / name)]) == 2
        assert "publishing refused" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    assert main(["publish", "notice", "--store", str(store_path), "--out",
                 str(tmp_path / "n.pdf"), "--override", "   "]) == 2
    assert "override reason is empty" in capsys.readouterr().err
    assert main(["publish", "notice", "--store", str(store_path), "--out",
                 str(tmp_path / "n.pdf"), "--override", "x", "--valid-until", "2020-01-01"]) == 2
    assert "valid-until 2020-01-01 is before the notice date" in capsys.readouterr().err
    assert main(["publish", "notice", "--store", str(store_path), "--out",
                 str(tmp_path / "n.svg")]) == 2
    assert "expected a .pdf or .png file" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--date is not offered for the printed notice"):
        main(["map", "police", "--publish", "--store", str(store_path), "--out",
              str(tmp_path / "n.pdf"), "--date", "2026-01-01"])
    monkeypatch.setenv("RISKMAP_NOTICE_FONT", str(tmp_path / "none.ttf"))
    assert main(["publish", "notice", "--store", str(store_path), "--out",
                 str(tmp_path / "n.pdf"), "--override", "x"]) == 2
    assert f"riskmap: error: notice font '{tmp_path / 'none.ttf'}' does not exist; expected a " \
        "TrueType/OpenType file" in capsys.readouterr().err


# --- HTTP ------------------------------------------------------------------------------------
@pytest.fixture()
def client(store_path: Path) -> Iterator[TestClient]:
    settings = Settings(store=str(store_path), api_keys=API_KEYS,  # type: ignore[arg-type]
                        notice_authority="枣庄市公安局交通警察支队")
    with TestClient(create_app(settings, clock=lambda: CLOCK)) as c:
        yield c


def _key(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


@pytest.mark.slow
def test_api_refuses_then_override_needs_police(client: TestClient, store_path: Path) -> None:
    r = client.get("/maps/police/notice.pdf")
    assert r.status_code == 409
    body: dict[str, Any] = r.json()
    assert body["code"] == "Conflict"
    assert body["description"].startswith("publishing refused: 1 route(s) to publish (HR-02)")
    assert "override=REASON (role police)" in body["description"]
    [refused] = body["refused"]
    assert (refused["route_id"], refused["other_id"], refused["kind"], refused["other_name"]) \
        == ("HR-02", "Z-01", "route_in_forbidden_zone", "岩马水库饮用水水源保护区")
    assert refused["message_zh"].startswith("通行路线 HR-02 在 K")
    assert client.get("/maps/police/notice.png").status_code == 409
    assert client.get("/maps/police?publish=true").status_code == 409  # the notice view too

    q = {"override": "市局批准 临时保供"}
    assert client.get("/maps/police/notice.pdf", params=q).status_code == 401
    assert client.get("/maps/police/notice.pdf", params=q,
                      headers=_key("public")).status_code == 403
    assert client.get("/maps/police/notice.pdf", params=q,
                      headers=_key("planner")).status_code == 403
    r = client.get("/maps/police/notice.pdf", params=q, headers=_key("police"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text, (w, h) = _text(r.content)
    assert abs(w - 595.28) <= 1 and abs(h - 841.89) <= 1
    assert OVERRIDE_ZH in text.replace("\n", "")
    assert "发布日期 Date：2026-12-07" in text  # the district's today, not UTC's 12-06
    assert "枣庄市公安局交通警察支队" in text and "未编号 / no number" in text


@pytest.mark.slow
def test_api_prints_after_fix_and_links_from_the_view(client: TestClient,
                                                      store_path: Path) -> None:
    _fix_hr02(store_path)
    r = client.get("/maps/police/notice.pdf", params={"paper": "a3"})
    assert r.status_code == 200
    text, (w, h) = _text(r.content)
    assert abs(w - 841.89) <= 1 and abs(h - 1190.55) <= 1  # A3 portrait
    assert TITLE in text and "注意" not in text and "北" in text and "京台高速" in text
    r = client.get("/maps/police/notice.png", params={"dpi": "72",
                                                      "orientation": "landscape"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert struct.unpack(">II", r.content[16:24]) == (841, 595)  # A4 landscape at 72 dpi
    r = client.get("/maps/police?publish=true")
    assert r.status_code == 200
    assert 'href="/maps/police/notice.pdf"' in r.text and 'href="/maps/police/notice.png"' in r.text
    # the view's number: never the zone's notice text (JSON in a <script>: "/" is "\\/")
    assert '"notice":"未编号 \\/ no number","date":"2026-12-07"' in r.text
    for q, msg in (({"paper": "a5"}, "paper='a5'; expected a4 or a3"),
                   ({"orientation": "up"}, "orientation='up'"),
                   ({"dpi": "1000"}, "dpi='1000'; expected a whole number 72 to 300"),
                   ({"scale": "1"}, "unknown query parameter(s) scale")):
        r = client.get("/maps/police/notice.png", params=q)
        assert r.status_code == 400 and msg in r.json()["description"], (q, r.text)
    r = client.get("/maps/police/notice.pdf", params={"dpi": "100"})
    assert r.status_code == 400 and "only offered for the PNG" in r.json()["description"]


# --- PostGIS ---------------------------------------------------------------------------------
@pytest.mark.server
@pytest.mark.slow
def test_cli_notice_on_postgis(demo_path: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from layers.store import open_store
    from tests.layers.postgis_support import postgis_url, scratch_schema

    url = postgis_url()
    src = GeoPackageStore(demo_path)
    with scratch_schema(url) as store_url:
        open_store(store_url).write({name: src.read(name) for name in
                                     ("roads", "restricted_zones", "hazmat_routes")})
        out = tmp_path / "notice.pdf"
        assert main(["publish", "notice", "--store", store_url, "--out", str(out)]) == 2
        assert "publishing refused: 1 route(s) to publish (HR-02)" in capsys.readouterr().err
        assert main(["publish", "notice", "--store", store_url, "--out", str(out),
                     "--override", "市局批准 临时保供"]) == 0
        text, (w, h) = _text(out.read_bytes())
        assert abs(w - 595.28) <= 1 and abs(h - 841.89) <= 1
        assert OVERRIDE_ZH in text.replace("\n", "") and "京台高速" in text
