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

from .deep import (
    DeepGDLearner,
    DeepLearner,
    balanced_init,
    check_eq11,
    deep_flow,
    eq11_max_init_scale,
    eq76_bound,
    gaussian_init,
    make_init,
)
from .hard import HardTargetLearner, MaxMarginResult, max_margin
from .wdelta import WDeltaLearner, orthogonal_gaussian, w_delta

__all__ += ["DeepGDLearner", "DeepLearner", "balanced_init", "check_eq11", "deep_flow", "eq11_max_init_scale",
            "eq76_bound", "gaussian_init", "make_init", "HardTargetLearner", "MaxMarginResult", "max_margin",
            "WDeltaLearner", "orthogonal_gaussian", "w_delta"]
