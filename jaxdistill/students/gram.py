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

``gram_fit`` runs the Gram-space version of a learner where one exists
(``supports_gram_learner``): ``FlowLearner`` (reduced coordinates) and
``ClosedFormLearner``.  Learners whose student leaves span X (deep students
from a random start, w_delta) or that are not rotation equivariant (Adam,
user learners) need the inputs.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..status import Status
from ..tasks import Task
from ..tasks.riskmath import signed_angle
from ..teachers import TargetSpec, cross_entropy
from ..validation import JaxDistillError, check_choice
from .base import ClosedFormLearner, FlowLearner, LearnerOutput
from .flow import gram_gradient_flow


def gram_learner_problem(learner) -> str | None:
    """None when ``learner`` has a Gram-space version, else why not (a
    sentence for error messages)."""
    if isinstance(learner, ClosedFormLearner):
        return None
    if isinstance(learner, FlowLearner):
        if learner.flow.coordinates != "reduced":
            return "the flow in plain d-dimensional coordinates (coordinates='plain') needs the inputs"
        return None
    return (f"the learner {type(learner).__name__} (method {getattr(learner, 'name', '?')!r}) has no Gram-space "
            "version (only the linear flow and the closed form from zero do)")


def supports_gram_learner(learner) -> bool:
    """True when ``gram_fit`` can run ``learner`` from (G, u) alone."""
    return gram_learner_problem(learner) is None


class GramFactor(eqx.Module):
    """G = L L^T with its inverse factor and a numerical-rank check (the same
    test as the logit flow)."""

    L: Float[Array, "n n"]
    L_inv: Float[Array, "n n"]
    rank_ok: Array


def gram_factor(G: Float[Array, "n n"]) -> GramFactor:
    n = G.shape[0]
    L = jnp.linalg.cholesky(G)
    diag = jnp.abs(jnp.diagonal(L))
    rank_ok = jnp.all(jnp.isfinite(diag)) & (jnp.min(diag) > jnp.finfo(G.dtype).eps * n * jnp.max(diag))
    L_inv = jax.scipy.linalg.solve_triangular(L, jnp.eye(n, dtype=G.dtype), lower=True)
    return GramFactor(L=L, L_inv=L_inv, rank_ok=rank_ok)


def gram_closed_form(G: Float[Array, "n n"], u: Float[Array, " n"]) -> LearnerOutput:
    """Thm 1 (eq. 6) in Gram space: w_hat = X^T G^{-1} u.  ``w`` of the
    output holds its coordinates c_hat = L^{-1} u in the orthonormal basis
    X^T L^{-T} of span X, [n]."""
    fac = gram_factor(G)
    c = fac.L_inv @ u
    ok = fac.rank_ok & jnp.all(jnp.isfinite(c))
    return LearnerOutput(
        w=c,
        status=jnp.where(ok, Status.CONVERGED, Status.RANK_DEFICIENT).astype(jnp.int32),
        num_steps=jnp.asarray(0, jnp.int32),
        loss=cross_entropy(fac.L @ c, u),
    )


def gram_fit(learner, G: Float[Array, "n n"], u: Float[Array, " n"]) -> LearnerOutput:
    """The Gram-space fit of ``learner`` on one set: ``w`` holds the
    student's coordinates c [n] in the orthonormal basis X^T L^{-T} of
    span X (G = L L^T); extras as the learner's own ``fit``."""
    problem = gram_learner_problem(learner)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(learner, ClosedFormLearner):
        return gram_closed_form(G, u)
    res = gram_gradient_flow(G, u, learner.flow)
    return LearnerOutput(w=res.w, status=res.status, num_steps=res.num_steps, loss=res.loss,
                         extras={"t_final": res.t_final, "newton_rel": res.newton_rel})


class GramStudentStats(eqx.Module):
    """What ``distill`` reports about a student w = X^T alpha, from (G, u) alone."""

    angle: Float[Array, ""]
    rel_dist_closed_form: Float[Array, ""]


def gram_student_stats(G: Float[Array, "n n"], c: Float[Array, " n"], u: Float[Array, " n"],
                       u_raw: Float[Array, " n"], w_norm, soft) -> GramStudentStats:
    """Signed angle of w = X^T L^{-T} c to w* (eq. 28) and, for soft targets
    (``soft`` a Python bool), ||w - w_hat|| / ||w_hat|| with w_hat the closed
    form for the logits u (NaN for hard targets).

    Args:
        G: X X^T = L L^T; c: the student's coordinates (``gram_fit``); u:
            the logits it was trained on; u_raw: X w*; w_norm: ||w*||.
    """
    fac = gram_factor(G)
    c_star = fac.L_inv @ u_raw
    r = jnp.sqrt(jnp.maximum(w_norm * w_norm - c_star @ c_star, 0.0))
    zero = jnp.zeros((1,), G.dtype)
    angle = signed_angle(jnp.concatenate([c, zero]), jnp.concatenate([c_star, r[None]]))
    if soft:
        c_hat = fac.L_inv @ u
        rel = jnp.linalg.norm(c - c_hat) / jnp.linalg.norm(c_hat)
    else:
        rel = jnp.asarray(jnp.nan, G.dtype)
    return GramStudentStats(angle=angle, rel_dist_closed_form=rel)


# ------------------------------------------------------------ which sampler a run uses
# (``simulate.distill`` and ``analysis.monotonicity_index``; module docstring of ``simulate_gram``)

SAMPLERS = ("auto", "gram", "inputs")


def logits_from_raw(raw, targets: TargetSpec):
    """Teacher logits from raw ones w*.x (``teachers.teacher_logits`` after X w*)."""
    if targets.kind == "hard":
        return jnp.where(raw >= 0, jnp.inf, -jnp.inf)
    return raw / targets.temperature


def gram_problem(task: Task, n: int, learner: AbstractLearner, risk_method: str, keep_students: bool) -> str | None:
    """None when the Gram sampler applies to this run, else why not."""
    if not task.supports_gram:
        return (f"the {task.name} task ({type(task).__name__}) cannot draw its Gram matrix directly (only the "
                "kappa, margin and isotropic gaussian tasks can)")
    if n >= task.d:
        return f"n = {n} >= d = {task.d} (the Gram sampler needs n <= d - 1; a set costs O(n d) <= O(n^2) then anyway)"
    problem = gram_learner_problem(learner)
    if problem is not None:
        return problem
    if risk_method != "exact":
        return "Monte-Carlo risk needs the students w, hence the inputs (use risk='exact' or 'auto')"
    if keep_students:
        return "keep_students=True (--save-students) needs the students w [B, d], hence the inputs"
    return None


def resolve_sampler(sampler: str, task: Task, n: int, learner: AbstractLearner, risk_method: str,
                    keep_students: bool) -> str:
    """"gram" or "inputs" for ``sampler`` in ``SAMPLERS``; refuses "gram"
    where it does not apply (the message names the reason)."""
    check_choice("sampler", sampler, SAMPLERS)
    if sampler == "inputs":
        return "inputs"
    problem = gram_problem(task, n, learner, risk_method, keep_students)
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
    "gram_closed_form",
    "gram_fit",
    "gram_learner_problem",
    "gram_student_stats",
    "supports_gram_learner",
]
