"""The CT-sim department feed simulator: protocol events and the dose reports that follow them.

The source of demo data, test fixtures, benchmark inputs and Kafka load. Deterministic for a seed.
"""

from simulator.delivered import DeliveredAcquisition, DoseCheck
from simulator.department import SITE_IDS, SITES
from simulator.feed import write_feed
from simulator.generator import SimulatedStudy, simulate_feed
from simulator.rates import ProblemRates

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
