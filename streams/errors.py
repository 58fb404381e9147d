"""Errors of the stream layer (Kafka service, client wrapper, checkpointing).

All derive from :class:`optimiser.errors.LowdoseError` so the command line catches one type;
the core knows nothing of brokers.
"""

from __future__ import annotations

from optimiser.errors import LowdoseError


class StreamError(LowdoseError):
    """Root of the errors raised by the stream layer."""


class BrokerError(StreamError):
    """The Kafka broker could not be reached or used (names the operation and the remedy)."""


class DeliveryError(BrokerError):
    """Records could not be delivered after the producer's retries; the batch is redone."""


class CommitError(BrokerError):
    """Consumed offsets could not be committed after the checkpoint's retries."""


class RebalancedError(BrokerError):
    """The group rebalanced: this member no longer owns the partitions it tried to commit."""


class Interrupted(StreamError):
    """A stop was requested while waiting on the broker; nothing after the wait was done."""
