"""Every layer of the schema has its readers and its registry owner stated in api.auth, so a
new layer never falls back to a default silently; the issue-16 layers as decided."""

from __future__ import annotations

from api.auth import LAYER_ROLES, OWNER_ROLES
from layers.schema import LAYER_NAMES


def test_every_layer_has_readers_and_an_owner():
    assert set(LAYER_ROLES) == set(LAYER_NAMES)
    assert set(OWNER_ROLES) == set(LAYER_NAMES)


def test_protection_layers_roles():
    assert LAYER_ROLES["construction_sites"] == {"planner", "admin", "police"}
    for layer in ("pipeline_facilities", "warning_signs", "patrol_paths"):
        assert LAYER_ROLES[layer] == {"planner", "admin"}
        assert OWNER_ROLES[layer] == "planner"
