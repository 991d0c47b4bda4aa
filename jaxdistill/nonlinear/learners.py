"""Kernel students: the K-class logit flow with the kernel matrix in place of
the Gram matrix (docs/design.md fact 9).

A kernel student f(x) = sum_i alpha_i k(x, x_i) trained from f = 0 by
gradient flow on the cross-entropy in function space (gradient flow in the
RKHS; the dynamics of an infinitely wide network in the NTK regime) has
logits Z = K alpha on the transfer set following
dZ/dt = -(1/n) K (softmax(Z) - P), K = k(X, X).  With the Cholesky factor
K = L L^T, the rows of L are features phi(x_i) in R^n with
phi(x_i).phi(x_j) = k(x_i, x_j): the kernel student IS the linear student
on the inputs L, whose logit flow is the one above.  So the flow is the
one logit flow of the linear students run on the kernel design
(``kernel_design.KernelDesign``: Gram matrix K, the kernel rank test;
``kernel_flow``), with its stopping test and ``max_rel_dist_closed_form``,
and the other linear learners (closed form, optax) run unchanged on the
features L, and

* the student in feature coordinates is w [K, n] (the rows of
  ``LearnerOutput.W``), alpha = L^{-T} w^T, and its RKHS norm is ||w||
  (so the distance to the closed form is measured in the RKHS norm);
* its logits on new inputs are f(x) = alpha k(X, x) (``predict``);
* the limit is the minimum-RKHS-norm interpolant of the centred target
  logits, f(x) = k(x, X) K^{-1} centre(V): Thm 1 in feature space.  It does
  not depend on the kernel's scale (K -> cK leaves k(x, X) K^{-1} fixed).

Binary teachers are the K = 2 teachers with logits [0, u]; the K = 2 flow
runs the sigmoid link on u (``multiclass.learners.softmax_design_flow``).
"""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..multiclass.learners import (AbstractSoftmaxLearner, SoftmaxFlowLearner, make_softmax_learner,
                                   softmax_closed_form, softmax_design_flow)
from ..multiclass.minimiser import LimitKind
from ..multiclass.targets import MultiTargetSpec
from ..status import Status
from ..students.flow_config import FlowConfig
from ..students.base import LearnerOutput
from ..validation import JaxDistillError
from .kernel_design import KernelDesign, kernel_features, kernel_matrix
from .kernels import AbstractKernel, as_kernel


def kernel_flow(kernel: AbstractKernel, X: Float[Array, "n d"], V: Float[Array, "n K"],
                flow_config: FlowConfig) -> LearnerOutput:
    """The kernel student's gradient flow from f = 0 (fact 9): the one logit
    flow on the kernel design (``KernelDesign``: Gram matrix k(X, X), its
    own rank test), K = 2 by the sigmoid link on v_1 - v_0 and K > 2 by the
    softmax link (``multiclass.learners.softmax_design_flow``).  W [K, n]
    holds the student in feature coordinates c = L^{-1} Z.  One Cholesky
    factorisation a set (no features-then-QR)."""
    return softmax_design_flow(KernelDesign(kernel, X), V, flow_config)


@final
class KernelLearner(AbstractSoftmaxLearner):
    """A kernel student trained by ``base`` (a linear K-class learner run on
    the kernel features: closed form, flow or optax GD).

    Attributes:
        kernel: an ``AbstractKernel`` (``RBFKernel``, ``ArcCosKernel``,
            ``NTKKernel``, or ``UserKernel(fn)`` for any function).
        base: the linear learner (``make_softmax_learner(...)``); default flow.

    ``LearnerOutput.W`` is the student in feature coordinates, [K, n].
    """

    kernel: AbstractKernel
    base: AbstractSoftmaxLearner
    name: ClassVar[str] = "kernel"
    needs_inputs: ClassVar[bool] = True

    def __init__(self, kernel, base: AbstractSoftmaxLearner | None = None):
        self.kernel = as_kernel(kernel)
        base = make_softmax_learner("flow") if base is None else base
        if not isinstance(base, AbstractSoftmaxLearner) or base.needs_inputs:
            raise JaxDistillError(f"base must be a linear K-class learner (make_softmax_learner), got {base!r}")
        self.base = base

    def fit_inputs(self, key, X, V) -> LearnerOutput:
        if self._runs_flow():
            return kernel_flow(self.kernel, X, V, self.base.flow)
        L, ok = kernel_features(self.kernel, X)
        out = self.base.fit_inputs(key, L, V)
        status = jnp.where(ok, out.status, Status.RANK_DEFICIENT).astype(out.status.dtype)
        return LearnerOutput(w=out.W, status=status, num_steps=out.num_steps, loss=out.loss, extras=out.extras)

    def _runs_flow(self) -> bool:
        """The base is the reduced-coordinate flow: ``kernel_flow`` runs it on the kernel design."""
        return isinstance(self.base, SoftmaxFlowLearner) and self.base.flow.coordinates == "reduced"

    def reference(self, X, V):
        """The interpolant of the centred log targets in feature coordinates
        (L is n x n: the interpolant always exists and is the limit, fact 9)."""
        L, _ = kernel_features(self.kernel, X)
        return softmax_closed_form(L, V)[0], jnp.asarray(LimitKind.INTERPOLANT, jnp.int32)

    def predict(self, W, X, X_new):
        """f(X_new) = k(X_new, X) alpha^T [M, K], alpha = W L^{-1} (O(n^2 K + M n K))."""
        return self.kernel(X_new, X) @ self.coefficients(W, X).T

    def coefficients(self, W, X) -> Float[Array, "K n"]:
        """alpha [K, n] with f(x) = alpha k(X, x)."""
        L, _ = kernel_features(self.kernel, X)
        return jax.scipy.linalg.solve_triangular(L.T, W.T, lower=False).T

    def check_targets(self, targets: MultiTargetSpec) -> None:
        self.base.check_targets(targets)

    def for_dtype(self, dtype: str) -> "KernelLearner":
        return eqx.tree_at(lambda m: m.base, self, self.base.for_dtype(dtype))

    def config(self) -> dict:
        cfg = {"student": "kernel"}
        cfg.update(self.kernel.config())
        cfg.update(self.base.config())
        return cfg


__all__ = ["KernelLearner", "KernelDesign", "kernel_flow", "kernel_features", "kernel_matrix"]
