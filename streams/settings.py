"""Settings of the Kafka edges: environment variables (``LOWDOSE_`` prefix) and an optional file.

Precedence, highest first: keyword arguments (the command line), environment variables, the file
(``--config FILE`` or ``$LOWDOSE_CONFIG``: TOML, or a ``.env`` file of ``LOWDOSE_*`` lines), the
defaults. ``KAFKA_BOOTSTRAP_SERVERS`` is accepted beside ``LOWDOSE_BOOTSTRAP_SERVERS`` because
it is what Kafka tooling and CI already set. Without either, the broker started by
``lowdose broker start`` is used when one is running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from optimiser.errors import ConfigurationError
from optimiser.strictness import Strictness

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]

# The largest max.message.bytes lowdose gives the DICOM input topic (rdsr_max_message_bytes), and
# so the largest record its producers send. The local broker (streams/broker.py) sizes its
# socket request and replica fetch limits from it; the listener's default association byte
# budget (64 MiB) is the same size, so no object it accepts is beyond what a topic may take.
MAX_DICOM_MESSAGE_BYTES = 64 * 1024 * 1024
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]


class Topics(BaseModel):
    """Topic names (defaults from issue 5). Inputs and the state changelog are co-partitioned.

    Set one with ``LOWDOSE_TOPICS__ALERTS=...`` or a ``[topics]`` table in the TOML file. Which
    fields name input topics, and what each input is, :data:`streams.inputs.INPUTS` says.
    """

    model_config = ConfigDict(extra="forbid")

    protocol: str = "lowdose.protocol.v1"
    rdsr: str = "lowdose.rdsr.v1"
    assessments: str = "lowdose.assessments.v1"
    alerts: str = "lowdose.alerts.v1"
    dlq: str = "lowdose.dlq.v1"
    state: str = "lowdose.state.v1"

    @property
    def inputs(self) -> list[str]:
        """The input topics, in the order of :data:`streams.inputs.INPUTS`."""
        # Imported here: the table imports the input models, which the settings do not need.
        from streams.inputs import INPUTS

        return [spec.topic(self) for spec in INPUTS]


class StreamSettings(BaseSettings):
    """Everything ``lowdose run`` and ``lowdose publish`` need to reach and use the cluster."""

    model_config = SettingsConfigDict(
        env_prefix="LOWDOSE_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    bootstrap_servers: str = Field(
        default="",
        validation_alias=AliasChoices(
            "bootstrap_servers", "LOWDOSE_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    client_id: str = "lowdose"
    group_id: str = "lowdose"
    topics: Topics = Field(default_factory=Topics)
    # Partition count used when lowdose creates missing topics itself (inputs and changelog alike).
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    create_topics: bool = True

    # Consumer loop.
    max_batch: int = Field(default=500, ge=1)
    poll_timeout_ms: int = Field(default=200, ge=1)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # One fetch per broker is in flight. A fetch that covers only idle partitions (the other
    # input topic) is held by the broker up to this long while new events wait behind it, so
    # keep it short: it bounds the added produce-to-alert latency.
    fetch_max_wait_ms: int = Field(default=20, ge=0)
    # The broker returns a record larger than the per-partition fetch limit only when it is the
    # first data of a fetch response; a waiting dose report sought back on another partition
    # could then be first every time and starve it. Not reproduced with kafka-python 3.0.12,
    # whose fetcher moves a partition to the end of its fetch order once its records are taken
    # (tests/kafka/test_service_kafka.py: a 1 KiB limit, every record larger, a report waiting
    # behind five events); fetching input records whole up to this size keeps it out of the
    # question (a topic that allows larger records: raise it to its max.message.bytes).
    max_partition_fetch_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # max.message.bytes of the DICOM input topic when lowdose creates it, and the largest object
    # the DICOM listener publishes when the topic's own value cannot be read. Dose reports are
    # tens of kB; RT structure sets are commonly 1 to 10 MB (every contour point of every ROI on
    # every slice). Kafka's 1 MB default refuses ordinary structure sets; 16 MiB carries them
    # with room while keeping records small enough for Kafka (a record is held whole in
    # producer, broker and consumer memory). Objects above it are refused by the listener with
    # a permanent status (docs/dicom.md).
    rdsr_max_message_bytes: int = Field(
        default=16 * 1024 * 1024, ge=65_536, le=MAX_DICOM_MESSAGE_BYTES
    )
    # The service flushes at the end of every batch, which sends at once whatever lingers: a
    # long linger costs no latency there and lets records fill large batches (few I/O wake-ups).
    linger_ms: int = Field(default=100, ge=0)
    batch_size: int = Field(default=512 * 1024, ge=1024)

    # Study state: bounded in memory, expiry also enforced on the changelog (retention.ms).
    state_max_studies: int = Field(default=100_000, ge=1)
    state_ttl_s: float = Field(default=14 * 86400.0, gt=0)

    # Operations: /metrics, /healthz, /readyz over HTTP (docs/operations.md); off when unset.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    strictness: Strictness = Strictness.WARN
    site_library: Path | None = None
    # The department's assessed history (JSON lines of assessments): its own levels (ICRP 135).
    department_history: Path | None = None

    # Security, passed through to kafka-python.
    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: SaslMechanism | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",") if value.strip()):
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"{entry!r} is not host:port (e.g. kafka-1.example.org:9093); give a "
                    "comma-separated list of host:port"
                )
        return value.strip()

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} does not exist or is not a file; give a PEM file")
        return value

    @model_validator(mode="after")
    def _security_complete(self) -> StreamSettings:
        if self.security_protocol == "SASL_SSL":
            if self.sasl_mechanism is None:
                raise ValueError(
                    "security_protocol SASL_SSL needs sasl_mechanism "
                    "(set LOWDOSE_SASL_MECHANISM, e.g. SCRAM-SHA-512)"
                )
            if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
                self.sasl_plain_username is None or self.sasl_plain_password is None
            ):
                raise ValueError(
                    f"sasl_mechanism {self.sasl_mechanism} needs sasl_plain_username and "
                    "sasl_plain_password (LOWDOSE_SASL_PLAIN_USERNAME / _PASSWORD)"
                )
        return self

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
        config = _CONFIG_FILE.get("path")
        if config is not None:
            if config.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
            else:
                sources.append(DotEnvSettingsSource(settings_cls, env_file=config))
        return tuple(sources)

    def kafka_common(self) -> dict[str, Any]:
        """Connection and security options shared by consumer, producer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, name)
                if value is not None:
                    options[name] = str(value)
            if self.ssl_password is not None:
                options["ssl_password"] = self.ssl_password.get_secret_value()
        if self.security_protocol == "SASL_SSL":
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_plain_username is not None:
                options["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return options


_S = TypeVar("_S", bound=BaseSettings)

# The file is chosen at run time (command line), but pydantic-settings asks for sources in a
# classmethod: the chosen path is handed over here for the duration of one load().
_CONFIG_FILE: dict[str, Path] = {}


def construct(
    cls: type[_S],
    config: Path | None,
    overrides: dict[str, Any],
    *,
    config_file: dict[str, Path],
    env_config: str,
    env_prefix: str,
    file_label: str,
    file_option: str,
) -> _S:
    """Build settings of ``cls`` from the environment, the config file (``config``, else the
    file named by ``$env_config``) and ``overrides`` (None values ignored); every problem is a
    :class:`ConfigurationError` naming the field, the environment variable and the file.

    ``config_file`` is the module's hand-over slot read by ``cls``'s file source (the file is
    chosen at run time, but pydantic-settings asks for sources in a classmethod).
    """
    from_env = os.environ.get(env_config)
    path = config or (Path(from_env) if from_env else None)
    if path is not None and not path.is_file():
        raise ConfigurationError(
            f"{file_label} {path} does not exist; pass an existing file to {file_option} "
            f"(or unset {env_config})"
        )
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        if path is not None:
            config_file["path"] = path
        return cls(**clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:
            raise ConfigurationError(f"settings: {first['msg']}") from exc
        shown = "***" if "password" in where else repr(first.get("input"))
        raise ConfigurationError(
            f"setting {where} = {shown}: {first['msg']}; fix the environment variable "
            f"{env_prefix}{where.upper().replace('.', '__')} or the {file_label}"
        ) from exc
    except ValueError as exc:  # malformed TOML / .env
        raise ConfigurationError(f"{file_label} {path}: {exc}; fix its syntax") from exc
    finally:
        config_file.pop("path", None)


def load(config: Path | None = None, **overrides: Any) -> StreamSettings:
    """Load settings; every problem is a :class:`ConfigurationError` naming field and remedy."""
    settings = construct(
        StreamSettings,
        config,
        overrides,
        config_file=_CONFIG_FILE,
        env_config="LOWDOSE_CONFIG",
        env_prefix="LOWDOSE_",
        file_label="config file",
        file_option="--config (TOML or .env)",
    )
    if not settings.bootstrap_servers:
        settings.bootstrap_servers = _local_broker_address() or ""
    if not settings.bootstrap_servers:
        raise ConfigurationError(
            "bootstrap_servers is not set and no local broker is running; set "
            "KAFKA_BOOTSTRAP_SERVERS=host:port or start one with `lowdose broker start`"
        )
    return settings


def _local_broker_address() -> str | None:
    from streams.local import running_broker

    state = running_broker()
    return state.bootstrap_servers if state else None
