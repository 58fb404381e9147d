"""Why a broker cannot be used: a connection check that names the cause and the setting to fix.

kafka-python retries a failing bootstrap for ``bootstrap_timeout_ms`` and then raises
``KafkaTimeoutError: Unable to bootstrap``; the cause (refused, TLS expected, unknown CA, wrong
SASL password) only appears in its earlier log lines, and ``lowdose run`` ended with "internal
error ... please report it" after about 31 s (issue 10, defect 4). Before any client is created,
:func:`probe` checks each bootstrap address with plain sockets, in a few seconds:

1. the name resolves and a TCP connection opens;
2. with ``PLAINTEXT``, the listener answers a Kafka ``ApiVersions`` request (if it does not but
   completes a TLS handshake, it wants TLS);
3. with ``SSL``/``SASL_SSL``, the TLS handshake succeeds with the configured CA, certificate and
   host-name check (if it fails but ``ApiVersions`` is answered in the clear, it wants PLAINTEXT).

Authentication (SASL) and authorisation are only visible to the client itself:
:func:`capture_client_errors` records the client's error log lines while it starts, and
:func:`client_failure` turns them into the same kind of message. Every failure is a
:class:`optimiser.errors.BrokerError`; the command line prints it and exits with status 1.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import Iterator

from streams.errors import BrokerError
from streams.settings import StreamSettings

BOOTSTRAP = "bootstrap_servers (KAFKA_BOOTSTRAP_SERVERS or LOWDOSE_BOOTSTRAP_SERVERS)"
PROTOCOL = "security_protocol (LOWDOSE_SECURITY_PROTOCOL)"
CAFILE = "ssl_cafile (LOWDOSE_SSL_CAFILE)"


def _address(entry: str) -> tuple[str, int]:
    host, _, port = entry.strip().rpartition(":")
    return host.strip("[]"), int(port)


def _api_versions_request() -> bytes:
    """A Kafka ApiVersions v0 request (api key 18), size-prefixed, correlation id 7."""
    client = b"lowdose-preflight"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    return struct.pack(">i", len(body)) + body


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout_s)
    except socket.gaierror as exc:
        raise BrokerError(
            f"broker host {host!r} cannot be resolved ({exc.strerror}); fix the host name in "
            f"{BOOTSTRAP}"
        ) from exc
    except ConnectionRefusedError as exc:
        raise BrokerError(
            f"nothing listens on {host}:{port} (connection refused): is the broker running and is "
            f"that its port? Fix {BOOTSTRAP}, or start a local one with `lowdose broker start`"
        ) from exc
    except TimeoutError as exc:
        raise BrokerError(
            f"no answer from {host}:{port} within {timeout_s:.0f} s (a firewall, or a wrong "
            f"address); check {BOOTSTRAP} and the network path to the broker"
        ) from exc
    except OSError as exc:
        raise BrokerError(
            f"cannot connect to {host}:{port}: {exc.strerror or exc}; check {BOOTSTRAP}"
        ) from exc


def _answers_kafka(host: str, port: int, timeout_s: float) -> bool:
    """True when the listener answers ApiVersions in the clear (a PLAINTEXT listener)."""
    try:
        with _connect(host, port, timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(_api_versions_request())
            head = sock.recv(8)
    except (OSError, BrokerError):
        return False
    if len(head) < 8:
        return False
    size, correlation = struct.unpack(">ii", head)
    return bool(correlation == 7 and 0 < size < 1 << 20)


def _speaks_tls(host: str, port: int, timeout_s: float) -> bool:
    """True when a TLS handshake completes (certificate not checked: only the protocol)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            _connect(host, port, timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (OSError, BrokerError):
        return False


def _tls_context(settings: StreamSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        context.check_hostname = settings.ssl_check_hostname
        if settings.ssl_certfile is not None:
            password = settings.ssl_password.get_secret_value() if settings.ssl_password else None
            context.load_cert_chain(
                str(settings.ssl_certfile),
                str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
                password,
            )
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(
            f"the TLS files cannot be used ({exc}); check {CAFILE}, ssl_certfile, ssl_keyfile "
            "and ssl_password (LOWDOSE_SSL_*): PEM files readable by this user"
        ) from exc
    return context


def _read_response(sock: ssl.SSLSocket) -> bytes:
    """One size-prefixed Kafka response (at most 1 MiB), without its correlation id."""
    head = _read_exactly(sock, 4)
    (size,) = struct.unpack(">i", head)
    if not 4 <= size <= 1 << 20:
        raise OSError(f"implausible response size {size}")
    return _read_exactly(sock, size)[4:]


def _read_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("the broker closed the connection")
        data += chunk
    return data


def _request(api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    client = b"lowdose-preflight"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def _sasl_plain_login(sock: ssl.SSLSocket, username: str, password: str) -> str | None:
    """Kafka SaslHandshake v1 + SaslAuthenticate v0 with PLAIN; the broker's refusal, or None.

    PLAIN's message is ``authzid NUL authcid NUL password`` (RFC 4616)."""
    mechanism = b"PLAIN"
    sock.sendall(_request(17, 1, 11, struct.pack(">h", len(mechanism)) + mechanism))
    (error,) = struct.unpack(">h", _read_response(sock)[:2])
    if error != 0:
        return f"mechanism PLAIN not enabled on this listener (error code {error})"
    token = b"\0" + username.encode() + b"\0" + password.encode()
    sock.sendall(_request(36, 0, 12, struct.pack(">i", len(token)) + token))
    body = _read_response(sock)
    (error,) = struct.unpack(">h", body[:2])
    if error == 0:
        return None
    (length,) = struct.unpack(">h", body[2:4])
    message = body[4 : 4 + length].decode(errors="replace") if length > 0 else ""
    return message or f"error code {error}"


def _check_sasl_plain(settings: StreamSettings, host: str, port: int, timeout_s: float) -> None:
    """Log in with SASL PLAIN as the client will; a refusal names the settings to fix."""
    password = settings.sasl_plain_password
    username = settings.sasl_plain_username or ""
    context = _tls_context(settings)
    try:
        with (
            _connect(host, port, timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as sock,
        ):
            sock.settimeout(timeout_s)
            refused = _sasl_plain_login(
                sock, username, password.get_secret_value() if password else ""
            )
    except (OSError, struct.error):
        return  # no clear answer: the client's own error decides (client_failure)
    if refused is not None:
        raise BrokerError(
            f"SASL authentication failed on {host}:{port} for user {username!r} (mechanism "
            f"PLAIN: {refused}); check LOWDOSE_SASL_PLAIN_USERNAME and "
            "LOWDOSE_SASL_PLAIN_PASSWORD (and LOWDOSE_SASL_MECHANISM)"
        )


def _check_tls(settings: StreamSettings, host: str, port: int, timeout_s: float) -> None:
    context = _tls_context(settings)
    try:
        with (
            _connect(host, port, timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            pass
        if settings.security_protocol == "SASL_SSL" and settings.sasl_mechanism == "PLAIN":
            _check_sasl_plain(settings, host, port, timeout_s)
        return
    except ssl.SSLCertVerificationError as exc:
        if "hostname" in (exc.verify_message or "").lower() or exc.verify_code == 62:
            raise BrokerError(
                f"the broker's certificate at {host}:{port} does not name {host!r} "
                f"({exc.verify_message}); connect by a name the certificate carries in "
                f"{BOOTSTRAP}, or (not recommended) set LOWDOSE_SSL_CHECK_HOSTNAME=false"
            ) from exc
        trusted = f"the CA in {settings.ssl_cafile}" if settings.ssl_cafile else "the system CAs"
        raise BrokerError(
            f"the broker's certificate at {host}:{port} is not trusted by {trusted} "
            f"({exc.verify_message}); set {CAFILE} to the CA certificate that signed the "
            "broker's certificate"
        ) from exc
    except ssl.SSLError as exc:
        cause = f"TLS handshake failed ({exc.reason or exc})"
    except (ConnectionResetError, TimeoutError, ssl.SSLEOFError) as exc:
        cause = f"the connection ended during the TLS handshake ({type(exc).__name__})"
    except OSError as exc:
        cause = f"TLS handshake failed ({exc})"
    if _answers_kafka(host, port, timeout_s):
        raise BrokerError(
            f"{host}:{port} is a PLAINTEXT listener but {PROTOCOL} is "
            f"{settings.security_protocol}: set LOWDOSE_SECURITY_PROTOCOL=PLAINTEXT, or point "
            f"{BOOTSTRAP} at the broker's TLS listener"
        )
    raise BrokerError(
        f"{host}:{port}: {cause}; check that it is the broker's TLS listener ({BOOTSTRAP}) "
        f"and the TLS settings ({CAFILE}, LOWDOSE_SSL_*)"
    )


def _check_plaintext(settings: StreamSettings, host: str, port: int, timeout_s: float) -> None:
    with _connect(host, port, timeout_s):
        pass
    if _answers_kafka(host, port, timeout_s):
        return
    if _speaks_tls(host, port, timeout_s):
        raise BrokerError(
            f"{host}:{port} expects TLS but {PROTOCOL} is PLAINTEXT: set "
            "LOWDOSE_SECURITY_PROTOCOL=SSL (or SASL_SSL with LOWDOSE_SASL_*) and "
            f"{CAFILE} to the CA that signed the broker's certificate"
        )
    raise BrokerError(
        f"{host}:{port} accepts connections but does not answer a Kafka request within "
        f"{timeout_s:.0f} s: is it a Kafka broker's port? Check {BOOTSTRAP} and {PROTOCOL}"
    )


def probe(settings: StreamSettings, timeout_s: float = 5.0) -> None:
    """Raise :class:`BrokerError` naming the cause unless some bootstrap address is usable.

    Takes at most about ``3 * timeout_s`` per address (connect, request, TLS attempt).
    """
    entries = [e for e in settings.bootstrap_servers.split(",") if e.strip()]
    errors: list[BrokerError] = []
    for entry in entries:
        host, port = _address(entry)
        try:
            if settings.security_protocol == "PLAINTEXT":
                _check_plaintext(settings, host, port, timeout_s)
            else:
                _check_tls(settings, host, port, timeout_s)
            return
        except BrokerError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    raise BrokerError("no bootstrap address is usable: " + " | ".join(str(e) for e in errors))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(record.getMessage()[-500:])


@contextlib.contextmanager
def capture_client_errors() -> Iterator[list[str]]:
    """Collect the Kafka client's ERROR log lines (payloads redacted) while the block runs."""
    from streams.logs import ClientPayloadFilter

    handler = _Capture()
    handler.addFilter(ClientPayloadFilter())
    logger = logging.getLogger("kafka")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def client_failure(settings: StreamSettings, error: Exception, logged: list[str]) -> BrokerError:
    """A :class:`BrokerError` for a client that could not start, from its error and logs."""
    text = " ".join([*logged, f"{type(error).__name__}: {error}"])
    where = settings.bootstrap_servers
    if "SaslAuthenticationFailed" in text or "Authentication failed" in text:
        return BrokerError(
            f"SASL authentication failed on {where} for user {settings.sasl_plain_username!r} "
            f"(mechanism {settings.sasl_mechanism}): check LOWDOSE_SASL_PLAIN_USERNAME and "
            "LOWDOSE_SASL_PLAIN_PASSWORD (and LOWDOSE_SASL_MECHANISM)"
        )
    if settings.security_protocol == "SASL_SSL" and "disconnected" in text:
        # TLS was established (the probe passed), then the broker hung up: with SASL that is
        # almost always a refused login (the broker closes after a failed authentication).
        return BrokerError(
            f"the broker on {where} closed the connection after TLS was established; with "
            f"SASL_SSL that is most often a refused login (SASL authentication failed?) for "
            f"user {settings.sasl_plain_username!r} (mechanism {settings.sasl_mechanism}): "
            "check LOWDOSE_SASL_PLAIN_USERNAME, LOWDOSE_SASL_PLAIN_PASSWORD and "
            "LOWDOSE_SASL_MECHANISM"
        )
    if "UnsupportedSaslMechanism" in text or "IllegalSaslState" in text:
        return BrokerError(
            f"the broker on {where} does not accept SASL mechanism {settings.sasl_mechanism}: "
            "set LOWDOSE_SASL_MECHANISM to one the listener enables"
        )
    if "AuthorizationFailed" in text:
        return BrokerError(
            f"the broker on {where} refused an operation to this client ({_last_cause(text)}); "
            "grant the principal Describe/Create on the lowdose topics and Read on its group, "
            "or create the topics beforehand and set LOWDOSE_CREATE_TOPICS=false"
        )
    return BrokerError(
        f"could not use the broker on {where}: {_last_cause(text)}; check {BOOTSTRAP}, "
        f"{PROTOCOL} and the LOWDOSE_SSL_*/LOWDOSE_SASL_* settings"
    )


def _last_cause(text: str) -> str:
    return text.strip().split(" | ")[-1][-300:]
