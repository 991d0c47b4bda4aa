"""Linear softmax students W [K, d] for K classes: closed form, gradient flow
(diffrax, logit coordinates) and discrete optimisers (optax)
(docs/design.md fact 8).

The cross-entropy gradient (1/n) (softmax(Z) - P)^T X, Z = X W^T, has rows
in span(X) and columns summing to 0 over classes, so the flow from W = 0
keeps every row of W in span(X) and the class-sum of its rows at 0.  With a
thin QR X^T = Q R (``students.closed_form.reduce_data``):

* n <= d: the state is the logit matrix Z [n, K] itself,
  dZ/dt = -(1/n) G (softmax(Z) - P) with G = X X^T = R^T R, and
  W^T = Q R^{-T} Z exactly;
* n > d: the state is B = Q^T W^T [r, K], dB/dt = -(1/n) R (softmax(R^T B) - P).

Both are the d-dimensional flow exactly, at O(n^2 K) a step.  Rodas3 solves
the logit flow's (n K)-square stage systems through K n-square ones
(``logit_shifted_solver``, docs/design.md fact 14); the span flow's
(r K)-square ones are still factored densely.  Its limit is
the minimum-norm interpolant of the class-centred log targets
(``softmax_closed_form``) when one exists (n <= d, or a linear teacher:
for soft targets of W* it is C W* P_X / T); otherwise (n > d, a nonlinear
teacher) it is the minimiser of the convex cross-entropy on the flow's
subspace (``minimiser.softmax_limit``, by Newton).

Arrival is decided in parameter space as for the binary flow (fact 5): the
Hessian of the per-example loss in z_i is diag(s_i) - s_i s_i^T, singular
along the all-ones direction, so the Newton step is taken in centred
coordinates: delta_i = r_i / s_i - mean(r_i / s_i) with
r_i / s_i = -expm1(log p_i - log s_i) (no cancellation near the limit).
The flow stops when ||Newton step in W|| <= newton_tol ||W||.

K = 2: the centred softmax flow is the binary flow of w = w_1 - w_0 run at
twice the speed (W = [-w/2, w/2]), so ``SoftmaxFlowLearner`` runs the binary
``students.flow.gradient_flow`` on u = v_1 - v_0 (time rescaled): K = 2
reproduces the binary numbers bit for bit.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..status import Status
from ..design import AbstractDesign, inputs_of
from ..students.base import AbstractLearner, ClosedFormLearner, FlowLearner, GDLearner, LearnerOutput, make_learner
from ..students.closed_form import ReducedData, reduce_data, reduced_target
from ..students.discrete import GDConfig, optimise
from ..students.flow import flow_to_steady_state, gradient_flow, gram_gradient_flow
from ..students.flow_config import FlowConfig
from ..students.rosenbrock import FieldWithJacobian
from ..validation import JaxDistillError
from .targets import MultiTargetSpec, centre, softmax_cross_entropy


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


def helmert_basis(K: int, dtype) -> Float[Array, "K Km1"]:
    """An orthonormal basis [K, K-1] of the vectors whose entries sum to 0."""
    H = np.zeros((K, K - 1))
    for j in range(1, K):
        H[:j, j - 1] = 1.0
        H[j, j - 1] = -j
        H[:, j - 1] /= np.sqrt(j * (j + 1))
    return jnp.asarray(H, dtype)


def logit_shifted_solver(Gn: Float[Array, "n n"]):
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
    (the dense solve: one (n K)-square LU, K^2 / 2 ... K^2 times more)."""
    n = Gn.shape[0]

    def shifted_solver(t, Z, args, c, s):
        S = jax.nn.softmax(Z, axis=-1).T  # [K, n]: s_k
        A = c * jnp.eye(n, dtype=Z.dtype)[None] + (s * Gn)[None] * S[:, None, :]  # [K, n, n]
        Ainv = jnp.linalg.inv(A)
        lu = jax.scipy.linalg.lu_factor(jnp.einsum("ki,kij->ij", S, Ainv))  # N

        def solve(rhs):
            a = jnp.einsum("kij,jk->ki", Ainv, rhs.reshape(n, -1))  # A_k^{-1} rhs_k, [K, n]
            cy = jax.scipy.linalg.lu_solve(lu, jnp.sum(S * a, axis=0))
            xi = a - jnp.einsum("kij,j->ki", Ainv, cy)
            return centre(xi.T).reshape(-1)

        return solve

    return shifted_solver


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


def reduced_closed_form(X: Float[Array, "n d"], V: Float[Array, "n K"]) -> tuple[ReducedData, Float[Array, "r K"], Array]:
    """(red, B, realisable): the QR reduction X^T = Q R, the least-squares
    coordinates B [r, K] of the centred log targets (R^T B = centre(V), exact
    for n <= d) and whether they are interpolated exactly (always for n <= d;
    for n > d only for a linear teacher, to rounding)."""
    red = reduce_data(X)
    Zc = centre(V)
    B = reduced_target(red, Zc)  # [r, K]
    r, n = red.R.shape
    if r == n:
        realisable = jnp.asarray(True)
    else:
        err = jnp.linalg.norm(red.R.T @ B - Zc)
        realisable = err <= 1e3 * jnp.finfo(X.dtype).eps * jnp.maximum(jnp.linalg.norm(Zc), jnp.finfo(X.dtype).tiny)
    return red, B, realisable


def softmax_closed_form(X: Float[Array, "n d"], V: Float[Array, "n K"]) -> tuple[Float[Array, "K d"], Array, Array]:
    """The minimum-norm W [K, d] with X W^T = centre(V) (least squares for n > d).

    Returns (W, rank_ok, realisable): for n > d the centred log targets have an exact
    interpolant only when they come from a linear teacher; ``realisable``
    is False (to rounding) otherwise, and W is then the least-squares fit,
    not the limit of the flow (that is ``minimiser.softmax_limit``)."""
    red, B, realisable = reduced_closed_form(X, V)
    return (red.Q @ B).T, red.rank_ok, realisable


class AbstractSoftmaxLearner(AbstractLearner):
    """A K-class student.  ``fit(key, design, V [n, K]) -> LearnerOutput``
    for ONE set (the inputs: ``design.InputsDesign(X)``), V the log targets
    of ``targets.target_log_probs`` (-inf for zero target probabilities);
    ``check_targets``; ``for_dtype``; ``config``.

    The student's parameters (``LearnerOutput.W``) are a linear W [K, d] here;
    nonlinear students (``jaxdistill.nonlinear``) keep other parameters and
    override ``predict`` (logits on new inputs, which may need the transfer
    inputs: ``needs_inputs``) and ``limit`` (the exact limit of training, or
    None when there is none)."""

    name: eqx.AbstractClassVar[str]
    multiclass: ClassVar[bool] = True
    needs_inputs: ClassVar[bool] = False

    def fit(self, key: PRNGKeyArray, design: AbstractDesign, V: Float[Array, "n K"]) -> LearnerOutput:
        """Train on one transfer set: the inputs X of ``design`` (K-class
        students need them: a Gram design is refused by name)."""
        return self.fit_inputs(key, inputs_of(design, self), V)

    @abc.abstractmethod
    def fit_inputs(self, key: PRNGKeyArray, X: Float[Array, "n d"], V: Float[Array, "n K"]) -> LearnerOutput:
        """Train on one transfer set given its inputs X [n, d] and targets V [n, K]."""

    def predict(self, W, X: Float[Array, "n d"] | None, X_new: Float[Array, "M d"]) -> Float[Array, "M K"]:
        """The student's logits on X_new [M, d]; X, the transfer inputs, is
        used only by students with ``needs_inputs``."""
        return X_new @ W.T

    def reference(self, X: Float[Array, "n d"], V: Float[Array, "n K"]) -> tuple[Array | None, Int[Array, ""]]:
        """(limit, kind): the exact limit of training from zero (the flow's
        limit, fact 8) in the coordinates of ``LearnerOutput.W``, or None if
        it has none, and its ``minimiser.LimitKind`` (int32).  A linear
        student's limit is the interpolant of the centred log targets where
        one exists (n <= d, or realisable targets), else the minimiser of the
        convex cross-entropy on span(X) (``minimiser.softmax_limit``).
        Students with another limit override this method."""
        from .minimiser import softmax_limit  # the minimiser builds on this module's helpers

        return softmax_limit(X, V)

    def limit(self, X: Float[Array, "n d"], V: Float[Array, "n K"]):
        """The exact limit of training from zero (``reference`` without its kind); None if it has none."""
        return self.reference(X, V)[0]

    def check_targets(self, targets: MultiTargetSpec) -> None:
        if not isinstance(targets, MultiTargetSpec):
            raise JaxDistillError(f"targets must be a MultiTargetSpec, got {targets!r}")

    def for_dtype(self, dtype: str) -> "AbstractSoftmaxLearner":
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, FlowConfig):
                adjusted = v.for_dtype(dtype)
                if adjusted is not v:
                    return eqx.tree_at(lambda m: getattr(m, f.name), self, adjusted)
        return self

    def config(self) -> dict:
        cfg = {"method": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            cfg[f.name] = v.config() if hasattr(v, "config") else v
        return cfg


@final
class SoftmaxClosedFormLearner(AbstractSoftmaxLearner):
    """The limit of the flow (fact 8), by one thin QR.  Needs targets with a
    finite minimiser (soft, or mixed with rho > 0); for n > d the targets
    must be realisable (a linear teacher), else the set is ``NOT_CONVERGED``
    (W is then the least-squares fit, not the limit: that is
    ``minimiser.softmax_minimiser``)."""

    name: ClassVar[str] = "closed-form"

    def fit_inputs(self, key, X, V) -> LearnerOutput:
        W, rank_ok, realisable = softmax_closed_form(X, V)
        finite = jnp.all(jnp.isfinite(W))
        status = jnp.where(~rank_ok, Status.RANK_DEFICIENT,
                           jnp.where(realisable & finite, Status.CONVERGED, Status.NOT_CONVERGED)).astype(jnp.int32)
        return LearnerOutput(w=W, status=status, num_steps=jnp.asarray(0, jnp.int32),
                             loss=softmax_cross_entropy(X @ W.T, V))

    def check_targets(self, targets: MultiTargetSpec) -> None:
        super().check_targets(targets)
        if not targets.has_finite_minimiser:
            raise JaxDistillError("the closed form needs soft targets or mixed targets with soft_ratio > 0 "
                                  "(hard labels have no finite minimiser); use method 'flow' or 'gd'")


def softmax_gradient_flow(X: Float[Array, "n d"], V: Float[Array, "n K"], config: FlowConfig = FlowConfig(), *,
                          ts=None):
    """Gradient flow of the K-class cross-entropy from W = 0 (module docstring).

    Returns (W [K, d], status, num_steps, t_final, newton_rel, loss).
    ``config.coordinates == "plain"`` integrates W itself (the reference)."""
    n, d = X.shape
    K = V.shape[-1]
    dtype = X.dtype
    red = reduce_data(X)
    R, Q = red.R, red.Q
    r = R.shape[0]
    logp = log_targets(V)
    soft = jnp.all(jnp.isfinite(V))

    if r == n:  # n <= d: W^T = Q R^{-T} Z
        def w_coords(M):  # R^{-T} M
            return jax.scipy.linalg.solve_triangular(R.T, M, lower=True)

        def newton_norm(Z):
            return jnp.linalg.norm(w_coords(centred_newton_logits(Z, logp)))
    else:
        E = helmert_basis(K, dtype)

        def newton_norm(Z):
            g, H = reduced_newton_system(R, Z, logp, E)
            return jnp.linalg.norm(jnp.linalg.solve(H, g.reshape(-1)))

    # The exact flow keeps the class-sum at 0, an implicit solver's inexact
    # stage solves only nearly: the drift is along the all-ones direction, to
    # which the loss is blind, so W is read off the centred state.
    if config.coordinates == "plain":
        y0 = jnp.zeros((K, d), dtype)
        vf = lambda t, W, args: -(softmax_residual(X @ W.T, logp).T @ X) / n
        to_W = lambda W: W - jnp.mean(W, axis=0, keepdims=True)
        logits = lambda W: X @ W.T
    elif r == n:
        G = R.T @ R
        y0 = jnp.zeros((n, K), dtype)

        def jacobian(t, Z, args):  # for Rodas3, w.r.t. Z flattened row-major: -(1/n) G_ij H_j[k, l] at ((i, k), (j, l))
            H = softmax_jacobians(jax.nn.softmax(Z, axis=-1))
            return -jnp.einsum("ij,jkl->ikjl", G, H).reshape(n * K, n * K) / n

        vf = FieldWithJacobian(lambda t, Z, args: -(G @ softmax_residual(Z, logp)) / n, jacobian,
                               logit_shifted_solver(G / n))
        to_W = lambda Z: (Q @ w_coords(centre(Z))).T
        logits = lambda Z: Z
    else:
        y0 = jnp.zeros((r, K), dtype)

        def jacobian(t, B, args):  # w.r.t. B flattened row-major: -(1/n) sum_i R_ai H_i[k, l] R_bi
            H = softmax_jacobians(jax.nn.softmax(R.T @ B, axis=-1))
            return -jnp.einsum("ai,ikl,bi->akbl", R, H, R).reshape(r * K, r * K) / n

        vf = FieldWithJacobian(lambda t, B, args: -(R @ softmax_residual(R.T @ B, logp)) / n, jacobian)
        to_W = lambda B: (Q @ centre(B)).T
        logits = lambda B: R.T @ B

    def norms(y):
        return newton_norm(logits(y)), jnp.linalg.norm(to_W(y))

    run = flow_to_steady_state(vf, y0, red.rank_ok, soft, config, ts, norms=norms, to_w=to_W, norm_of_w=True)
    traj = None if ts is None else jax.vmap(to_W)(run.sol.ys[:-1])
    return (run.w, run.status, run.sol.stats["num_steps"].astype(jnp.int32), run.sol.ts[-1], run.newton_rel,
            softmax_cross_entropy(logits(run.y), V), traj)


@final
class SoftmaxFlowLearner(AbstractSoftmaxLearner):
    """Gradient flow of the K-class cross-entropy (diffrax) to its steady
    state (targets with a finite minimiser) or to ``flow.t_max`` (hard
    targets: ``FINITE_HORIZON``).  K = 2 runs the binary flow (bit for bit).

    Attributes:
        flow: ``FlowConfig`` (solver, controller, newton_tol, t_max, ...).
    """

    flow: FlowConfig = FlowConfig()
    name: ClassVar[str] = "flow"

    def fit_inputs(self, key, X, V) -> LearnerOutput:
        K = V.shape[-1]
        if K == 2:
            return binary_flow_as_softmax(X, V, self.flow)
        W, status, steps, t_final, newton_rel, loss, _ = softmax_gradient_flow(X, V, self.flow)
        return LearnerOutput(w=W, status=status, num_steps=steps, loss=loss,
                             extras={"t_final": t_final, "newton_rel": newton_rel})


def binary_flow_as_softmax(X, V, config: FlowConfig, *, gram: Float[Array, "n n"] | None = None) -> LearnerOutput:
    """K = 2 through the binary flow: u = v_1 - v_0, W = [-w/2, w/2].  The
    centred K = 2 flow at time t is the binary flow at time 2t, so the
    horizon is doubled and t_final halved.  With ``gram`` (= X X^T) the
    flow runs from the Gram matrix alone (``students.flow.gram_gradient_flow``)
    and W holds the coordinates c = L^{-1} z, G = L L^T (X may be None)."""
    u = V[:, 1] - V[:, 0]
    binary_config = eqx.tree_at(lambda c: (c.t_max, c.hard_t_max), config, (2.0 * config.t_max, 2.0 * config.hard_t_max))
    if config.t_end is not None:
        binary_config = eqx.tree_at(lambda c: c.t_end, binary_config, 2.0 * config.t_end)
    if config.dt0 is not None:
        binary_config = eqx.tree_at(lambda c: c.dt0, binary_config, 2.0 * config.dt0)
    res = gradient_flow(X, u, binary_config) if gram is None else gram_gradient_flow(gram, u, binary_config)
    W = jnp.stack([-0.5 * res.w, 0.5 * res.w])
    return LearnerOutput(w=W, status=res.status, num_steps=res.num_steps, loss=res.loss,
                         extras={"t_final": res.t_final / 2.0, "newton_rel": res.newton_rel})


@final
class SoftmaxGDLearner(AbstractSoftmaxLearner):
    """A discrete optimiser (optax) on W [K, d] from 0 for ``gd.steps``
    updates (status ``FINITE_HORIZON``).  Note that for K = 2 plain gradient
    descent with step eta equals the binary one with step 2 eta.

    Attributes:
        gd: ``GDConfig``.
    """

    gd: GDConfig = GDConfig()
    name: ClassVar[str] = "gd"

    def fit_inputs(self, key, X, V) -> LearnerOutput:
        n, d = X.shape
        K = V.shape[-1]
        logp = log_targets(V)

        def grad(W):  # (1/n) (softmax(X W^T) - P)^T X
            return softmax_residual(X @ W.T, logp).T @ X / n

        W = optimise(grad, jnp.zeros((K, d), X.dtype), self.gd)
        finite = jnp.all(jnp.isfinite(W))
        return LearnerOutput(w=W, status=jnp.where(finite, Status.FINITE_HORIZON, Status.NON_FINITE).astype(jnp.int32),
                             num_steps=jnp.asarray(self.gd.steps, jnp.int32), loss=softmax_cross_entropy(X @ W.T, V))


SOFTMAX_METHODS = ("closed-form", "flow", "gd")


def softmax_form(learner: AbstractLearner) -> "AbstractSoftmaxLearner":
    """The K-class form of a linear learner of Thm 1 (``ClosedFormLearner``,
    ``FlowLearner``, ``GDLearner``: the same method and settings on W [K, d];
    at K = 2 the same numbers, fact 8); K-class learners unchanged; other
    learners (deep, w_delta, hard-target: binary tasks only) refused by name."""
    if isinstance(learner, AbstractSoftmaxLearner):
        return learner
    if isinstance(learner, FlowLearner):
        return SoftmaxFlowLearner(learner.flow)
    if isinstance(learner, GDLearner):
        return SoftmaxGDLearner(learner.gd)
    if isinstance(learner, ClosedFormLearner):
        return SoftmaxClosedFormLearner()
    if isinstance(learner, AbstractLearner):
        raise JaxDistillError(
            f"learner {type(learner).__name__} (method {learner.name!r}) applies only to binary tasks with a teacher "
            "vector (e.g. KappaPolynomialTask) and a linear student; K-class tasks and kernel / network students take "
            "ClosedFormLearner, FlowLearner, GDLearner, KernelLearner or MLPLearner")
    raise JaxDistillError(f"learner must be a jaxdistill learner, got {type(learner).__name__}")


def make_softmax_learner(method: str, *, flow: FlowConfig | None = None, gd: GDConfig | None = None
                         ) -> AbstractSoftmaxLearner:
    """The K-class learner named by ``method`` ("closed-form", "flow", "gd"):
    the K-class form of ``students.make_learner(method, flow=, gd=)``, the
    one factory (``flow=`` / ``gd=`` are refused for methods they do not
    apply to)."""
    return softmax_form(make_learner(method, flow=flow, gd=gd))


__all__ = ["AbstractSoftmaxLearner", "SoftmaxClosedFormLearner", "SoftmaxFlowLearner",
           "SoftmaxGDLearner", "make_softmax_learner", "softmax_form", "softmax_closed_form", "softmax_gradient_flow",
           "softmax_residual", "log_targets", "centred_newton_logits", "helmert_basis", "binary_flow_as_softmax",
           "SOFTMAX_METHODS", "reduced_closed_form", "reduced_newton_system", "logit_shifted_solver"]
