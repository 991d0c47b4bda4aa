"""K classes, any teacher, mixed targets (docs/design.md facts 8 and 10).

Teachers from anywhere: a pool of inputs with a linear teacher W* [K, d] or
the logits of any trained model (``MultiClassPoolTask``,
``pool_task_from_arrays``), optional ground-truth labels; synthetic K-class
Gaussian tasks (``MultiClassGaussianTask``); linear softmax students by
closed form, gradient flow and optax (``learners``) and their exact limit
(``minimiser``: the interpolant, or the convex minimiser for n > d and a
nonlinear teacher); soft, hard and mixed
targets at a temperature (``targets``); ``jd.distill`` runs them through
the one chunked runner (``program``); a real K = 10 task on the shipped
8x8 digits (``digits_task``) and on the full MNIST (``mnist_multiclass_task``).  K = 2 reproduces the binary
library (w = w_1 - w_0).
"""

from .datasets import (MultiClassTeacherFit, digits_task, digits_teacher, fit_softmax_regression, load_digits8x8,
                       mnist_multiclass_task, mnist_multiclass_teacher)
from .learners import (SOFTMAX_METHODS, AbstractSoftmaxLearner, SoftmaxClosedFormLearner, SoftmaxFlowLearner,
                       SoftmaxGDLearner, make_softmax_learner, softmax_closed_form,
                       softmax_gradient_flow)
from .minimiser import LIMIT_KIND_NAMES, LimitKind, softmax_limit, softmax_minimiser
from .program import MultiClassDrawnSet, MultiClassSampler, MultiClassSetup, setup_multiclass
from .targets import MULTI_TARGET_KINDS, MultiTargetSpec, centre, softmax_cross_entropy, target_log_probs
from .tasks import (POOL_KEYS, AbstractMultiClassTask, MultiClassGaussianTask, MultiClassPoolTask,
                    is_multiclass_pool, pool_task_from_arrays, random_teacher)

__all__ = [
    "MultiClassTeacherFit", "digits_task", "digits_teacher", "fit_softmax_regression", "load_digits8x8",
    "mnist_multiclass_task", "mnist_multiclass_teacher",
    "SOFTMAX_METHODS", "AbstractSoftmaxLearner", "SoftmaxClosedFormLearner", "SoftmaxFlowLearner", "SoftmaxGDLearner",
    "make_softmax_learner", "softmax_closed_form", "softmax_gradient_flow",
    "LIMIT_KIND_NAMES", "LimitKind", "softmax_limit", "softmax_minimiser",
    "MultiClassDrawnSet", "MultiClassSampler", "MultiClassSetup", "setup_multiclass",
    "MULTI_TARGET_KINDS", "MultiTargetSpec", "centre", "softmax_cross_entropy", "target_log_probs",
    "POOL_KEYS", "AbstractMultiClassTask", "MultiClassGaussianTask", "MultiClassPoolTask", "is_multiclass_pool",
    "pool_task_from_arrays", "random_teacher",
]
