"""The kernel design: a transfer set as a kernel student sees it (docs/design.md fact 9).

A kernel student f(x) = sum_i alpha_i k(x, x_i) trained from f = 0 has
logits Z = K alpha on the transfer set, K = k(X, X) the kernel matrix,
and follows the logit flow of a linear student with K in place of the
Gram matrix: with the Cholesky factor K = L L^T the rows of L are features
phi(x_i) in R^n with phi(x_i).phi(x_j) = k(x_i, x_j).  ``KernelDesign``
is that set as a ``design.AbstractDesign``: its Gram matrix is K, its
factor keeps the kernel students' own rank test (``kernel_features``), and
its students are their feature coordinates c = L^{-1} Z (``to_student`` is
the identity): the rows of ``LearnerOutput.W``, whose norm is the RKHS
norm of f.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ..design import AbstractDesign, GramFactor, factor_with_inverse
from .kernels import AbstractKernel


def kernel_matrix(kernel: AbstractKernel, X: Float[Array, "n d"]) -> Float[Array, "n n"]:
    """k(X, X), symmetrised (exactly symmetric whatever the kernel's rounding)."""
    Kxx = kernel(X, X)
    return 0.5 * (Kxx + Kxx.T)


def features_of_kernel_matrix(Kxx: Float[Array, "n n"]) -> tuple[Float[Array, "n n"], Bool[Array, ""]]:
    """(L, ok) of a kernel matrix: its lower Cholesky factor and whether it is
    numerically positive definite (every pivot above sqrt(n eps) times the
    largest diagonal scale; else L is the identity, and the set is reported
    ``RANK_DEFICIENT``)."""
    n = Kxx.shape[0]
    L = jnp.linalg.cholesky(Kxx)
    diag = jnp.diagonal(L)
    scale = jnp.sqrt(jnp.max(jnp.abs(jnp.diagonal(Kxx))))
    ok = jnp.all(jnp.isfinite(L)) & (jnp.min(diag) > jnp.sqrt(n * jnp.finfo(Kxx.dtype).eps) * scale)
    return jnp.where(ok, L, jnp.eye(n, dtype=Kxx.dtype)), ok


def kernel_features(kernel: AbstractKernel, X: Float[Array, "n d"]) -> tuple[Float[Array, "n n"], Bool[Array, ""]]:
    """(L, ok): the lower Cholesky factor of k(X, X), whose rows are the
    features of the transfer inputs, and whether the kernel matrix is
    numerically positive definite (``features_of_kernel_matrix``)."""
    return features_of_kernel_matrix(kernel_matrix(kernel, X))


class KernelDesign(AbstractDesign):
    """The transfer inputs X [n, d] seen through a kernel: Gram matrix
    k(X, X), students in feature coordinates c [n] (or [n, K])."""

    kernel: AbstractKernel
    X: Float[Array, "n d"]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def dtype(self):
        return self.X.dtype

    def gram(self) -> Float[Array, "n n"]:
        return kernel_matrix(self.kernel, self.X)

    def factor(self) -> GramFactor:
        """The Cholesky factor with the kernel students' rank test (``kernel_features``)."""
        return factor_with_inverse(*features_of_kernel_matrix(self.gram()))

    def to_student(self, c, L_inv):
        """The feature coordinates c themselves."""
        return c


__all__ = ["KernelDesign", "kernel_matrix", "kernel_features", "features_of_kernel_matrix"]
