"""Golden check of the assessment pipeline's output: the JSON of every assessment, byte for byte.

A speed change to :mod:`optimiser.pipeline` (or anything under it) must not change one byte of
what it says. ``record DIR`` writes the JSON lines of every assessment of these sets to DIR;
``check DIR`` runs them again and compares line by line, naming the first difference of each
set:

- ``feed``: the 5,000 simulated protocol events of the service benchmark
  (:func:`benchmarks.bench_service._events`), in batches of 500 (the service's batch size);
- ``clinical``: every case of ``lowdose validate`` (tests/clinical/cases), one fresh pipeline
  per case, one input per call, as :func:`lowdose.validation.run_case` runs them;
- ``rdsr``: each shared real dose report (../shared/data/rdsr) alone, then all of them in one
  pipeline one per batch, then all of them in one batch;
- ``studies``: 300 simulated studies, protocol event then dose report, 25 studies per batch,
  with CT-image sizes and dose profiles for some studies; then the same with the department's
  own levels from that history, promoted to warnings on every site;
- ``unusable``: dose reports with numbers that cannot be modelled (absurd z, CTDIvol, pitch).

Record on the commit before a change, check after it (output stays outside the repository)::

    .venv/bin/python -m benchmarks.golden record /tmp/golden
    .venv/bin/python -m benchmarks.golden check /tmp/golden
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from benchmarks.bench_service import _events
from lowdose.validation import DEFAULT_CASES_DIR, build_inputs, load_cases
from optimiser.assessment import Assessment
from optimiser.dicom import read_dose_report
from optimiser.events import parse_protocol_event
from optimiser.inputs import PipelineInput
from optimiser.levels import department_levels, with_department_levels
from optimiser.pipeline import Pipeline
from optimiser.ssde import ImageSize, PixelGeometry
from protocols.library import SiteLibrary, builtin_library
from simulator import simulate_feed
from tests.paths import SHARED

RDSR = SHARED / "data" / "rdsr"


def _lines(assessments: list[Assessment], tag: str) -> Iterator[str]:
    for a in assessments:
        yield f"{tag}\t{a.to_json()}"


def feed() -> Iterator[str]:
    events = [parse_protocol_event(v, source="golden") for _, v, _ in _events(5000, "thr")]
    pipeline = Pipeline()
    for i in range(0, len(events), 500):
        yield from _lines(pipeline.process(events[i : i + 500]), f"batch {i // 500}")


def clinical() -> Iterator[str]:
    for case in load_cases(DEFAULT_CASES_DIR):
        pipeline = Pipeline()
        for k, (item, _) in enumerate(build_inputs(case, SHARED)):
            yield from _lines(pipeline.process([item]), f"{case.id} {k}")


def rdsr() -> Iterator[str]:
    paths = sorted(RDSR.glob("*.dcm"))
    reports = [read_dose_report(p.read_bytes(), source=p.name) for p in paths]
    for path, report in zip(paths, reports, strict=True):
        yield from _lines(Pipeline().process([report]), f"alone {path.name}")
    pipeline = Pipeline()
    for path, report in zip(paths, reports, strict=True):
        yield from _lines(pipeline.process([report]), f"in turn {path.name}")
    yield from _lines(Pipeline().process(reports), "one batch")


def _sizes(uids: list[str]) -> list[ImageSize]:
    """Synthetic CT-image sizes: D_w only for some studies, D_w and CTDIvol(z) for others."""
    geometry = PixelGeometry(0.7, 0.7, "pixel_spacing")
    out = []
    for n, uid in enumerate(uids):
        if n % 3 == 0:
            continue
        for k in range(4 if n % 3 == 2 else 1):
            out.append(
                ImageSize(
                    water_equivalent_diameter_mm=180.0 + 7.0 * (n % 13) + k,
                    water_equivalent_area_mm2=0.0,
                    truncated=False,
                    geometry=geometry,
                    study_instance_uid=uid,
                    z_mm=-150.0 + 100.0 * k if n % 3 == 2 else None,
                    profile_weight=10.0 + 3.0 * k + (n % 5) if n % 3 == 2 else None,
                )
            )
    return out


def _promoted(library: SiteLibrary) -> SiteLibrary:
    sites = {
        site: p.model_copy(
            update={"department": p.department.model_copy(update={"promote_p75_to_warning": True})}
        )
        for site, p in library.sites.items()
    }
    return SiteLibrary(sites, library.k_factors, library.provenance, library.override_dir)


def studies() -> Iterator[str]:
    sim = simulate_feed(300, seed=11)
    items: list[PipelineInput] = []
    for s in sim:
        items.append(s.protocol_event)
        items.append(read_dose_report(s.rdsr_bytes, source=f"{s.study_instance_uid}.dcm"))
    sizes = _sizes([s.study_instance_uid for s in sim])
    history: list[Assessment] = []
    for name, library in (("builtin", builtin_library()), ("department", None)):
        if library is None:
            levels = department_levels(history)
            library = _promoted(with_department_levels(builtin_library(), levels))
        pipeline = Pipeline(library)
        pipeline.add_image_sizes(sizes)
        for i in range(0, len(items), 50):
            out = pipeline.process(items[i : i + 50])
            history.extend(out)
            yield from _lines(out, f"{name} batch {i // 50}")


def unusable() -> Iterator[str]:
    """Dose reports whose numbers cannot be modelled (absurd z, CTDIvol, pitch, collimation)."""
    sim = simulate_feed(6, seed=2)
    for n, s in enumerate(sim):
        report = read_dose_report(s.rdsr_bytes, source=f"bad-{n}.dcm")
        for k, acq in enumerate(report.acquisitions):
            bad = (n + k) % 6
            if bad == 0:
                acq.top_z_mm, acq.bottom_z_mm = 1e7, 0.0
            elif bad == 1:
                acq.mean_ctdivol_mgy, acq.dlp_mgy_cm = 1e6, None
            elif bad == 2:
                acq.pitch_factor = float("inf")
            elif bad == 3:
                acq.nominal_total_collimation_mm = float("nan")
            elif bad == 4:
                acq.top_z_mm, acq.bottom_z_mm = float("nan"), 10.0
        pipeline = Pipeline()
        yield from _lines(pipeline.process([s.protocol_event, report]), f"study {n}")


SETS = {
    "feed": feed,
    "clinical": clinical,
    "rdsr": rdsr,
    "studies": studies,
    "unusable": unusable,
}


def record(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, make in SETS.items():
        lines = list(make())
        (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} assessments recorded")


def check(golden: Path) -> bool:
    ok = True
    for name, make in SETS.items():
        want = (golden / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        got = list(make())
        bad = [i for i, (w, g) in enumerate(zip(want, got, strict=False)) if w != g]
        if len(want) != len(got) or bad:
            ok = False
            print(
                f"{name}: DIFFERS ({len(got)} assessments, {len(want)} recorded, {len(bad)} differ)"
            )
            if bad:
                i = bad[0]
                print(f"  first at line {i + 1}:\n  want {want[i]}\n  got  {got[i]}")
        else:
            print(f"{name}: {len(got)} assessments identical")
    return ok


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "check"):
        print("usage: python -m benchmarks.golden record|check DIR", file=sys.stderr)
        return 2
    if argv[0] == "record":
        record(Path(argv[1]))
        return 0
    return 0 if check(Path(argv[1])) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
