"""lowdose optimiser core: dose model, numba kernels, findings and proposals.

This package never imports the Kafka client: brokers live in :mod:`streams`.
"""

from optimiser.errors import LowdoseError

__all__ = ["LowdoseError"]
__version__ = "0.1.0"
