"""Writing a simulated feed to disk: one folder per study and a manifest."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from optimiser.errors import ConfigurationError
from simulator.generator import SimulatedStudy
from simulator.rates import ProblemRates

MANIFEST_SCHEMA = "lowdose.simulated-feed/1"


def study_folder_name(number: int, study: SimulatedStudy) -> str:
    return f"{number:04d}-{study.site}"


def _remove_previous_feed(out: Path) -> None:
    """Remove the study folders an earlier feed listed in its manifest, so a shorter feed
    written over a longer one leaves no stale studies behind; nothing else is touched."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return
    try:
        previous = json.loads(manifest.read_text())
    except ValueError:
        return
    if not isinstance(previous, dict) or previous.get("schema") != MANIFEST_SCHEMA:
        return
    for entry in previous.get("studies", []):
        folder = out / str(entry.get("folder", ""))
        if folder.parent != out or not folder.is_dir():
            continue
        for name in ("protocol.json", "rdsr.dcm"):
            (folder / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # left in place when it holds other files


def write_feed(
    out_dir: Path,
    studies: Iterable[SimulatedStudy],
    *,
    seed: int | None = None,
    problem_rates: ProblemRates | None = None,
) -> Path:
    """Write ``<out>/<NNNN-site>/protocol.json`` and ``rdsr.dcm`` per study and
    ``<out>/manifest.json``; returns the manifest's path.

    An output path that exists as a file or cannot be created is a :class:`ConfigurationError`.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigurationError(
            f"output path {str(out)!r}: exists and is not a directory; give a folder path"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        _remove_previous_feed(out)
        entries = []
        for number, study in enumerate(studies, start=1):
            folder = out / study_folder_name(number, study)
            folder.mkdir(exist_ok=True)
            (folder / "protocol.json").write_text(study.protocol_event.to_json() + "\n")
            (folder / "rdsr.dcm").write_bytes(study.rdsr_bytes)
            entries.append(
                {
                    "folder": folder.name,
                    "study_instance_uid": study.study_instance_uid,
                    "site": study.site,
                    "injected": sorted(study.injected),
                    "needed_z_mm": list(study.needed_z_mm),
                }
            )
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "seed": seed,
            "problem_rates": (problem_rates or ProblemRates()).as_dict(),
            "studies": entries,
        }
        path = out / "manifest.json"
        path.write_text(json.dumps(manifest, indent=1) + "\n")
    except OSError as exc:
        raise ConfigurationError(
            f"output path {str(out)!r}: cannot write there ({exc.strerror or exc}); "
            "give a writable folder with --out"
        ) from exc
    return path
