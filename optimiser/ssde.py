"""Size-specific dose estimates: AAPM TG-204, TG-220 water-equivalent diameter, TG-293 head.

Sources (../shared/reference/planning-ct.md section 6):
- TG-204 (AAPM Report 204, 2011): SSDE = f x CTDIvol, f = a exp(-b D), D in cm;
  32 cm phantom a = 3.704369, b = 0.03671937; 16 cm phantom a = 1.874799, b = 0.03871313.
- TG-220 (AAPM Report 220, 2014): A_w = sum of (HU / 1000 + 1) x pixel area over the patient,
  D_w = 2 sqrt(A_w / pi); the couch and air are excluded, a truncated outline is flagged.
- TG-293 (AAPM Report 293, 2019), head, 16 cm phantom: f = 1.9852 exp(-0.0486 D_w) (coefficients
  from an open implementation, marked unverified in the reference).
"""

from __future__ import annotations

import math

TG204_BODY = (3.704369, 0.03671937)
TG204_HEAD = (1.874799, 0.03871313)
TG293_HEAD = (1.9852, 0.0486)


def tg204_factor(diameter_cm: float, phantom: str = "body") -> float:
    """TG-204 conversion factor for an effective (or water-equivalent) diameter in cm."""
    a, b = TG204_BODY if phantom == "body" else TG204_HEAD
    return a * math.exp(-b * diameter_cm)


def tg293_head_factor(diameter_cm: float) -> float:
    """TG-293 head conversion factor (16 cm phantom CTDIvol) for D_w in cm."""
    a, b = TG293_HEAD
    return a * math.exp(-b * diameter_cm)


def ssde_mgy(ctdivol_mgy: float, diameter_mm: float, phantom: str = "body") -> float:
    """SSDE in mGy: TG-293 for head scans (16 cm phantom), TG-204 otherwise."""
    d_cm = diameter_mm / 10.0
    factor = tg293_head_factor(d_cm) if phantom == "head" else tg204_factor(d_cm, "body")
    return ctdivol_mgy * factor
