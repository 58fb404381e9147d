"""A single-node Apache Kafka (KRaft, combined broker + controller) on loopback, from Maven jars.

No Docker, no tarball: ``org.apache.kafka:kafka_2.13`` and its dependencies plus a log4j2
back-end are resolved from Maven Central with ``mvn dependency:copy-dependencies`` on a
throw-away pom into a cache folder (reused when present). The broker is then started the way the
release scripts do it: ``kafka.tools.StorageTool format --standalone`` followed by
``java -cp 'libs/*' kafka.Kafka server.properties`` (see
../shared/reference/kafka-and-numba.md, "A single-node Apache Kafka 4.x broker").

With ``tls=True`` the broker also listens with TLS (an ``SSL`` listener) and, when
``sasl_users`` are given, with ``SASL_SSL`` (mechanism PLAIN, those users): a throw-away CA and a
broker certificate for the host's IP address are made with ``openssl`` (:func:`make_tls_files`)
into the work folder, the broker's key store is PKCS12. The PLAINTEXT listener stays for tools
and tests.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.errors import BrokerError
from streams.settings import MAX_DICOM_MESSAGE_BYTES

# The largest request the broker reads (Kafka's default, stated here because it bounds the DICOM
# topic): one produce request holds at most the producer's max_request_size of records (the
# DICOM topic's max.message.bytes, at most MAX_DICOM_MESSAGE_BYTES) plus its headers. A request
# above it is not refused with an error: the broker drops the connection.
SOCKET_REQUEST_MAX_BYTES = 100 * 1024 * 1024

# kafka-python 3.0.x is tested against brokers up to 4.3.
KAFKA_VERSION = "4.3.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lowdose.local</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>{binding}</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

# A .properties config, so log4j2 needs no YAML/JSON parser on the classpath. The readiness line
# ("Kafka Server started") is logged by kafka.server at INFO; everything else stays at WARN.
_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""

_READY_LINE = "Kafka Server started"


def cache_root() -> Path:
    """Where jars and the ``lowdose broker`` state live (``$LOWDOSE_CACHE_DIR`` overrides)."""
    env = os.environ.get("LOWDOSE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lowdose"


def jars_root() -> Path:
    """Where the broker jars are resolved (``$LOWDOSE_JARS_DIR``, else :func:`cache_root`)."""
    env = os.environ.get("LOWDOSE_JARS_DIR")
    return Path(env) if env else cache_root()


def missing_tools() -> list[str]:
    """The external programs the launcher needs that are not on PATH (java, mvn)."""
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resolve(pom_dir: Path, out: Path, binding: str) -> None:
    pom = pom_dir / "pom.xml"
    pom.write_text(
        _POM.format(scala=SCALA_VERSION, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION, binding=binding)
    )
    command = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(
            "mvn dependency:copy-dependencies took over 15 minutes; check network access to "
            "Maven Central and retry"
        ) from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise BrokerError(
            f"mvn could not resolve org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION} "
            f"(exit {done.returncode}); check network access to Maven Central. Last lines:\n"
            + "\n".join(tail)
        )


def _slf4j_major(libs: Path) -> int | None:
    for jar in libs.glob("slf4j-api-*.jar"):
        version = jar.name.removeprefix("slf4j-api-").removesuffix(".jar")
        with contextlib.suppress(ValueError):
            return int(version.split(".")[0])
    return None


def fetch_jars(root: Path | None = None) -> Path:
    """Return the folder of broker jars, resolving them from Maven Central on first use.

    The SLF4J binding must match the ``slf4j-api`` that Kafka resolves (``log4j-slf4j2-impl``
    for SLF4J 2.x, ``log4j-slf4j-impl`` for 1.7.x), or the broker logs nothing.
    """
    base = (root or jars_root()) / f"kafka-{KAFKA_VERSION}"
    libs = base / "libs"
    complete = base / ".complete"
    if complete.exists():
        return libs
    if missing := missing_tools():
        raise BrokerError(
            f"cannot fetch the Kafka broker: {', '.join(missing)} not found on PATH; install a "
            "Java 17+ JDK and Apache Maven (e.g. apt-get install openjdk-17-jdk-headless maven)"
        )
    with _file_lock(base / ".lock"):
        if complete.exists():
            return libs
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=base))
        try:
            _resolve(base, staging, "log4j-slf4j2-impl")
            if _slf4j_major(staging) == 1:
                for jar in staging.glob("log4j-slf4j2-impl-*.jar"):
                    jar.unlink()
                _resolve(base, staging, "log4j-slf4j-impl")
            if not any(staging.glob(f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}*.jar")):
                raise BrokerError(
                    f"mvn finished but kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar is not in "
                    f"{staging}; delete {base} and retry"
                )
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        complete.write_text(KAFKA_VERSION + "\n")
    return libs


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA, the broker's key store it signed, and an unrelated CA (for tests of a
    client that trusts the wrong CA)."""

    ca_cert: Path  # PEM: a client's ssl_cafile
    keystore: Path  # PKCS12: the broker's key and certificate chain
    password: str
    other_ca_cert: Path  # PEM of a CA that signed nothing the broker shows


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise BrokerError(
            f"openssl {args[0]} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
        )


def make_tls_files(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Make a CA and a broker certificate for ``host`` (IP and DNS SAN) with openssl."""
    if shutil.which("openssl") is None:
        raise BrokerError("openssl not found on PATH; install it to start a TLS listener")
    directory.mkdir(parents=True, exist_ok=True)
    password = uuid.uuid4().hex
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-subj", f"/CN=lowdose test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            cwd=directory,
        )  # fmt: skip
    san = (
        f"subjectAltName=IP:{host},DNS:localhost" if _is_ip(host) else f"subjectAltName=DNS:{host}"
    )
    (directory / "san.ext").write_text(san + "\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
        "-keyout", "broker.key", "-out", "broker.csr",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", "san.ext", "-out", "broker.pem",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
        "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{password}",
        cwd=directory,
    )  # fmt: skip
    return TlsFiles(
        ca_cert=directory / "ca.pem",
        keystore=directory / "broker.p12",
        password=password,
        other_ca_cert=directory / "other-ca.pem",
    )


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class _Listeners:
    port: int
    controller_port: int
    ssl_port: int = 0
    sasl_ssl_port: int = 0


def _server_properties(
    host: str,
    ports: _Listeners,
    data: Path,
    tls: TlsFiles | None = None,
    sasl_users: Mapping[str, str] | None = None,
) -> str:
    # Fast-test settings: no initial rebalance delay, few offsets partitions, short sessions.
    listeners = [f"PLAINTEXT://{host}:{ports.port}", f"CONTROLLER://{host}:{ports.controller_port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    tls_lines: dict[str, str] = {}
    if tls is not None:
        listeners.append(f"SSL://{host}:{ports.ssl_port}")
        protocols.append("SSL:SSL")
        tls_lines = {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(tls.keystore),
            "ssl.keystore.password": tls.password,
            "ssl.key.password": tls.password,
            "ssl.client.auth": "none",
        }
        if sasl_users:
            listeners.append(f"SASL_SSL://{host}:{ports.sasl_ssl_port}")
            protocols.append("SASL_SSL:SASL_SSL")
            users = " ".join(f'user_{u}="{p}"' for u, p in sasl_users.items())
            tls_lines["sasl.enabled.mechanisms"] = "PLAIN"
            tls_lines["listener.name.sasl_ssl.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
            )
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{ports.controller_port}",
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        **tls_lines,
        "log.dirs": str(data),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "log.cleaner.backoff.ms": "1000",
        "log.flush.interval.ms": "9223372036854775807",
        # Records up to the largest DICOM topic limit (streams.settings): produce requests fit
        # the socket limit, and a follower's fetch takes such a record whole.
        "socket.request.max.bytes": str(SOCKET_REQUEST_MAX_BYTES),
        "replica.fetch.max.bytes": str(MAX_DICOM_MESSAGE_BYTES),
        "replica.fetch.response.max.bytes": str(MAX_DICOM_MESSAGE_BYTES),
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


class Broker:
    """One local broker process. ``start()`` returns the bootstrap address; ``stop()`` ends it.

    ``restart()`` keeps the ports and the data (for broker-restart tests); ``close()`` stops it
    and deletes the work folder unless ``keep`` was asked for.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        libs: Path | None = None,
        host: str = "127.0.0.1",
        heap: str = "512m",
        detach: bool = False,
        tls: bool = False,
        sasl_users: Mapping[str, str] | None = None,
        port: int = 0,
        controller_port: int = 0,
    ) -> None:
        self.host = host
        self.heap = heap
        self.detach = detach
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="lowdose-kafka-"))
        self.libs = libs
        # Given ports are kept (a restarted local broker keeps its address); 0: pick free ones.
        self.port = port
        self.controller_port = controller_port
        self.tls_wanted = tls
        self.sasl_users = dict(sasl_users or {})
        self.tls: TlsFiles | None = None
        self.ssl_port = 0
        self.sasl_ssl_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ssl_bootstrap_servers(self) -> str:
        """The TLS listener (``security_protocol=SSL``); empty without ``tls=True``."""
        return f"{self.host}:{self.ssl_port}" if self.ssl_port else ""

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """The SASL_SSL listener (PLAIN); empty without ``tls=True`` and ``sasl_users``."""
        return f"{self.host}:{self.sasl_ssl_port}" if self.sasl_ssl_port else ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def _java(self, main: str, *args: str) -> list[str]:
        assert self.libs is not None
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xss1m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _format(self) -> None:
        data = self.workdir / "data"
        if (data / "meta.properties").exists():
            return
        command = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            _cluster_id(),
            "-c",
            str(self.workdir / "server.properties"),
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise BrokerError(
                f"kafka-storage format failed (exit {done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-2000:]}"
            )

    def start(self, timeout_s: float = 90.0, attempts: int = 3) -> str:
        """Fetch jars if needed, format storage, start the broker and wait until it answers."""
        if missing := missing_tools():
            raise BrokerError(
                f"cannot start a Kafka broker: {', '.join(missing)} not found on PATH; install a "
                "Java 17+ JDK and Apache Maven, or set KAFKA_BOOTSTRAP_SERVERS to an existing "
                "cluster"
            )
        if self.libs is None:
            self.libs = fetch_jars()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.tls_wanted and self.tls is None:
            self.tls = make_tls_files(self.workdir / "tls", self.host)
        last: BrokerError | None = None
        for _ in range(attempts):
            fresh_ports = self.port == 0
            if fresh_ports:
                self.port, self.controller_port = free_port(self.host), free_port(self.host)
                if self.tls is not None:
                    self.ssl_port = free_port(self.host)
                    self.sasl_ssl_port = free_port(self.host) if self.sasl_users else 0
            elif self.tls is not None and not self.ssl_port:
                self.ssl_port = free_port(self.host)
                self.sasl_ssl_port = free_port(self.host) if self.sasl_users else 0
            try:
                self._launch(timeout_s)
                return self.bootstrap_servers
            except BrokerError as exc:
                last = exc
                self._terminate()
                # A port taken between free_port() and bind: try new ones on a fresh store.
                if fresh_ports and "Address already in use" in self._log_text():
                    shutil.rmtree(self.workdir / "data", ignore_errors=True)
                    self.port = self.controller_port = self.ssl_port = self.sasl_ssl_port = 0
                    continue
                raise
        assert last is not None
        raise last

    def _launch(self, timeout_s: float) -> None:
        (self.workdir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_path))
        ports = _Listeners(self.port, self.controller_port, self.ssl_port, self.sasl_ssl_port)
        (self.workdir / "server.properties").write_text(
            _server_properties(
                self.host, ports, self.workdir / "data", self.tls, self.sasl_users or None
            )
        )
        self._format()
        out = (self.workdir / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.workdir / "server.properties")),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=self.detach,
        )
        out.close()
        self._wait_ready(timeout_s)

    def _log_text(self) -> str:
        parts = []
        for name in ("server.log", "stdout.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited with status {self.process.returncode} during "
                    f"start-up; see {self.log_path}: {self._log_text()[-1500:]}"
                )
            if _READY_LINE in self._log_text() and wait_for_broker(self.bootstrap_servers, 5.0):
                return
            time.sleep(0.25)
        raise BrokerError(
            f"the Kafka broker on {self.bootstrap_servers} was not ready within {timeout_s:.0f} s; "
            f"see {self.log_path}"
        )

    def _terminate(self, timeout_s: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the broker (a controlled shutdown), then SIGKILL if it does not exit."""
        self._terminate()

    def restart(self, timeout_s: float = 90.0) -> None:
        """Stop and start again on the same ports with the same data."""
        self._terminate()
        self._launch(timeout_s)

    def close(self, keep: bool = False) -> None:
        self._terminate()
        if self._own_workdir and not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, as ``kafka-storage random-uuid`` prints.

    Like Kafka's ``Uuid.randomUuid`` it never starts with '-', which the tool's argument parser
    would take for an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def wait_for_broker(bootstrap_servers: str, timeout_s: float = 30.0) -> bool:
    """True once the admin client can list topics on ``bootstrap_servers`` within the timeout."""
    from streams.client import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                request_timeout_ms=max(1000, int(remaining * 1000)),
                client_id="lowdose-readiness",
            )
            try:
                admin.list_topics()
                return True
            finally:
                admin.close()
        except (BrokerError, OSError):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)
