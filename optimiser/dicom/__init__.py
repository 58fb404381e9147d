"""DICOM input: CT Radiation Dose SR (TID 10011) and RT Structure Set, read fast and safely.

Public API: :func:`read_dose_report`, :func:`read_structure_set`, :func:`read_dicom`,
:func:`merge_study`, :func:`report_to_json`, :func:`structure_set_to_json`, :func:`warm_up`
(compile the numba tokenizer before a consumer starts). Every failure to read is an
:class:`optimiser.errors.DicomError`.
"""

from optimiser.dicom.jsonout import report_to_json, structure_set_to_json
from optimiser.dicom.merge import merge_study
from optimiser.dicom.reader import read_dicom, read_dose_report, read_structure_set, warm_up

__all__ = [
    "merge_study",
    "read_dicom",
    "read_dose_report",
    "read_structure_set",
    "report_to_json",
    "structure_set_to_json",
    "warm_up",
]
