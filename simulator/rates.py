"""How often each problem the optimiser flags is injected into a simulated study."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, fields

from optimiser.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ProblemRates:
    """Share of studies (0..1) that carry each problem; drawn independently per study."""

    excess_coverage: float = 0.30
    above_reference_level: float = 0.08
    multiphase_contrast: float = 0.05
    thin_reconstruction: float = 0.06
    kv_not_calibrated: float = 0.05
    repeat_acquisition: float = 0.05
    diagnostic_intent: float = 0.04
    unlabelled_planning_scan: float = 0.05
    dose_check_exceeded: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ConfigurationError(
                    f"problem rate {f.name} = {value!r}: a rate must lie between 0 and 1; "
                    f"give e.g. {f.name}=0.2"
                )

    @classmethod
    def codes(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

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
        values = {c: getattr(base or cls(), c) for c in known}
        values.update({k: float(v) for k, v in rates.items()})
        return cls(**values)

    @classmethod
    def none(cls) -> ProblemRates:
        return cls(**dict.fromkeys(cls.codes(), 0.0))

    def as_dict(self) -> dict[str, float]:
        return {c: getattr(self, c) for c in self.codes()}


def draw_injected(rates: ProblemRates, rng: random.Random) -> frozenset[str]:
    # One draw per code, in a fixed order, so a seed gives the same problems whatever the rates'
    # construction order.
    return frozenset(c for c in ProblemRates.codes() if rng.random() < getattr(rates, c))
