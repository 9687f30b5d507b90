"""Dataflow list prices, dated, so an estimate and a budget say what they assumed.

Batch list rates per region (USD), from cloud.google.com/dataflow/pricing on
the date below. Kept small and overridable: a team on other rates or another
region passes its own per-vCPU-hour price (`vcpu_hour_usd`) instead of
trusting a stale table. The prices a run was estimated with are kept on its
record, so its budget is judged by the same figures later.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

PRICES_AS_OF = '2026-12-01'
PRICES_URL = 'https://cloud.google.com/dataflow/pricing'


@dataclasses.dataclass(frozen=True)
class Rates:
    """What one unit of each resource a batch job reports costs."""

    vcpu_hour: float
    memory_gb_hour: float
    shuffle_gb: float    # Dataflow Shuffle, data processed (batch)

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


# Dataflow Prime, FlexRS discounts and committed-use discounts not assumed.
RATES = {
    'us-central1': Rates(0.056, 0.003557, 0.011),
    'us-east1': Rates(0.056, 0.003557, 0.011),
    'us-west1': Rates(0.056, 0.003557, 0.011),
    'europe-west1': Rates(0.056, 0.003557, 0.011),
    'europe-west3': Rates(0.0728, 0.004624, 0.0143),
    'asia-northeast1': Rates(0.0715, 0.004543, 0.0143),
}


def rates_for(region: Optional[str], vcpu_hour_usd: Optional[float] = None) -> Optional[Rates]:
    """The rates to assume in `region`; an override of the vCPU price wins
    (memory and shuffle then stay at the region's rates, or are not priced
    where the table does not know it). None: nothing known to price with."""
    known = RATES.get(region or '')
    if vcpu_hour_usd is None:
        return known
    if known is None:
        return Rates(vcpu_hour_usd, 0.0, 0.0)
    return dataclasses.replace(known, vcpu_hour=vcpu_hour_usd)


def vcpu_hour_usd(region: Optional[str], override: Optional[float] = None) -> Optional[float]:
    """The price of a vCPU-hour to assume in the region, the override winning."""
    rates = rates_for(region, override)
    return rates.vcpu_hour if rates else None
