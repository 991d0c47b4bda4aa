"""Linear students from zero in Gram space (docs/design.md fact 13).

A linear student trained from w(0) = 0 by gradient flow, or its limit (the
closed form of Thm 1), is w = X^T alpha with alpha in R^n, and everything
the library measures about it needs only G = X X^T and the teacher logits:

* the flow in logit coordinates z = X w = G alpha (``flow.gram_gradient_flow``),
  its stopping test, and the closed form alpha_hat = G^{-1} u;
* with G = L L^T (Cholesky), the columns of Q = X^T L^{-T} are an orthonormal
  basis of span X, and w = Q c with c = L^T alpha = L^{-1} z (the Gram-space
  learners return c: ||w|| = ||c||, and alpha = L^{-T} c); the projection
  of the teacher is P_X w* = Q c*, c* = L^{-1} (X w*), and
  ||w* - P_X w*||^2 = ||w*||^2 - ||c*||^2;
* so the signed angle of w to w* is the angle between (c, 0) and (c*, r) in
  R^{n+1}, r = ||w* - P_X w*|| (computed with the atan2 form of
  ``riskmath.signed_angle``), and ||w - w_hat|| / ||w_hat|| =
  ||c - L^{-1} u|| / ||L^{-1} u|| (the G-norm of alpha - alpha_hat).

A learner fitted on a ``design.GramDesign`` runs its Gram-space version
where one exists (``supports_gram_learner``, ``AbstractBinaryLearner.fit_gram``):
``FlowLearner`` (reduced coordinates), ``ClosedFormLearner`` and
``WDeltaLearner`` (section 5.2).  w_delta leaves
span X along a random direction q of the complement (section 5.2):
q / ||q|| is uniform on the unit sphere of that (d - n)-dimensional space and
independent of w*, so its component along the unit direction e_perp of
w* - P_X w* is s = g_1 / sqrt(g_1^2 + chi^2_{d-n-1}) (g_1 ~ N(0, 1)), and
in the frame (Q, e_perp, e_rest), e_rest the unit direction of the rest of
q, w_delta has the n + 2 coordinates (c_hat, delta ||c_hat|| s,
delta ||c_hat|| sqrt(1 - s^2)) against the teacher's (c*, r, 0): exact in
law (``WDeltaLearner.fit_gram``).  Learners whose student leaves span X otherwise
(deep students from a random start) or that are not rotation equivariant
(Adam, user learners) need the inputs, and so does w_delta on nested sets
(the monotonicity index: its draws for X and for [X; x] are coupled through
one Gaussian g in R^d, which one Gram draw does not represent).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..tasks import Task
from ..tasks.riskmath import signed_angle
from ..teachers import TargetSpec
from ..traced import scalar_div
from ..validation import JaxDistillError, check_choice
from ..design import GramFactor, gram_factor
from .base import AbstractLearner, ClosedFormLearner, FlowLearner
from .wdelta import WDeltaLearner

PLAIN_FLOW_PROBLEM = "the flow in plain d-dimensional coordinates (coordinates='plain') needs the inputs"


def gram_learner_problem(learner, nested: bool = False) -> str | None:
    """None when ``learner`` has a Gram-space version, else why not (a
    sentence for error messages).  ``nested``: the learner is fitted on X and
    on [X; x] (the monotonicity index), where w_delta needs the inputs (its
    random directions for the two sets are coupled through one Gaussian in
    R^d)."""
    if isinstance(learner, ClosedFormLearner):
        return None
    if isinstance(learner, FlowLearner):
        return PLAIN_FLOW_PROBLEM if learner.flow.coordinates != "reduced" else None
    if isinstance(learner, WDeltaLearner):
        if nested:
            return ("w_delta on nested sets (X and [X; x]) needs the inputs: its random directions for the two "
                    "sets come from one Gaussian in R^d, which a Gram draw does not represent")
        if learner.flow is not None and learner.flow.coordinates != "reduced":
            return PLAIN_FLOW_PROBLEM
        return None
    return (f"the learner {type(learner).__name__} (method {getattr(learner, 'name', '?')!r}) has no Gram-space "
            "version (only the linear flow, the closed form from zero and w_delta do)")


def supports_gram_learner(learner, nested: bool = False) -> bool:
    """True when ``learner`` can be fitted on a ``GramDesign`` (from (G, u) alone)."""
    return gram_learner_problem(learner, nested) is None


class GramStudentStats(eqx.Module):
    """What ``distill`` reports about a student w = X^T alpha, from (G, u) alone."""

    angle: Float[Array, ""]
    rel_dist_closed_form: Float[Array, ""]


def gram_student_stats(G: Float[Array, "n n"], c: Float[Array, " m"], u: Float[Array, " n"],
                       u_raw: Float[Array, " n"], w_norm, soft) -> GramStudentStats:
    """Signed angle of the student to w* (eq. 28) and, for soft targets
    (``soft`` a Python bool), ||w - w_hat|| / ||w_hat|| with w_hat the closed
    form for the logits u (NaN for hard targets).

    With w* = Q c* + r e_perp (c* = L^{-1} u_raw, r = ||w* - P_X w*||): a
    student in span X (c [n], w = X^T L^{-T} c) is compared as (c, 0) with
    (c*, r) in R^{n+1}; w_delta's n + 2 coordinates (``gram_w_delta``: span
    X, e_perp, the rest) as c with (c*, r, 0).

    Args:
        G: X X^T = L L^T; c: the student's coordinates (``fit`` on a ``GramDesign``, [n] or
            [n + 2]); u: the logits it was trained on; u_raw: X w*; w_norm:
            ||w*||.
    """
    n = G.shape[0]
    if c.shape[-1] not in (n, n + 2):
        raise ValueError(f"c must have n = {n} (span X) or n + 2 (w_delta) coordinates, got {c.shape[-1]}")
    fac = gram_factor(G)
    c_star = fac.L_inv @ u_raw
    r = jnp.sqrt(jnp.maximum(w_norm * w_norm - c_star @ c_star, 0.0))
    extra = c.shape[-1] - n  # 0: in span X; 2: w_delta's offset along e_perp and the rest
    zero = jnp.zeros((1,), G.dtype)
    student = c if extra else jnp.concatenate([c, zero])
    teacher = jnp.concatenate([c_star, r[None]] + ([zero] if extra else []))
    angle = signed_angle(student, teacher)
    if soft:
        c_hat = fac.L_inv @ u
        rel = jnp.linalg.norm(c - jnp.concatenate([c_hat, jnp.zeros((extra,), G.dtype)])) / jnp.linalg.norm(c_hat)
    else:
        rel = jnp.asarray(jnp.nan, G.dtype)
    return GramStudentStats(angle=angle, rel_dist_closed_form=rel)


# ------------------------------------------------------------ which sampler a run uses
# (``simulate.distill`` and ``analysis.monotonicity_index``; module docstring of ``samplers``)

SAMPLERS = ("auto", "gram", "inputs")


def logits_from_raw(raw, targets: TargetSpec):
    """Teacher logits from raw ones w*.x (``teachers.teacher_logits`` after X w*)."""
    if targets.kind == "hard":
        return jnp.where(raw >= 0, jnp.inf, -jnp.inf)
    return scalar_div(raw, targets.temperature)


def gram_problem(task: Task, n: int, learner: AbstractLearner, risk_method: str, keep_students: bool,
                 nested: bool = False) -> str | None:
    """None when the Gram sampler applies to this run, else why not
    (``nested``: the learner is fitted on nested sets, ``gram_learner_problem``)."""
    if not task.supports_gram:
        return (f"the {task.name} task ({type(task).__name__}) cannot draw its Gram matrix directly (only the "
                "kappa, margin and isotropic gaussian tasks can)")
    if n >= task.d:
        return f"n = {n} >= d = {task.d} (the Gram sampler needs n <= d - 1; a set costs O(n d) <= O(n^2) then anyway)"
    problem = gram_learner_problem(learner, nested)
    if problem is not None:
        return problem
    if risk_method != "exact":
        return "Monte-Carlo risk needs the students w, hence the inputs (use risk='exact' or 'auto')"
    if keep_students:
        return "keep_students=True (--save-students) needs the students w [B, d], hence the inputs"
    return None


def resolve_sampler(sampler: str, task: Task, n: int, learner: AbstractLearner, risk_method: str,
                    keep_students: bool, nested: bool = False) -> str:
    """"gram" or "inputs" for ``sampler`` in ``SAMPLERS``; refuses "gram"
    where it does not apply (the message names the reason)."""
    check_choice("sampler", sampler, SAMPLERS)
    if sampler == "inputs":
        return "inputs"
    problem = gram_problem(task, n, learner, risk_method, keep_students, nested)
    if sampler == "gram" and problem is not None:
        raise JaxDistillError(f"sampler='gram' (--sampler gram) does not apply: {problem}; use sampler 'inputs' or 'auto'")
    return "inputs" if problem is not None else "gram"


__all__ = [
    "SAMPLERS",
    "gram_problem",
    "resolve_sampler",
    "logits_from_raw",
    "GramFactor",
    "GramStudentStats",
    "gram_factor",
    "gram_learner_problem",
    "gram_student_stats",
    "supports_gram_learner",
]
