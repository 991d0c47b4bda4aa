"""Beyond linear students (docs/design.md fact 9): kernel students trained
by the same exact logit flow as the linear ones (``KernelLearner`` with
``RBFKernel``, ``ArcCosKernel``, ``NTKKernel`` or any function), finite-width
two-layer ReLU networks (``MLPLearner``), ReLU-network teachers and the risk-monotonicity
index."""

from .kernels import (KERNEL_NAMES, AbstractKernel, ArcCosKernel, NTKKernel, RBFKernel, UserKernel, arccos_kernel,
                      as_kernel, make_kernel, ntk_kernel)
from .kernel_design import KernelDesign
from .learners import KernelLearner, kernel_features
from .mlp import MLPLearner, make_mlp_learner, mlp_init, mlp_logits
from .monotonicity import RiskNestedSetProgram, risk_monotonicity_index
from .tasks import BinaryTaskAsMultiClass, ReluTeacherTask, teacher_pool_arrays

__all__ = [
    "KERNEL_NAMES", "AbstractKernel", "ArcCosKernel", "NTKKernel", "RBFKernel", "UserKernel", "arccos_kernel",
    "as_kernel", "make_kernel", "ntk_kernel", "KernelLearner", "KernelDesign", "kernel_features", "MLPLearner", "make_mlp_learner",
    "mlp_init", "mlp_logits", "RiskNestedSetProgram", "risk_monotonicity_index", "BinaryTaskAsMultiClass",
    "ReluTeacherTask", "teacher_pool_arrays",
]
