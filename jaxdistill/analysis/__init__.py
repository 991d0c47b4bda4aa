"""Analysis of batched students: angles, transfer risk, p(theta), bounds,
monotonicity (sections 4.2, 4.3, 5.3, Appendix D)."""

from .angles import signed_angle, unsigned_angle
from .risk import (
    RiskEstimate,
    exact_risk,
    exact_risk_from_angle,
    expected_risk,
    has_exact_risk,
    mc_risk,
    transfer_risk,
)

__all__ = [
    "signed_angle",
    "unsigned_angle",
    "RiskEstimate",
    "exact_risk",
    "exact_risk_from_angle",
    "expected_risk",
    "has_exact_risk",
    "mc_risk",
    "transfer_risk",
]
