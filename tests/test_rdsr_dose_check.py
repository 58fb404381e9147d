"""CT Dose Check (NEMA XR-25, PS3.16 TID 10015): configuration is not an exceedance.

TID 10015 (../shared/reference/planning-ct.md sections 7 and 9): an Alert (113900) or
Notification (113908) container records per quantity whether a value is configured (Yes/No, SCT
373066001/373067005 or legacy SRT R-0038D/R-00339) and the configured value; the forward
estimates, the Reason for Proceeding (113907) and the person authorising (TID 1020: Person Name
113870, Person Role in Procedure 113875 = 113850 "Irradiation Authorizing") are present only
when a value was exceeded. Synthetic reports are built here with pydicom; the real shared
reports are checked for what a physicist expects of each.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from optimiser.assessment import Assessment
from optimiser.dicom import read_dose_report, report_to_json
from optimiser.pipeline import Pipeline
from optimiser.records import DoseCheckDetails
from tests.paths import SHARED

RDSR = SHARED / "data" / "rdsr"
YES_SCT, NO_SCT = ("373066001", "SCT", "Yes"), ("373067005", "SCT", "No")
YES_SRT, NO_SRT = ("R-0038D", "SRT", "Yes"), ("R-00339", "SRT", "No")


# --- a minimal X-Ray Radiation Dose SR, built with pydicom ----------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _item(rel: str, vt: str, concept: tuple[str, str, str], **kw: Any) -> Dataset:
    item = Dataset()
    item.RelationshipType = rel
    item.ValueType = vt
    item.ConceptNameCodeSequence = [_code(*concept)]
    children = kw.pop("children", None)
    if vt == "CODE":
        item.ConceptCodeSequence = [_code(*kw.pop("code"))]
    elif vt == "NUM":
        mv = Dataset()
        mv.NumericValue = kw.pop("number")
        mv.MeasurementUnitsCodeSequence = [_code(kw.pop("unit"), "UCUM", "unit")]
        item.MeasuredValueSequence = [mv]
    elif vt == "TEXT":
        item.TextValue = kw.pop("text")
    elif vt == "UIDREF":
        item.UID = kw.pop("uid")
    elif vt == "PNAME":
        item.PersonName = kw.pop("name")
    if children:
        item.ContentSequence = children
    assert not kw, kw
    return item


def configured(quantity: str, kind: str, answer: tuple[str, str, str]) -> Dataset:
    """'<quantity> <kind> Value Configured' (113901/113902 alert, 113909/113910 notification)."""
    code = {("dlp", "alert"): "113901", ("ctdivol", "alert"): "113902",
            ("dlp", "notification"): "113909", ("ctdivol", "notification"): "113910"}  # fmt: skip
    return _item("CONTAINS", "CODE", (code[quantity, kind], "DCM", "Configured"), code=answer)


def value(code: str, number: str, unit: str) -> Dataset:
    return _item("CONTAINS", "NUM", (code, "DCM", "value"), number=number, unit=unit)


def person(name: str, role: tuple[str, str, str] | None = ("113850", "DCM", "Irr. Authorizing")
           ) -> Dataset:  # fmt: skip
    roles = [] if role is None else [
        _item("HAS PROPERTIES", "CODE", ("113875", "DCM", "Person Role in Procedure"), code=role)
    ]  # fmt: skip
    return _item("CONTAINS", "PNAME", ("113870", "DCM", "Person Name"), name=name, children=roles)


def reason(text: str) -> Dataset:
    return _item("CONTAINS", "TEXT", ("113907", "DCM", "Reason for Proceeding"), text=text)


def alert(*rows: Dataset) -> Dataset:
    return _item("CONTAINS", "CONTAINER", ("113900", "DCM", "Dose Check Alert Details"),
                 children=list(rows))  # fmt: skip


def notification(*rows: Dataset) -> Dataset:
    return _item("CONTAINS", "CONTAINER", ("113908", "DCM", "Dose Check Notification Details"),
                 children=list(rows))  # fmt: skip


def report_bytes(*checks: Dataset, ctdivol: str = "12.5", dlp: str = "400") -> bytes:
    """One helical CT Acquisition (CTDIvol 12.5 mGy, DLP 400 mGy.cm, body) with ``checks``."""
    dose = _item("CONTAINS", "CONTAINER", ("113829", "DCM", "CT Dose"), children=[
        _item("CONTAINS", "NUM", ("113830", "DCM", "Mean CTDIvol"), number=ctdivol, unit="mGy"),
        _item("CONTAINS", "CODE", ("113835", "DCM", "CTDIw Phantom Type"),
              code=("113691", "DCM", "IEC Body Dosimetry Phantom")),
        _item("CONTAINS", "NUM", ("113838", "DCM", "DLP"), number=dlp, unit="mGy.cm"),
        *checks,
    ])  # fmt: skip
    acquisition = _item("CONTAINS", "CONTAINER", ("113819", "DCM", "CT Acquisition"), children=[
        _item("CONTAINS", "CODE", ("113820", "DCM", "CT Acquisition Type"),
              code=("116152004", "SCT", "Spiral Acquisition")),
        _item("CONTAINS", "UIDREF", ("113769", "DCM", "Irradiation Event UID"),
              uid="1.2.826.0.1.3680043.9.7777.2.1"),
        dose,
    ])  # fmt: skip
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.7777.3"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7777.4"
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("113701", "DCM", "X-Ray Radiation Dose Report")]
    ds.ContentSequence = [acquisition]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def checks_of(data: bytes) -> list[DoseCheckDetails]:
    report = read_dose_report(data, source="synthetic.dcm")
    [acq] = report.acquisitions
    return acq.dose_check


def assess(data: bytes) -> Assessment:
    [a] = Pipeline().process([read_dose_report(data, source="synthetic.dcm")])
    return a


def dose_check_finding(a: Assessment) -> tuple[str, str] | None:
    found = [(f.severity, f.message) for f in a.findings if f.code == "dose_check_exceeded"]
    assert len(found) <= 1
    return found[0] if found else None


# --- synthetic reports ----------------------------------------------------------------------


@pytest.mark.parametrize(("yes", "no"), [(YES_SCT, NO_SCT), (YES_SRT, NO_SRT)])
def test_configured_values_alone_are_not_an_exceedance(
    yes: tuple[str, str, str], no: tuple[str, str, str]
) -> None:
    data = report_bytes(
        alert(configured("dlp", "alert", no), configured("ctdivol", "alert", yes),
              value("113904", "1000", "mGy")),
        notification(configured("dlp", "notification", yes),
                     configured("ctdivol", "notification", yes),
                     value("113911", "1000", "mGy.cm"), value("113912", "50", "mGy")),
    )  # fmt: skip
    a_check, n_check = checks_of(data)
    assert (a_check.dlp_configured, a_check.ctdivol_configured) == (False, True)
    assert a_check.ctdivol_value_mgy == 1000.0
    assert (n_check.dlp_configured, n_check.ctdivol_configured) == (True, True)
    assert (n_check.dlp_value_mgy_cm, n_check.ctdivol_value_mgy) == (1000.0, 50.0)
    assert a_check.exceedances() == [] and n_check.exceedances() == []
    a = assess(data)
    assert dose_check_finding(a) is None
    # configuration is at most a note, with the values a physicist would want to see
    assert any("Dose Check configured" in n and "50 mGy" in n for n in a.notes)


@pytest.mark.parametrize(("yes", "no"), [(YES_SCT, NO_SCT), (YES_SRT, NO_SRT)])
def test_notification_forward_estimate_at_the_value_is_a_warning(
    yes: tuple[str, str, str], no: tuple[str, str, str]
) -> None:
    data = report_bytes(
        alert(configured("dlp", "alert", no), configured("ctdivol", "alert", no)),
        notification(configured("dlp", "notification", no),
                     configured("ctdivol", "notification", yes), value("113912", "50", "mGy"),
                     value("113914", "50", "mGy")),  # at the value counts (">= configured")
    )  # fmt: skip
    _, n_check = checks_of(data)
    assert n_check.ctdivol_forward_estimate_mgy == 50.0
    assert len(n_check.exceedances()) == 1
    found = dose_check_finding(assess(data))
    assert found is not None
    severity, message = found
    assert severity == "warning"
    assert "1 notification" in message and "0 alerts" in message
    assert "CTDIvol forward estimate 50 mGy" in message and "50 mGy" in message


def test_alert_exceedance_with_reason_and_authorising_person_is_an_alert() -> None:
    data = report_bytes(
        alert(configured("dlp", "alert", YES_SCT), configured("ctdivol", "alert", NO_SCT),
              value("113903", "1000", "mGy.cm"), value("113905", "1250", "mGy.cm"),
              reason("re-scan after patient movement"), person("Smith^Jo")),
        notification(configured("dlp", "notification", YES_SCT),
                     configured("ctdivol", "notification", NO_SCT),
                     value("113911", "500", "mGy.cm"), value("113913", "600", "mGy.cm")),
    )  # fmt: skip
    a_check, n_check = checks_of(data)
    assert n_check.dlp_forward_estimate_mgy_cm == 600.0
    assert a_check.reason_for_proceeding == "re-scan after patient movement"
    assert a_check.authorizing_persons == ["Smith^Jo"]
    found = dose_check_finding(assess(data))
    assert found is not None
    severity, message = found
    assert severity == "alert"
    assert "1 alert" in message and "1 notification" in message
    assert "DLP forward estimate 1250 mGy.cm" in message
    assert "re-scan after patient movement" in message


def test_forward_estimate_below_the_configured_value_is_not_an_exceedance() -> None:
    data = report_bytes(
        notification(configured("ctdivol", "notification", YES_SCT),
                     value("113912", "50", "mGy"), value("113914", "12.5", "mGy")),
    )  # fmt: skip
    assert checks_of(data)[0].exceedances() == []
    assert dose_check_finding(assess(data)) is None


def test_forward_estimate_without_a_configured_value_is_not_an_exceedance() -> None:
    # Nothing configured (No), yet a writer fills in the forward estimates and an empty reason:
    # there is no value to have exceeded (seen in the real SpectrumDynamics report).
    data = report_bytes(
        alert(configured("dlp", "alert", NO_SCT), configured("ctdivol", "alert", NO_SCT),
              value("113905", "400", "mGy.cm"), reason("")),
        notification(configured("ctdivol", "notification", NO_SRT),
                     value("113914", "12.5", "mGy")),
    )  # fmt: skip
    assert [c.exceedances() for c in checks_of(data)] == [[], []]
    assert dose_check_finding(assess(data)) is None


def test_configured_yes_with_an_estimate_but_no_value_is_an_exceedance() -> None:
    # The estimate is present only when the value was exceeded (TID 10015); the writer left the
    # value out. Without "Yes" (flag absent) it would show nothing.
    data = report_bytes(
        alert(configured("ctdivol", "alert", YES_SCT), value("113906", "1200", "mGy"))
    )
    [check] = checks_of(data)
    assert check.exceedances() == [
        "CTDIvol forward estimate 1200 mGy (the configured alert value is not recorded)"
    ]
    found = dose_check_exceeded_of(data)
    assert found is not None and found[0] == "alert"
    assert checks_of(report_bytes(alert(value("113906", "1200", "mGy"))))[0].exceedances() == []


def dose_check_exceeded_of(data: bytes) -> tuple[str, str] | None:
    return dose_check_finding(assess(data))


def test_reason_or_authorising_person_alone_is_an_exceedance() -> None:
    by_reason = report_bytes(notification(reason("obese patient")))
    found = dose_check_finding(assess(by_reason))
    assert found is not None and found[0] == "warning"
    by_person = report_bytes(alert(person("Smith^Jo")))
    found = dose_check_finding(assess(by_person))
    assert found is not None and found[0] == "alert"


def test_a_role_written_beside_the_name_is_read_as_its_role() -> None:
    # The layout of the SpectrumDynamics writer: Person Role in Procedure as a sibling of the
    # Person Name instead of its HAS PROPERTIES child.
    role = _item("HAS PROPERTIES", "CODE", ("113875", "DCM", "Person Role in Procedure"),
                 code=("113850", "DCM", "Irradiation Authorizing"))  # fmt: skip
    data = report_bytes(alert(person("Smith^Jo", None), role))
    assert checks_of(data)[0].authorizing_persons == ["Smith^Jo"]
    found = dose_check_finding(assess(data))
    assert found is not None and found[0] == "alert"
    # the name itself never reaches a message
    assert "Smith" not in found[1]


def test_a_person_in_another_role_or_without_a_name_is_not_an_authorisation() -> None:
    other = report_bytes(alert(person("Smith^Jo", ("121592", "DCM", "Irradiation Administering"))))
    assert checks_of(other)[0].authorizing_persons == []
    assert dose_check_finding(assess(other)) is None
    nameless = report_bytes(alert(person("")))
    assert checks_of(nameless)[0].authorizing_persons == []
    assert dose_check_finding(assess(nameless)) is None


# --- the real shared reports ----------------------------------------------------------------

SIEMENS = [
    "CT-RDSR-Siemens-Multi-1.dcm",
    "CT-RDSR-Siemens-Multi-2.dcm",
    "CT-RDSR-Siemens-Multi-3.dcm",
    "CT-RDSR-Siemens-Continued-1.dcm",
    "CT-RDSR-Siemens-Continued-2.dcm",
]


@pytest.mark.realdata
@pytest.mark.parametrize("name", SIEMENS)
def test_siemens_configured_alert_value_raises_no_dose_check_finding(name: str) -> None:
    # Each event records "CTDIvol Alert Value Configured = Yes (R-0038D SRT)", 1000 mGy, and
    # nothing else: configuration, against delivered CTDIvol of a few mGy.
    report = read_dose_report(RDSR / name)
    checks = [c for acq in report.acquisitions for c in acq.dose_check]
    assert checks, "the report carries Dose Check containers"
    alerts = [c for c in checks if c.kind == "alert"]
    assert all(c.ctdivol_configured is True and c.ctdivol_value_mgy == 1000.0 for c in alerts)
    assert all(c.exceedances() == [] for c in checks)
    out = Pipeline().process([report])
    # one assessment per non-localizer event (Multi-1 holds only the localizer)
    assert len(out) == sum(1 for a in report.acquisitions if a.acquisition_type != "localizer")
    assert all(dose_check_finding(a) is None for a in out)


@pytest.mark.realdata
def test_siemens_multi_and_continued_series_raise_no_dose_check_finding() -> None:
    p = Pipeline()
    out = [a for name in SIEMENS for a in p.process([read_dose_report(RDSR / name)])]
    assert out and all(dose_check_finding(a) is None for a in out)


@pytest.mark.realdata
def test_toshiba_dose_check_report_records_two_authorised_alert_exceedances() -> None:
    # What the file records (lowdose inspect and a pydicom dump agree): alert values configured
    # DLP 100 mGy.cm and CTDIvol 10 mGy (far below clinical values: station "ToshibaDoseChk" is
    # a Dose Check test set-up); event 1: accumulated DLP forward estimate 251.2 >= 100 mGy.cm;
    # event 2: 502.4 >= 100 mGy.cm and accumulated CTDIvol 10.6 >= 10 mGy; both authorised by a
    # named person in the role Irradiation Authorizing (113850). No notification value is
    # configured. A physicist expects one Dose Check alert on each event, and no notification.
    report = read_dose_report(RDSR / "CT-RDSR-Toshiba_DoseCheck.dcm")
    first, second = report.acquisitions
    a1, n1 = first.dose_check
    assert a1.authorizing_persons == ["Luuk"]
    assert [len(a1.exceedances()), len(n1.exceedances())] == [2, 0]  # DLP and the person
    events = report_to_json(report)["events"]
    assert events[0]["dose_check"][0] == {
        "kind": "alert",
        "configured": ["CTDIvol 10 mGy", "DLP 100 mGy.cm"],
        "exceeded": [
            "DLP forward estimate 251.2 mGy.cm >= alert value 100 mGy.cm",
            "authorising person recorded",
        ],
    }
    a2, n2 = second.dose_check
    assert a2.ctdivol_forward_estimate_mgy == 10.6
    assert [len(a2.exceedances()), len(n2.exceedances())] == [3, 0]
    out = Pipeline().process([report])
    assert len(out) == 2
    for a in out:
        found = dose_check_finding(a)
        assert found is not None
        severity, message = found
        assert severity == "alert"
        assert "1 alert" in message and "0 notifications" in message
        assert "100 mGy.cm" in message and "authorising person recorded" in message
    assert any("DLP forward estimate 251.2 mGy.cm" in f.message for f in out[0].findings)
    assert any("CTDIvol forward estimate 10.6 mGy" in f.message for f in out[1].findings)


@pytest.mark.realdata
def test_spectrum_dynamics_forward_estimates_without_configured_values() -> None:
    # Every Dose Check container says "Configured = No" for both quantities, yet carries
    # forward estimates, an empty Reason for Proceeding and an empty Person Name with the role
    # Irradiation Authorizing as a sibling item: nothing was configured, nobody authorised
    # anything. A physicist expects no Dose Check finding.
    report = read_dose_report(RDSR / "CT-RDSR-SpectrumDynamics.dcm")
    checks = [c for acq in report.acquisitions for c in acq.dose_check]
    assert checks and all(c.dlp_configured is False for c in checks)
    assert any(c.dlp_forward_estimate_mgy_cm is not None for c in checks)
    assert all(c.exceedances() == [] for c in checks)
    out = Pipeline().process([report])
    assert all(dose_check_finding(a) is None for a in out)
