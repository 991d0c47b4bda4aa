"""How one transfer set is represented to a student: its *design*.

Every learner's ``fit(key, design, V)`` receives one transfer set as a
design and its K-class targets V [n, K] (``two_class_logits`` for a binary
task: the K = 2 targets whose logit difference is the teacher's logit).
The sampler of a run only chooses which design a task draws:

* ``InputsDesign(X)``: the inputs X [n, d] themselves (every learner);
* ``GramDesign(G, d)``: only the Gram matrix G = X X^T [n, n] of inputs in
  R^d (the Gram sampler, docs/design.md fact 13): enough for the linear
  students trained from zero, which live in span X;
* ``nonlinear.KernelDesign(kernel, X)``: the features of a kernel, whose
  Gram matrix is k(X, X) (kernel students, fact 9).

Each design knows its Gram matrix; ``gram_factor`` gives its Cholesky
factor G = L L^T, the inverse factor and the rank test shared by every
Gram-space computation.  With it a student from zero is w = Q c in the
orthonormal basis Q = X^T L^{-T} of span X: ``to_student(c)`` maps those
coordinates back to the student's own parameters (w = X^T L^{-T} c for
inputs; c itself for a Gram or kernel design, whose learners return c).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .validation import JaxDistillError


class GramFactor(eqx.Module):
    """G = L L^T with its inverse factor and a numerical-rank check.

    Attributes:
        L: lower Cholesky factor [n, n].
        L_inv: L^{-1} [n, n] (one triangular solve).
        rank_ok: G numerically positive definite: every |L_ii| finite and
            above eps * n * max |L_ii|.
    """

    L: Float[Array, "n n"]
    L_inv: Float[Array, "n n"]
    rank_ok: Bool[Array, ""]


def cholesky_rank_ok(L: Float[Array, "n n"]) -> Bool[Array, ""]:
    """The rank test of a Cholesky factor: min |L_ii| > eps * n * max |L_ii|, all finite."""
    n = L.shape[0]
    diag = jnp.abs(jnp.diagonal(L))
    return jnp.all(jnp.isfinite(diag)) & (jnp.min(diag) > jnp.finfo(L.dtype).eps * n * jnp.max(diag))


def factor_with_inverse(L: Float[Array, "n n"], rank_ok: Bool[Array, ""]) -> GramFactor:
    """The ``GramFactor`` of a lower Cholesky factor L and its rank test: L^{-1} by one triangular solve."""
    L_inv = jax.scipy.linalg.solve_triangular(L, jnp.eye(L.shape[0], dtype=L.dtype), lower=True)
    return GramFactor(L=L, L_inv=L_inv, rank_ok=rank_ok)


def gram_factor(G: Float[Array, "n n"]) -> GramFactor:
    """Cholesky factor, its inverse and the rank test of a Gram matrix."""
    L = jnp.linalg.cholesky(G)
    return factor_with_inverse(L, cholesky_rank_ok(L))


class AbstractDesign(eqx.Module):
    """One transfer set as a student sees it (module docstring)."""

    @property
    @abc.abstractmethod
    def n(self) -> int:
        """The number of examples."""

    @property
    @abc.abstractmethod
    def dtype(self):
        """The floating dtype of the set."""

    @abc.abstractmethod
    def gram(self) -> Float[Array, "n n"]:
        """The Gram matrix of the set's features, [n, n]."""

    def factor(self) -> GramFactor:
        """``gram_factor`` of the Gram matrix (designs with their own rank test override it)."""
        return gram_factor(self.gram())

    @abc.abstractmethod
    def to_student(self, c: Float[Array, "n ..."], L_inv: Float[Array, "n n"]) -> Array:
        """The student from its coordinates c in the orthonormal basis
        X^T L^{-T} of span X (G = L L^T), in the parameters this design's
        learners return."""


class InputsDesign(AbstractDesign):
    """The inputs themselves, X [n, d]; students are w [d] (or W [K, d])."""

    X: Float[Array, "n d"]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        """The input dimension."""
        return self.X.shape[1]

    @property
    def dtype(self):
        return self.X.dtype

    def gram(self) -> Float[Array, "n n"]:
        return self.X @ self.X.T

    def to_student(self, c, L_inv):
        """w = X^T L^{-T} c (the columns of X^T L^{-T} are orthonormal)."""
        return self.X.T @ (L_inv.T @ c)


class GramDesign(AbstractDesign):
    """Only the Gram matrix G = X X^T [n, n] of n inputs in R^d (the Gram
    sampler); students are their coordinates c [n] in the basis X^T L^{-T}
    (``to_student`` is the identity)."""

    G: Float[Array, "n n"]
    d: int = eqx.field(static=True)

    @property
    def n(self) -> int:
        return self.G.shape[0]

    @property
    def dtype(self):
        return self.G.dtype

    def gram(self) -> Float[Array, "n n"]:
        return self.G

    def to_student(self, c, L_inv):
        return c


def inputs_of(design: AbstractDesign, learner) -> Float[Array, "n d"]:
    """The inputs X of ``design`` for a learner that needs them; anything
    else is refused naming the learner (its run must draw inputs: sampler
    "inputs")."""
    if isinstance(design, InputsDesign):
        return design.X
    raise JaxDistillError(f"{type(learner).__name__} needs the inputs of each transfer set (an InputsDesign), got a "
                          f"{type(design).__name__}: run it with sampler 'inputs'")


def two_class_logits(u: Float[Array, " n"]) -> Float[Array, "n 2"]:
    """The K = 2 targets [0, u] of a binary task with teacher logits u (+-inf
    for hard labels): their logit difference is u exactly."""
    return jnp.stack([jnp.zeros_like(u), u], axis=-1)


def logit_difference(V: Float[Array, "n 2"], learner=None) -> Float[Array, " n"]:
    """u = v_1 - v_0 of K = 2 targets (exactly u for ``two_class_logits(u)``);
    more than two classes are refused naming the learner."""
    if V.ndim != 2 or V.shape[-1] != 2:
        who = f"{type(learner).__name__} " if learner is not None else ""
        raise JaxDistillError(f"{who}is a binary learner: it needs K = 2 targets V [n, 2] (two_class_logits(u)), got "
                              f"shape {tuple(V.shape)}; K-class tasks take ClosedFormLearner, FlowLearner, GDLearner, "
                              "KernelLearner or MLPLearner")
    return V[:, 1] - V[:, 0]


__all__ = ["AbstractDesign", "InputsDesign", "GramDesign", "GramFactor", "gram_factor", "factor_with_inverse", "cholesky_rank_ok",
           "inputs_of", "two_class_logits", "logit_difference"]
