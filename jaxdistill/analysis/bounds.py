"""The paper's transfer-risk bounds as functions of p(theta) (eq. 17).

* ``thm3_bound``: Theorem 3.  E[R] = 0 for n >= d (eq. 18); for n < d,
  E[R] <= min_beta p(beta) + p(pi/2 - beta)^n (eq. 19), and the sharper form
  at the end of its proof, min_beta p(beta) + (1 - p(beta)) p(pi/2 - beta)^n.
* ``cor1_bound``: Corollary 1 (eq. 20), gamma^n for tasks with an angular
  margin (some beta with p(beta) = 0 and gamma = p(pi/2 - beta) < 1).
* ``cor2_bound``: Corollary 2 (eq. 21), c (1 + (log n)^kappa) / n^kappa for
  p(theta) <= c (1 - 2 theta / pi)^kappa.
* ``thm_d1_bound``: Theorem D.1 (eq. 78) for a student epsilon-close to the
  distillation solution w_hat, delta = sqrt(2 pi epsilon / ||w_hat||).

``p_fn`` is any jnp function theta -> p(theta) (``task.p_theta``,
``ptheta.exact_p_theta``, ``ptheta.empirical_p_fn(angles)``).  Every bound
is vectorised over a grid of n (any shape) and jit-compatible: the
minimisation over beta is a fixed grid followed by a golden-section
refinement in the bracket around the grid minimum, all in jnp.  Called
outside ``jit`` the bounds run in float64 (``_precision``); inside a
caller's ``jit`` they use the caller's precision.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._precision import precision
from ..validation import JaxDistillError, check_int, check_real

HALF_PI = math.pi / 2
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0

PFn = Callable[[Float[Array, "..."]], Float[Array, "..."]]


class BoundResult(eqx.Module):
    """A bound minimised over beta, for every n of a grid (a pytree; jit can return it).

    Attributes:
        bound: min over beta of the bound (eq. 19 for Thm 3, eq. 78 for
            Thm D.1); 0 where n >= d (eq. 18).  Shape of n.
        beta: the minimising beta (NaN where n >= d: eq. 18 needs none).
        bound_tight: min over beta of p(beta) + (1 - p(beta)) p(pi/2 - beta)^n,
            the sharper form at the end of the proof of Thm 3 (with
            pi/2 - delta - beta for Thm D.1); 0 where n >= d.
        beta_tight: its minimiser.
    """

    bound: Float[Array, "..."]
    beta: Float[Array, "..."]
    bound_tight: Float[Array, "..."]
    beta_tight: Float[Array, "..."]


def _is_traced(*xs) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for x in xs for leaf in jax.tree_util.tree_leaves(x))


def _context(*xs):
    """float64 outside jit; the caller's precision inside a trace."""
    return contextlib.nullcontext() if _is_traced(*xs) else precision("float64")


def _check_n(n) -> None:
    if _is_traced(n):
        return
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
        check_int("n", n, minimum=1)
        return
    arr = np.asarray(n)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise JaxDistillError(f"n must be an integer >= 1 or an array of them, got {n!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 1) or np.any(arr != np.round(arr)):
        bad = arr[~(np.isfinite(arr) & (arr >= 1) & (arr == np.round(arr)))]
        raise JaxDistillError(f"n must be an integer >= 1 or an array of them; got {bad.ravel()[0]!r}")


def _check_d(d) -> int | None:
    if d is None:
        return None
    return check_int("d", d, minimum=1)


def _minimise(obj, lo, hi, grid_size: int, refine_iters: int):
    """min over beta in [lo, hi] of obj(beta) (broadcast: beta [..., K]).

    Grid of ``grid_size`` points, then golden section in the bracket of the
    grid minimum's neighbours; the smaller of grid and refined values wins,
    so the result is never worse than the grid.
    """
    t = jnp.linspace(0.0, 1.0, grid_size, dtype=lo.dtype)
    betas = lo[..., None] + (hi - lo)[..., None] * t
    vals = obj(betas)
    vals = jnp.where(jnp.isnan(vals), jnp.inf, vals)
    i = jnp.argmin(vals, axis=-1)
    take = lambda arr, j: jnp.take_along_axis(arr, j[..., None], axis=-1)[..., 0]
    v_grid = take(vals, i)
    b_grid = take(betas, i)
    a = take(betas, jnp.maximum(i - 1, 0))
    b = take(betas, jnp.minimum(i + 1, grid_size - 1))

    def pair(a, b):
        c = b - _GOLDEN * (b - a)
        e = a + _GOLDEN * (b - a)
        f = obj(jnp.stack([c, e], axis=-1))
        f = jnp.where(jnp.isnan(f), jnp.inf, f)
        return c, e, f[..., 0], f[..., 1]

    def step(_, state):
        a, b = state
        c, e, fc, fe = pair(a, b)
        left = fc <= fe
        return jnp.where(left, a, c), jnp.where(left, e, b)

    a, b = jax.lax.fori_loop(0, refine_iters, step, (a, b))
    c, e, fc, fe = pair(a, b)
    b_ref = jnp.where(fc <= fe, c, e)
    v_ref = jnp.minimum(fc, fe)
    better = v_ref < v_grid
    return jnp.where(better, v_ref, v_grid), jnp.where(better, b_ref, b_grid)


def _pow_n(q, n):
    """q^n for q in [0, 1] and n >= 1 (0^n = 0)."""
    q = jnp.clip(q, 0.0, 1.0)
    return jnp.where(q > 0, jnp.exp(n * jnp.log(jnp.where(q > 0, q, 1.0))), 0.0)


def _thm3_core(p_fn: PFn, n, d, delta, grid_size: int, refine_iters: int) -> BoundResult:
    n = jnp.asarray(n)
    dt = jnp.result_type(float)
    nf = n.astype(dt)
    delta = jnp.broadcast_to(jnp.asarray(delta, dt), nf.shape)
    lo = jnp.zeros(nf.shape, dt)
    hi = jnp.maximum(HALF_PI - delta, 0.0)
    nn = nf[..., None]
    dd = delta[..., None]

    def loose(beta):
        return p_fn(beta) + _pow_n(p_fn(HALF_PI - dd - beta), nn)

    def tight(beta):
        pb = p_fn(beta)
        return pb + (1.0 - pb) * _pow_n(p_fn(HALF_PI - dd - beta), nn)

    b1, beta1 = _minimise(loose, lo, hi, grid_size, refine_iters)
    b2, beta2 = _minimise(tight, lo, hi, grid_size, refine_iters)
    # candidate: the first zero of p (a margin), where the objective has a kink the
    # golden section only approaches to rounding; there eq. 19 is exactly gamma^n (Cor. 1)
    bz = jnp.broadcast_to(_first_zero(p_fn, grid_size, refine_iters), nf.shape)
    inside = (bz >= lo) & (bz <= hi)
    v1 = jnp.where(inside, loose(bz[..., None])[..., 0], jnp.inf)
    v2 = jnp.where(inside, tight(bz[..., None])[..., 0], jnp.inf)
    beta1 = jnp.where(v1 < b1, bz, beta1)
    b1 = jnp.minimum(b1, v1)
    beta2 = jnp.where(v2 < b2, bz, beta2)
    b2 = jnp.minimum(b2, v2)
    b1 = jnp.minimum(b1, 1.0)  # a probability: the bound is never worth more than 1
    b2 = jnp.minimum(b2, 1.0)
    if d is not None:
        big = n >= d
        b1 = jnp.where(big, 0.0, b1)
        b2 = jnp.where(big, 0.0, b2)
        beta1 = jnp.where(big, jnp.nan, beta1)
        beta2 = jnp.where(big, jnp.nan, beta2)
    return BoundResult(bound=b1, beta=beta1, bound_tight=b2, beta_tight=beta2)


def thm3_bound(p_fn: PFn, n, d: int | None, *, grid_size: int = 2049, refine_iters: int = 60) -> BoundResult:
    """Theorem 3: the bound on the expected transfer risk of the distilled student.

    For n >= d, E[R] = 0 (eq. 18).  For n < d,

        E[R] <= min_{beta in [0, pi/2]} p(beta) + p(pi/2 - beta)^n          (19)
        E[R] <= min_beta p(beta) + (1 - p(beta)) p(pi/2 - beta)^n  (tight, end of proof)

    Args:
        p_fn: theta -> p(theta) of eq. 17 (jnp, broadcasting).
        n: transfer-set size, an int or an integer array of any shape (a grid of n).
        d: input dimension (None: never use eq. 18).
        grid_size: beta grid points before refinement.
        refine_iters: golden-section iterations in the bracket of the grid minimum.

    Returns:
        ``BoundResult`` with arrays of the shape of n.

    Example:
        >>> task = KappaPolynomialTask(1000, kappa=1.0)
        >>> thm3_bound(task.p_theta, jnp.array([5, 20, 100]), task.d).bound
    """
    _check_n(n)
    d = _check_d(d)
    check_int("grid_size", grid_size, minimum=3)
    check_int("refine_iters", refine_iters, minimum=0)
    with _context(n):
        return _thm3_core(p_fn, n, d, 0.0, grid_size, refine_iters)


def thm_d1_bound(
    p_fn: PFn, n, d: int | None, epsilon, w_hat_norm, *, grid_size: int = 2049, refine_iters: int = 60
) -> BoundResult:
    """Theorem D.1 (eq. 78): the bound for a student epsilon-close to w_hat.

    With delta = sqrt(2 pi epsilon / ||w_hat||) and epsilon <= ||w_hat|| / 2,

        E[R] <= min_{beta in [0, pi/2 - delta]} p(beta) + p(pi/2 - delta - beta)^n.

    ``bound_tight`` is p(beta) + (1 - p(beta)) p(pi/2 - delta - beta)^n, which
    follows from eqs. 86, 90, 91 exactly as the sharper form of Thm 3 does.
    For n >= d the risk is 0 (Appendix D: w* is recovered exactly, also by
    deep students).  NaN where epsilon > ||w_hat|| / 2 (the theorem does not
    apply); 1 (the trivial bound) where delta > pi/2 leaves no beta.

    Args:
        p_fn: theta -> p(theta).
        n: int or integer array (grid of n).
        d: input dimension.
        epsilon, w_hat_norm: scalars or arrays broadcasting against n.
    """
    _check_n(n)
    d = _check_d(d)
    if not _is_traced(epsilon, w_hat_norm):
        e = np.asarray(epsilon, dtype=np.float64)
        w = np.asarray(w_hat_norm, dtype=np.float64)
        if not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise JaxDistillError(f"epsilon must be finite and > 0, got {epsilon!r}")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise JaxDistillError(f"w_hat_norm must be finite and > 0, got {w_hat_norm!r}")
    with _context(n, epsilon, w_hat_norm):
        n_arr = jnp.asarray(n)
        eps = jnp.asarray(epsilon, jnp.result_type(float))
        wn = jnp.asarray(w_hat_norm, jnp.result_type(float))
        shape = jnp.broadcast_shapes(n_arr.shape, eps.shape, wn.shape)
        n_arr = jnp.broadcast_to(n_arr, shape)
        eps = jnp.broadcast_to(eps, shape)
        wn = jnp.broadcast_to(wn, shape)
        delta = jnp.sqrt(2.0 * jnp.pi * eps / wn)
        res = _thm3_core(p_fn, n_arr, None, delta, grid_size, refine_iters)
        applies = eps <= 0.5 * wn
        empty = delta > HALF_PI
        small = n_arr < d if d is not None else jnp.ones(shape, bool)

        def fix(v, b_is_beta):
            v = jnp.where(empty, jnp.nan if b_is_beta else 1.0, v)
            v = jnp.where(applies, v, jnp.nan)
            return jnp.where(small, v, jnp.nan if b_is_beta else 0.0)

        return BoundResult(bound=fix(res.bound, False), beta=fix(res.beta, True),
                           bound_tight=fix(res.bound_tight, False), beta_tight=fix(res.beta_tight, True))


def cor1_margin(p_fn: PFn, *, grid_size: int = 4097, bisect_iters: int = 60) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """The smallest beta with p(beta) = 0 and gamma = p(pi/2 - beta) (Cor. 1).

    The grid locates the first zero of p, bisection sharpens it (beta is
    taken on the side where p is exactly 0, so Cor. 1's hypothesis holds).
    Returns (beta, gamma); both NaN when p has no zero on [0, pi/2] or
    gamma = 1 (no margin: e.g. the kappa and Gaussian tasks).
    """
    with _context():
        return _cor1_margin_core(p_fn, grid_size, bisect_iters)


def _first_zero(p_fn: PFn, grid_size: int, bisect_iters: int) -> Float[Array, ""]:
    """Smallest beta in [0, pi/2] with p(beta) = 0 (to bisection accuracy, on the zero side); pi/2 if none."""
    beta, _ = _zero_and_gamma(p_fn, grid_size, bisect_iters)
    return beta


def _zero_and_gamma(p_fn: PFn, grid_size: int, bisect_iters: int):
    dt = jnp.result_type(float)
    grid = jnp.linspace(0.0, HALF_PI, grid_size, dtype=dt)
    zero = p_fn(grid) <= 0.0
    has = jnp.any(zero)
    i = jnp.argmax(zero)
    lo = grid[jnp.maximum(i - 1, 0)]
    hi = grid[i]

    def step(_, s):
        lo, hi = s
        mid = 0.5 * (lo + hi)
        z = p_fn(mid) <= 0.0
        return jnp.where(z, lo, mid), jnp.where(z, mid, hi)

    lo, hi = jax.lax.fori_loop(0, bisect_iters, step, (lo, hi))
    beta = jnp.where(has, jnp.where(i == 0, grid[0], hi), HALF_PI)
    return beta, has


def _cor1_margin_core(p_fn: PFn, grid_size: int, bisect_iters: int):
    beta, has = _zero_and_gamma(p_fn, grid_size, bisect_iters)
    gamma = p_fn(HALF_PI - beta)
    ok = has & (gamma < 1.0)
    return jnp.where(ok, beta, jnp.nan), jnp.where(ok, gamma, jnp.nan)


def cor1_bound(p_fn: PFn, n, d: int | None) -> Float[Array, "..."]:
    """Corollary 1 (eq. 20): E[R] <= gamma^n for a task with an angular margin.

    gamma = p(pi/2 - beta) for the smallest beta with p(beta) = 0
    (``cor1_margin``).  0 where n >= d (eq. 18, which Cor. 1 inherits from
    Thm 3); NaN everywhere when the task has no margin (Cor. 1 does not apply).
    """
    _check_n(n)
    d = _check_d(d)
    with _context(n):
        _, gamma = _cor1_margin_core(p_fn, 4097, 60)
        n_arr = jnp.asarray(n)
        out = _pow_n(jnp.where(jnp.isnan(gamma), 1.0, gamma), n_arr.astype(jnp.result_type(float)))
        if d is not None:
            out = jnp.where(n_arr >= d, 0.0, out)
        return jnp.where(jnp.isnan(gamma), jnp.nan, out)


def cor2_bound(n, kappa, c=1.0) -> Float[Array, "..."]:
    """Corollary 2 (eq. 21): c (1 + (log n)^kappa) / n^kappa.

    Valid when p(theta) <= c (1 - 2 theta / pi)^kappa for all theta
    (the kappa-polynomial task with c = 1; the margin task with its kappa and
    c = 1).  Holds for every n (the formula, not 0, also for n >= d).
    n, kappa, c broadcast against each other.
    """
    _check_n(n)
    if not _is_traced(kappa, c):
        k = np.asarray(kappa, dtype=np.float64)
        if not np.all(np.isfinite(k)) or np.any(k < 0):
            raise JaxDistillError(f"kappa must be finite and >= 0, got {kappa!r}")
        cc = np.asarray(c, dtype=np.float64)
        if not np.all(np.isfinite(cc)) or np.any(cc <= 0):
            raise JaxDistillError(f"c must be finite and > 0, got {c!r}")
    with _context(n, kappa, c):
        dt = jnp.result_type(float)
        nf = jnp.asarray(n).astype(dt)
        k = jnp.asarray(kappa, dt)
        ln = jnp.log(nf)
        return jnp.asarray(c, dt) * (1.0 + jnp.where(ln > 0, ln, 0.0) ** k) / nf**k


def cor2_constant(p_fn: PFn, kappa: float, *, grid_size: int = 4097) -> Float[Array, ""]:
    """The smallest c with p(theta) <= c (1 - 2 theta / pi)^kappa on a theta grid
    (a grid estimate of the supremum; exact c = 1 for the kappa task)."""
    check_real("kappa", kappa, ge=0.0)
    with _context():
        dt = jnp.result_type(float)
        theta = jnp.linspace(0.0, HALF_PI, grid_size, dtype=dt)[:-1]
        return jnp.max(p_fn(theta) / (1.0 - theta / HALF_PI) ** kappa)


__all__ = ["BoundResult", "thm3_bound", "thm_d1_bound", "cor1_bound", "cor1_margin", "cor2_bound", "cor2_constant"]
