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
from .ptheta import (
    empirical_p_fn,
    empirical_p_theta,
    empirical_p_theta_se,
    exact_p_theta,
    p_function,
    pool_angles,
    sample_angles,
)
from .bounds import BoundResult, cor1_bound, cor1_margin, cor2_bound, cor2_constant, thm3_bound, thm_d1_bound
from .monotonicity import (
    MonotonicityEstimate,
    RiskMonotonicityEstimate,
    monotonicity_from_risks,
    monotonicity_from_angles,
    monotonicity_from_students,
    monotonicity_index,
    nested_sets,
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
    "empirical_p_fn",
    "empirical_p_theta",
    "empirical_p_theta_se",
    "exact_p_theta",
    "p_function",
    "pool_angles",
    "sample_angles",
    "BoundResult",
    "cor1_bound",
    "cor1_margin",
    "cor2_bound",
    "cor2_constant",
    "thm3_bound",
    "thm_d1_bound",
    "MonotonicityEstimate",
    "RiskMonotonicityEstimate",
    "monotonicity_from_risks",
    "monotonicity_from_angles",
    "monotonicity_from_students",
    "monotonicity_index",
    "nested_sets",
]
