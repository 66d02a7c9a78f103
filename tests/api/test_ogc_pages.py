"""The OGC HTML pages (collections, a collection, items, an item, conformance) carry the role
bar of every riskmap page: who is signed in and with which role, and a way to sign in."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import auth

PAGES = ["/collections?f=html", "/collections/restricted_zones?f=html",
         "/collections/restricted_zones/items?f=html", "/collections/restricted_zones/items/Z-1?f=html",
         "/conformance?f=html"]


@pytest.mark.parametrize("path", PAGES)
def test_ogc_pages_name_the_caller(client, path):
    r = client.get(path, headers=auth("planner"))
    assert r.status_code == 200, r.text
    bar = re.search(r'<div class="riskmap-rolebar"[^>]*>', r.text)
    assert bar is not None
    assert 'data-role="planner"' in bar.group(0) and 'data-name="planner-user"' in bar.group(0)
    assert 'data-signed-in="true"' in bar.group(0)
    anon = client.get(path).text
    assert 'data-signed-in="false"' in anon
    assert re.search(r'href="/signin\?next=/[^"]*"', anon)
