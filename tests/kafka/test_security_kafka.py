"""TLS, SASL and connection failures against a real broker (issue 10, defect 4 and "a real SSL
listener").

The session broker (tests.support.kafka) also listens with TLS and with SASL_SSL (PLAIN), with a
throw-away CA made by openssl. ``lowdose publish`` and ``lowdose run`` work over TLS; every
misconfiguration (unreachable or unresolvable broker, PLAINTEXT against TLS and the reverse, a CA
that did not sign the broker's certificate, a wrong SASL password) ends within 30 s with exit
status 1 and a message naming the cause and the setting to fix, never "internal error".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator import simulate_feed, write_feed
from streams.broker import Broker, free_port
from tests.support.kafka import (
    SASL_PASSWORD,
    SASL_USER,
    drain,
    run_lowdose,
    settings_env,
    settings_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


def _env(bootstrap: str, name: str | None = None, **extra: str) -> dict[str, str]:
    env = settings_env(settings_for(bootstrap, name, partitions=2))
    env["LOWDOSE_LOG_LEVEL"] = "WARNING"
    return {**env, **extra}


def _tls(broker: Broker, **extra: str) -> dict[str, str]:
    assert broker.tls is not None
    return {
        "LOWDOSE_SECURITY_PROTOCOL": "SSL",
        "LOWDOSE_SSL_CAFILE": str(broker.tls.ca_cert),
        **extra,
    }


def _sasl(broker: Broker, password: str) -> dict[str, str]:
    return _tls(
        broker,
        LOWDOSE_SECURITY_PROTOCOL="SASL_SSL",
        LOWDOSE_SASL_MECHANISM="PLAIN",
        LOWDOSE_SASL_PLAIN_USERNAME=SASL_USER,
        LOWDOSE_SASL_PLAIN_PASSWORD=password,
    )


def test_publish_and_run_over_tls_and_sasl_ssl(kafka_tls: Broker, tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    studies = simulate_feed(3, seed=81)
    write_feed(feed, studies)
    name = "tls-" + tmp_path.name[-12:]
    env = _env(kafka_tls.ssl_bootstrap_servers, name, **_tls(kafka_tls))
    rc, out, _ = run_lowdose(["publish", "--quiet", str(feed)], env)
    assert rc == 0, out[-3000:]
    rc, out, _ = run_lowdose(["run", "--idle-stop", "8"], env, timeout_s=300)
    assert rc == 0, out[-3000:]
    assert "consumed 6 message(s)" in out and "0 to the dead-letter topic" in out, out[-2000:]
    # What the service wrote over TLS, read back on the PLAINTEXT listener.
    settings = settings_for(kafka_tls.bootstrap_servers, name)
    uids = {s.study_instance_uid for s in studies}
    assessments = drain(
        kafka_tls.bootstrap_servers,
        settings.topics.assessments,
        until=lambda rs: {json.loads(r.value)["study_instance_uid"] for r in rs} >= uids,
    )
    assert {json.loads(r.value)["study_instance_uid"] for r in assessments} == uids
    # SASL_SSL with the right password: the same feed is accepted.
    env = _env(kafka_tls.sasl_ssl_bootstrap_servers, name, **_sasl(kafka_tls, SASL_PASSWORD))
    rc, out, _ = run_lowdose(["publish", "--quiet", str(feed)], env)
    assert rc == 0, out[-3000:]


def _cases(broker: Broker) -> dict[str, tuple[dict[str, str], list[str]]]:
    assert broker.tls is not None
    closed = f"127.0.0.1:{free_port()}"
    return {
        "unreachable": (_env(closed), ["connection refused", "KAFKA_BOOTSTRAP_SERVERS"]),
        "unresolvable": (
            _env("no-such-broker.invalid:9092"),
            ["cannot be resolved", "KAFKA_BOOTSTRAP_SERVERS"],
        ),
        "plaintext_against_tls": (
            _env(broker.ssl_bootstrap_servers),
            ["expects TLS", "LOWDOSE_SECURITY_PROTOCOL", "LOWDOSE_SSL_CAFILE"],
        ),
        "tls_against_plaintext": (
            _env(broker.bootstrap_servers, **_tls(broker)),
            ["PLAINTEXT listener", "LOWDOSE_SECURITY_PROTOCOL=PLAINTEXT"],
        ),
        "bad_ca": (
            _env(
                broker.ssl_bootstrap_servers,
                **_tls(broker, LOWDOSE_SSL_CAFILE=str(broker.tls.other_ca_cert)),
            ),
            ["not trusted", "other-ca.pem", "LOWDOSE_SSL_CAFILE"],
        ),
        "wrong_sasl_password": (
            _env(broker.sasl_ssl_bootstrap_servers, **_sasl(broker, "not-the-password")),
            ["SASL authentication failed", "LOWDOSE_SASL_PLAIN_PASSWORD"],
        ),
    }


CASES = [
    "unreachable",
    "unresolvable",
    "plaintext_against_tls",
    "tls_against_plaintext",
    "bad_ca",
    "wrong_sasl_password",
]


@pytest.mark.parametrize("command", ["publish", "run"])
@pytest.mark.parametrize("case", CASES)
def test_connection_failures_name_the_cause_and_the_setting_within_30_s(
    kafka_tls: Broker, tmp_path: Path, case: str, command: str
) -> None:
    env, expected = _cases(kafka_tls)[case]
    feed = tmp_path / "feed"
    write_feed(feed, simulate_feed(1, seed=82))
    args = ["publish", "--quiet", str(feed)] if command == "publish" else ["run"]
    rc, out, seconds = run_lowdose(args, env, timeout_s=120)
    assert rc == 1, out[-3000:]
    assert seconds < 30, f"{case}: {seconds:.1f} s"
    assert "internal error" not in out and "Traceback" not in out, out[-3000:]
    for fragment in expected:
        assert fragment in out, f"{case}: {fragment!r} not in {out[-1500:]!r}"
