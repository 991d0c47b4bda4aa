"""Learners: closed form (Thm 1), gradient flow (eq. 3), discrete optimisers."""

from .closed_form import closed_form, reduce_data, ReducedData
from .flow import FlowConfig, gradient_flow, plain_gradient_flow, STATUS_NAMES
from .discrete import GDConfig, gradient_descent

__all__ = [
    "closed_form",
    "reduce_data",
    "ReducedData",
    "FlowConfig",
    "gradient_flow",
    "plain_gradient_flow",
    "STATUS_NAMES",
    "GDConfig",
    "gradient_descent",
]

from .base import LearnerOutput, ClosedFormLearner, FlowLearner, GDLearner

__all__ += ["LearnerOutput", "ClosedFormLearner", "FlowLearner", "GDLearner"]
