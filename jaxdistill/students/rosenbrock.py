"""``Rodas3``: a Rosenbrock (linearly implicit) solver for stiff ODEs, written
as a diffrax solver so that every diffrax step-size controller, event,
``SaveAt`` and adjoint works with it unchanged.

The method (Sandu, Verwer, Blom, Spee, Carmichael & Potra 1997,
"Benchmarking stiff ODE solvers for atmospheric chemistry problems II:
Rosenbrock solvers", Atmos. Environ. 31; the coefficients as in the KPP
Rosenbrock integrator): four stages, order 3, an embedded order-2 solution
for the error estimate, L-stable and stiffly accurate.  With
W = I / (h gamma) - J (J the Jacobian of the vector field at the start of
the step, gamma = 1/2) each stage solves

    W K_i = f(t0 + alpha_i h, y0 + sum_{j<i} a_ij K_j) + sum_{j<i} (c_ij / h) K_j + h gamma_i df/dt,

and y1 = y0 + sum_i m_i K_i, error estimate K_4.  One LU factorisation of W
per step and four triangular solves, no Newton iterations: for the
distillation flows (small dense Jacobians, steps growing geometrically
towards the steady state) this is 1.85-3.1x faster than diffrax's ESDIRK
``Kvaerno3`` at the same tolerances (benchmarks/ rows ``flow`` and
``kernel``; docs/design.md fact 14), and its L-stability lets the steps grow
as freely near the steady state.

Jacobian: by forward-mode autodiff (``jax.jacfwd``, one Jacobian-vector
product per state component) unless the vector field supplies it
(``FieldWithJacobian``).  The distillation flows do: their Jacobian is a
matrix scaled by a diagonal, one elementwise product instead of an
m x m x m matrix product (measured on the kernel flow, d = 10, n = 40,
2,048 sets on the 2-core CPU: 839 -> 1,110 sets/s, the same steps).

Dense output (``SaveAt(ts=...)``): the cubic Hermite interpolant of y and f
at both ends of each step.  Both time directions work (diffrax integrates
t1 < t0 through a ``WrapTerm`` that reverses time, and the solver applies
its direction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

GAMMA = 0.5
"""gamma of W = I / (h gamma) - J."""
STAGE_TIMES = (0.0, 0.0, 1.0, 1.0)
"""alpha_i: stage i evaluates f at t0 + alpha_i h."""
STAGE_GAMMAS = (0.5, 1.5, 0.0, 0.0)
"""gamma_i: weight of h df/dt in stage i (non-autonomous fields)."""
A = {(2, 0): 2.0, (3, 0): 2.0, (3, 2): 1.0}
"""a_ij (0-based; missing = 0): stage i's argument y0 + sum a_ij K_j."""
C = {(1, 0): 4.0, (2, 0): 1.0, (2, 1): -1.0, (3, 0): 1.0, (3, 1): -1.0, (3, 2): -8.0 / 3.0}
"""c_ij (0-based): stage i's right-hand side adds (c_ij / h) K_j."""
NEW_F = (True, False, True, True)
"""Stage 2 reuses stage 1's f (its argument is y0 as well)."""
M = (2.0, 0.0, 1.0, 1.0)
"""m_i: y1 = y0 + sum m_i K_i (order 3)."""


class FieldWithJacobian(eqx.Module):
    """A vector field f(t, y, args) together with its Jacobian df/dy.

    Use it as the vector field of a ``diffrax.ODETerm``: every diffrax solver
    calls it like ``field``; ``Rodas3`` also calls ``jacobian(t, y, args)``
    instead of differentiating ``field``.  ``jacobian(t, y, args)`` returns
    the [m, m] matrix J[i, j] = d f_i / d y_j of the flattened state
    (``jax.flatten_util.ravel_pytree`` order: row-major for one array; tests
    check the flows' Jacobians against ``jax.jacfwd``).

    ``shifted_solver`` (optional): ``shifted_solver(t, y, args, c, s)``
    returns a function rhs -> x solving (c I - s J) x = rhs for flattened
    vectors (J = ``jacobian(t, y, args)``, s = +-1 the time direction), by
    whatever structure the field has; ``Rodas3`` then factors nothing
    itself.  The K-class flow (``multiclass.learners``) solves its
    n K-square stage systems through K n-square ones this way.
    """

    field: Callable[[Any, Any, Any], Any]
    jacobian: Callable[[Any, Any, Any], Any]
    shifted_solver: Callable[[Any, Any, Any, Any, Any], Callable[[Any], Any]] | None = None

    def __call__(self, t, y, args):
        return self.field(t, y, args)


def _unwrap(terms):
    """(s, term): diffrax runs t1 < t0 through its (private) ``WrapTerm``,
    which integrates the reversed problem s f(s t, y) with s = -1 (its vf
    applies s to t only; its control carries the other s); (1, terms) for a
    bare term."""
    if hasattr(terms, "direction") and hasattr(terms, "term"):
        return terms.direction, terms.term
    return 1, terms


class Rodas3(diffrax.AbstractAdaptiveSolver):
    """Rodas3 (4 stages, order 3, embedded order 2, L-stable, stiffly
    accurate): one LU factorisation per step, no Newton iterations.  Any
    ODE (``diffrax.ODETerm``); the state may be any pytree of arrays (it is
    flattened for the linear algebra).  Use it like any diffrax solver:
    ``FlowConfig(solver=Rodas3())`` (the default of the flows) or
    ``diffrax.diffeqsolve(term, Rodas3(), ...)``.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.ThirdOrderHermitePolynomialInterpolation

    def order(self, terms) -> int:
        return 3

    def error_order(self, terms) -> int:
        # the estimate K_4 is the difference of the order-3 and order-2 solutions: O(h^3)
        return 3

    def init(self, terms, t0, t1, y0, args):
        return None

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        y0_flat, unravel = ravel_pytree(y0)

        direction, term = _unwrap(terms)

        def f(t, y_flat):
            return direction * ravel_pytree(terms.vf(t, unravel(y_flat), args))[0]

        h = t1 - t0
        f0, dfdt = jax.jvp(lambda t: f(t, y0_flat), (t0,), (jnp.ones_like(t0),))
        field = getattr(term, "vector_field", None)
        if isinstance(field, FieldWithJacobian) and field.shifted_solver is not None:
            # the field solves (I / (gamma h) - s J) x = rhs by its own structure
            solve = field.shifted_solver(direction * t0, y0, args, 1.0 / (GAMMA * h), direction)
        else:
            if isinstance(field, FieldWithJacobian):  # s J(s t, y): the Jacobian of f
                J = direction * field.jacobian(direction * t0, y0, args)
            else:
                J = jax.jacfwd(lambda y: f(t0, y))(y0_flat)
            W = jnp.eye(y0_flat.shape[0], dtype=y0_flat.dtype) / (GAMMA * h) - J
            lu = jax.scipy.linalg.lu_factor(W)
            solve = lambda rhs: jax.scipy.linalg.lu_solve(lu, rhs)
        K: list = []
        F = f0
        for i in range(4):
            if NEW_F[i] and i > 0:
                arg = y0_flat
                for j in range(i):
                    if (i, j) in A:
                        arg = arg + A[i, j] * K[j]
                F = f(t0 + STAGE_TIMES[i] * h, arg)
            rhs = F
            for j in range(i):
                if (i, j) in C:
                    rhs = rhs + (C[i, j] / h) * K[j]
            if STAGE_GAMMAS[i]:
                rhs = rhs + (STAGE_GAMMAS[i] * h) * dfdt
            K.append(solve(rhs))
        y1_flat = y0_flat + sum(m * k for m, k in zip(M, K) if m)
        f1 = f(t1, y1_flat)
        y1 = unravel(y1_flat)
        dense_info = dict(y0=y0, y1=y1, k0=unravel(h * f0), k1=unravel(h * f1))
        return y1, unravel(K[3]), dense_info, None, diffrax.RESULTS.successful


__all__ = ["FieldWithJacobian", "Rodas3"]
