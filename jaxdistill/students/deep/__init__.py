"""Deep linear students w^T = W_N ... W_1 (Thm 2, Appendix C).

One job per module:

* ``algebra``: eq. 11 / 76 (conditions and guarantee of Thm 2), the
  end-to-end vector, balancedness (eq. 13);
* ``inits``: balanced / Gaussian / user initialisations (``DeepInit``);
* ``integrators``: the reduced, induced and full gradient flows
  (``deep_flow``) and gradient descent on the factors;
* ``learners``: ``DeepLearner`` (flow), ``DeepGDLearner`` (optax) and
  ``deep_learner(depth=..., method="flow"|"gd", ...)``.
"""

from .algebra import (DEFAULT_EPSILON, balancedness_defect, check_eq11, end_to_end, eq11_max_init_scale,
                      eq11_sup_over_sets, eq76_bound, head_vector, layer_dims)
from .inits import INITS, DeepInit, balanced_init, gaussian_init, make_init
from .integrators import (INTEGRATORS, PATH_FLOW_CONFIG, DeepFlowResult, deep_flow, deep_gradient_descent,
                          default_flow_config, exact_deep_limit)
from .learners import DEEP_GD_SETTINGS, DEEP_METHODS, DeepGDLearner, DeepLearner, deep_learner, default_gd_config

__all__ = [
    "DEFAULT_EPSILON", "balancedness_defect", "check_eq11", "end_to_end", "eq11_max_init_scale", "eq11_sup_over_sets",
    "eq76_bound", "head_vector", "layer_dims",
    "INITS", "DeepInit", "balanced_init", "gaussian_init", "make_init",
    "INTEGRATORS", "PATH_FLOW_CONFIG", "DeepFlowResult", "deep_flow", "deep_gradient_descent", "default_flow_config",
    "exact_deep_limit",
    "DEEP_GD_SETTINGS", "DEEP_METHODS", "DeepGDLearner", "DeepLearner", "deep_learner", "default_gd_config",
]
