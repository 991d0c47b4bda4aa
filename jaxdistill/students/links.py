"""Links: how a linear student's logits meet its targets, one example at a time.

Every flow of a linear (or kernel) student from zero is the same flow on
the logits (docs/design.md facts 1, 8, 9): dZ/dt = -(1/n) G (mean(Z) - P),
G the Gram matrix of the transfer set.  What differs between binary and
K-class students is only the per-example map from logits to probabilities,
the *link*, and the targets it is fitted to:

* ``SigmoidLink(u)``: binary logits z [n], teacher logits u [n] (+-inf for
  hard labels), probabilities sigma(z) (eq. 1, eq. 38's residual
  sigma(z) - y);
* ``SoftmaxLink(V)``: K-class logits Z [n, K], log targets V [n, K]
  (``multiclass.targets``; -inf for zero target probabilities),
  probabilities softmax(z_i) (fact 8).

A link knows, per example, the descent direction y - mean(z) (without
cancellation), the Jacobian of the mean map (eq. 43's D = diag sigma'(z);
diag(s_i) - s_i s_i^T for softmax), the Newton step in logit space
(fact 5), the loss (eq. 1; its K-class KL form) and which directions of
the logits the loss does not see (the class-sum for softmax: ``centred``).
``students.logit_flow`` assembles the flow from a link and the coordinates
of a design; nothing in this module knows about G, X or coordinates
beyond the matrices it is handed.
"""

from __future__ import annotations

import abc
from typing import Callable, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ..teachers import cross_entropy
from . import span_solve
from .small_inverse import prefers_unpivoted_inverse, unpivoted_inverse


def sigmoid_derivative(z: Float[Array, " n"]) -> Float[Array, " n"]:
    """sigma'(z) = sigma(z) sigma(-z) (eq. 43's D), without cancellation for large |z|."""
    return jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)


def centre(V: Float[Array, "... K"]) -> Float[Array, "... K"]:
    """Subtract the mean over classes (the centring C of fact 8); -inf entries stay -inf."""
    return V - jnp.mean(V, axis=-1, keepdims=True)


def log_targets(V: Float[Array, "n K"]) -> Float[Array, "n K"]:
    """log softmax(V) with zero-probability entries (-inf) replaced by a large
    negative number, so that every formula below stays finite (their
    probabilities, ~e^-600 in float64, are far below rounding)."""
    big = 600.0 if V.dtype == jnp.float64 else 60.0
    return jnp.maximum(jax.nn.log_softmax(V, axis=-1), -big)


def softmax_residual(Z: Float[Array, "n K"], logp: Float[Array, "n K"]) -> Float[Array, "n K"]:
    """softmax(Z) - P without cancellation: -s expm1(log p - log s)."""
    logs = jax.nn.log_softmax(Z, axis=-1)
    return -jnp.exp(logs) * jnp.expm1(logp - logs)


def softmax_jacobians(S: Float[Array, "n K"]) -> Float[Array, "n K K"]:
    """d softmax(z_i) / d z_i = diag(s_i) - s_i s_i^T for every row s_i =
    softmax(z_i) of the probabilities S."""
    return jax.vmap(jnp.diag)(S) - S[:, :, None] * S[:, None, :]


def centred_newton_logits(Z: Float[Array, "n K"], logp: Float[Array, "n K"]) -> Float[Array, "n K"]:
    """Per-example Newton step in logit space on the centred subspace:
    (diag(s) - s s^T)^+ (s - p) = r / s - mean(r / s), r / s = -expm1(log p - log s)."""
    logs = jax.nn.log_softmax(Z, axis=-1)
    q = -jnp.expm1(logp - logs)
    return q - jnp.mean(q, axis=-1, keepdims=True)


def softmax_cross_entropy(Z: Float[Array, "n K"], V: Float[Array, "n K"]) -> Float[Array, ""]:
    """Mean over examples of KL(softmax(V_i) || softmax(Z_i)): the cross-entropy
    minus its minimum (K = 2: the binary L^1 of eq. 1).  -inf entries of V
    (zero target probability) contribute nothing."""
    logq = jax.nn.log_softmax(Z, axis=-1)
    logp = jax.nn.log_softmax(jnp.where(jnp.isfinite(V), V, -jnp.inf), axis=-1)
    p = jnp.exp(logp)
    terms = jnp.where(p > 0, p * (jnp.where(p > 0, logp, 0.0) - logq), 0.0)
    return jnp.mean(jnp.sum(terms, axis=-1))


def helmert_basis(K: int, dtype) -> Float[Array, "K Km1"]:
    """An orthonormal basis [K, K-1] of the vectors whose entries sum to 0."""
    H = np.zeros((K, K - 1))
    for j in range(1, K):
        H[:j, j - 1] = 1.0
        H[j, j - 1] = -j
        H[:, j - 1] /= np.sqrt(j * (j + 1))
    return jnp.asarray(H, dtype)


def reduced_newton_system(R: Float[Array, "r n"], Z: Float[Array, "n K"], logp: Float[Array, "n K"],
                          E: Float[Array, "K Km1"]) -> tuple[Float[Array, "r Km1"], Float[Array, "m m"]]:
    """Gradient and Hessian of the mean cross-entropy (1/n) sum_i CE(softmax(z_i), p_i)
    in the centred reduced coordinates C [r, K-1] (B = C E^T, logits Z = R^T B):
    g = (1/n) R (softmax(Z) - P) E and H = (1/n) sum_i kron(R_i R_i^T, E^T H_i E),
    H_i = diag(s_i) - s_i s_i^T, flattened row-major (m = r (K - 1)); H is
    positive definite when R has full row rank and every s_i > 0 (fact 8)."""
    n = Z.shape[0]
    r = R.shape[0]
    m = r * (E.shape[1])
    s = jnp.exp(jax.nn.log_softmax(Z, axis=-1))
    g = (R @ softmax_residual(Z, logp) @ E) / n  # [r, K-1]
    Hi = jax.vmap(lambda h: E.T @ h @ E)(softmax_jacobians(s))  # [n, K-1, K-1]
    H = jnp.einsum("ai,bi,ikl->akbl", R, R, Hi) / n
    return g, H.reshape(m, m)


def logit_shifted_solver(Gn: Float[Array, "n n"], *, forward_only: bool = False):
    """The ``rosenbrock.FieldWithJacobian.shifted_solver`` of the logit flow
    dZ/dt = -Gn (softmax(Z) - P) (Gn = G / n): solves (c I - s J) x = rhs,
    J = -(Gn kron I_K) blockdiag_i(diag(s_i) - s_i s_i^T), on the centred
    subspace, by K systems of size n instead of one of size n K.

    With y_i = s_i . x_i and xi_k = x_k - y (columns of x [n, K]), column k
    of the system reads A_k xi_k = rhs_k - c y, A_k = c I + s Gn diag(s_k);
    the rows of xi are s-weighted-centred (sum_k s_k * xi_k = 0), which gives
    N (c y) = sum_k s_k * A_k^{-1} rhs_k, N = sum_k diag(s_k) A_k^{-1} [n, n].
    x = y 1^T + xi, and y 1^T lies along the all-ones directions, which J
    annihilates: the centred part of x is centre(xi), exact for a centred
    rhs (the flow's own: the centred subspace is invariant under the flow
    and under J), and c y is found without dividing by c, so the stage
    solves stay accurate as the steps grow (c = 1 / (gamma h) -> 0); the
    dense solve would put rhs's rounding along the ones / c.
    Cost: K n-square inverses and one n-square LU a step, O(K n^2) a stage
    (the dense solve: one (n K)-square LU, K^2 / 2 ... K^2 times more)
    (docs/design.md fact 14).

    ``forward_only``: the caller integrates forward in time (s = +1, as
    every flow of the library: ``logit_flow`` runs from t = 0 up).  Then
    A_k = (c diag(s_k)^{-1} + Gn) diag(s_k) is a column scaling of a
    positive definite matrix, so the K inverses may skip pivoting
    (``small_inverse.unpivoted_inverse``), which is faster on the CPU for
    the sizes ``small_inverse.prefers_unpivoted_inverse`` names; a
    backward stage (s = -1) then returns NaN (the set's status says
    so) instead of an unchecked solve.  Without it (the default), pivoted
    inverses serve both directions."""
    n = Gn.shape[0]
    unpivoted = forward_only and prefers_unpivoted_inverse(n)

    def shifted_solver(t, Z, args, c, s):
        S = jax.nn.softmax(Z, axis=-1).T  # [K, n]: s_k
        A = c * jnp.eye(n, dtype=Z.dtype)[None] + (s * Gn)[None] * S[:, None, :]  # [K, n, n]
        if unpivoted:
            Ainv = jnp.where(s > 0, unpivoted_inverse(A), jnp.nan)
        else:
            Ainv = jnp.linalg.inv(A)
        lu = jax.scipy.linalg.lu_factor(jnp.einsum("ki,kij->ij", S, Ainv))  # N

        def solve(rhs):
            a = jnp.einsum("kij,jk->ki", Ainv, rhs.reshape(n, -1))  # A_k^{-1} rhs_k, [K, n]
            cy = jax.scipy.linalg.lu_solve(lu, jnp.sum(S * a, axis=0))
            xi = a - jnp.einsum("kij,j->ki", Ainv, cy)
            return centre(xi.T).reshape(-1)

        return solve

    return shifted_solver


class AbstractLink(eqx.Module):
    """The per-example link of a flow and its targets (module docstring).

    Logits Z are [n] (one logit an example) or [n, K]; matrices B [m, n] and
    A [p, n] act on the example axis.
    """

    @property
    @abc.abstractmethod
    def soft(self) -> Bool[Array, ""]:
        """Whether the targets have a steady state (every target finite)."""

    @abc.abstractmethod
    def zeros(self, m: int, dtype) -> Array:
        """The zero state of m coordinates: [m] or [m, K]."""

    @abc.abstractmethod
    def descent(self, Z: Array) -> Array:
        """y - mean(Z) per example (minus eq. 38's residual), without cancellation."""

    @abc.abstractmethod
    def jacobian_product(self, B: Float[Array, "m n"], Z: Array,
                         A: Float[Array, "p n"] | None = None) -> Float[Array, "mK pK"]:
        """B D A^T flattened row-major over (coordinate, class), D the block
        diagonal of d mean(z_i) / d z_i; A = None means the identity (p = n)."""

    @abc.abstractmethod
    def newton_logits(self, Z: Array) -> Array:
        """The per-example Newton step in logit space, D^+ (mean(Z) - y)
        (on the subspace the loss sees)."""

    @abc.abstractmethod
    def span_newton_step(self, R: Float[Array, "r n"], Z: Array) -> Array:
        """The Newton step of the mean loss in coordinates b with logits
        Z = R^T b ((R D R^T)^{-1} R (mean(Z) - y), on the subspace the loss
        sees), R of full row rank: its norm is the w-space Newton step when
        the rows of R are coordinates in an orthonormal basis."""

    def revealed_span_newton_step(self, R: Float[Array, "r n"], keep: Bool[Array, " r"], Z: Array) -> Array:
        """``span_newton_step`` for a rank-revealed R (``closed_form.reveal_span``):
        the rows where ``keep`` is False are zero and the step is 0 there.
        Only the K-class flows run in rank-revealed coordinates
        (``logit_flow.design_coordinates(rank_revealing=True)``)."""
        raise NotImplementedError(f"{type(self).__name__} has no rank-revealing span flow "
                                  "(only the softmax link's K-class flows use one)")

    def span_shifted_solver(self, R: Float[Array, "r n"], keep: Bool[Array, " r"]) -> Callable | None:
        """A structured Rodas3 stage solver of the span flow with logits
        Z = R^T B (R rank-revealed), or None to factor densely."""
        return None

    @abc.abstractmethod
    def centred(self, Z: Array) -> Array:
        """Z without the directions the loss does not see (the class mean)."""

    @abc.abstractmethod
    def loss(self, Z: Array) -> Float[Array, ""]:
        """The mean loss minus its minimum (eq. 1)."""

    def logit_shifted_solver(self, Gn: Float[Array, "n n"], *, forward_only: bool = False) -> Callable | None:
        """A structured Rodas3 stage solver of the logit flow with Gram
        matrix G = n Gn (``FieldWithJacobian.shifted_solver``), or None to
        let Rodas3 factor the Jacobian densely.  ``forward_only``: the flow
        only runs forward in time (``links.logit_shifted_solver``)."""
        return None


@final
class SigmoidLink(AbstractLink):
    """Binary students: logits z [n], teacher logits u [n] (eq. 1, 38).

    Hard labels (u = +-inf) become u = +-U with sigma(-U) ~ 0 (U = 600 in
    float64, 60 in float32): the residual -sigma(z) sigma(-u) expm1(u - z)
    then equals sigma(z) - 1{u > 0} to within e^{-U}, so one branch-free
    formula serves both (fewer ops per solver stage).
    """

    u: Float[Array, " n"]
    u_clipped: Float[Array, " n"]
    sigma_minus_u: Float[Array, " n"]

    def __init__(self, u: Float[Array, " n"]):
        big = 600.0 if u.dtype == jnp.float64 else 60.0
        self.u = u
        self.u_clipped = jnp.clip(u, -big, big)
        self.sigma_minus_u = jax.nn.sigmoid(-self.u_clipped)

    @property
    def soft(self):
        return jnp.all(jnp.isfinite(self.u))

    def zeros(self, m, dtype):
        return jnp.zeros(m, dtype)

    def descent(self, z):
        # sigma(u) - sigma(z) = sigma(z) sigma(-u) expm1(u - z)
        return jax.nn.sigmoid(z) * self.sigma_minus_u * jnp.expm1(self.u_clipped - z)

    def jacobian_product(self, B, z, A=None):
        # B diag(sigma'(z)): an elementwise product, not jacfwd's n x n x n matmul
        BD = B * sigmoid_derivative(z)[None, :]
        return BD if A is None else BD @ A.T

    def newton_logits(self, z):
        # (sigma(z) - sigma(u)) / sigma'(z) = -sigma(-u) expm1(u - z) / sigma(-z), cancellation-free
        return -self.sigma_minus_u * jnp.expm1(self.u_clipped - z) / jax.nn.sigmoid(-z)

    def span_newton_step(self, R, z):
        # the sign of the residual is immaterial to the step's norm, and exact
        return jnp.linalg.solve(self.jacobian_product(R, z, R), R @ self.descent(z))

    def centred(self, z):
        return z

    def loss(self, z):
        return cross_entropy(z, self.u)


@final
class SoftmaxLink(AbstractLink):
    """K-class students: logits Z [n, K], log targets V [n, K] (fact 8).

    The per-example Hessian diag(s_i) - s_i s_i^T is singular along the
    all-ones direction, to which the loss is blind: Newton steps are taken
    on the centred subspace, and the student is read off the centred state.
    """

    V: Float[Array, "n K"]
    logp: Float[Array, "n K"]

    def __init__(self, V: Float[Array, "n K"]):
        self.V = V
        self.logp = log_targets(V)

    @property
    def soft(self):
        return jnp.all(jnp.isfinite(self.V))

    def zeros(self, m, dtype):
        return jnp.zeros((m, self.V.shape[-1]), dtype)

    def descent(self, Z):
        logs = jax.nn.log_softmax(Z, axis=-1)
        return jnp.exp(logs) * jnp.expm1(self.logp - logs)

    def jacobian_product(self, B, Z, A=None):
        H = softmax_jacobians(jax.nn.softmax(Z, axis=-1))
        m, K = B.shape[0], Z.shape[-1]
        if A is None:  # [(i, k), (j, l)]: B_ij H_j[k, l]
            return jnp.einsum("ij,jkl->ikjl", B, H).reshape(m * K, Z.shape[0] * K)
        return jnp.einsum("ai,ikl,bi->akbl", B, H, A).reshape(m * K, A.shape[0] * K)

    def newton_logits(self, Z):
        return centred_newton_logits(Z, self.logp)

    def span_newton_step(self, R, Z):
        # in an orthonormal basis E of the centred classes, where the Hessian is definite
        g, H = reduced_newton_system(R, Z, self.logp, helmert_basis(Z.shape[-1], Z.dtype))
        return jnp.linalg.solve(H, g.reshape(-1))

    def revealed_span_newton_step(self, R, keep, Z):
        # K r-square systems and one n-square capacitance system (``span_solve``), not the (r (K-1))-square H
        return span_solve.span_newton_step(R, keep, Z, -self.descent(Z))

    def span_shifted_solver(self, R, keep):
        return span_solve.span_shifted_solver(R, keep)

    def centred(self, Z):
        return centre(Z)

    def loss(self, Z):
        return softmax_cross_entropy(Z, self.V)

    def logit_shifted_solver(self, Gn, *, forward_only=False):
        return logit_shifted_solver(Gn, forward_only=forward_only)


__all__ = ["AbstractLink", "SigmoidLink", "SoftmaxLink", "sigmoid_derivative", "centre", "log_targets",
           "softmax_residual", "softmax_jacobians", "centred_newton_logits", "softmax_cross_entropy",
           "helmert_basis", "reduced_newton_system", "logit_shifted_solver"]
