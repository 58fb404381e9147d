"""Data element tags and coded concepts of the CT Radiation Dose SR (PS3.16 TID 10011).

Concepts are (code value, coding scheme designator) pairs; meanings are never compared, because
they changed between editions and vendors write their own (../shared/reference/planning-ct.md
section 2). Where a concept has a legacy SNOMED-RT ("SRT") code and a current SNOMED CT ("SCT")
code, both are listed; the SRT to SCT pairs were checked against the DICOM SNOMED mapping table
(PS3.16 Annex O, as shipped in pydicom's ``sr/_snomed_dict.py``).
"""

from __future__ import annotations

from typing import Final

from optimiser.events import AcquisitionType

Concept = tuple[str, str]

# --- data element tags (group << 16 | element), keywords as in PS3.6 ---
SpecificCharacterSet: Final = 0x00080005
SOPClassUID: Final = 0x00080016
SOPInstanceUID: Final = 0x00080018
AccessionNumber: Final = 0x00080050
Modality: Final = 0x00080060
Manufacturer: Final = 0x00080070
StationName: Final = 0x00081010
ManufacturerModelName: Final = 0x00081090
PatientID: Final = 0x00100020
DeviceSerialNumber: Final = 0x00181000
StudyInstanceUID: Final = 0x0020000D
FrameOfReferenceUID: Final = 0x00200052
CodeValue: Final = 0x00080100
CodingSchemeDesignator: Final = 0x00080102
CodeMeaning: Final = 0x00080104
LongCodeValue: Final = 0x00080119
URNCodeValue: Final = 0x00080120
MeasurementUnitsCodeSequence: Final = 0x004008EA
RelationshipType: Final = 0x0040A010
ValueType: Final = 0x0040A040
ConceptNameCodeSequence: Final = 0x0040A043
DateTime: Final = 0x0040A120
PersonName: Final = 0x0040A123
UID: Final = 0x0040A124
TextValue: Final = 0x0040A160
ConceptCodeSequence: Final = 0x0040A168
MeasuredValueSequence: Final = 0x0040A300
NumericValue: Final = 0x0040A30A
ContentTemplateSequence: Final = 0x0040A504
TemplateIdentifier: Final = 0x0040DB00
ContentSequence: Final = 0x0040A730

# RT Structure Set (PS3.3 C.8.8.5, C.8.8.6, C.8.8.8)
ReferencedFrameOfReferenceSequence: Final = 0x30060010
StructureSetROISequence: Final = 0x30060020
ROINumber: Final = 0x30060022
ROIName: Final = 0x30060026
ROIContourSequence: Final = 0x30060039
ContourSequence: Final = 0x30060040
ContourData: Final = 0x30060050
RTROIObservationsSequence: Final = 0x30060080
ReferencedROINumber: Final = 0x30060084
RTROIInterpretedType: Final = 0x300600A4

# --- SOP classes ---
XRAY_RADIATION_DOSE_SR: Final = "1.2.840.10008.5.1.4.1.1.88.67"
ENHANCED_SR: Final = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR: Final = "1.2.840.10008.5.1.4.1.1.88.33"
COMPREHENSIVE_3D_SR: Final = "1.2.840.10008.5.1.4.1.1.88.34"
RT_STRUCTURE_SET: Final = "1.2.840.10008.5.1.4.1.1.481.3"
DOSE_SR_CLASSES: Final = frozenset(
    {XRAY_RADIATION_DOSE_SR, ENHANCED_SR, COMPREHENSIVE_SR, COMPREHENSIVE_3D_SR}
)

# --- TID 10011 / 10013 / 10014 / 10015 concepts ---
DOSE_REPORT: Final = ("113701", "DCM")
PROCEDURE_REPORTED: Final = ("121058", "DCM")
PROJECTION_XRAY: Final = frozenset({("113704", "DCM")})
CT_PROCEDURE: Final = frozenset({("P5-08000", "SRT"), ("77477000", "SCT")})
HAS_INTENT: Final = frozenset({("363703001", "SCT"), ("G-C0E8", "SRT")})
INTENTS: Final[dict[Concept, str]] = {
    ("261004008", "SCT"): "diagnostic",
    ("R-408C3", "SRT"): "diagnostic",
    ("262202000", "SCT"): "therapeutic",
    ("R-41531", "SRT"): "therapeutic",
    ("363675004", "SCT"): "guidance",
    ("R-40641", "SRT"): "guidance",
}
DEVICE_OBSERVER_NAME: Final = ("121013", "DCM")
DEVICE_OBSERVER_MANUFACTURER: Final = ("121014", "DCM")
DEVICE_OBSERVER_MODEL: Final = ("121015", "DCM")
DEVICE_OBSERVER_SERIAL: Final = ("121016", "DCM")
START_OF_IRRADIATION: Final = ("113809", "DCM")
END_OF_IRRADIATION: Final = ("113810", "DCM")
SOURCE_OF_DOSE_INFORMATION: Final = ("113854", "DCM")
CT_ACCUMULATED_DOSE_DATA: Final = ("113811", "DCM")
TOTAL_NUMBER_OF_EVENTS: Final = ("113812", "DCM")
CT_DLP_TOTAL: Final = ("113813", "DCM")
CT_ACQUISITION: Final = ("113819", "DCM")
ACQUISITION_PROTOCOL: Final = ("125203", "DCM")
COMMENT: Final = ("121106", "DCM")  # TID 10013 Comment (TEXT, U): the event's free-text comment
TARGET_REGION: Final = ("123014", "DCM")
CT_ACQUISITION_TYPE: Final = ("113820", "DCM")
PROCEDURE_CONTEXT: Final = frozenset({("408730004", "SCT"), ("G-C32C", "SRT")})
WITH_CONTRAST: Final = frozenset({("27483000", "SCT"), ("P5-00100", "SRT")})
WITHOUT_CONTRAST: Final = frozenset({("399331006", "SCT"), ("P5-0808E", "SRT")})
IRRADIATION_EVENT_UID: Final = ("113769", "DCM")
CT_ACQUISITION_PARAMETERS: Final = ("113822", "DCM")
EXPOSURE_TIME: Final = ("113824", "DCM")
SCANNING_LENGTH: Final = ("113825", "DCM")
EXPOSED_RANGE: Final = ("113899", "DCM")
TOP_Z_SCANNING_LENGTH: Final = ("113897", "DCM")
BOTTOM_Z_SCANNING_LENGTH: Final = ("113898", "DCM")
TOP_Z_RECONSTRUCTABLE: Final = ("113895", "DCM")
BOTTOM_Z_RECONSTRUCTABLE: Final = ("113896", "DCM")
FRAME_OF_REFERENCE_UID: Final = ("112227", "DCM")
NOMINAL_SINGLE_COLLIMATION: Final = ("113826", "DCM")
NOMINAL_TOTAL_COLLIMATION: Final = ("113827", "DCM")
PITCH_FACTOR: Final = ("113828", "DCM")
NUMBER_OF_SOURCES: Final = ("113823", "DCM")
CT_SOURCE_PARAMETERS: Final = ("113831", "DCM")
SOURCE_IDENTIFICATION: Final = ("113832", "DCM")
KVP: Final = ("113733", "DCM")
MAX_TUBE_CURRENT: Final = ("113833", "DCM")
TUBE_CURRENT: Final = ("113734", "DCM")
EXPOSURE_TIME_PER_ROTATION: Final = ("113834", "DCM")
CT_DOSE: Final = ("113829", "DCM")
MEAN_CTDIVOL: Final = ("113830", "DCM")
CTDIW_PHANTOM_TYPE: Final = ("113835", "DCM")
PHANTOMS: Final[dict[Concept, str]] = {("113690", "DCM"): "head", ("113691", "DCM"): "body"}
DLP: Final = ("113838", "DCM")
SSDE: Final = ("113930", "DCM")
WATER_EQUIVALENT_DIAMETER: Final = ("113980", "DCM")
DOSE_CHECK_ALERT: Final = ("113900", "DCM")
DOSE_CHECK_NOTIFICATION: Final = ("113908", "DCM")
YES: Final = frozenset({("373066001", "SCT"), ("R-0038D", "SRT")})
NO: Final = frozenset({("373067005", "SCT"), ("R-00339", "SRT")})
# NEMA XR-25 / TID 10015 rows: concept -> field of DoseCheckDetails
DOSE_CHECK_FLAGS: Final[dict[Concept, str]] = {
    ("113901", "DCM"): "dlp_configured",
    ("113902", "DCM"): "ctdivol_configured",
    ("113909", "DCM"): "dlp_configured",
    ("113910", "DCM"): "ctdivol_configured",
}
DOSE_CHECK_NUMBERS: Final[dict[Concept, tuple[str, str]]] = {
    ("113903", "DCM"): ("dlp_value_mgy_cm", "mGy.cm"),
    ("113904", "DCM"): ("ctdivol_value_mgy", "mGy"),
    ("113905", "DCM"): ("dlp_forward_estimate_mgy_cm", "mGy.cm"),
    ("113906", "DCM"): ("ctdivol_forward_estimate_mgy", "mGy"),
    ("113911", "DCM"): ("dlp_value_mgy_cm", "mGy.cm"),
    ("113912", "DCM"): ("ctdivol_value_mgy", "mGy"),
    ("113913", "DCM"): ("dlp_forward_estimate_mgy_cm", "mGy.cm"),
    ("113914", "DCM"): ("ctdivol_forward_estimate_mgy", "mGy"),
}
REASON_FOR_PROCEEDING: Final = ("113907", "DCM")
# TID 1020 (Person Participant) inside TID 10015: who authorised proceeding past a Dose Check.
PERSON_NAME: Final = ("113870", "DCM")
PERSON_ROLE_IN_PROCEDURE: Final = ("113875", "DCM")
IRRADIATION_AUTHORIZING: Final = ("113850", "DCM")

ACQUISITION_TYPES: Final[dict[Concept, AcquisitionType]] = {
    ("116152004", "SCT"): "spiral",
    ("P5-08001", "SRT"): "spiral",
    ("113804", "DCM"): "sequenced",
    ("113805", "DCM"): "localizer",
    ("113806", "DCM"): "stationary",
    ("113807", "DCM"): "free",
    ("702569007", "SCT"): "cone_beam",
    ("R-FB8F1", "SRT"): "cone_beam",
}
