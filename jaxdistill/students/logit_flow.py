"""THE logit flow: gradient flow of a linear (or kernel) student from zero,
written once for every design and link (docs/design.md facts 1, 5, 8, 9, 14).

The flow dw/dt = -grad L(w) = -(1/n) X^T (mean(X w) - y) (eq. 3 with N = 1,
eq. 38; its K-class analogue, fact 8) started at w(0) = 0 stays in span X
(Lemma B.1), so it is integrated in reduced coordinates y whose logits are
linear in y, Z = A^T y, and whose field is

    dy/dt = (1/n) B (y - mean(Z))    (B [m, n]: the field's matrix),

a *link* (``students.links``: sigmoid or softmax, with its targets) giving
the per-example mean map.  Three coordinates (``AbstractCoordinates``):

* ``LogitCoordinates(design)``: y = Z itself, A = I, B = G = L L^T the
  Gram matrix of the design (``design.AbstractDesign``: inputs with n <= d,
  a Gram matrix, kernel features).  The student is read off through the
  design's Gram factor: its coordinates c = L^{-1} centred(Z) in the
  orthonormal basis X^T L^{-T} of span X (``design.to_student``), so
  ||w|| = ||c|| and the Newton step (fact 5) is ||L^{-1} D^+ (mean - y)||,
  all from G alone (fact 13);
* ``SpanCoordinates(X)``: n > d, X^T = Q R (thin QR), y = b with w = Q b,
  Z = R^T b, B = A = R; the Newton step is the reduced one,
  (R D R^T)^{-1} R (mean - y) (eq. 42/43 restricted to the span; for
  softmax in an orthonormal basis of the centred classes);
* ``RevealedSpanCoordinates(X)``: n > d with the rank-revealing
  reduction (``closed_form.reveal_span``: pivoted QR, null directions as
  zero rows of R, fixed shapes): as ``SpanCoordinates``, but the flow, its
  Newton step and its status are right for rank-deficient sets (the flow
  stays in the numerical span of X and tends to the minimiser there); the
  link's structured span solves where it has them (softmax:
  ``span_solve``, K r-square systems and one n-square one);
* ``PlainCoordinates(X)``: the d-dimensional flow itself, y = w, B = A =
  X^T (the reference the reduced flows are tested against).

``logit_flow(coords, link, config, ts)`` assembles the field, the one
Jacobian rule J = -(1/n) B D A^T (D the block diagonal of the link's
per-example Jacobians; ``rosenbrock.FieldWithJacobian``, fact 14), the
link's structured stage solver where it has one (softmax in logit
coordinates), and calls ``steady_state.flow_to_steady_state`` once: one
stop test, one status mapping.  Students come back coordinate-first:
w [d] (or [n] for Gram / kernel designs) for a sigmoid link, W^T [d, K]
for a softmax link.
"""

from __future__ import annotations

import abc
from typing import Callable, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..design import AbstractDesign, GramFactor, InputsDesign, inputs_of
from ..sequencing import after
from .closed_form import ReducedData, reduce_data, reveal_span
from .flow_config import FlowConfig
from .links import AbstractLink
from .rosenbrock import FieldWithJacobian
from .steady_state import flow_to_steady_state


class FlowResult(eqx.Module):
    """Outcome of one gradient flow (batched along a leading axis by vmap).

    Attributes:
        w: final student, [d] (sigmoid link) or W^T [d, K] (softmax link);
            for Gram and kernel designs its coordinates c (``d`` = n).
        status: status code (``jaxdistill.status.Status``).
        num_steps: accepted + rejected solver steps.
        t_final: time at which the flow stopped.
        newton_rel: final Newton step / ||w|| (estimated relative distance to the limit).
        loss: final loss (eq. 1; its K-class KL form).
        trajectory: w(t) at the requested times, [T, d] or [T, d, K] (empty when none asked).
    """

    w: Float[Array, " d"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    t_final: Float[Array, ""]
    newton_rel: Float[Array, ""]
    loss: Float[Array, ""]
    trajectory: Float[Array, "T d"]


class AbstractCoordinates(eqx.Module):
    """Where a flow's state lives (module docstring): its logits Z = A^T y,
    the field's matrix B, the w-space norms of the stop test and the student."""

    @property
    @abc.abstractmethod
    def rank_ok(self) -> Bool[Array, ""]:
        """The set's rank test (``flow_status``'s first priority)."""

    @property
    @abc.abstractmethod
    def field_matrix(self) -> Float[Array, "m n"]:
        """B of the field dy/dt = (1/n) B (y - mean(Z))."""

    @property
    @abc.abstractmethod
    def logit_map(self) -> Float[Array, "m n"] | None:
        """A with Z = A^T y; None for the identity (logit coordinates)."""

    @abc.abstractmethod
    def initial(self, link: AbstractLink) -> Array:
        """The state of the student w = 0."""

    @abc.abstractmethod
    def logits(self, y: Array) -> Array:
        """Z = A^T y, [n] or [n, K]."""

    @abc.abstractmethod
    def newton_and_norm(self, link: AbstractLink, y: Array) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """(||Newton step in w-space||, ||w||) at y (docs/design.md fact 5)."""

    @abc.abstractmethod
    def student(self, link: AbstractLink, y: Array) -> Array:
        """The student at y, coordinate-first ([d] or [d, K])."""

    def shifted_solver(self, link: AbstractLink) -> Callable | None:
        """A structured Rodas3 stage solver, or None (dense)."""
        return None


@final
class LogitCoordinates(AbstractCoordinates):
    """y = Z, the logits (n <= d inputs of full row rank, a Gram matrix,
    kernel features): dZ/dt = (1/n) G (y - mean(Z)), G = L L^T.

    The w-space quantities come through the design's Gram factor: the
    student's coordinates are c = L^{-1} centred(Z) (w = X^T G^{-1} Z
    exactly for inputs), ||w|| = ||c|| and the Newton step is
    ||L^{-1} D^+ (mean(Z) - y)|| (D^+ per example: the link's
    ``newton_logits``).
    """

    design: AbstractDesign
    G: Float[Array, "n n"]
    factor: GramFactor

    def __init__(self, design: AbstractDesign):
        self.design = design
        self.G = design.gram()
        self.factor = design.factor()

    @property
    def rank_ok(self):
        return self.factor.rank_ok

    @property
    def field_matrix(self):
        return self.G

    @property
    def logit_map(self):
        return None

    def initial(self, link):
        # the solver's loop (batched LU inside) reads only G and the state: without the
        # steady-state event (t_end) nothing else orders it after the Cholesky and
        # triangular solve of the factor, and the two batched LAPACK calls deadlock
        # jaxlib on small CPUs (docs/design.md fact 11); the initial state waits for L_inv
        return after(link.zeros(self.G.shape[0], self.G.dtype), self.factor.L_inv)

    def logits(self, y):
        return y

    def newton_and_norm(self, link, Z):
        # one triangular-factor product for both: L^{-1} [D^+ (mean - y), centred(Z)]
        both = jnp.stack([link.newton_logits(Z), link.centred(Z)], axis=-1)  # [n, 2] or [n, K, 2]
        v = (self.factor.L_inv @ both.reshape(both.shape[0], -1)).reshape(both.shape)
        return jnp.linalg.norm(v[..., 0]), jnp.linalg.norm(v[..., 1])

    def student(self, link, Z):
        L_inv = self.factor.L_inv
        return self.design.to_student(L_inv @ link.centred(Z), L_inv)

    def shifted_solver(self, link):
        # ``logit_flow`` integrates from t = 0 forward, never backward
        return link.logit_shifted_solver(self.G / self.G.shape[0], forward_only=True)


class AbstractQRCoordinates(AbstractCoordinates):
    """Coordinates measured through the thin QR X^T = Q R of the inputs: the
    rank test is R's, the Newton step the reduced one in span X (the link's
    ``span_newton_step`` at the logits), ||w|| = ||centred(y)|| (y is w or
    its coordinates in the orthonormal Q)."""

    red: eqx.AbstractVar[ReducedData]

    @property
    def rank_ok(self):
        return self.red.rank_ok

    def newton_and_norm(self, link, y):
        return (jnp.linalg.norm(link.span_newton_step(self.red.R, self.logits(y))),
                jnp.linalg.norm(link.centred(y)))


class AbstractSpanCoordinates(AbstractQRCoordinates):
    """y = b with w = Q b, X^T = Q R (n > d): Z = R^T b,
    db/dt = (1/n) R (y - mean(R^T b))."""

    @property
    def field_matrix(self):
        return self.red.R

    @property
    def logit_map(self):
        return self.red.R

    def initial(self, link):
        return link.zeros(self.red.R.shape[0], self.red.R.dtype)

    def logits(self, b):
        return self.red.R.T @ b

    def student(self, link, b):
        return self.red.Q @ link.centred(b)


@final
class SpanCoordinates(AbstractSpanCoordinates):
    """The span coordinates of a thin QR of X^T (``reduce_data``)."""

    red: ReducedData

    def __init__(self, X: Float[Array, "n d"]):
        self.red = reduce_data(X)


@final
class RevealedSpanCoordinates(AbstractSpanCoordinates):
    """The span coordinates of a rank-revealing QR of X^T
    (``closed_form.reveal_span``).  The null directions are zero rows of R:
    b stays 0 there, the Newton step is taken on the kept rows
    (``revealed_span_newton_step``), and the status is ``RANK_DEFICIENT``
    only when the numerical rank is ambiguous."""

    red: ReducedData

    def __init__(self, X: Float[Array, "n d"]):
        self.red = reveal_span(X)

    def newton_and_norm(self, link, b):
        step = link.revealed_span_newton_step(self.red.R, self.red.keep, self.logits(b))
        return jnp.linalg.norm(step), jnp.linalg.norm(link.centred(b))

    def shifted_solver(self, link):
        return link.span_shifted_solver(self.red.R, self.red.keep)


@final
class PlainCoordinates(AbstractQRCoordinates):
    """y = w itself, the d-dimensional flow dw/dt = (1/n) X^T (y - mean(X w))
    (eq. 3, 38): the reference the reduced flows are tested against, O(n d)
    a step and a d-square Jacobian (keep d small).  Its Newton step is
    measured in span X, as the reduced flows' (X^T = Q R)."""

    X: Float[Array, "n d"]
    red: ReducedData

    def __init__(self, X: Float[Array, "n d"]):
        self.X = X
        self.red = reduce_data(X)

    @property
    def field_matrix(self):
        return self.X.T

    @property
    def logit_map(self):
        return self.X.T

    def initial(self, link):
        return link.zeros(self.X.shape[1], self.X.dtype)

    def logits(self, w):
        return self.X @ w

    def student(self, link, w):
        # an implicit solver's inexact stage solves let W drift along the class-sum, which the loss does not see
        return link.centred(w)


def design_coordinates(design: AbstractDesign, config: FlowConfig, *,
                       rank_revealing: bool = False) -> AbstractCoordinates:
    """The coordinates a flow on ``design`` runs in: the plain d-dimensional
    ones for ``config.coordinates == "plain"`` (inputs only), span
    coordinates for inputs with n > d (``RevealedSpanCoordinates`` with
    ``rank_revealing``: the K-class flows), else the logits."""
    if config.coordinates == "plain":
        return PlainCoordinates(inputs_of(design, config))
    if isinstance(design, InputsDesign) and design.n > design.d:
        return RevealedSpanCoordinates(design.X) if rank_revealing else SpanCoordinates(design.X)
    return LogitCoordinates(design)


def logit_flow(coords: AbstractCoordinates, link: AbstractLink, config: FlowConfig = FlowConfig(), *,
               ts: Float[Array, " T"] | None = None) -> FlowResult:
    """Gradient flow of a student from zero with ``link`` in ``coords`` to its
    steady state (module docstring): the one flow of every linear and kernel
    student.

    Returns:
        ``FlowResult`` (students coordinate-first); ``newton_rel`` is relative
        to ||w|| itself, the loss is the link's at the final logits, the
        trajectory w(t) at ``ts`` (empty, [0, ...], when none asked).
    """
    B, A = coords.field_matrix, coords.logit_map
    n = B.shape[1]

    def field(t, y, args):
        return (B @ link.descent(coords.logits(y))) / n

    def jacobian(t, y, args):
        # J = -(1/n) B D A^T, flattened row-major over (coordinate, class)
        return -link.jacobian_product(B, coords.logits(y), A) / n

    run = flow_to_steady_state(FieldWithJacobian(field, jacobian, coords.shifted_solver(link)),
                               coords.initial(link), coords.rank_ok, link.soft, config, ts,
                               norms=lambda y: coords.newton_and_norm(link, y),
                               to_w=lambda y: coords.student(link, y), norm_of_w=True)
    w = run.w
    if ts is None:
        trajectory = jnp.zeros((0, *w.shape), w.dtype)
    else:
        trajectory = jax.vmap(lambda y: coords.student(link, y))(run.sol.ys[:-1])
    return FlowResult(
        w=w,
        status=run.status,
        num_steps=run.sol.stats["num_steps"].astype(jnp.int32),
        t_final=run.sol.ts[-1],
        newton_rel=run.newton_rel,
        loss=link.loss(coords.logits(run.y)),
        trajectory=trajectory,
    )


__all__ = ["FlowResult", "AbstractCoordinates", "LogitCoordinates", "SpanCoordinates", "RevealedSpanCoordinates",
           "PlainCoordinates",
           "design_coordinates", "logit_flow"]
