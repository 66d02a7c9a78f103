"""Rule tables: defaults, district overrides by id, validation, UNCONFIRMED rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from layers.errors import RuleError
from layers.rules import CONFIDENCES, load_rules

NAMES = ("pipelines", "location_class", "hca")


def test_every_default_row_has_source_and_confidence() -> None:
    rules = load_rules(*NAMES)
    for table in rules.tables:
        for r in rules.rows(table, include_inactive=True):
            assert r.source, r.label
            assert r.confidence in CONFIDENCES, r.label
            assert r.active == (r.confidence != "UNCONFIRMED"), r.label


def test_default_values_from_the_manifest_contract() -> None:
    rules = load_rules("pipelines")
    occ = rules.get("occupancy", "ppl_art30_corridor")
    assert (occ["half_width_m"], occ["measure_from"], occ["confidence"]) == (5.0, "centre_line", "C2")
    zone = rules.get("occupancy", "urban_gas_protection_zone")
    assert (zone["half_width_m"], zone["measure_from"]) == (0.5, "pipe_wall")
    req = {r.id: r["required_m"] for r in rules.rows("setback")}
    assert req == {
        "gb50028_low_foundation": 0.7, "gb50028_medium_b_foundation": 1.0,
        "gb50028_medium_a_foundation": 1.5, "gb50028_sub_high_b_wall": 5.0,
        "gb50028_sub_high_a_wall": 13.5, "gb50028_sub_high_a_wall_9_5mm": 6.5,
        "gb50028_sub_high_a_wall_11_9mm": 3.0, "gb50253_oil_crowded_buildings": 15.0,
        "gb50253_oil_factories": 20.0,
    }  # fmt: skip
    assert {r.id for r in rules.inactive()} >= {"gb50028_high_b_wall", "gb50251_gas_building_5m"}


def test_conflict_rows_are_marked_secondary_sources() -> None:
    rules = load_rules("hca")
    grades = {r["row"]: (r["grade"], r.confidence) for r in rules.rows("gas")}
    assert grades["c"] == ("II", "CONFLICT") and grades["e"] == ("I", "CONFLICT")
    assert grades["f"] == ("II", "CONFLICT")
    assert rules.get("oil", "gb32167_oil_e")["grade"] == "II"
    for rid in ("gb32167_gas_c", "gb32167_gas_e", "gb32167_gas_f", "gb32167_oil_e"):
        assert "secondary sources" in rules.get(rid[8:11], rid)["note"]
    assert rules.one("pir")["coefficient"] == 0.099


def test_district_file_overrides_by_id_and_falls_back(tmp_path: Path) -> None:
    f = tmp_path / "district.toml"
    f.write_text(
        '[[occupancy]]\nid = "urban_gas_protection_zone"\nhalf_width_m = 1.0\n\n'
        '[[setback]]\nid = "district_shed_rule"\npipeline_kind = "long_distance"\n'
        'building_uses = ["shed"]\nmeasure_to = "outer_wall"\nrequired_m = 8.0\n'
        'severity = "low"\nsource = "District notice 2024-01"\nconfidence = "LOCAL"\n'
    )
    rules = load_rules("pipelines", override=f)
    zone = rules.get("occupancy", "urban_gas_protection_zone")
    assert zone["half_width_m"] == 1.0
    assert zone["measure_from"] == "pipe_wall"  # field kept from the default row
    assert zone.origin == str(f)
    assert "overridden by district.toml" in zone.source
    assert rules.get("occupancy", "ppl_art30_corridor")["half_width_m"] == 5.0
    assert rules.get("setback", "district_shed_rule").active
    assert len(rules.rows("setback")) == 10


def test_district_file_may_carry_tables_of_other_rule_files(tmp_path: Path) -> None:
    f = tmp_path / "district.toml"
    f.write_text('[[monitoring]]\nid = "monitoring_2022"\ntarget = 0.9\n')
    rules = load_rules("pipelines", override=f)  # hca table, not loaded: ignored
    assert "monitoring" not in rules.tables
    assert load_rules("hca", override=f).get("monitoring", "monitoring_2022")["target"] == 0.9


def test_bad_district_file_lists_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(
        '[[setbak]]\nid = "x"\n\n'
        '[[setback]]\nid = "new"\npipeline_kind = "long_distance"\nrequired_m = -1\n'
        'measure_to = "outer_wall"\nseverity = "high"\nconfidence = "MAYBE"\n'
    )
    with pytest.raises(RuleError) as err:
        load_rules("pipelines", override=f)
    text = str(err.value)
    assert "unknown rule table 'setbak'" in text
    assert "source is missing" in text
    assert "confidence is 'MAYBE'" in text
    assert "required_m is -1; expected a number > 0" in text


def test_unknown_file_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no default rule file"):
        load_rules("nope")
    f = tmp_path / "x.toml"
    f.write_text("[[setback]\n")
    with pytest.raises(RuleError, match="not valid TOML"):
        load_rules("pipelines", override=f)
    with pytest.raises(RuleError, match="does not exist"):
        load_rules("pipelines", override=tmp_path / "missing.toml")
