"""The paper's transfer-risk bounds as functions of p(theta) (eq. 17).

* ``thm3_bound``: Theorem 3.  E[R] = 0 for n >= d (eq. 18); for n < d,
  E[R] <= min_beta p(beta) + p(pi/2 - beta)^n (eq. 19), and the sharper form
  at the end of its proof, min_beta p(beta) + (1 - p(beta)) p(pi/2 - beta)^n.
* ``cor1_bound``: Corollary 1 (eq. 20), gamma^n for tasks with an angular
  margin (some beta with p(beta) = 0 and gamma = p(pi/2 - beta) < 1).
* ``cor2_bound``: Corollary 2 (eq. 21), c (1 + (log n)^kappa) / n^kappa for
  p(theta) <= c (1 - 2 theta / pi)^kappa; proved for c = 1 only.
* ``thm_d1_bound``: Theorem D.1 (eq. 78) for a student epsilon-close to the
  distillation solution w_hat, delta = sqrt(2 pi epsilon / ||w_hat||).

``p_fn`` is any jnp function theta -> p(theta) (``task.p_theta``,
``ptheta.exact_p_theta``, ``ptheta.empirical_p_fn(angles)``).  Every bound
is vectorised over a grid of n (any shape) and jit-compatible: the
minimisation over beta is a fixed grid followed by a golden-section
refinement in the bracket around the grid minimum, all in jnp
(docs/design.md fact 4).  Called outside ``jit`` the bounds run in float64
(``_precision``); inside a caller's ``jit`` they use the caller's precision.

Hypotheses (docs/design.md, "The maths the code relies on").  Each bound
checks the hypotheses of its theorem that are properties of its arguments:

==============  ==============================================================
bound           hypothesis -> what happens outside it
==============  ==============================================================
all             n an integer >= 1, d an integer >= 1 -> JaxDistillError;
                p_fn returns probabilities: finite and in [0, 1] on
                [0, pi/2] (p of eq. 17, or a pointwise upper bound of it
                inside [0, 1]) -> JaxDistillError
thm3_bound      eq. 18 (0 for n >= d) needs X of full rank almost surely (Thm 1;
                the paper assumes P_x has a density, section 3); pass
                d=None for laws with atoms (finite pools): eq. 19, whose
                proof holds for every n, is then used throughout
cor1_bound      some beta with p(beta) = 0 and gamma = p(pi/2 - beta) < 1
                -> NaN ("Cor. 1 does not apply"), a property of p_fn
cor2_bound      kappa >= 0 finite -> JaxDistillError; c = 1 -> JaxDistillError
                otherwise (p(0) = 1 forces c >= 1, the proof uses c^n <= c,
                i.e. c <= 1)
thm_d1_bound    epsilon > 0, ||w_hat|| > 0, epsilon <= ||w_hat|| / 2
                -> JaxDistillError (NaN inside a trace); n < d -> NaN where
                n >= d (the theorem covers n < d only)
==============  ==============================================================

Under a trace (``jit``, ``vmap``, ``grad``) the values of traced arguments
are unknown: a traced epsilon, w_hat_norm, kappa or c outside its range
gives NaN instead of an error, a traced n and a p_fn with traced values are
not checked; the checks of concrete arguments still raise.
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
            Thm D.1); for Thm 3, 0 where n >= d (eq. 18); for Thm D.1, NaN
            where its hypotheses fail (n >= d).  Shape of n.
        beta: the minimising beta (NaN where n >= d: eq. 18 needs none, and
            Thm D.1 does not apply).
        bound_tight: min over beta of p(beta) + (1 - p(beta)) p(pi/2 - beta)^n,
            the sharper form at the end of the proof of Thm 3 (with
            pi/2 - delta - beta for Thm D.1); as ``bound`` where n >= d.
        beta_tight: its minimiser.
    """

    bound: Float[Array, "..."]
    beta: Float[Array, "..."]
    bound_tight: Float[Array, "..."]
    beta_tight: Float[Array, "..."]


# A tracer (jit, vmap, grad) is a jax.Array whose value is unknown: converting it to
# numpy raises one of these public errors (public API only).
_TRACER_ERRORS = (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError)


def _is_traced(*xs) -> bool:
    """True when any leaf of ``xs`` is a tracer (an array without a concrete value)."""
    for leaf in jax.tree_util.tree_leaves(xs):
        if isinstance(leaf, jax.Array):
            try:
                np.asarray(leaf)
            except _TRACER_ERRORS:
                return True
    return False


_P_CHECK_POINTS = 1025
# rounding allowance: a closed-form p may miss [0, 1] by rounding (a difference of incomplete
# beta functions gives -5e-13 at pi/2 for d = 400, -2e-9 for d = 1e6); 1e-8 is far below
# anything that moves a bound and far above float64 rounding of a well-computed p.
_P_TOL = 1e-8


def _check_p_fn(p_fn) -> bool:
    """p_fn must map angles in [0, pi/2] to probabilities (finite, in [0, 1]).

    Every bound here is monotone in the values of p, so a pointwise upper bound
    of the task's p(theta) that stays in [0, 1] also gives a valid bound; a value
    outside [0, 1] is not a probability and the bound would mean nothing.
    Values are compared with a tolerance of max(1e-8, 16 ulps of their dtype)
    (a float32 p may round to -1e-7 at pi/2).  Returns True, without checking, when
    p_fn's values are traced (p_fn closes over a traced argument).
    """
    if not callable(p_fn):
        raise JaxDistillError(f"p_fn must be a function theta -> p(theta) (eq. 17), got {type(p_fn).__name__}")
    theta = jnp.linspace(0.0, HALF_PI, _P_CHECK_POINTS, dtype=jnp.result_type(float))
    out = p_fn(theta)
    if _is_traced(out):
        return True
    out = np.asarray(out)
    if out.shape != theta.shape or not (np.issubdtype(out.dtype, np.floating) or np.issubdtype(out.dtype, np.integer)):
        raise JaxDistillError(f"p_fn must map an array of angles to a real array of the same shape (elementwise), "
                              f"got {out.dtype} of shape {out.shape} for angles of shape {theta.shape}")
    tol = max(_P_TOL, 16 * float(np.finfo(out.dtype).eps)) if np.issubdtype(out.dtype, np.floating) else 0.0
    vals = out.astype(np.float64)
    bad = ~np.isfinite(vals) | (vals < -tol) | (vals > 1.0 + tol)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise JaxDistillError(f"p_fn must return probabilities in [0, 1] for theta in [0, pi/2] (p(theta) of eq. 17 "
                              f"or an upper bound of it within [0, 1]); got p({float(theta[i]):.6g}) = {float(vals[i])!r}")
    return False


def _context(*xs):
    """float64 outside jit; the caller's precision inside a trace."""
    return contextlib.nullcontext() if _is_traced(*xs) else precision("float64")


def _prepare(p_fn, *xs):
    """Check p_fn and return the precision context to compute in: float64 unless
    an argument or p_fn's values are traced (then the caller's precision)."""
    traced = _is_traced(*xs)
    with contextlib.nullcontext() if traced else precision("float64"):
        p_traced = _check_p_fn(p_fn)
    return contextlib.nullcontext() if traced or p_traced else precision("float64")


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


def _check_grid(grid_size, refine_iters) -> None:
    check_int("grid_size", grid_size, minimum=3)
    check_int("refine_iters", refine_iters, minimum=0)


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

    Hypotheses (docs/design.md fact 4): the student is the distillation
    solution w_hat of eq. 6 (the limit of the flow, Thm 1); the n inputs are
    i.i.d. from P_x and p is the reverse CDF (eq. 17) of their angle to w*, or
    a pointwise upper bound of it within [0, 1] (checked: values outside
    [0, 1] are refused); eq. 18 needs X of full rank almost surely, true for
    laws with a density, false for finite pools (pass ``d=None`` there).

    Args:
        p_fn: theta -> p(theta) of eq. 17 (jnp, elementwise).
        n: transfer-set size, an int or an integer array of any shape (a grid of n).
        d: input dimension (None: never use eq. 18; eq. 19, whose proof holds
            for every n, is used throughout).
        grid_size: beta grid points before refinement (>= 3).
        refine_iters: golden-section iterations in the bracket of the grid minimum.

    Returns:
        ``BoundResult`` with arrays of the shape of n.

    Raises:
        JaxDistillError: n, d, grid_size or refine_iters outside their range,
            or p_fn not a probability on [0, pi/2].

    Example:
        >>> task = KappaPolynomialTask(1000, kappa=1.0)
        >>> thm3_bound(task.p_theta, jnp.array([5, 20, 100]), task.d).bound
    """
    _check_n(n)
    d = _check_d(d)
    _check_grid(grid_size, refine_iters)
    with _prepare(p_fn, n):
        return _thm3_core(p_fn, n, d, 0.0, grid_size, refine_iters)


def thm_d1_bound(
    p_fn: PFn, n, d: int | None, epsilon, w_hat_norm, *, grid_size: int = 2049, refine_iters: int = 60
) -> BoundResult:
    """Theorem D.1 (eq. 78): the bound for a student epsilon-close to w_hat.

    For n < d, a student w with ||w - w_hat|| <= epsilon, where
    0 < epsilon <= ||w_hat|| / 2, and delta = sqrt(2 pi epsilon / ||w_hat||),

        E[R] <= min_{beta in [0, pi/2 - delta]} p(beta) + p(pi/2 - delta - beta)^n.   (78)

    ``bound_tight`` is p(beta) + (1 - p(beta)) p(pi/2 - delta - beta)^n, which
    follows from eqs. 86, 90, 91 exactly as the sharper form of Thm 3 does.

    Hypotheses and what happens outside them:

    * 0 < epsilon <= w_hat_norm / 2 (Lemma D.1 needs it to keep the angle
      between w and w_hat below pi/2): refused with a JaxDistillError naming
      ``epsilon``; NaN where epsilon or w_hat_norm is traced and out of range.
    * n < d (the theorem covers n < d only; for n >= d the exact solution is
      w* itself, eq. 18, but an epsilon-close student need not have zero
      risk): NaN bound and beta where n >= d.  ``d=None`` skips this check
      (the caller asserts n < d).
    * delta > pi/2 leaves no beta in [0, pi/2 - delta] (epsilon / ||w_hat||
      > pi / 8): the theorem says nothing, the result is the trivial bound 1
      with beta NaN.

    ``w_hat_norm`` is ||w_hat|| of the transfer set; for an expectation over
    transfer sets, use a lower bound of ||w_hat|| over them (a smaller norm
    only enlarges delta, so the bound stays valid).

    Args:
        p_fn: theta -> p(theta) (values in [0, 1], checked).
        n: int or integer array (grid of n).
        d: input dimension, or None.
        epsilon, w_hat_norm: positive scalars or arrays broadcasting against n.
        grid_size, refine_iters: as in ``thm3_bound``.

    Raises:
        JaxDistillError: epsilon, w_hat_norm, n, d, grid_size or refine_iters
            outside their range; p_fn not a probability on [0, pi/2].
    """
    _check_n(n)
    d = _check_d(d)
    _check_grid(grid_size, refine_iters)
    if not _is_traced(epsilon, w_hat_norm):
        e = np.asarray(epsilon, dtype=np.float64)
        w = np.asarray(w_hat_norm, dtype=np.float64)
        if not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise JaxDistillError(f"epsilon must be finite and > 0 (Thm D.1: a positive distance to w_hat), got {epsilon!r}")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise JaxDistillError(f"w_hat_norm must be finite and > 0 (||w_hat|| of the transfer set), got {w_hat_norm!r}")
        try:
            eb, wb = np.broadcast_arrays(e, w)
        except ValueError:
            raise JaxDistillError(f"epsilon (shape {e.shape}) and w_hat_norm (shape {w.shape}) must broadcast "
                                  "against each other") from None
        over = eb > 0.5 * wb
        if np.any(over):
            i = np.unravel_index(int(np.argmax(over)), over.shape) if over.ndim else ()
            raise JaxDistillError(
                f"epsilon must be in (0, w_hat_norm / 2]: Theorem D.1 (through Lemma D.1) assumes "
                f"epsilon <= ||w_hat|| / 2; got epsilon = {float(eb[i])!r} with w_hat_norm = {float(wb[i])!r}")
    with _prepare(p_fn, n, epsilon, w_hat_norm):
        n_arr = jnp.asarray(n)
        eps = jnp.asarray(epsilon, jnp.result_type(float))
        wn = jnp.asarray(w_hat_norm, jnp.result_type(float))
        try:
            shape = jnp.broadcast_shapes(n_arr.shape, eps.shape, wn.shape)
        except ValueError:
            raise JaxDistillError(f"n (shape {n_arr.shape}), epsilon (shape {eps.shape}) and w_hat_norm "
                                  f"(shape {wn.shape}) must broadcast against each other") from None
        n_arr = jnp.broadcast_to(n_arr, shape)
        eps = jnp.broadcast_to(eps, shape)
        wn = jnp.broadcast_to(wn, shape)
        delta = jnp.sqrt(2.0 * jnp.pi * eps / wn)
        res = _thm3_core(p_fn, n_arr, None, delta, grid_size, refine_iters)
        applies = (eps > 0) & (wn > 0) & (eps <= 0.5 * wn)
        if d is not None:
            applies = applies & (n_arr < d)
        empty = delta > HALF_PI

        def fix(v, is_beta):
            v = jnp.where(empty, jnp.nan if is_beta else 1.0, v)
            return jnp.where(applies, v, jnp.nan)

        return BoundResult(bound=fix(res.bound, False), beta=fix(res.beta, True),
                           bound_tight=fix(res.bound_tight, False), beta_tight=fix(res.beta_tight, True))


def cor1_margin(p_fn: PFn, *, grid_size: int = 4097, bisect_iters: int = 60) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """The smallest beta with p(beta) = 0 and gamma = p(pi/2 - beta) (Cor. 1).

    The grid locates the first zero of p, bisection sharpens it (beta is
    taken on the side where p is exactly 0, so Cor. 1's hypothesis holds).
    Returns (beta, gamma); both NaN when p has no zero on [0, pi/2] or
    gamma = 1 (no margin: e.g. the kappa and Gaussian tasks).  An empirical
    p of sampled angles is 0 beyond the largest sampled angle, so its "margin"
    is an artefact of the sample unless the law has one (pools: every angle).
    """
    check_int("grid_size", grid_size, minimum=2)
    check_int("bisect_iters", bisect_iters, minimum=0)
    with _prepare(p_fn):
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

    Hypothesis: some beta in [0, pi/2] has p(beta) = 0 and
    gamma = p(pi/2 - beta) < 1; gamma is taken at the smallest such beta
    (``cor1_margin``).  Where the hypothesis fails (no margin) the result is
    NaN everywhere: "Cor. 1 does not apply", a property of p_fn rather than
    of an argument, hence a flag rather than an error.  0 where n >= d
    (eq. 18, which Cor. 1 inherits from Thm 3; same full-rank proviso).
    """
    _check_n(n)
    d = _check_d(d)
    with _prepare(p_fn, n):
        _, gamma = _cor1_margin_core(p_fn, 4097, 60)
        n_arr = jnp.asarray(n)
        out = _pow_n(jnp.where(jnp.isnan(gamma), 1.0, gamma), n_arr.astype(jnp.result_type(float)))
        if d is not None:
            out = jnp.where(n_arr >= d, 0.0, out)
        return jnp.where(jnp.isnan(gamma), jnp.nan, out)


COR2_C = 1.0


def cor2_bound(n, kappa, c=COR2_C) -> Float[Array, "..."]:
    """Corollary 2 (eq. 21): c (1 + (log n)^kappa) / n^kappa, proved for c = 1.

    Hypothesis: p(theta) <= c (1 - 2 theta / pi)^kappa for every theta in
    [0, pi/2], with kappa >= 0 (the kappa-polynomial task and the margin task
    with its kappa satisfy it with c = 1).  The constant c can only be 1:
    at theta = 0 the hypothesis reads p(0) = 1 <= c, and the proof (eqs.
    22-23) bounds the second term c^n (2 beta / pi)^(n kappa) by
    c n^(-kappa), which needs c^n <= c, i.e. c <= 1.  Any other c is refused
    (for c > 1 nothing is proved; for c < 1 the hypothesis is false for every
    task).  ``c`` is kept as an explicit argument so that the constant of
    eq. 21 is visible at the call site.  Holds for every n (the formula, not
    0, also for n >= d).  n and kappa broadcast against each other.

    Raises:
        JaxDistillError: n not an integer >= 1, kappa not finite >= 0, c != 1.
    """
    _check_n(n)
    if not _is_traced(kappa, c):
        k = np.asarray(kappa, dtype=np.float64)
        if not np.all(np.isfinite(k)) or np.any(k < 0):
            raise JaxDistillError(f"kappa must be finite and >= 0 (Cor. 2), got {kappa!r}")
        cc = np.asarray(c, dtype=np.float64)
        if not np.all(cc == COR2_C):
            raise JaxDistillError(
                f"c must be 1 (allowed range: c = 1): Corollary 2 needs p(0) = 1 <= c and its proof uses "
                f"c^n <= c, i.e. c <= 1; got c = {c!r}")
    with _context(n, kappa, c):
        dt = jnp.result_type(float)
        nf = jnp.asarray(n).astype(dt)
        k = jnp.asarray(kappa, dt)
        ln = jnp.log(nf)
        cc = jnp.asarray(c, dt)
        out = cc * (1.0 + jnp.where(ln > 0, ln, 0.0) ** k) / nf**k
        # under a trace the checks above cannot run: flag what they would refuse
        return jnp.where((cc == COR2_C) & (k >= 0), out, jnp.nan)


def cor2_constant(p_fn: PFn, kappa: float, *, grid_size: int = 4097) -> Float[Array, ""]:
    """The smallest c with p(theta) <= c (1 - 2 theta / pi)^kappa on a theta grid
    (a grid estimate of the supremum).  Always >= p(0) = 1 for a genuine p;
    Cor. 2 (``cor2_bound``) applies when it is 1 (exactly 1 for the kappa and
    margin tasks), and is not proved when it exceeds 1."""
    check_real("kappa", kappa, ge=0.0)
    check_int("grid_size", grid_size, minimum=2)
    with _prepare(p_fn):
        dt = jnp.result_type(float)
        theta = jnp.linspace(0.0, HALF_PI, grid_size, dtype=dt)[:-1]
        return jnp.max(p_fn(theta) / (1.0 - theta / HALF_PI) ** kappa)


__all__ = ["BoundResult", "thm3_bound", "thm_d1_bound", "cor1_bound", "cor1_margin", "cor2_bound", "cor2_constant"]
