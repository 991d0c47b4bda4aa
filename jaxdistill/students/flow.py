"""Gradient flow of the binary linear student (eq. 3 with N = 1), solved with diffrax.

The flow  dw/dt = -grad L^1(w) = -(1/n) X^T (sigma(X w) - y)  (eq. 38)
started at w(0) = 0 stays in span(X) (Lemma B.1), so by default it is
integrated in n reduced coordinates (docs/design.md fact 1).  For n <= d these
are the logits z = X w:

    dz/dt = -(1/n) G (sigma(z) - sigma(u)),   G = X X^T = L L^T,

with w(t) = X^T G^{-1} z(t) exactly; for n > d, with X^T = Q R and w = Q b,
db/dt = -(1/n) R (sigma(R^T b) - y).  Both are the same trajectory as the
d-dimensional flow, at O(n^2) a step after the O(n^2 d) Gram matrix.
The functions here are the binary entry points of THE logit flow
(``students.logit_flow.logit_flow`` with a ``links.SigmoidLink``), which
is written once for every design (inputs, Gram matrix, kernel features)
and link (sigmoid, softmax): ``gradient_flow`` (inputs),
``gram_gradient_flow`` (the Gram matrix alone, fact 13) and
``plain_gradient_flow`` (the d-dimensional reference).

Default solver (``FlowConfig``): Rodas3 (``students.rosenbrock``: an L-stable
Rosenbrock method, one n x n LU a step, no Newton iterations; the flow
gives it its Jacobian -(1/n) G diag(sigma'(z)) in closed form,
``rosenbrock.FieldWithJacobian``, docs/design.md fact 14) with a loose
PID tolerance (rtol 1e-2).  For this linear student
(N = 1) the flow contracts to a unique limit, so the stopping test
(``students.steady_state``, fact 5: the Newton step of eq. 42/43 below
``newton_tol * ||w||``), not the trajectory tolerance, sets the accuracy
of the limit (measured: 1e-9 relative distance, about 20 steps a set on
average for the kappa = 1, d = 1000, n = 20 workload).  That holds for
N = 1 only: a deep student's limit depends on its path
(``students.deep``), so it needs a tight rtol.  Tighten rtol too when you
record trajectories (``ts``).

Every set returns a status code (``jaxdistill.status.Status``) and its step count; the
solver never raises for one bad set (``throw=False``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..design import GramDesign, InputsDesign
from ..teachers import residual
from .closed_form import ReducedData
from .flow_config import FlowConfig
from .links import SigmoidLink
from .logit_flow import FlowResult, PlainCoordinates, LogitCoordinates, design_coordinates, logit_flow
from .steady_state import SteadyState, flow_status, flow_to_steady_state, solve_to_steady_state


def newton_step(red: ReducedData, z: Float[Array, " n"], u: Float[Array, " n"]) -> Float[Array, " r"]:
    """H^{-1} grad L^1 in span coordinates b (w = Q b), as a function of the
    logits z; near the limit it equals b - b_hat to second order.

    With D = diag(sigma'(z)) (eq. 43): for n <= d the step is
    R^{-T} D^{-1} (sigma(z) - y) (a triangular solve); for n > d it is
    (R D R^T)^{-1} R (sigma(z) - y).
    """
    res = residual(z, u)
    s = jax.nn.sigmoid(z)
    D = s * (1.0 - s)
    r, n = red.R.shape
    if r == n:
        return jax.scipy.linalg.solve_triangular(red.R.T, res / D, lower=True)
    H = (red.R * D[None, :]) @ red.R.T
    return jnp.linalg.solve(H, red.R @ res)


def gradient_flow(
    X: Float[Array, "n d"],
    u: Float[Array, " n"],
    config: FlowConfig = FlowConfig(),
    *,
    ts: Float[Array, " T"] | None = None,
) -> FlowResult:
    """Gradient flow of eq. 3 (N = 1) from w(0) = 0 to its steady state.

    Args:
        X: transfer set, [n, d].
        u: teacher logits (``teachers.teacher_logits``), [n].
        config: ``FlowConfig``; ``config.coordinates`` picks the reduced
            (default) or the plain d-dimensional integration.
        ts: optional times at which to record w(t) (trajectory).

    Returns:
        ``FlowResult``; ``w`` tends to w_hat of eq. 6 (Thm 1).

    Example:
        >>> res = jax.vmap(lambda X, u: gradient_flow(X, u))(Xs, us)
    """
    return logit_flow(design_coordinates(InputsDesign(X), config), SigmoidLink(u), config, ts=ts)


def gram_gradient_flow(
    G: Float[Array, "n n"],
    u: Float[Array, " n"],
    config: FlowConfig = FlowConfig(),
    *,
    ts: Float[Array, " T"] | None = None,
) -> FlowResult:
    """The flow of eq. 3 (N = 1) from w(0) = 0 given only the Gram matrix
    G = X X^T (n <= d, full rank) and the teacher logits u: the logit flow
    dz/dt = -(1/n) G (sigma(z) - sigma(u)) with the same stopping test as
    ``gradient_flow`` (Newton step and ||w|| computed from G alone).

    Returns:
        ``FlowResult`` whose ``w`` (and ``trajectory``) hold c = L^{-1} z,
        shape [n], with G = L L^T (Cholesky): the student's coordinates in
        the orthonormal basis Q = X^T L^{-T} of span X, i.e. w = Q c =
        X^T alpha with alpha = L^{-T} c.  So ||w|| = ||c|| (``newton_rel``
        is relative to it, as in ``gradient_flow``) and
        w.w* = c.(L^{-1} X w*) (docs/design.md fact 13).  The same ops as
        ``gradient_flow`` after X X^T.
    """
    if config.coordinates != "reduced":
        raise ValueError("gram_gradient_flow integrates the logit (reduced) coordinates; coordinates='plain' needs X")
    # the flow reads only G (d, the input dimension, plays no part)
    return logit_flow(LogitCoordinates(GramDesign(G, G.shape[0])), SigmoidLink(u), config, ts=ts)


def plain_gradient_flow(
    X: Float[Array, "n d"],
    u: Float[Array, " n"],
    config: FlowConfig = FlowConfig(),
    *,
    ts: Float[Array, " T"] | None = None,
) -> FlowResult:
    """The d-dimensional flow dw/dt = -(1/n) X^T (sigma(X w) - y) (eq. 3, 38).

    The reference the reduced flow is tested against; cost O(n d) a step
    (and O(d^3) Newton solves for implicit solvers: keep d small).
    """
    return logit_flow(PlainCoordinates(X), SigmoidLink(u), config, ts=ts)


__all__ = ["FlowResult", "FlowConfig", "gradient_flow", "gram_gradient_flow", "plain_gradient_flow", "newton_step",
           "SteadyState", "flow_status", "flow_to_steady_state", "solve_to_steady_state"]
