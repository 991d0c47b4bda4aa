"""Learners: closed form (Thm 1), gradient flow (eq. 3), discrete optimisers,
reduced-bias w_delta, hard targets, deep linear students.

Every learner is an ``AbstractLearner`` (an equinox Module) with
``fit(key, design, V)``; the binary ones are ``AbstractBinaryLearner``s: see
``students.base``.  ``make_learner(method, flow=, gd=)`` builds the three
learners of Thm 1; ``deep_learner(depth=, method=, ...)`` the deep ones.
Per-set status codes: ``jaxdistill.status.Status``.
"""

from .closed_form import ReducedData, closed_form, reduce_data
from .flow_config import FLOAT32_MIN_NEWTON_TOL, SOLVER_NAMES, FlowConfig, solver_from_name
from .rosenbrock import FieldWithJacobian, Rodas3
from .flow import gradient_flow, plain_gradient_flow
from .discrete import OPTIMISERS, GDConfig, gradient_descent
from .base import AbstractBinaryLearner, AbstractLearner, ClosedFormLearner, FlowLearner, GDLearner, LearnerOutput, make_learner
from .deep import (
    DeepGDLearner,
    DeepLearner,
    balanced_init,
    check_eq11,
    deep_flow,
    deep_learner,
    eq11_max_init_scale,
    eq76_bound,
    gaussian_init,
    make_init,
)
from .hard import HardTargetLearner, MaxMarginResult, max_margin
from .wdelta import WDeltaLearner, orthogonal_gaussian, w_delta

__all__ = [
    "closed_form", "reduce_data", "ReducedData",
    "FlowConfig", "Rodas3", "FieldWithJacobian", "solver_from_name", "SOLVER_NAMES", "FLOAT32_MIN_NEWTON_TOL", "gradient_flow", "plain_gradient_flow",
    "GDConfig", "OPTIMISERS", "gradient_descent",
    "AbstractLearner", "AbstractBinaryLearner", "LearnerOutput", "ClosedFormLearner", "FlowLearner", "GDLearner", "make_learner",
    "DeepGDLearner", "DeepLearner", "balanced_init", "check_eq11", "deep_flow", "deep_learner", "eq11_max_init_scale",
    "eq76_bound", "gaussian_init", "make_init",
    "HardTargetLearner", "MaxMarginResult", "max_margin",
    "WDeltaLearner", "orthogonal_gaussian", "w_delta",
]
