"""Hazard attachments: photos and PDFs checked by content, stored never executable, served as
downloads; oversized files, disguised executables and path names refused."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layers.attachments import check_name, sniff
from layers.registry import Actor, Registry
from tests.api.conftest import auth, make_client

FIRE_HID = "lane_too_narrow:FL-1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0" + bytes(100)
PDF = b"%PDF-1.7\n" + bytes(100)
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(50)


def _fire_finding() -> dict[str, Any]:
    return {"finding_id": FIRE_HID, "kind": "lane_too_narrow", "severity": "high",
            "layer": "fire_lanes", "feature_id": "FL-1", "other_layer": "compounds",
            "other_id": "C-1", "rule_id": "fire.lane_width_m", "rule_source": "GB 50016 7.1.8",
            "message_zh": "消防车道 FL-1 宽 3.2 m（要求 4 m）", "message_en": "lane 3.2 m < 4 m",
            "lon": 117.25, "lat": 34.8}


@pytest.fixture()
def ac(store_copy: Any) -> Iterator[tuple[Any, Path]]:
    Registry(store_copy.path).register(_fire_finding(), analysis="fire_findings",
                                       owner_role="fire", actor=Actor("t", "admin"))
    with make_client(store_copy.path, max_attachment_bytes=4096) as c:
        yield c, Path(str(store_copy.path) + ".attachments")


def _up(c: Any, data: bytes, name: str, role: str = "fire", hid: str = FIRE_HID,
        version: str | None = None) -> Any:
    headers = auth(role)
    if version is not None:
        headers["If-Match"] = version
    return c.post(f"/registry/hazards/{hid}/attachments", headers=headers,
                  files={"file": (name, data, "image/jpeg")})


def test_sniff_and_names() -> None:
    assert [sniff(x[:16]) for x in (PNG, JPEG, PDF, WEBP, b"GIF89a", b"")] == [
        "image/png", "image/jpeg", "application/pdf", "image/webp", None, None]
    assert check_name(" 现场照片.jpg ") == "现场照片.jpg"
    for bad in ("../../x.png", "a/b.jpg", "C:\\x.jpg", "..", "x\x00.png", "x\n.png"):
        with pytest.raises(ValueError):
            check_name(bad)


def test_upload_list_download(ac: tuple[Any, Path]) -> None:
    c, folder = ac
    r = _up(c, PNG, "现场照片.png", version='"1"')
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"2"'
    (att,) = r.json()["attachments"]
    assert att["name"] == "现场照片.png" and att["type"] == "image/png"
    assert att["size"] == str(len(PNG)) and att["uploaded_by"] == "fire-user"
    assert att["href"] == f"/registry/hazards/lane_too_narrow%3AFL-1/attachments/{att['id']}"
    path = folder / att["id"]
    assert path.read_bytes() == PNG
    assert att["id"].endswith(".png") and len(att["id"]) == 36
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & 0o111 == 0 and mode & 0o007 == 0
    g = c.get(att["href"], headers=auth("fire"))
    assert g.status_code == 200 and g.content == PNG
    assert g.headers["content-type"] == "image/png"
    assert g.headers["x-content-type-options"] == "nosniff"
    assert g.headers["content-disposition"] == (
        "attachment; filename=\"____.png\"; filename*=UTF-8''%E7%8E%B0%E5%9C%BA%E7%85%A7%E7%89%87.png")
    assert c.get(att["href"], headers=auth("police")).status_code == 404  # cannot see it
    assert c.get(att["href"], headers=auth("admin")).status_code == 200
    r2 = _up(c, PDF, "整改报告.pdf")  # no If-Match: appended to the current version
    assert r2.status_code == 201 and [a["type"] for a in r2.json()["attachments"]] == [
        "image/png", "application/pdf"]
    hist = c.get(f"/registry/hazards/{FIRE_HID}/history", headers=auth("fire")).json()
    assert [e["action"] for e in hist["entries"]] == ["register", "attachment:add",
                                                      "attachment:add"]


def test_refusals_store_nothing(ac: tuple[Any, Path]) -> None:
    c, folder = ac
    r = _up(c, b"\xff\xd8\xff" + bytes(5000), "big.jpg")
    assert r.status_code == 413
    assert r.json()["description"] == ("file 'big.jpg' is larger than 4096 bytes, the largest "
                                       "attachment accepted (RISKMAP_MAX_ATTACHMENT_BYTES)")
    r = _up(c, b"MZ\x90\x00" + bytes(100), "photo.jpg")
    assert r.status_code == 400
    assert r.json()["description"] == (
        "file 'photo.jpg' is a Windows executable (MZ header), not a photo or PDF; refused (the "
        "name does not decide the type, the content does)")
    r = _up(c, b"\x7fELF\x02\x01" + bytes(100), "photo.jpg")
    assert r.status_code == 400 and "a Linux executable (ELF header)" in r.json()["description"]
    r = _up(c, b"#!/bin/sh\nrm -rf /\n", "photo.png")
    assert r.status_code == 400 and "a script (#! header)" in r.json()["description"]
    r = _up(c, b"GIF89a" + bytes(20), "x.gif")
    assert r.status_code == 400
    assert r.json()["description"] == (
        "file 'x.gif' is not a JPEG, PNG, WebP photo or a PDF (its first bytes are 47 49 46 38 "
        "39 61 00 00); expected one of those")
    r = _up(c, PNG, "../../x.png")
    assert r.status_code == 400
    assert r.json()["description"] == ("file name '../../x.png' contains a path (/, \\, : or "
                                       "..); expected a plain name such as 'site-photo.jpg'")
    assert _up(c, PNG, "a.png", role="police").status_code == 404  # not its hazard: as missing
    assert _up(c, PNG, "a.png", role="planner").status_code == 403  # sees it, may not change
    assert _up(c, PNG, "a.png", role="public").status_code == 403
    r = _up(c, PNG, "a.png", version='"7"')
    assert r.status_code == 409 and r.json()["current"]["version"] == 1
    assert not folder.exists() or list(folder.iterdir()) == []
    h = c.get(f"/registry/hazards/{FIRE_HID}", headers=auth("fire")).json()
    assert h["attachments"] == [] and h["version"] == 1
    r = c.post(f"/registry/hazards/{FIRE_HID}/attachments", headers=auth("fire"),
               content=PNG)
    assert r.status_code == 400
    bad = c.get(f"/registry/hazards/{FIRE_HID}/attachments/..%2F..%2Fetc%2Fpasswd",
                headers=auth("fire"))
    assert bad.status_code == 404
