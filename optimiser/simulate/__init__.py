"""The CT-sim department feed simulator: protocol events and the dose reports that follow them.

The source of demo data, test fixtures, benchmark inputs and Kafka load. Deterministic for a seed.
"""

from optimiser.simulate.delivered import DeliveredAcquisition, DoseCheck
from optimiser.simulate.department import SITE_IDS, SITES
from optimiser.simulate.feed import write_feed
from optimiser.simulate.generator import SimulatedStudy, simulate_feed
from optimiser.simulate.rates import ProblemRates

__all__ = [
    "SITES",
    "SITE_IDS",
    "DeliveredAcquisition",
    "DoseCheck",
    "ProblemRates",
    "SimulatedStudy",
    "simulate_feed",
    "write_feed",
]
