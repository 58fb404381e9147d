"""Dead letters always fit and are always sendable (issue 10, defect 1), without a broker.

The real-broker proof is tests/kafka/test_deadletter_kafka.py; these cover the shapes a
producer refuses outright: a record with neither key nor value, a null header value, a key or
header set too large to copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from optimiser.errors import InputError
from streams import deadletter


@dataclass
class Rec:
    value: bytes | None
    key: bytes | None = b"k"
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    topic: str = "in"
    partition: int = 1
    offset: int = 7


def _headers(letter: deadletter.DeadLetter) -> dict[str, bytes]:
    return dict(letter.headers)


def test_small_letters_are_the_original_bytes() -> None:
    letter = deadletter.dead_letter(Rec(b"{"), InputError("bad"), "decode", limit_bytes=10_000)
    assert letter.value == b"{" and letter.key == b"k" and not letter.truncated
    assert deadletter.HEADER_TRUNCATED not in _headers(letter)


@pytest.mark.parametrize("size", [1_048_200, 5_000_000])
def test_large_values_are_cut_to_the_limit_with_size_and_digest(size: int) -> None:
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    letter = deadletter.dead_letter(
        Rec(value), InputError("e" * 5000), "decode", limit_bytes=1_048_576
    )
    h = _headers(letter)
    assert letter.truncated
    assert h[deadletter.HEADER_ORIGINAL_SIZE] == str(size).encode()
    assert h[deadletter.HEADER_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert letter.value is not None and value.startswith(letter.value)
    assert deadletter.record_size(letter.key, letter.value, letter.headers) <= 1_048_576
    assert len(letter.value) > 1_000_000  # cut to fit, not emptied


def test_null_key_and_value_and_null_header_values_become_sendable() -> None:
    rec = Rec(None, key=None, headers=[("content-type", None)])
    letter = deadletter.dead_letter(rec, InputError("empty"), "decode", limit_bytes=10_000)
    assert letter.key is None and letter.value == b""
    assert all(isinstance(v, bytes) for _, v in letter.headers)


def test_huge_keys_and_headers_are_replaced_by_digests() -> None:
    key = b"k" * 100_000
    rec = Rec(b"v", key=key, headers=[("h", b"x" * 200_000)])
    letter = deadletter.dead_letter(rec, InputError("x"), "decode", limit_bytes=1_048_576)
    h = _headers(letter)
    assert letter.key is None
    assert h[deadletter.HEADER_ORIGINAL_KEY_SHA256] == hashlib.sha256(key).hexdigest().encode()
    assert h[deadletter.HEADER_HEADERS_DROPPED] == b"1" and "h" not in h
    assert h[deadletter.HEADER_SOURCE_OFFSET] == b"7"


def test_a_letter_the_producer_still_refuses_goes_without_its_body() -> None:
    class MessageSizeTooLargeError(Exception):
        pass

    sent: list[dict[str, Any]] = []

    class Producer:
        config: ClassVar[dict[str, int]] = {"max_request_size": 1_048_576}

        def send(self, topic: str, **kw: Any) -> None:
            if kw["value"]:
                raise MessageSizeTooLargeError("too large")
            sent.append(kw)

    policy = deadletter.DeadLetterPolicy(Producer(), "dlq")
    policy.handle(Rec(b"abc"), InputError("x"), "decode")
    h = dict(sent[0]["headers"])
    assert sent[0]["value"] == b"" and h[deadletter.HEADER_ORIGINAL_SIZE] == b"3"
    assert policy.count == 1


def test_a_broker_failure_is_not_swallowed() -> None:
    class KafkaTimeoutError(Exception):
        pass

    class Producer:
        def send(self, topic: str, **kw: Any) -> None:
            raise KafkaTimeoutError("metadata")

    with pytest.raises(KafkaTimeoutError):
        deadletter.DeadLetterPolicy(Producer(), "dlq").handle(Rec(b"a"), InputError("x"), "x")


def test_the_topic_limit_applies_when_smaller() -> None:
    class Producer:
        config: ClassVar[dict[str, int]] = {"max_request_size": 1_048_576}

    policy = deadletter.DeadLetterPolicy(Producer(), "dlq", topic_max_bytes=100_000)
    assert policy.limit_bytes == 100_000
