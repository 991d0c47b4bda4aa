"""Monotonicity index (eq. 34) and the size of the angle change (section 5.3).

    m(w) = P_{X ~ P_x^n, x ~ P_x}[ alpha-bar(w*, w([X, x])) < alpha-bar(w*, w(X)) ]   (34)

For the gradient-flow learner (and its closed-form limit) Lemma 1 makes the
angle non-increasing on nested sets, and almost surely strictly decreasing
for n < d, so m = 1; a learner that ignores the data has m = 1/2.
Section 5.3 asks for a quantitative version ("by how much an extra data
point helps"): ``angle_changes`` alpha-bar(X + x) - alpha-bar(X) per set, with
its mean and standard error.

PRNG discipline (as ``simulate.distill``): set i uses
k_data, k_learn = split(fold_in(key, i)); X = task.sample(k_data, n) is
exactly the transfer set ``distill`` trains on for set i, the extra input is
drawn with fold_in(k_data, EXTRA_STREAM), and the learner gets the same
k_learn for X and for [X; x] (so a random initialisation or w_delta
direction is common to both fits).  For a ``PoolTask`` the extra input is
drawn from the pool minus X (sampling without replacement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._precision import check_dtype, precision
from ..students.flow import SUCCESS_CODES
from ..tasks import PoolTask, Task
from ..teachers import TargetSpec, teacher_logits
from ..validation import JaxDistillError, check_int
from .angles import unsigned_angle
from .risk import RiskEstimate, exact_risk, expected_risk, has_exact_risk, mc_risk

EXTRA_STREAM = 0xE87A  # fold_in tag of the extra input x
TEST_STREAM = 0x7E57  # same held-out stream as simulate.distill


@dataclass(frozen=True)
class MonotonicityEstimate:
    """Monotonicity index of a learner (eq. 34) with its uncertainty.

    Attributes:
        index: fraction of sets where adding x strictly decreased the
            unsigned student-teacher angle (eq. 34; by more than atol).
        se: binomial standard error sqrt(m (1 - m) / num_sets).
        num_sets: sets behind the estimate (both fits successful).
        angle_change_mean, angle_change_se: mean of alpha-bar(X + x) -
            alpha-bar(X) (radians; negative = the extra input helped) and its SE.
        angle_changes: the per-set changes, [num_sets].
        risk_X_mean, risk_X_se: expected transfer risk (eq. 4) of the student
            trained on X (exact where the task allows, else Monte-Carlo).
        nonincreasing: fraction of sets where the angle did not increase
            (by more than atol; weak monotonicity, Lemma 1's inequality 24).
        num_failed: sets dropped because a fit failed (non-success status).
        risk_method: "exact" or "mc".
    """

    index: float
    se: float
    num_sets: int
    angle_change_mean: float
    angle_change_se: float
    angle_changes: np.ndarray
    risk_X_mean: float
    risk_X_se: float
    nonincreasing: float = float("nan")
    num_failed: int = 0
    risk_method: str = "exact"

    @property
    def ci95(self) -> tuple[float, float]:
        return (self.index - 1.959963984540054 * self.se, self.index + 1.959963984540054 * self.se)

    def summary(self) -> dict:
        out = {k: getattr(self, k) for k in ("index", "se", "num_sets", "angle_change_mean", "angle_change_se",
                                             "risk_X_mean", "risk_X_se", "nonincreasing", "num_failed", "risk_method")}
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def monotonicity_from_angles(
    angle_X: Float[Array, " B"],
    angle_plus: Float[Array, " B"],
    mask: Bool[Array, " B"] | None = None,
    risks_X=None,
    risk_method: str = "exact",
    *,
    atol: float = 1e-12,
) -> MonotonicityEstimate:
    """Eq. 34 from batched unsigned angles of w(X) and w([X; x]) to w*.

    A change counts as a decrease when it is below -atol and as an increase
    when above +atol; |change| <= atol is a tie (floating-point noise, e.g.
    n >= d where both students equal w*), which eq. 34 does not count.
    """
    a0 = np.asarray(angle_X, dtype=np.float64)
    a1 = np.asarray(angle_plus, dtype=np.float64)
    if a0.shape != a1.shape or a0.ndim != 1:
        raise JaxDistillError(f"angle_X and angle_plus must both have shape [B], got {a0.shape} and {a1.shape}")
    ok = np.isfinite(a0) & np.isfinite(a1)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    change = (a1 - a0)[ok]
    m = int(change.size)
    if m == 0:
        nan = float("nan")
        return MonotonicityEstimate(nan, nan, 0, nan, nan, change, nan, nan, nan, int((~ok).sum()), risk_method)
    idx = float(np.mean(change < -atol))
    se = math.sqrt(idx * (1 - idx) / m)
    cse = float(np.std(change, ddof=1) / math.sqrt(m)) if m > 1 else float("nan")
    if risks_X is not None:
        est = expected_risk(np.asarray(risks_X, dtype=np.float64), ok)
    else:
        est = RiskEstimate(float("nan"), float("nan"), 0)
    return MonotonicityEstimate(
        index=idx, se=se, num_sets=m, angle_change_mean=float(np.mean(change)), angle_change_se=cse,
        angle_changes=change, risk_X_mean=est.mean, risk_X_se=est.se,
        nonincreasing=float(np.mean(change <= atol)), num_failed=int((~ok).sum()), risk_method=risk_method,
    )


def monotonicity_from_students(
    w_X: Float[Array, "B d"],
    w_plus: Float[Array, "B d"],
    w_star: Float[Array, " d"],
    mask: Bool[Array, " B"] | None = None,
    risks_X=None,
    *,
    atol: float = 1e-12,
) -> MonotonicityEstimate:
    """Eq. 34 from batched students trained on X and on [X; x] (any learner)."""
    with precision():
        a0 = unsigned_angle(jnp.asarray(w_X), jnp.asarray(w_star))
        a1 = unsigned_angle(jnp.asarray(w_plus), jnp.asarray(w_star))
    return monotonicity_from_angles(a0, a1, mask, risks_X, atol=atol)


def nested_sets(key: PRNGKeyArray, task: Task, n: int) -> tuple[Float[Array, "n d"], Float[Array, " d"]]:
    """One transfer set X (as ``distill`` draws it from this key) and one extra input x."""
    k_data = key
    X = task.sample(k_data, n)
    k_x = jax.random.fold_in(k_data, EXTRA_STREAM)
    if isinstance(task, PoolTask):
        pool = jnp.asarray(task.pool, X.dtype)
        # the indices PoolTask.sample drew, to exclude them
        idx = jax.random.choice(k_data, task.pool_size, (n,), replace=False)
        free = jnp.ones(task.pool_size, X.dtype).at[idx].set(0.0)
        j = jax.random.choice(k_x, task.pool_size, (), p=free / jnp.sum(free))
        x = pool[j]
    else:
        x = task.sample(k_x, 1)[0]
    return X, x


@eqx.filter_jit
def _chunk(task: Task, learner, targets: TargetSpec, n: int, key, indices, X_test, risk_method: str):
    w_star = jnp.asarray(task.w_star)

    def one(i):
        k_data, k_learn = jax.random.split(jax.random.fold_in(key, i))
        X, x = nested_sets(k_data, task, n)
        Xp = jnp.concatenate([X, x[None, :]], axis=0)
        out0 = learner.fit(k_learn, X, teacher_logits(X, w_star, targets))
        out1 = learner.fit(k_learn, Xp, teacher_logits(Xp, w_star, targets))
        return out0.w, out1.w, out0.status, out1.status

    w0, w1, s0, s1 = jax.vmap(one)(indices)
    a0 = unsigned_angle(w0, w_star)
    a1 = unsigned_angle(w1, w_star)
    if risk_method == "exact":
        r = exact_risk(task, w0)
    else:
        r, _ = mc_risk(w0, X_test, w_star)
    return a0, a1, s0, s1, r


def monotonicity_index(
    key,
    task: Task,
    n: int,
    num_sets: int,
    learner=None,
    targets: TargetSpec = TargetSpec(),
    *,
    chunk_size: int | None = None,
    risk: str = "auto",
    num_test: int = 10_000,
    dtype: str = "float64",
    atol: float = 1e-12,
) -> MonotonicityEstimate:
    """Estimate the monotonicity index (eq. 34) of a learner on a task.

    Args:
        key: PRNG key or integer seed.
        task: any task (pools: n + 1 <= pool size).
        n: size of X; the nested set [X; x] has n + 1 inputs.
        num_sets: number of (X, x) pairs.
        learner: any ``students.base`` learner (default: gradient flow).
        targets: teacher targets (soft by default).
        chunk_size: pairs per compiled chunk (default: bounded memory).
        risk: "auto", "exact" or "mc": how risk_X is computed.
        num_test: held-out inputs for Monte-Carlo risk.
        atol: angle changes within +-atol (radians) are ties, not decreases.
            The default suits exact learners (closed form: angle errors
            ~1e-15); for a learner accurate to a relative error e (the flow's
            newton_tol) use atol ~ 10 e when n >= d matters.

    Returns:
        ``MonotonicityEstimate`` over the pairs where both fits succeeded.

    Example:
        >>> est = monotonicity_index(0, KappaPolynomialTask(100, 1.0), n=5, num_sets=1000)
        >>> est.index, est.se, est.angle_change_mean
    """
    from ..simulate import _cast_task, as_key, default_chunk_size
    from ..students.base import FlowLearner

    learner = learner if learner is not None else FlowLearner()
    n = check_int("n", n, minimum=1)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    if isinstance(task, PoolTask) and n + 1 > task.pool_size:
        raise JaxDistillError(f"n must be <= pool size - 1 = {task.pool_size - 1} (X and the extra input are distinct), got {n}")
    if risk not in ("auto", "exact", "mc"):
        raise JaxDistillError(f"risk must be one of auto, exact, mc; got {risk!r}")
    check_int("num_test", num_test, minimum=1)
    check_dtype(dtype)
    if getattr(learner, "name", "") == "closed-form" and not targets.is_soft:
        raise JaxDistillError("the closed-form learner needs soft targets: with hard labels the loss has no finite minimiser")
    if risk == "auto":
        risk = "exact" if has_exact_risk(task) else "mc"
    if risk == "exact" and not has_exact_risk(task):
        raise JaxDistillError(f"risk='exact' is not available for {type(task).__name__}; use risk='mc'")
    cs = chunk_size if chunk_size is not None else min(default_chunk_size(n + 1, task.d) // 2 or 1, num_sets)
    cs = check_int("chunk_size", cs, minimum=1)
    a0s, a1s, oks, rs = [], [], [], []
    with precision(dtype):
        key = as_key(key)
        task_c = _cast_task(task, dtype)
        X_test = task_c.held_out(jax.random.fold_in(key, TEST_STREAM), num_test) if risk == "mc" else jnp.zeros((1, task.d))
        for lo in range(0, num_sets, cs):
            m = min(cs, num_sets - lo)
            idx = jnp.arange(lo, lo + cs)
            a0, a1, s0, s1, r = _chunk(task_c, learner, targets, n, key, idx, X_test, risk)
            a0s.append(np.asarray(a0)[:m])
            a1s.append(np.asarray(a1)[:m])
            oks.append((np.isin(np.asarray(s0), SUCCESS_CODES) & np.isin(np.asarray(s1), SUCCESS_CODES))[:m])
            rs.append(np.asarray(r)[:m])
    return monotonicity_from_angles(np.concatenate(a0s), np.concatenate(a1s), np.concatenate(oks),
                                    np.concatenate(rs), risk_method=risk, atol=atol)


__all__ = [
    "MonotonicityEstimate",
    "monotonicity_index",
    "monotonicity_from_angles",
    "monotonicity_from_students",
    "nested_sets",
    "EXTRA_STREAM",
]
