"""Hazmat routing on a real OpenStreetMap extract (central Helsinki, tests/data/helsinki_roads.osm.pbf,
© OpenStreetMap contributors, ODbL — see tests/data/helsinki_roads.LICENSE.txt).

The extract is read with the project's OSM reader (``highway``/``oneway``/``maxspeed``/
``hazmat``/``hazmat:*``/``tunnel`` … → the ``roads`` schema), projected to its analysis CRS
(UTM 35N) and routed on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csgraph

from geo.crs import to_analysis
from geo.routing import prepare_network, route
from layers.hazmat_rules import load_hazmat_rules
from layers.readers import read_file

PBF = Path(__file__).resolve().parents[1] / "data" / "helsinki_roads.osm.pbf"
PARAMS = load_hazmat_rules().routing


@pytest.fixture(scope="module")
def roads():
    r = read_file(PBF, target="roads")
    return to_analysis(r)


def _net(roads):
    return prepare_network(roads, zones=None, buildings=None, sites=None, params=PARAMS)


def test_real_extract_builds_a_routable_graph(roads):
    assert len(roads) == 1002
    assert roads.crs.to_epsg() == 32635
    net = _net(roads)
    g = net.graph
    _, lab = csgraph.connected_components(g.matrix(), directed=True, connection="strong")
    assert np.bincount(lab).max() >= 0.85 * g.n_nodes
    # OSM tags reach the rules: hazmat:*=no, hgv/access=destination, tunnels
    assert (roads["hazmat"] == "no").sum() == 22
    assert (roads["hazmat"] == "destination").sum() == 125
    assert int(roads["tunnel"].sum()) == 61


def test_tagged_hazmat_no_street_is_avoided(roads):
    # Pieni Roobertinkatu carries hazmat:A:forward=no: refused by the reader's mapping
    a, b = (24.9447, 60.16425), (24.9481, 60.16430)
    tagged = route(_net(roads), a, b, None, objective="distance")
    plain = route(_net(roads.assign(hazmat="yes")), a, b, None, objective="distance")
    no_roads = set(roads.loc[roads["hazmat"] == "no", "id"])
    assert set(plain.routes["roads"].iloc[0].split(";")) & no_roads
    assert not set(tagged.routes["roads"].iloc[0].split(";")) & no_roads
    assert tagged.routes["length_m"].iloc[0] > plain.routes["length_m"].iloc[0]
    assert set(tagged.refused["reason"]) == {"hazmat_no"}
    assert set(tagged.refused["road_id"]) <= no_roads


def test_tunnels_refused_by_the_district_rule_are_avoided(roads):
    # 办法 Art 49(3): the district refuses hazmat vehicles in tunnels → hazmat = no on tunnels
    tunnel = roads["tunnel"].astype(bool)
    ruled = roads.assign(hazmat=np.where(tunnel, "no", roads["hazmat"].fillna("yes")))
    tunnel_ids = set(roads.loc[tunnel, "id"])
    a, b = (24.945588, 60.16881), (24.943435, 60.171982)
    plain = route(_net(roads.assign(hazmat="yes")), a, b, None)
    used = set(plain.routes["roads"].iloc[0].split(";")) & tunnel_ids
    assert len(used) >= 3  # the direct way runs through the underground service tunnel
    res = route(_net(ruled), a, b, None, alternatives=3)
    for roads_on in res.routes["roads"]:
        assert not set(roads_on.split(";")) & tunnel_ids
    refused = res.refused
    assert set(refused.loc[refused["reason"] == "hazmat_no", "road_id"]) == used
