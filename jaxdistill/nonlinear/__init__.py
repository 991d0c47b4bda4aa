"""Beyond linear students (docs/design.md fact 9): kernel students trained
by the same exact logit flow as the linear ones (``KernelLearner`` with
``RBFKernel``, ``ArcCosKernel``, ``NTKKernel`` or any function), finite-width
two-layer ReLU networks, ReLU-network teachers and the risk-monotonicity
index."""

from .kernels import (KERNEL_NAMES, AbstractKernel, ArcCosKernel, NTKKernel, RBFKernel, UserKernel, arccos_kernel,
                      as_kernel, make_kernel, ntk_kernel)
from .learners import KernelLearner, kernel_features
from .monotonicity import RiskNestedSetProgram, risk_monotonicity_index

__all__ = [
    "KERNEL_NAMES", "AbstractKernel", "ArcCosKernel", "NTKKernel", "RBFKernel", "UserKernel", "arccos_kernel",
    "as_kernel", "make_kernel", "ntk_kernel", "KernelLearner", "kernel_features",
    "RiskNestedSetProgram", "risk_monotonicity_index",
]
