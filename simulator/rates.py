"""How often each problem the optimiser flags is injected into a simulated study.

One rate per finding code of :mod:`optimiser.finding_codes` (the simulator injects every kind of
problem lowdose detects: tests/test_simulator.py fails while a code has no default rate, so a new
finding cannot be forgotten here). The rates are simulation inputs, not clinical figures.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from optimiser.errors import ConfigurationError
from optimiser.finding_codes import FINDING_CODES

# Default share of studies (0..1) carrying each problem, by finding code.
DEFAULT_RATES: Mapping[str, float] = MappingProxyType(
    {
        "excess_coverage": 0.30,
        "above_reference_level": 0.08,
        "multiphase_contrast": 0.05,
        "thin_reconstruction": 0.06,
        "kv_not_calibrated": 0.05,
        "repeat_acquisition": 0.05,
        "diagnostic_intent": 0.04,
        "unlabelled_planning_scan": 0.05,
        "dose_check_exceeded": 0.05,
    }
)


@dataclass(frozen=True, slots=True)
class ProblemRates:
    """Share of studies (0..1) that carry each problem; drawn independently per study.

    ``ProblemRates()`` holds the defaults; :meth:`from_mapping` changes some of them.
    """

    shares: Mapping[str, float] = field(default_factory=lambda: DEFAULT_RATES)

    def __post_init__(self) -> None:
        for code, value in self.shares.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigurationError(
                    f"problem rate {code} = {value!r}: a rate must lie between 0 and 1; "
                    f"give e.g. {code}=0.2"
                )

    @classmethod
    def codes(cls) -> tuple[str, ...]:
        return FINDING_CODES

    @classmethod
    def from_mapping(
        cls, rates: Mapping[str, float], base: ProblemRates | None = None
    ) -> ProblemRates:
        """Rates from ``{code: share}``, the other codes keeping ``base`` (defaults)."""
        known = cls.codes()
        unknown = sorted(set(rates) - set(known))
        if unknown:
            raise ConfigurationError(
                f"problem code {unknown[0]!r}: not a finding the simulator injects; "
                f"choose from {', '.join(known)}"
            )
        values = dict((base or cls()).shares)
        values.update({k: float(v) for k, v in rates.items()})
        return cls(MappingProxyType({c: values[c] for c in known}))

    @classmethod
    def none(cls) -> ProblemRates:
        return cls(MappingProxyType(dict.fromkeys(cls.codes(), 0.0)))

    def share(self, code: str) -> float:
        return self.shares[code]

    def as_dict(self) -> dict[str, float]:
        return {c: self.shares[c] for c in self.codes()}


def draw_injected(rates: ProblemRates, rng: random.Random) -> frozenset[str]:
    # One draw per code, in a fixed order, so a seed gives the same problems whatever the rates'
    # construction order.
    return frozenset(c for c in ProblemRates.codes() if rng.random() < rates.share(c))
