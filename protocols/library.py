"""Load and validate the planning protocol library: one TOML file per treatment site.

Every value carries where it came from: the file that set it (built-in site file, shared defaults
or a department override) and the citation of its section, so that ``lowdose protocols`` can show
which numbers are published reference levels and which are departmental conventions
(../shared/reference/planning-ct.md sections 3 to 5 say which is which).

A department overrides any value by placing ``<site>.toml`` (same shape, only the keys it
changes) or ``_defaults.toml`` / ``_regions.toml`` in an override directory.
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from optimiser.errors import ConfigurationError
from protocols.site_ids import GENERIC_SITE

SITES_DIR = Path(__file__).resolve().parent / "sites"
DEFAULTS_FILE = "_defaults.toml"
REGIONS_FILE = "_regions.toml"
_NO_SOURCE = "department value (no source given in the override file)"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ReferenceKind = Literal["drl", "typical"]


class ReferenceValue(_Model):
    """A reference level: a value, which kind of statistic it is and its published source.

    ``kind`` follows ICRP Publication 135 (planning-ct.md section 9): ``drl`` is a
    75th-percentile-type level (a national, regional or local diagnostic reference level, an
    investigation level); ``typical`` is a median or a mean of one facility or one study (a
    typical value), where about half of acceptable scans lie above by construction.
    """

    value: float = Field(gt=0)
    kind: ReferenceKind
    statistic: str
    source: str


class ImageQuality(_Model):
    """The lowest CTDIvol the site's planning image quality allows: no proposal goes below it."""

    min_ctdivol_mgy: float = Field(gt=0)
    source: str


class SsdeFit(_Model):
    """Which SSDE fit a 16 cm (head) phantom CTDIvol of the site goes through
    (planning-ct.md section 6): TG-293 for head (brain) scans only, TG-204 16 cm elsewhere."""

    head_fit: Literal["tg293", "tg204_16cm"]
    source: str


class DiagnosticKeywords(_Model):
    """Words that make a protocol or series name read diagnostic (corroborating Has Intent)."""

    keywords: list[str] = Field(default_factory=list)
    source: str

    def match(self, *names: str | None) -> str | None:
        """The first name holding a keyword as a whole word (any case, ``_`` and ``-`` read as
        spaces), quoted with the keyword; None when no name reads diagnostic."""
        phrases = _phrases(tuple(self.keywords))
        for name in names:
            if not name:
                continue
            text = f" {_words(name)} "
            for kw, phrase in phrases:
                if phrase in text:
                    return f"{name!r} ({kw})"
        return None


@functools.lru_cache(maxsize=64)
def _phrases(keywords: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each keyword with the padded phrase :meth:`DiagnosticKeywords.match` looks for,
    normalised once per keyword list (match runs for every acquisition of every event). A
    cache keyed by the keywords, not a private attribute: pydantic's private-attribute access
    cost about 5 us a call, and a copied model can never keep another list's phrases."""
    return tuple((kw, f" {_words(kw)} ") for kw in keywords)


def _words(text: str) -> str:
    """``text`` in lower case with ``_`` and ``-`` read as spaces and runs of space as one."""
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


class DepartmentPolicy(_Model):
    """How the department's own levels from its assessed history are used (ICRP 135 terms)."""

    promote_p75_to_warning: bool = False
    min_exams: int = Field(ge=1)
    local_drl_min_rooms: int = Field(ge=1)
    source: str


class DepartmentLevel(_Model):
    """The department's own typical value (median) and 75th percentile of one quantity, for
    one site and scanner model, from its assessed history (:mod:`optimiser.levels`)."""

    quantity: Literal["ctdivol_mgy", "exam_dlp_mgy_cm"]
    scanner_model: str
    median: float = Field(ge=0)  # typical value (ICRP 135)
    p75: float = Field(ge=0)  # 75th percentile of the exams
    p75_of_room_medians: float | None = None  # a local DRL when there are enough rooms
    n: int = Field(ge=1)
    rooms: int = Field(ge=0)
    period: str  # first to last performed_at, ISO dates

    def warning_value(self, local_drl_min_rooms: int) -> float:
        """What a promoted site warns above: the local DRL (75th percentile of the room
        medians, ICRP 135) with enough rooms, else the 75th percentile of the exams."""
        if self.rooms >= local_drl_min_rooms and self.p75_of_room_medians is not None:
            return self.p75_of_room_medians
        return self.p75


class Coverage(_Model):
    """What z-range planning needs (planning-ct.md section 4: departmental conventions)."""

    margin_superior_mm: float = Field(ge=0)
    margin_inferior_mm: float = Field(ge=0)
    whole_organs: list[str] = Field(default_factory=list)
    default_needed_length_mm: float = Field(gt=0)
    image_guidance_field_mm: float = Field(ge=0)
    tolerance_mm: float = Field(ge=0)
    source: str


class InsideBand(_Model):
    region: str
    fraction: float = Field(gt=0, le=1)


class OutsideBand(_Model):
    region: str
    length_mm: float = Field(gt=0)


class Regions(_Model):
    """Body regions for the effective-dose coefficient k, anchored to the needed range's edges.

    ``inside`` splits the needed range from its superior end by fractions; ``above`` and
    ``below`` list the regions met moving away from the superior / inferior edge.
    """

    inside: list[InsideBand] = Field(min_length=1)
    above: list[OutsideBand] = Field(min_length=1)
    below: list[OutsideBand] = Field(min_length=1)
    source: str

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> Regions:
        total = sum(b.fraction for b in self.inside)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(
                f"regions.inside fractions sum to {total:g}; they must sum to 1 "
                "(split the whole needed range)"
            )
        return self


class AcquisitionRules(_Model):
    """Planning-grade acquisition parameters (planning-ct.md section 8, heuristics)."""

    calibrated_kvp: list[float] = Field(min_length=1)
    min_slice_thickness_mm: float = Field(gt=0)
    allowed_contrast_phases: int = Field(ge=1)
    allowed_acquisitions_per_range: int = Field(ge=1)
    source: str


class Thresholds(_Model):
    """Finding thresholds (defaults are conventions; planning-ct.md sections 3, 4, 7 to 9).

    Reference levels (ICRP 135 terms, planning-ct.md section 9): against a DRL
    (75th-percentile type) a value above ``above_reference_warning_ratio`` x the level is a
    warning and one at or above ``above_reference_alert_ratio`` x an alert. Against a typical
    value (a median or mean) about half of acceptable scans lie above by construction, so a
    value above it is info and a warning needs ``above_typical_warning_ratio`` x (default 2.0,
    never an alert). Rationale of 2.0: the published planning distributions spread to about
    1.5 x their mean at one standard deviation (Hubbard et al. 2015: 4DCT 19.6 +- 9.3 mGy gives
    1.47 x; 3D lung 12 +- 4 mGy gives 1.33 x), so twice a typical value lies beyond the usual
    spread of planning practice; it is a convention, configurable per site.
    """

    excess_coverage_info_mm: float = Field(ge=0)
    excess_coverage_warning_fraction: float = Field(ge=0, le=1)
    excess_coverage_alert_fraction: float = Field(ge=0, le=1)
    above_reference_warning_ratio: float = Field(gt=0)  # against a DRL (1.0: above it)
    above_reference_alert_ratio: float = Field(gt=0)  # against a DRL
    # Against a typical value (median or mean) a warning needs this ratio; see _defaults.toml.
    above_typical_warning_ratio: float = Field(gt=1)
    notification_ctdivol_head_mgy: float = Field(gt=0)
    notification_ctdivol_body_mgy: float = Field(gt=0)
    repeat_overlap_fraction: float = Field(gt=0, le=1)
    source: str


class OverRanging(_Model):
    """Helical over-ranging, both ends together: total collimation W x (``intercept_widths`` +
    ``rotations_of_feed`` x pitch) x (1 - dynamic-collimation reduction).

    Continuous and non-decreasing in collimation and pitch (the coefficients are >= 0); the
    sources and the fit of the defaults to van der Molen & Geleijns 2007 are in
    :mod:`optimiser.kernels` (planning-ct.md section 9). ``unknown_total_mm`` is used when the
    collimation or the pitch is not known.

    The fit covers collimations up to ``fitted_max_collimation_mm`` (the 16-slice scanners it
    was fitted on, 24 mm). Beyond it the model is an extrapolation: the part of W beyond the
    fitted range is taken with ``wide_beam_reduction`` (a documented bound of dynamic
    collimation on wide beams, see _defaults.toml), the assessment says the over-ranging is
    extrapolated, and a prediction resting on it raises info only (severity rules 2 and 5).
    A scanner model listed in ``dynamic_collimation_by_model`` has its own reduction, which
    replaces both the site's and the wide-beam bound.
    """

    intercept_widths: float = Field(ge=0)
    rotations_of_feed: float = Field(ge=0)
    unknown_total_mm: float = Field(ge=0)
    dynamic_collimation_reduction: float = Field(ge=0, lt=1)
    fitted_max_collimation_mm: float = Field(gt=0)
    wide_beam_reduction: float = Field(ge=0, lt=1)
    # Per scanner model (Manufacturer's Model Name, case and spacing ignored): the reduction of
    # that scanner's dynamic collimation, overriding ``dynamic_collimation_reduction``.
    dynamic_collimation_by_model: dict[str, float] = Field(default_factory=dict)
    source: str

    @model_validator(mode="after")
    def _reductions_are_fractions(self) -> OverRanging:
        for model, value in self.dynamic_collimation_by_model.items():
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"overranging.dynamic_collimation_by_model[{model!r}] = {value!r}: a fraction "
                    "of the over-ranging removed, 0 <= value < 1 (Christner et al. 2010: about "
                    "0.3-0.5)"
                )
        return self

    def model_reduction(self, scanner_model: str | None) -> float | None:
        """The reduction listed for ``scanner_model`` (case and spacing ignored), else None."""
        if scanner_model and self.dynamic_collimation_by_model:
            key = " ".join(scanner_model.split()).casefold()
            for model, value in self.dynamic_collimation_by_model.items():
                if " ".join(model.split()).casefold() == key:
                    return value
        return None

    def reduction_for(self, scanner_model: str | None) -> float:
        """The dynamic-collimation reduction of ``scanner_model`` (the site's when not listed;
        the site's rule adds the wide-beam bound beyond the fitted collimation)."""
        own = self.model_reduction(scanner_model)
        return self.dynamic_collimation_reduction if own is None else own


class SiteProtocol(_Model):
    site: str
    title: str
    phantom: Literal["head", "body"]
    coverage: Coverage
    regions: Regions
    # The investigation level of each quantity (a DRL when one is published, else a typical
    # value) and, beside a DRL, an optional typical value (info only). DLP levels are per exam.
    reference_ctdivol_mgy: ReferenceValue | None = None
    reference_dlp_mgy_cm: ReferenceValue | None = None
    typical_ctdivol_mgy: ReferenceValue | None = None
    typical_dlp_mgy_cm: ReferenceValue | None = None
    image_quality: ImageQuality | None = None
    ssde: SsdeFit
    diagnostic_names: DiagnosticKeywords
    department: DepartmentPolicy
    # Filled from assessed history by optimiser.levels.with_department_levels, never from TOML.
    department_levels: tuple[DepartmentLevel, ...] = ()
    acquisition: AcquisitionRules
    thresholds: Thresholds
    overranging: OverRanging

    @model_validator(mode="after")
    def _levels_consistent(self) -> SiteProtocol:
        for quantity in ("ctdivol_mgy", "dlp_mgy_cm"):
            main = getattr(self, f"reference_{quantity}")
            typical = getattr(self, f"typical_{quantity}")
            if typical is not None and typical.kind != "typical":
                raise ValueError(
                    f"typical_{quantity}.kind = {typical.kind!r}: a typical value must have "
                    "kind = 'typical'; put a DRL in reference_" + quantity
                )
            if typical is not None and (main is None or main.kind != "drl"):
                raise ValueError(
                    f"typical_{quantity} is set but reference_{quantity} is not a DRL: give "
                    f"the typical value as reference_{quantity} (kind = 'typical')"
                )
        ref = self.reference_ctdivol_mgy
        if ref is not None and ref.kind == "drl" and self.image_quality is None:
            raise ValueError(
                "reference_ctdivol_mgy is a DRL but [image_quality] min_ctdivol_mgy is missing: "
                "set the lowest CTDIvol planning image quality allows (proposals never go below it)"
            )
        if (
            ref is not None
            and ref.kind == "drl"
            and self.image_quality is not None
            and self.image_quality.min_ctdivol_mgy > ref.value
        ):
            raise ValueError(
                f"image_quality.min_ctdivol_mgy = {self.image_quality.min_ctdivol_mgy:g} is above "
                f"the CTDIvol DRL {ref.value:g} mGy: a proposal could not meet both; lower the "
                "floor or check the DRL"
            )
        return self

    def levels(self, quantity: Literal["ctdivol_mgy", "dlp_mgy_cm"]) -> list[ReferenceValue]:
        """The cited levels of ``quantity``: the investigation level, then a typical value."""
        if quantity == "ctdivol_mgy":  # plain reads, no getattr: this runs for every acquisition
            return [
                v for v in (self.reference_ctdivol_mgy, self.typical_ctdivol_mgy) if v is not None
            ]
        return [v for v in (self.reference_dlp_mgy_cm, self.typical_dlp_mgy_cm) if v is not None]

    def drl(self, quantity: Literal["ctdivol_mgy", "dlp_mgy_cm"]) -> ReferenceValue | None:
        """The 75th-percentile-type level of ``quantity`` when the site has one."""
        ref = self.reference_ctdivol_mgy if quantity == "ctdivol_mgy" else self.reference_dlp_mgy_cm
        return ref if ref is not None and ref.kind == "drl" else None


class KFactors(_Model):
    """Effective dose per DLP by region (planning-ct.md section 5)."""

    column: str
    k: dict[str, float]
    source: str


@dataclass(frozen=True, slots=True)
class ValueSource:
    """Where one library value comes from."""

    key: str
    value: Any
    origin: str  # file that set it
    source: str  # citation or 'convention' note of its section


@dataclass(slots=True)
class BandTables:
    """The region bands of every site as padded arrays for the batch kernel."""

    inside_frac: npt.NDArray[np.float64]  # (sites, bands): cumulative fraction at band end
    inside_k: npt.NDArray[np.float64]
    above_end: npt.NDArray[np.float64]  # cumulative mm from the superior edge at band end
    above_k: npt.NDArray[np.float64]
    below_end: npt.NDArray[np.float64]
    below_k: npt.NDArray[np.float64]


@dataclass(slots=True)
class SiteLibrary:
    sites: dict[str, SiteProtocol]
    k_factors: KFactors
    provenance: dict[str, list[ValueSource]]
    override_dir: Path | None = None
    _tables: BandTables | None = field(default=None, repr=False)

    def get(self, site: str) -> SiteProtocol:
        """The protocol of ``site``; unknown sites raise with the list of known ones."""
        try:
            return self.sites[site]
        except KeyError:
            raise ConfigurationError(
                f"planning.site = {site!r} is not in the protocol library "
                f"(known: {', '.join(sorted(self.sites))}); add protocols/sites/{site}.toml "
                "or a department override file, or use 'generic'"
            ) from None

    def resolve(self, site: str) -> tuple[SiteProtocol, bool]:
        """The protocol of ``site`` or of ``generic`` when unknown; the flag says it was found."""
        if site in self.sites:
            return self.sites[site], True
        return self.sites[GENERIC_SITE], False

    @property
    def site_ids(self) -> list[str]:
        return list(self.sites)

    def site_index(self, site: str) -> int:
        return self.site_ids.index(site)

    def k(self, region: str) -> float:
        return self.k_factors.k[region]

    def band_tables(self) -> BandTables:
        """Padded per-site band arrays (built once): the batch kernel's site tables."""
        if self._tables is None:
            self._tables = _build_tables(self)
        return self._tables


def _build_tables(lib: SiteLibrary) -> BandTables:
    sites = list(lib.sites.values())
    width = max(
        max(len(s.regions.inside), len(s.regions.above), len(s.regions.below)) for s in sites
    )
    shape = (len(sites), width)
    # Padding repeats the last band with an infinite end so the kernel never runs off a row.
    inside_frac = np.full(shape, np.inf)
    inside_k = np.zeros(shape)
    above_end = np.full(shape, np.inf)
    above_k = np.zeros(shape)
    below_end = np.full(shape, np.inf)
    below_k = np.zeros(shape)
    for i, s in enumerate(sites):
        cum = 0.0
        for j, b in enumerate(s.regions.inside):
            cum += b.fraction
            inside_frac[i, j] = cum
            inside_k[i, j:] = lib.k(b.region)
        inside_frac[i, len(s.regions.inside) - 1 :] = np.inf
        for ends, ks, bands in (
            (above_end, above_k, s.regions.above),
            (below_end, below_k, s.regions.below),
        ):
            cum = 0.0
            for j, ob in enumerate(bands):
                cum += ob.length_mm
                ends[i, j] = cum
                ks[i, j:] = lib.k(ob.region)
            ends[i, len(bands) - 1 :] = np.inf
    return BandTables(inside_frac, inside_k, above_end, above_k, below_end, below_k)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{path}: not valid TOML: {exc}; fix the file's syntax (https://toml.io)"
        ) from exc


Origins = dict[str, tuple[str, str]]  # dotted key -> (file that set it, its section's source)


def _merge(
    base: dict[str, Any],
    over: dict[str, Any],
    origins: Origins,
    origin: str,
    prefix: str = "",
    section_source: str = "",
) -> dict[str, Any]:
    """Deep-merge ``over`` onto ``base``, recording for every leaf it sets the file and the
    ``source`` of the section (in that same file) that holds it."""
    out = dict(base)
    here = str(over.get("source", section_source))
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if key == "source":
            out[key] = value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origins, origin, f"{dotted}.", here)
        else:
            out[key] = value
            _mark(value, dotted, origins, origin, here)
    return out


def _mark(value: Any, dotted: str, origins: Origins, origin: str, source: str) -> None:
    if isinstance(value, dict):
        here = str(value.get("source", source))
        for k, v in value.items():
            if k != "source":
                _mark(v, f"{dotted}.{k}", origins, origin, here)
    else:
        origins[dotted] = (origin, source)


def _provenance(data: dict[str, Any], origins: Origins) -> list[ValueSource]:
    out: list[ValueSource] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if key == "source":
                continue
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{dotted}.")
            else:
                origin, source = origins.get(dotted, ("file name", ""))
                out.append(ValueSource(dotted, value, origin, source))

    walk(data, "")
    return out


def _label(path: Path, builtin: bool) -> str:
    return f"built-in {path.name}" if builtin else f"department override {path}"


def _validation_error(path: str, exc: ValidationError) -> ConfigurationError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(file)"
    return ConfigurationError(
        f"{path}: field {where} = {first.get('input')!r}: {first['msg']} "
        f"({exc.error_count()} error(s) in all); fix the site file to match "
        "protocols/sites/generic.toml"
    )


def load_library(override_dir: Path | None = None) -> SiteLibrary:
    """Load the built-in site library, then apply a department's override files.

    Raises :class:`ConfigurationError` naming the file and field of the first invalid value.
    """
    if override_dir is not None and not override_dir.is_dir():
        raise ConfigurationError(
            f"--site-library = {str(override_dir)!r}: not a directory; give the folder holding "
            "the department's <site>.toml override files"
        )
    shared_origins: Origins = {}
    shared: dict[str, Any] = {}
    for name in (DEFAULTS_FILE, REGIONS_FILE):
        shared = _merge(shared, _read_toml(SITES_DIR / name), shared_origins, f"built-in {name}")
        if override_dir is not None and (override_dir / name).is_file():
            path = override_dir / name
            shared = _merge(
                shared, _read_toml(path), shared_origins, _label(path, False), "", _NO_SOURCE
            )

    k_data = shared.pop("k_factors", None)
    if not isinstance(k_data, dict):
        raise ConfigurationError(f"{SITES_DIR / REGIONS_FILE}: missing table [k_factors]")
    column = str(k_data.get("column", "icrp103"))
    columns = {k: v for k, v in k_data.items() if isinstance(v, dict)}
    if column not in columns:
        raise ConfigurationError(
            f"k_factors.column = {column!r}: no such column (have {sorted(columns)}); "
            "set it to one of them"
        )
    try:
        k_factors = KFactors(column=column, k=columns[column], source=str(k_data.get("source")))
    except ValidationError as exc:
        raise _validation_error(REGIONS_FILE, exc) from exc

    files: dict[str, list[tuple[Path, bool]]] = {}
    for path in sorted(SITES_DIR.glob("*.toml")):
        if not path.name.startswith("_"):
            files.setdefault(path.stem, []).append((path, True))
    if override_dir is not None:
        for path in sorted(override_dir.glob("*.toml")):
            if not path.name.startswith("_"):
                files.setdefault(path.stem, []).append((path, False))

    sites: dict[str, SiteProtocol] = {}
    provenance: dict[str, list[ValueSource]] = {}
    for site_id, paths in files.items():
        origins = dict(shared_origins)
        data: dict[str, Any] = dict(shared)
        for path, builtin in paths:
            data = _merge(
                data,
                _read_toml(path),
                origins,
                _label(path, builtin),
                "",
                "" if builtin else _NO_SOURCE,
            )
        data.setdefault("site", site_id)
        if data["site"] != site_id:
            raise ConfigurationError(
                f"{paths[-1][0]}: site = {data['site']!r} differs from the file name "
                f"{site_id!r}; name the file after the site id"
            )
        try:
            protocol = SiteProtocol.model_validate(data)
        except ValidationError as exc:
            raise _validation_error(str(paths[-1][0]), exc) from exc
        regions = protocol.regions
        names = [b.region for b in regions.inside] + [
            b.region for b in (*regions.above, *regions.below)
        ]
        for region in names:
            if region not in k_factors.k:
                raise ConfigurationError(
                    f"{paths[-1][0]}: regions band region = {region!r} has no k factor "
                    f"(known: {sorted(k_factors.k)}); use one of them or add it to "
                    f"{REGIONS_FILE}"
                )
        sites[site_id] = protocol
        provenance[site_id] = _provenance(data, origins)
    if GENERIC_SITE not in sites:
        raise ConfigurationError(f"the protocol library lacks the {GENERIC_SITE!r} fallback site")
    # The generic fallback sits last so that site indices of named sites stay stable.
    ordered = {k: v for k, v in sites.items() if k != GENERIC_SITE}
    ordered[GENERIC_SITE] = sites[GENERIC_SITE]
    return SiteLibrary(ordered, k_factors, provenance, override_dir)


_BUILTIN: SiteLibrary | None = None


def builtin_library() -> SiteLibrary:
    """The built-in library, loaded once per process."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = load_library()
    return _BUILTIN
