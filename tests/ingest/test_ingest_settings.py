"""DICOM settings: environment, validation, refusal of unusable configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.settings import DicomSettings, load
from optimiser.errors import ConfigurationError


def test_environment_sets_allow_list_and_pacs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWDOSE_DICOM_ALLOWED_CALLING_AES", '["CT_SIM1", "PACS_MAIN"]')
    monkeypatch.setenv("LOWDOSE_DICOM_PACS__AE_TITLE", "PACS_MAIN")
    monkeypatch.setenv("LOWDOSE_DICOM_PACS__HOST", "pacs.example.org")
    monkeypatch.setenv("LOWDOSE_DICOM_PACS__PORT", "104")
    settings = load(port=4242)
    assert settings.allowed_calling_aes == ["CT_SIM1", "PACS_MAIN"]
    assert settings.pacs is not None and settings.pacs.port == 104
    assert settings.port == 4242
    settings.check_usable()


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "dicom.toml"
    path.write_text('ae_title = "RTDOSE"\nallowed_calling_aes = ["CT1"]\n')
    assert load(path).ae_title == "RTDOSE"


def test_bad_ae_title_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWDOSE_DICOM_AE_TITLE", "A_TITLE_LONGER_THAN_16")
    with pytest.raises(ConfigurationError, match="LOWDOSE_DICOM_AE_TITLE"):
        load()


def test_listener_nobody_may_call_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="allowed_calling_aes is empty"):
        DicomSettings().check_usable()
    DicomSettings(allow_any_calling_ae=True).check_usable()


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigurationError, match="both tls_certfile and tls_keyfile"):
        DicomSettings(allowed_calling_aes=["A"], tls_certfile=cert).check_usable()
    with pytest.raises(ConfigurationError, match="does not exist"):
        DicomSettings(
            allowed_calling_aes=["A"], tls_certfile=cert, tls_keyfile=tmp_path / "missing.pem"
        ).check_usable()
