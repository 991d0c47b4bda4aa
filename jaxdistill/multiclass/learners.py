"""Linear softmax students W [K, d] for K classes: closed form, gradient flow
(diffrax, logit coordinates) and discrete optimisers (optax)
(docs/design.md fact 8).

The cross-entropy gradient (1/n) (softmax(Z) - P)^T X, Z = X W^T, has rows
in span(X) and columns summing to 0 over classes, so the flow from W = 0
keeps every row of W in span(X) and the class-sum of its rows at 0.  The
flow is the one logit flow of every linear and kernel student
(``students.logit_flow``) with a softmax link (``students.links.SoftmaxLink``):

* n <= d (and any Gram or kernel design): the state is the logit matrix
  Z [n, K] itself, dZ/dt = -(1/n) G (softmax(Z) - P) with G = X X^T = L L^T
  (the design's Gram factor, as for the binary flow), and W^T = X^T L^{-T} c,
  c = L^{-1} centre(Z), exactly;
* n > d: with a rank-revealing QR X^T = Q R (``closed_form.reveal_span``:
  the null directions of a rank-deficient set are zero rows of R) the state
  is B = Q^T W^T [r, K], dB/dt = -(1/n) R (softmax(R^T B) - P).

Both are the d-dimensional flow exactly.  Rodas3 solves the logit flow's
(n K)-square stage systems through K n-square ones
(``links.logit_shifted_solver``, docs/design.md fact 14), and the span
flow's (r K)-square ones and its Newton step through K r-square systems and
one n-square capacitance system (``students.span_solve``).  Its limit is
the minimum-norm interpolant of the class-centred log targets
(``softmax_closed_form``) when one exists (n <= d, or a linear teacher:
for soft targets of W* it is C W* P_X / T, P_X the projection onto the
numerical span of X); otherwise (n > d, a nonlinear
teacher) it is the minimiser of the convex cross-entropy on the flow's
subspace (``minimiser.softmax_limit``, by Newton).

Arrival is decided in parameter space as for the binary flow (fact 5): the
Hessian of the per-example loss in z_i is diag(s_i) - s_i s_i^T, singular
along the all-ones direction, so the Newton step is taken in centred
coordinates: delta_i = r_i / s_i - mean(r_i / s_i) with
r_i / s_i = -expm1(log p_i - log s_i) (no cancellation near the limit).
The flow stops when ||Newton step in W|| <= newton_tol ||W||.

K = 2: the centred softmax flow is the binary flow of w = w_1 - w_0 run at
twice the speed (W = [-w/2, w/2]), so ``SoftmaxFlowLearner`` (and
``softmax_design_flow`` for every design) runs the logit flow with the
sigmoid link on u = v_1 - v_0 (time rescaled): K = 2 reproduces the binary
numbers bit for bit.  The link helpers (``softmax_residual``,
``log_targets``, ``helmert_basis``, ...) live in ``students.links`` and are
re-exported here.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..status import Status
from ..design import AbstractDesign, InputsDesign, inputs_of, logit_difference
from ..students.base import AbstractLearner, ClosedFormLearner, FlowLearner, GDLearner, LearnerOutput, make_learner
from ..students.closed_form import ReducedData, reduce_data, reduced_target, reveal_span
from ..students.discrete import GDConfig, optimise
from ..students.flow_config import FlowConfig
from ..students.links import (SigmoidLink, SoftmaxLink, centred_newton_logits, helmert_basis, log_targets,
                              logit_shifted_solver, reduced_newton_system, softmax_jacobians, softmax_residual)
from ..students.logit_flow import design_coordinates, logit_flow
from ..validation import JaxDistillError
from .targets import MultiTargetSpec, centre, softmax_cross_entropy




def reduced_closed_form(X: Float[Array, "n d"], V: Float[Array, "n K"]) -> tuple[ReducedData, Float[Array, "r K"], Array]:
    """(red, B, realisable): the reduction X^T = Q R (thin QR for n <= d; for
    n > d rank-revealing, ``reveal_span``: the null directions of a
    rank-deficient set are zero rows of R), the least-squares coordinates
    B [r, K] of the centred log targets (R^T B = centre(V), exact for n <= d;
    0 on the null rows) and whether they are interpolated exactly (always
    for n <= d; for n > d only for a linear teacher, to rounding)."""
    n, d = X.shape
    red = reduce_data(X) if n <= d else reveal_span(X)
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
                          ts: Float[Array, " T"] | None = None):
    """Gradient flow of the K-class cross-entropy from W = 0 (module
    docstring): the one logit flow (``students.logit_flow``) with a
    ``SoftmaxLink`` on the inputs X (any K, K = 2 included).

    Returns (W [K, d], status, num_steps, t_final, newton_rel, loss,
    trajectory [T, K, d] or None).  ``config.coordinates == "plain"``
    integrates W itself (the reference)."""
    res = logit_flow(design_coordinates(InputsDesign(X), config, rank_revealing=True), SoftmaxLink(V), config, ts=ts)
    traj = None if ts is None else jnp.swapaxes(res.trajectory, -1, -2)
    return res.w.T, res.status, res.num_steps, res.t_final, res.newton_rel, res.loss, traj


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
        return softmax_design_flow(InputsDesign(X), V, self.flow)


def binary_time_config(config: FlowConfig) -> FlowConfig:
    """The binary flow's settings for a K = 2 flow with ``config``: every
    time (t_max, hard_t_max, t_end, dt0) doubled (fact 8)."""
    binary_config = eqx.tree_at(lambda c: (c.t_max, c.hard_t_max), config, (2.0 * config.t_max, 2.0 * config.hard_t_max))
    if config.t_end is not None:
        binary_config = eqx.tree_at(lambda c: c.t_end, binary_config, 2.0 * config.t_end)
    if config.dt0 is not None:
        binary_config = eqx.tree_at(lambda c: c.dt0, binary_config, 2.0 * config.dt0)
    return binary_config


def softmax_design_flow(design: AbstractDesign, V: Float[Array, "n K"], config: FlowConfig) -> LearnerOutput:
    """The K-class flow from W = 0 on any design (inputs, Gram matrix, kernel
    features): the one logit flow with a ``SoftmaxLink``, except K = 2,
    which runs the ``SigmoidLink`` flow of u = v_1 - v_0 to twice the time
    (W = [-w/2, w/2], t_final halved: the binary numbers bit for bit, fact 8).
    ``W`` [K, m] holds the student in the design's parameters (m = d for
    inputs; its coordinates c = L^{-1} Z, m = n, for a Gram or kernel design)."""
    if V.shape[-1] == 2:
        binary_config = binary_time_config(config)
        res = logit_flow(design_coordinates(design, binary_config), SigmoidLink(logit_difference(V)), binary_config)
        W = jnp.stack([-0.5 * res.w, 0.5 * res.w])
        t_final = res.t_final / 2.0
    else:
        res = logit_flow(design_coordinates(design, config, rank_revealing=True), SoftmaxLink(V), config)
        W, t_final = res.w.T, res.t_final
    return LearnerOutput(w=W, status=res.status, num_steps=res.num_steps, loss=res.loss,
                         extras={"t_final": t_final, "newton_rel": res.newton_rel})


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
           "softmax_residual", "log_targets", "centred_newton_logits", "helmert_basis",
           "SOFTMAX_METHODS", "reduced_closed_form", "reduced_newton_system", "logit_shifted_solver", "softmax_jacobians",
           "softmax_design_flow", "binary_time_config"]
