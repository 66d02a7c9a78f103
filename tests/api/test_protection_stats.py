"""protection_stats (the dashboard's signs, patrol and inspection rates) on a store whose
warning-sign layer is absent: the HCA counts as unsigned, no crash."""

from __future__ import annotations

from api.runs.patrol import protection_stats
from api.service import AnalysisService
from layers.store import GeoPackageStore


def test_protection_stats_on_a_store_without_signs(small_store_path):
    stats = protection_stats(AnalysisService(GeoPackageStore(small_store_path)))
    signs = stats["signs"]
    assert (signs["year"], signs["target"], signs["signed_m"], signs["rate"], signs["gaps"],
            signs["met"]) == (2022, 1.0, 0.0, 0.0, 1, False)
    assert signs["hca_m"] > 200
