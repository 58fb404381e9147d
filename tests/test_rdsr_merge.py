"""Study accumulation: cumulative reports deduplicate, continuation reports add events, and the
recomputed DLP is checked against the reported totals (a mismatch is a warning)."""

from __future__ import annotations

import itertools

import pytest

from optimiser.dicom import merge_study, read_dose_report
from optimiser.records import DoseReport
from tests.paths import SHARED

RDSR = SHARED / "data" / "rdsr"

pytestmark = pytest.mark.realdata


def _reports(*names: str) -> list[DoseReport]:
    return [read_dose_report(RDSR / n) for n in names]


MULTI = tuple(f"CT-RDSR-Siemens-Multi-{n}.dcm" for n in (1, 2, 3))
CONTINUED = ("CT-RDSR-Siemens-Continued-1.dcm", "CT-RDSR-Siemens-Continued-2.dcm")


@pytest.mark.parametrize("order", list(itertools.permutations(MULTI)))
def test_cumulative_reports_merge_to_three_unique_events(order: tuple[str, ...]) -> None:
    (study,) = merge_study(_reports(*order))
    assert len(study.acquisitions) == 3
    # 7.46 + 69.81 + 158.82 = 236.09 mGy.cm, the last report's own total
    assert study.dlp_total_mgy_cm == pytest.approx(236.09, abs=1e-9)
    assert sorted(study.reported_dlp_totals_mgy_cm) == [7.46, 77.27, 236.09]
    assert study.warnings == []
    assert study.header.source == "CT-RDSR-Siemens-Multi-3.dcm"
    assert [a.acquisition_type for a in study.acquisitions] == ["localizer", "spiral", "spiral"]


@pytest.mark.parametrize("order", [CONTINUED, CONTINUED[::-1]])
def test_continuation_reports_add_their_events(order: tuple[str, ...]) -> None:
    (study,) = merge_study(_reports(*order))
    assert len(study.acquisitions) == 4
    # 5.05 + 55.12 + 4.62 + 51.82 = 116.61 = 60.17 + 56.44
    assert study.dlp_total_mgy_cm == pytest.approx(116.61, abs=1e-9)
    assert study.warnings == []
    assert set(study.sources) == set(CONTINUED)


def test_reports_of_different_studies_stay_apart() -> None:
    studies = merge_study(_reports(*MULTI, *CONTINUED, "CT-RDSR-Toshiba_DoseCheck.dcm"))
    assert [len(s.acquisitions) for s in studies] == [3, 4, 2]
    assert len({s.study_instance_uid for s in studies}) == 3


def test_total_mismatch_is_a_warning_not_an_error() -> None:
    (report,) = _reports("CT-RDSR-Siemens-Continued-1.dcm")
    report.dlp_total_mgy_cm = 99.0  # events sum to 5.05 + 55.12 = 60.17
    (study,) = merge_study([report])
    assert study.dlp_total_mgy_cm == pytest.approx(60.17)
    assert len(study.warnings) == 1 and "60.17" in study.warnings[0]
    assert "99.00" in study.warnings[0]


def test_a_resent_identical_report_is_not_counted_twice() -> None:
    report = read_dose_report(RDSR / "CT-RDSR-Toshiba_DoseCheck.dcm")
    again = read_dose_report(RDSR / "CT-RDSR-Toshiba_DoseCheck.dcm", source="resent.dcm")
    (study,) = merge_study([report, again])
    assert len(study.acquisitions) == 2
    assert study.dlp_total_mgy_cm == pytest.approx(502.4)
    assert study.warnings == []


def test_no_reports_no_studies() -> None:
    assert merge_study([]) == []
