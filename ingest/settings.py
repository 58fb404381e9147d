"""Settings of ``lowdose dicom-listen``: the DICOM node, its TLS, the PACS to query.

Environment variables with the ``LOWDOSE_DICOM_`` prefix (``LOWDOSE_DICOM_PORT=11112``,
``LOWDOSE_DICOM_ALLOWED_CALLING_AES='["CT_SIM1","PACS"]'``, ``LOWDOSE_DICOM_PACS__HOST=...``) and an
optional TOML file (``--dicom-config FILE`` or ``$LOWDOSE_DICOM_CONFIG``), keyword arguments (the
command line) first. The Kafka side (bootstrap servers, topics, security) is
:class:`streams.settings.StreamSettings`, loaded by :func:`streams.settings.load` exactly as for
``lowdose run``. Every problem is a :class:`~optimiser.errors.ConfigurationError` naming the
field and the remedy.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from optimiser.errors import ConfigurationError
from streams.settings import construct

# PS3.8 9.3.2: an AE title is 1 to 16 characters of the default repertoire, no backslash or
# control characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"^[\x20-\x5B\x5D-\x7E]{1,16}$")
# Series descriptions that mark a series as a radiotherapy planning scan (case-insensitive
# substrings). RCR (../shared/reference/planning-ct.md, section 1): planning images on PACS must
# be clearly labelled as such; departments name them in their own words, hence configurable.
DEFAULT_PLANNING_LABELS = ("planning", "plan ct", "rtp", "radiotherapy", "rt plan", "rt sim")


def _ae(value: str, field: str) -> str:
    title = value.strip()
    if not _AE_TITLE.match(title):
        raise ValueError(
            f"{field} {value!r} is not a DICOM AE title: 1 to 16 printable ASCII characters, "
            "no backslash (PS3.8 9.3.2)"
        )
    return title


class DicomNode(BaseModel):
    """A remote DICOM node (the PACS): its AE title, host and port, as on any DICOM console."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)

    @field_validator("ae_title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _ae(value, "ae_title")


class DicomSettings(BaseSettings):
    """The listening node, its limits and TLS, and the optional PACS labelling check."""

    model_config = SettingsConfigDict(
        env_prefix="LOWDOSE_DICOM_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    ae_title: str = "LOWDOSE"
    bind_address: str = "0.0.0.0"
    port: int = Field(default=11112, ge=0, le=65535)  # 0: any free port (tests)
    # Calling AE titles allowed to associate; any other is rejected at association (A-ASSOCIATE-RJ
    # reason "calling AE title not recognised"). Empty rejects everyone unless allow_any_calling_ae.
    allowed_calling_aes: list[str] = Field(default_factory=list)
    allow_any_calling_ae: bool = False
    max_associations: int = Field(default=10, ge=1, le=1000)
    # Largest P-DATA PDU this node accepts (announced at association; 0 = unlimited is refused).
    max_pdu_bytes: int = Field(default=262_144, ge=4096, le=16_777_216)
    # Largest object one association may send (bytes, counted as they arrive); a bigger one
    # aborts the association. Bounds memory: at most max_associations x this is held at once
    # (a dose report is tens of kB, a structure set a few MB).
    association_byte_budget: int = Field(default=64 * 1024 * 1024, ge=65_536)
    # How long a C-STORE waits for Kafka's acknowledgement before answering Out of Resources.
    ack_timeout_s: float = Field(default=10.0, gt=0, le=300)
    network_timeout_s: float = Field(default=60.0, gt=0)
    # DICOM TLS (PS3.15 B.1): server certificate and key; a CA file makes client certificates
    # mandatory (mutual TLS).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_client_cafile: Path | None = None
    # Metrics endpoint (Prometheus text format); None: no endpoint.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # PACS labelling check: the PACS node and the calling AE lowdose uses towards it.
    pacs: DicomNode | None = None
    planning_labels: list[str] = Field(default_factory=lambda: list(DEFAULT_PLANNING_LABELS))

    @field_validator("ae_title")
    @classmethod
    def _own_title(cls, value: str) -> str:
        return _ae(value, "ae_title")

    @field_validator("allowed_calling_aes")
    @classmethod
    def _titles(cls, values: list[str]) -> list[str]:
        return [_ae(v, "allowed_calling_aes entry") for v in values]

    @field_validator("planning_labels")
    @classmethod
    def _labels(cls, values: list[str]) -> list[str]:
        labels = [v.strip().lower() for v in values if v.strip()]
        if not labels:
            raise ValueError("planning_labels is empty: give at least one label, e.g. 'planning'")
        return labels

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get("path")
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def check_usable(self) -> None:
        """Refuse a listener nobody may call, and half a TLS configuration."""
        if not self.allowed_calling_aes and not self.allow_any_calling_ae:
            raise ConfigurationError(
                "allowed_calling_aes is empty: no scanner could associate; list the consoles' AE "
                "titles (LOWDOSE_DICOM_ALLOWED_CALLING_AES='[\"CT_SIM1\"]' or --allow CT_SIM1), "
                "or set LOWDOSE_DICOM_ALLOW_ANY_CALLING_AE=true on a closed network"
            )
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ConfigurationError(
                "TLS needs both tls_certfile and tls_keyfile (LOWDOSE_DICOM_TLS_CERTFILE / "
                "_KEYFILE); set both, or neither for plain DICOM"
            )
        if self.tls_client_cafile is not None and self.tls_certfile is None:
            raise ConfigurationError(
                "tls_client_cafile is set but tls_certfile is not: mutual TLS needs the "
                "server's own certificate and key too"
            )
        for name in ("tls_certfile", "tls_keyfile", "tls_client_cafile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigurationError(
                    f"{name} = {str(path)!r} does not exist; give the PEM file's path "
                    f"(LOWDOSE_DICOM_{name.upper()})"
                )

    def server_tls(self) -> ssl.SSLContext | None:
        """The server's TLS context (TLS 1.2 or later, PS3.15 B.9 BCP 195), or None."""
        if self.tls_certfile is None or self.tls_keyfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.tls_certfile), str(self.tls_keyfile))
            if self.tls_client_cafile is not None:
                context.load_verify_locations(str(self.tls_client_cafile))
                context.verify_mode = ssl.CERT_REQUIRED
        except (ssl.SSLError, OSError) as exc:
            raise ConfigurationError(
                f"cannot load the TLS certificate/key ({exc}); check tls_certfile, tls_keyfile "
                "and tls_client_cafile are PEM files that belong together"
            ) from exc
        return context


_CONFIG_FILE: dict[str, Path] = {}


def load(config: Path | None = None, **overrides: Any) -> DicomSettings:
    """Load the DICOM settings; every problem is a :class:`ConfigurationError`."""
    return construct(
        DicomSettings,
        config,
        overrides,
        config_file=_CONFIG_FILE,
        env_config="LOWDOSE_DICOM_CONFIG",
        env_prefix="LOWDOSE_DICOM_",
        file_label="DICOM config file",
        file_option="--dicom-config (TOML)",
    )
