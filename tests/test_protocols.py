"""The planning protocol library: built-in sites, department overrides, provenance, validation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from optimiser.errors import ConfigurationError
from protocols.library import load_library
from protocols.site_ids import BUILTIN_SITES, GENERIC_SITE


def test_every_builtin_site_loads_with_sources() -> None:
    lib = load_library()
    assert sorted(lib.site_ids) == sorted(BUILTIN_SITES)
    assert lib.site_ids[-1] == GENERIC_SITE
    for site in lib.site_ids:
        protocol = lib.get(site)
        assert protocol.coverage.default_needed_length_mm > 0
        if site != GENERIC_SITE:
            assert protocol.reference_ctdivol_mgy is not None
            assert protocol.reference_ctdivol_mgy.source
            assert protocol.reference_ctdivol_mgy.statistic
        # every value says which file set it and, except identifiers, where it comes from
        for v in lib.provenance[site]:
            if v.key == "site":
                assert v.origin == "file name"
                continue
            assert v.origin.startswith("built-in")
            if v.key not in ("title", "phantom"):
                assert v.source, v.key


def test_reference_levels_match_the_reference_table() -> None:
    # planning-ct.md section 3: (site, quantity) -> [(kind, value)], the investigation level
    # first. DRLs: breast 26 / 732 and head & neck 21 / 882 (Ireland, P75), pelvis DLP 999.7
    # (Rao 2022, P75); typical values: Weber & Wieslander medians, Hubbard means.
    lib = load_library()
    expected = {
        ("brain", "ctdivol_mgy"): [("typical", 41.0)],
        ("brain", "dlp_mgy_cm"): [("typical", 1125.0)],
        ("head_neck", "ctdivol_mgy"): [("drl", 21.0), ("typical", 11.0)],
        ("head_neck", "dlp_mgy_cm"): [("drl", 882.0), ("typical", 452.0)],
        ("breast", "ctdivol_mgy"): [("drl", 26.0), ("typical", 9.0)],
        ("breast", "dlp_mgy_cm"): [("drl", 732.0), ("typical", 355.0)],
        ("lung_3d", "ctdivol_mgy"): [("typical", 12.0)],
        ("lung_3d", "dlp_mgy_cm"): [("typical", 390.0)],
        ("lung_4dct", "ctdivol_mgy"): [("typical", 19.6)],
        ("lung_4dct", "dlp_mgy_cm"): [],
        ("prostate", "ctdivol_mgy"): [("typical", 17.0)],
        ("prostate", "dlp_mgy_cm"): [("drl", 999.7), ("typical", 813.0)],
        ("prostate_nodes", "ctdivol_mgy"): [("typical", 17.0)],
        ("prostate_nodes", "dlp_mgy_cm"): [("drl", 999.7)],
        ("generic", "ctdivol_mgy"): [],
        ("generic", "dlp_mgy_cm"): [],
    }
    for (site, quantity), levels in expected.items():
        got = lib.get(site).levels(quantity)  # type: ignore[arg-type]
        assert [(v.kind, v.value) for v in got] == levels, (site, quantity)
        for v in got:
            # the statistic says which kind it is
            assert ("75th percentile" in v.statistic) == (v.kind == "drl"), v.statistic


def test_k_factors_default_to_the_icrp103_column() -> None:
    lib = load_library()
    assert lib.k_factors.column == "icrp103"
    assert lib.k("abdomen") == 0.0153
    assert lib.k("head") == 0.0019


def test_band_tables_are_padded_with_infinite_ends() -> None:
    lib = load_library()
    t = lib.band_tables()
    s = lib.site_index("prostate")
    # prostate above N: abdomen 250 mm, chest 300 mm, neck 100 mm, then head to infinity.
    assert list(t.above_end[s][:3]) == [250.0, 550.0, 650.0]
    assert math.isinf(t.above_end[s][3])
    assert list(t.above_k[s][:4]) == [0.0153, 0.0145, 0.0051, 0.0019]
    assert np.all(np.isinf(t.inside_frac[s]))  # one band inside N: pelvis throughout
    assert t.inside_k[s][0] == 0.0129


def test_department_override_changes_one_value_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "prostate.toml").write_text(
        "[reference_ctdivol_mgy]\nvalue = 12.5\nstatistic = 'local 75th percentile 2025'\n"
        "source = 'St Elsewhere audit 2025'\n\n[coverage]\ntolerance_mm = 5.0\n"
    )
    (tmp_path / "_regions.toml").write_text("[k_factors]\ncolumn = 'aapm96'\n")
    lib = load_library(tmp_path)
    p = lib.get("prostate")
    assert p.reference_ctdivol_mgy is not None
    assert p.reference_ctdivol_mgy.value == 12.5
    assert p.coverage.tolerance_mm == 5.0
    assert p.coverage.margin_superior_mm == 30.0  # untouched values stay built-in
    assert lib.k("pelvis") == 0.015  # AAPM Report 96 column
    by_key = {v.key: v for v in lib.provenance["prostate"]}
    assert by_key["reference_ctdivol_mgy.value"].origin.startswith("department override")
    assert by_key["reference_ctdivol_mgy.value"].source == "St Elsewhere audit 2025"
    assert "no source given" in by_key["coverage.tolerance_mm"].source
    assert by_key["coverage.margin_superior_mm"].origin == "built-in prostate.toml"
    # the other sites are unchanged
    assert lib.get("breast").coverage.tolerance_mm == 10.0


def test_override_may_add_a_site(tmp_path: Path) -> None:
    generic = Path(__file__).resolve().parents[1] / "protocols" / "sites" / "generic.toml"
    (tmp_path / "sarcoma_leg.toml").write_text(generic.read_text())
    lib = load_library(tmp_path)
    assert "sarcoma_leg" in lib.site_ids
    assert lib.site_ids[-1] == GENERIC_SITE


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("prostate.toml", "[coverage]\ntolerance_mm = -1\n", "coverage.tolerance_mm"),
        ("prostate.toml", "[regions]\ninside = [{region = 'pelvis', fraction = 0.5}]\n",
         "sum to 0.5"),
        ("prostate.toml", "[regions]\nbelow = [{region = 'tail', length_mm = 1.0}]\n", "'tail'"),
        ("prostate.toml", "[coverage\n", "not valid TOML"),
        ("prostate.toml", "unknown_key = 1\n", "unknown_key"),
        ("_regions.toml", "[k_factors]\ncolumn = 'icrp26'\n", "icrp26"),
    ],
)  # fmt: skip
def test_invalid_override_names_file_field_and_remedy(
    tmp_path: Path, name: str, text: str, match: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigurationError, match=match):
        load_library(tmp_path)


def test_unknown_site_and_missing_directory(tmp_path: Path) -> None:
    lib = load_library()
    with pytest.raises(ConfigurationError, match="known: brain"):
        lib.get("pancreas")
    protocol, found = lib.resolve("pancreas")
    assert (protocol.site, found) == (GENERIC_SITE, False)
    with pytest.raises(ConfigurationError, match="not a directory"):
        load_library(tmp_path / "missing")
