"""The stop test, the solve and the status of every flow (docs/design.md fact 5).

Arrival is decided in parameter space: a diffrax Event fires when the
Newton step ||H^{-1} grad|| (H the Hessian of the loss, eq. 42/43,
restricted to the flow's subspace) is below ``newton_tol * ||w||``.  Near
the limit the Newton step equals w - w_hat to second order, so this bounds
the relative distance to the Thm 1 limit, whatever the stiffness.  A small
vector field would not: with ||x|| = |nu| tiny, some directions relax on
time scales of 1e5 and more.

``flow_to_steady_state`` holds this test, the solve and the status for
every flow of the library (the one logit flow of linear and kernel
students, ``students.logit_flow``, and the deep flow,
``students.deep.integrators``): each gives it only its vector field, its
state-to-w map and its (Newton step, ||w||) norms.  Every set returns a
status code (``jaxdistill.status.Status``) and its step count; the solver
never raises for one bad set (``throw=False``).
"""

from __future__ import annotations

from typing import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree

from ..sequencing import after
from ..status import Status
from .flow_config import FlowConfig


def solve_to_steady_state(vector_field, y0, config: FlowConfig, ts, cond_fn, soft) -> diffrax.Solution:
    """diffrax solve from t = 0 until ``cond_fn`` (the steady-state Event)
    fires, the horizon (``config.horizon(soft)``: t_max, or hard_t_max for
    hard labels) or max_steps; never raises (``throw=False``).  With
    ``config.t_end`` the solve runs to exactly t_end, with no Event."""
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts, t1=True)
    return diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        config.solver,
        t0=0.0,
        t1=config.horizon(soft),
        dt0=config.dt0,
        y0=y0,
        saveat=saveat,
        stepsize_controller=config.controller,
        event=None if config.finite_time else diffrax.Event(cond_fn),
        max_steps=config.max_steps,
        throw=False,
        adjoint=config.adjoint,
    )


def flow_status(rank_ok, finite, soft, converged, result, finite_time: bool = False) -> Int[Array, ""]:
    """The per-set status code of a flow (``jaxdistill.status.Status``), by priority:
    rank deficiency, non-finite output, step limit, finite horizon (hard
    labels, or a fixed training time ``finite_time``: ``FlowConfig.t_end``),
    converged, t_max reached, other solver failure."""
    return jnp.where(
        ~rank_ok,
        Status.RANK_DEFICIENT,
        jnp.where(
            ~finite,
            Status.NON_FINITE,
            jnp.where(
                result == diffrax.RESULTS.max_steps_reached,
                Status.MAX_STEPS,
                jnp.where(
                    ~soft | finite_time,
                    Status.FINITE_HORIZON,
                    jnp.where(converged, Status.CONVERGED,
                              jnp.where(result == diffrax.RESULTS.successful, Status.NOT_CONVERGED,
                                        Status.SOLVER_FAILED)),
                ),
            ),
        ),
    ).astype(jnp.int32)


class SteadyState(eqx.Module):
    """What ``flow_to_steady_state`` returns (one set; batched by vmap).

    Attributes:
        sol: the diffrax solution (``ts``: the state at the requested times,
            then the final one; ``stats``, ``result``).
        y: the final state, in the flow's own coordinates (a pytree).
        w: the final student ``to_w(y)``.
        newton_rel: final ||Newton step|| / ||w|| (the estimated relative
            distance to the limit, docs/design.md fact 5).
        finite: w finite, and newton_rel too for targets with a steady state.
        status: ``flow_status`` of the run.
    """

    sol: diffrax.Solution
    y: PyTree
    w: Array
    newton_rel: Float[Array, ""]
    finite: Bool[Array, ""]
    status: Int[Array, ""]


def flow_to_steady_state(vector_field, y0: PyTree, rank_ok: Bool[Array, ""], soft: Bool[Array, ""],
                         config: FlowConfig, ts: Float[Array, " T"] | None, *,
                         norms: Callable[[PyTree], tuple[Float[Array, ""], Float[Array, ""]]],
                         to_w: Callable[[PyTree], Array], norm_of_w: bool = False) -> SteadyState:
    """Integrate ``vector_field`` from y0 until the Newton-step test fires,
    then measure where it stopped: the stop-test/solve/status block of every
    flow (binary, K-class, deep).

    Arrival is decided in parameter space (docs/design.md fact 5): the run
    stops when ``norms(y) = (||Newton step in w-space||, ||w||)`` satisfies
    step <= newton_tol * ||w|| (soft targets only: hard labels have no
    steady state and run to their horizon).  Whatever the coordinates of y,
    ``norms`` measures in w-space.

    After the loop the final Newton step waits for w (``sequencing.after``):
    both may be batched LAPACK calls (a triangular solve, an LU), and two
    independent ones after the loop deadlock jaxlib on small CPUs
    (docs/design.md fact 11).  The values are unchanged (y + 0).

    Args:
        vector_field: the flow's right-hand side f(t, y, args), or a
            ``rosenbrock.FieldWithJacobian``.
        y0: the initial state (any pytree).
        rank_ok: the set's rank test (``flow_status``'s first priority).
        soft: whether the targets have a steady state (finite logits).
        config: ``FlowConfig``; ts: optional times to record the state at.
        norms: y -> (||Newton step||, ||w||), both in w-space.
        to_w: y -> the student w.
        norm_of_w: divide the final step by ||to_w(y)|| itself instead of
            ``norms``' estimate of it (the binary and K-class flows: exact;
            the deep flow keeps the norm its test uses).
    """
    def cond_fn(t, y, args, **kwargs):
        step, w_norm = norms(y)
        return soft & (step <= config.newton_tol * jnp.maximum(w_norm, jnp.finfo(w_norm.dtype).tiny))

    sol = solve_to_steady_state(vector_field, y0, config, ts, cond_fn, soft)
    y = jax.tree_util.tree_map(lambda a: a[-1], sol.ys)
    w = to_w(y)
    step, w_norm = norms(jax.tree_util.tree_map(lambda a: after(a, w), y))  # waits for w (fact 11)
    if norm_of_w:
        w_norm = jnp.linalg.norm(w)
    newton_rel = step / jnp.maximum(w_norm, jnp.finfo(w_norm.dtype).tiny)
    # hard labels have no steady state: their Newton step is infinite by nature
    finite = jnp.all(jnp.isfinite(w)) & (jnp.isfinite(newton_rel) | ~soft)
    status = flow_status(rank_ok, finite, soft, newton_rel <= config.newton_tol, sol.result, config.finite_time)
    return SteadyState(sol=sol, y=y, w=w, newton_rel=newton_rel, finite=finite, status=status)


__all__ = ["solve_to_steady_state", "flow_status", "SteadyState", "flow_to_steady_state"]
