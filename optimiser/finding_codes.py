"""The finding codes lowdose raises: the one list of them, with what a physicist does about each.

Everything that names the codes reads this module: the assessment model and its published JSON
schema (:mod:`optimiser.assessment`), the findings (:mod:`optimiser.findings`), the report's advice
column (:mod:`report.model`), the simulator's problem rates (:mod:`simulator.rates`) and the
command line's help. Each code's rule and source are in docs/findings.md. This module imports
nothing heavy, so the command line can list the codes in its help at once.
"""

from __future__ import annotations

from typing import Literal, get_args

FindingCode = Literal[
    "excess_coverage",
    "above_reference_level",
    "multiphase_contrast",
    "thin_reconstruction",
    "kv_not_calibrated",
    "repeat_acquisition",
    "diagnostic_intent",
    "unlabelled_planning_scan",
    "dose_check_exceeded",
]
FINDING_CODES: tuple[str, ...] = get_args(FindingCode)

# What to do about each finding, as the report's "proposed change" column says it when the
# proposal does not express it as a range or exposure change.
ADVICE: dict[str, str] = {
    "excess_coverage": "trim the range to the needed range",
    "above_reference_level": "review exposure against the reference level",
    "multiphase_contrast": "acquire one contrast phase",
    "thin_reconstruction": "reconstruct at 2-3 mm",
    "kv_not_calibrated": "use the calibrated kV",
    "repeat_acquisition": "record why or avoid the repeat",
    "diagnostic_intent": "refer diagnostic CT to radiology",
    "unlabelled_planning_scan": "label it a planning scan",
    "dose_check_exceeded": "review the Dose Check values",
}
