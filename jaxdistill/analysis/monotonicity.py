"""Monotonicity index (eq. 34) and the size of the angle change (section 5.3).

    m(w) = P_{X ~ P_x^n, x ~ P_x}[ alpha-bar(w*, w([X, x])) < alpha-bar(w*, w(X)) ]   (34)

For the gradient-flow learner (and its closed-form limit) Lemma 1 makes the
angle non-increasing on nested sets, and almost surely strictly decreasing
for n < d, so m = 1; a learner that ignores the data has m = 1/2.
Section 5.3 asks for a quantitative version ("by how much an extra data
point helps"): ``angle_changes`` alpha-bar(X + x) - alpha-bar(X) per set, with
its mean and standard error.

PRNG discipline (the runner's, ``keys.set_key_pair``): pair i uses
k_data, k_learn = split(fold_in(key, i)); ``task.sample_nested(k_data, n)``
gives exactly the transfer set ``distill`` trains on for set i plus an
extra input drawn with fold_in(k_data, EXTRA_STREAM) (for a pool: from the
pool minus X), and with ``coupling="shared"`` (default) the learner gets the
same k_learn for X and for [X; x] (a random initialisation or w_delta
direction is common to both fits); with ``coupling="independent"`` the
second fit gets fold_in(k_learn, 1), an independent draw.

Two choices change the estimand (docs/design.md fact 12) and are reported
with it: the coupling above (for w_delta at delta = 1/16, kappa = 1,
d = 100, n = 5 the index is 0.86 shared and 0.72 independent), and ties:
|change| <= atol counts as "no decrease" under the strict inequality of
eq. 34 (``MonotonicityEstimate.ties`` gives their share; 60% for the
max-margin hard-target learner there).

The risk kind (``kind="risk"``; docs/design.md fact 12, last paragraph):
the probability that adding x strictly LOWERS the transfer risk (eq. 4) of
the student, both students' risks measured the same way (exactly, or on ONE
held-out sample shared by both, so the comparison adds no sampling noise
between them).  For a rotationally symmetric task without an angular margin
the exact risk is a strictly increasing function R(phi) of the signed angle
(fact 3), so for students with w.w* >= 0 (every distilled student: w_hat =
P_X w*) the two kinds agree set by set; a finite held-out sample of M inputs
only adds ties (risks move in steps of 1/M).  The same estimate for any
K-class or nonlinear student is ``nonlinear.risk_monotonicity_index``.
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ..defaults import DEFAULTS
from .._precision import check_dtype, precision
from ..design import two_class_logits
from ..keys import as_key, held_out_key, key_repr, set_key_pair
from ..runner import SetProgram, plan_chunks, run_program
from ..runstore import RunStore
from ..samplers import sampler_kind
from ..status import SUCCESS_CODES, Status
from ..students.base import AbstractLearner, FlowLearner
from ..students.gram import resolve_sampler
from ..tasks import EXTRA_STREAM, Task
from ..teachers import TargetSpec, check_target_spec
from ..validation import JaxDistillError, check_choice, check_int, check_real
from .angles import unsigned_angle
from .risk import RiskEstimate, expected_risk, resolve_num_test, resolve_risk_method


COUPLINGS = ("shared", "independent")


EXACT_ANGLE_ATOL = 1e-12  # radians: the tie tolerance of exact learners (closed form: angle errors ~1e-15 for n < d)


def default_angle_atol(learner) -> float:
    """The default tie tolerance of angle changes (radians) for ``learner``:
    ten times the finest ``newton_tol`` of its flows (a flow stops within
    newton_tol relative of its limit, so its angle is accurate to about
    that: at n >= d, where both students are w*, flows with newton_tol 1e-9
    give angle changes up to ~1e-9 of pure rounding), or
    ``EXACT_ANGLE_ATOL`` for a learner without a flow."""
    from ..students.flow_config import FlowConfig

    leaves = jax.tree_util.tree_leaves(learner, is_leaf=lambda x: isinstance(x, FlowConfig))
    tols = [leaf.newton_tol for leaf in leaves if isinstance(leaf, FlowConfig)]
    return max([EXACT_ANGLE_ATOL, *(10.0 * float(t) for t in tols)])


def check_coupling(coupling: str, learner) -> str:
    """``coupling`` checked against ``COUPLINGS`` and against the learner:
    "independent" applies only to a learner that draws from its key
    (``AbstractLearner.randomised``: w_delta, deep and network students);
    for the others both couplings are the same estimand, so it is refused."""
    check_choice("coupling", coupling, COUPLINGS)
    if coupling == "independent" and not getattr(learner, "randomised", False):
        raise JaxDistillError(f"coupling='independent' applies only to a randomised learner (w_delta, deep or network "
                              f"students, which draw from their key); {type(learner).__name__} is deterministic, so "
                              "both couplings give the same index")
    return coupling
MONOTONICITY_KINDS = ("angle", "risk")


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
        ties: share of sets with |change| <= atol (counted as "no decrease").
        coupling: "shared" or "independent" (the learner's random draw for
            [X; x]; see the module docstring); None when not recorded.
        atol: the tie tolerance used (radians).
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
    ties: float = float("nan")
    coupling: str | None = None
    atol: float = float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return (self.index - 1.959963984540054 * self.se, self.index + 1.959963984540054 * self.se)

    def summary(self) -> dict:
        out = {k: getattr(self, k) for k in ("index", "se", "num_sets", "angle_change_mean", "angle_change_se",
                                             "risk_X_mean", "risk_X_se", "nonincreasing", "num_failed", "risk_method",
                                             "ties", "coupling", "atol")}
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
        return MonotonicityEstimate(nan, nan, 0, nan, nan, change, nan, nan, nan, int((~ok).sum()), risk_method,
                                    atol=float(atol))
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
        ties=float(np.mean(np.abs(change) <= atol)), atol=float(atol),
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


@dataclass(frozen=True)
class RiskMonotonicityEstimate:
    """Risk-monotonicity index: the share of nested pairs (X, [X, x]) where
    the student trained on [X, x] has a strictly LOWER transfer risk than the
    one trained on X (docs/design.md fact 12; the risk analogue of eq. 34).

    Attributes:
        index: share of strict decreases (risk_plus < risk_X - atol).  Ties
            count as "no decrease", as in eq. 34's strict inequality.
        se: binomial standard error sqrt(m (1 - m) / num_sets).
        ties: share of pairs with |risk_plus - risk_X| <= atol.
        increases: share of strict increases; index + ties + increases = 1.
        num_sets: pairs behind the estimate (both fits successful).
        risk_change_mean, risk_change_se: mean of risk_plus - risk_X and its SE.
        risk_changes: the per-pair changes, [num_sets].
        risk_X_mean, risk_X_se, risk_plus_mean: mean risks of the two students.
        num_failed: pairs dropped because a fit failed.
        failed_sets: [{"index": i, "status": name}] for every dropped pair.
        risk_method: "exact" (the task's exact risk, or a finite test set's
            exact disagreement) or "mc" (one held-out sample shared by all
            students and pairs).
        num_test: held-out inputs of Monte-Carlo risk (None when exact).
        atol: the tie tolerance used (0: risks on a finite sample move in
            steps of 1/M, equal counts give equal risks bit for bit).
        coupling: "shared" or "independent".
    """

    index: float
    se: float
    ties: float
    increases: float
    num_sets: int
    risk_change_mean: float
    risk_change_se: float
    risk_changes: np.ndarray
    risk_X_mean: float
    risk_X_se: float
    risk_plus_mean: float
    num_failed: int = 0
    failed_sets: tuple = ()
    risk_method: str = "exact"
    num_test: int | None = None
    atol: float = 0.0
    coupling: str | None = None

    kind = "risk"

    @property
    def ci95(self) -> tuple[float, float]:
        return (self.index - 1.959963984540054 * self.se, self.index + 1.959963984540054 * self.se)

    def summary(self) -> dict:
        keys = ("index", "se", "ties", "increases", "num_sets", "risk_change_mean", "risk_change_se", "risk_X_mean",
                "risk_X_se", "risk_plus_mean", "num_failed", "risk_method", "num_test", "atol", "coupling")
        out = {k: getattr(self, k) for k in keys}
        out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
        out["failed_sets"] = [dict(f) for f in self.failed_sets]
        out["kind"] = self.kind
        return out


def monotonicity_from_risks(
    risk_X: Float[Array, " B"],
    risk_plus: Float[Array, " B"],
    mask: Bool[Array, " B"] | None = None,
    *,
    atol: float = 0.0,
    risk_method: str = "exact",
    num_test: int | None = None,
    failed: list[dict] | tuple = (),
    coupling: str | None = None,
) -> RiskMonotonicityEstimate:
    """The risk-monotonicity index from the batched risks of the students
    trained on X and on [X, x] (same held-out inputs for both).

    A change below -atol is a decrease, above +atol an increase, else a tie
    (counted as no decrease, as eq. 34's strict inequality does)."""
    r0 = np.asarray(risk_X, dtype=np.float64)
    r1 = np.asarray(risk_plus, dtype=np.float64)
    if r0.shape != r1.shape or r0.ndim != 1:
        raise JaxDistillError(f"risk_X and risk_plus must both have shape [B], got {r0.shape} and {r1.shape}")
    atol = float(check_real("atol", atol, ge=0.0))
    ok = np.isfinite(r0) & np.isfinite(r1)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    change = (r1 - r0)[ok]
    m = int(change.size)
    nan = float("nan")
    common = dict(num_failed=int((~ok).sum()), failed_sets=tuple(failed), risk_method=risk_method,
                  num_test=num_test, atol=atol, coupling=coupling)
    if m == 0:
        return RiskMonotonicityEstimate(nan, nan, nan, nan, 0, nan, nan, change, nan, nan, nan, **common)
    idx = float(np.mean(change < -atol))
    ties = float(np.mean(np.abs(change) <= atol))
    cse = float(np.std(change, ddof=1) / math.sqrt(m)) if m > 1 else nan
    est = expected_risk(r0, ok)
    return RiskMonotonicityEstimate(
        index=idx, se=math.sqrt(idx * (1 - idx) / m), ties=ties, increases=float(np.mean(change > atol)),
        num_sets=m, risk_change_mean=float(np.mean(change)), risk_change_se=cse, risk_changes=change,
        risk_X_mean=est.mean, risk_X_se=est.se, risk_plus_mean=float(np.mean(r1[ok])), **common)


def nested_sets(key: PRNGKeyArray, task: Task, n: int) -> tuple[Float[Array, "n d"], Float[Array, " d"]]:
    """One transfer set X (as ``distill`` draws it from this data key) and one
    extra input x (``Task.sample_nested``)."""
    return task.sample_nested(key, n)


class NestedSetProgram(SetProgram):
    """One (X, x) pair of eq. 34: fit the learner on X and on [X; x].

    The static ``sampler`` only chooses which design the task draws
    (``samplers``): "inputs" draws X and x (``task.sample_nested``),
    "gram" the (n+1) x (n+1) Gram matrix of [X; x] and its X w*, once, X's
    being its leading n x n block (docs/design.md fact 13; same law on the
    symmetric tasks, not the same draws).  The learner is called the same
    way on both: ``fit(key, design, two_class_logits(u))``.

    ``coupling="shared"``: the learner gets the same learner key for both fits
    (a random initialisation or w_delta direction is common to both);
    ``"independent"``: the second fit gets fold_in(k_learn, 1) (the Gram
    sampler fits only deterministic learners, flow and closed form, for which
    the coupling does not matter: ``students.gram.gram_learner_problem(nested=True)``).
    The second fit is sequenced after the first (a data dependency), so their
    batched factorisations never run concurrently (docs/design.md fact 11).
    The students are measured by the sampler's piece: unsigned angles
    (eq. 16) and the risk of w(X); ``kind="risk"`` also gives ``risk_plus``,
    the risk of w([X; x]) measured as ``risk_X`` is (exact, or on the same
    held-out inputs).  A pair with non-finite inputs or teacher logits is
    fitted on a stand-in and marked ``NON_FINITE``
    (``finite.replace_non_finite``), as ``distill``'s sets are.
    """

    task: Task
    learner: AbstractLearner
    targets: TargetSpec = eqx.field(static=True)
    n: int = eqx.field(static=True)
    risk_method: str = eqx.field(static=True)
    coupling: str = eqx.field(static=True, default="shared")
    kind: str = eqx.field(static=True, default="angle")
    sampler: str = eqx.field(static=True, default="inputs")

    def one_set(self, key, index, shared):
        sampler = sampler_kind(self.sampler)
        k_data, k_learn = set_key_pair(key, index)
        finite, s0, s1 = sampler.draw_nested(self.task, k_data, self.n, self.targets)
        out0 = self.learner.fit(k_learn, s0.design, two_class_logits(s0.u))
        s1 = sampler.sequenced(s1, out0.w)
        k_plus = k_learn if self.coupling == "shared" else jax.random.fold_in(k_learn, 1)
        out1 = self.learner.fit(k_plus, s1.design, two_class_logits(s1.u))
        ok0 = jnp.isin(out0.status, jnp.asarray(SUCCESS_CODES))
        status = jnp.where(finite, jnp.where(ok0, out1.status, out0.status), Status.NON_FINITE).astype(out0.status.dtype)
        return {**sampler.measure_pair(self.task, s0, s1, out0.w, out1.w), "status": status,
                "status_X": out0.status, "status_plus": out1.status}

    def finish(self, batch, X_test):
        return sampler_kind(self.sampler).finish_pair(self.task, batch, X_test, self.risk_method, self.kind == "risk")


def monotonicity_index(
    key,
    task: Task,
    n: int,
    num_sets: int,
    learner: AbstractLearner | None = None,
    targets: TargetSpec = TargetSpec(),
    *,
    chunk_size: int | None = None,
    risk: str = "auto",
    num_test: int | None = None,
    dtype: str = "float64",
    atol: float | None = None,
    progress: bool = False,
    out: str | None = None,
    coupling: str = "shared",
    kind: str = "angle",
    sampler: str = DEFAULTS.sampler,
    hosts=None,
) -> MonotonicityEstimate | RiskMonotonicityEstimate | None:
    """Estimate the monotonicity index (eq. 34) of a learner on a task.

    Runs through the library's chunked runner (sharded over devices, failed
    pairs reported by index, resumable with ``out``).

    Args:
        key: PRNG key or integer seed.
        task: any task (pools: n + 1 <= pool size).
        n: size of X; the nested set [X; x] has n + 1 inputs.
        num_sets: number of (X, x) pairs.
        learner: any ``students.AbstractLearner`` (default: gradient flow).
        targets: teacher targets (soft by default).
        chunk_size: pairs per compiled chunk (default: bounded memory).
        risk: "auto", "exact" or "mc": how risk_X is computed.
        num_test: held-out inputs of Monte-Carlo risk (default
            ``DEFAULTS.num_test``, 10,000); refused with exact risk and on a
            pool task (whose test inputs are its own).
        atol: changes within +-atol are ties, not decreases.  Angle kind:
            radians, default ``default_angle_atol(learner)``: 1e-12 for
            exact learners (closed form: angle errors ~1e-15 for n < d),
            10 x newton_tol for a learner with a flow (1e-8 by default: a
            flow is accurate to newton_tol relative, so at n >= d, where
            both students are w*, its angle changes are rounding up to
            ~1e-9).  Risk kind: default 1e-12 for exact risk (quadrature
            rounding when both students are ~w*), 0 for Monte-Carlo risk
            (steps of 1/num_test).
        progress: show a progress bar.
        out: a folder for the resumable store of the per-pair results.
        coupling: "shared" (default: a randomised learner such as w_delta
            reuses its random draw for X and [X; x]) or "independent" (a
            fresh draw for [X; x]); different estimands (module docstring).
            Deterministic learners give the same index either way.
        kind: "angle" (default; eq. 34, the unsigned angle to w*) or "risk"
            (the transfer risk of ``risk``, both students on the same
            held-out inputs; docs/design.md fact 12).
        sampler: "auto" (default, as ``distill`` and the command's
            ``--sampler``: gram where it applies, else inputs), "inputs"
            (draw X and x) or "gram" (draw the (n+1) x (n+1) Gram matrix of
            [X; x] and its teacher logits, O(n^2) a pair whatever d: the
            symmetric tasks, n + 1 < d, the flow or the closed form, exact
            risk; refused with the reason elsewhere).  Same law, not the
            same draws.
        hosts: a ``hosts.Hosts`` of a multi-host run (needs ``out`` in a
            folder shared by all processes): this process computes its
            chunks of the pairs; process 0 merges them, the other
            processes return None.

    Returns:
        ``MonotonicityEstimate`` (kind "angle") or ``RiskMonotonicityEstimate``
        (kind "risk") over the pairs where both fits succeeded.

    Example:
        >>> est = monotonicity_index(0, KappaPolynomialTask(100, 1.0), n=5, num_sets=1000)
        >>> est.index, est.se, est.angle_change_mean
    """
    learner = learner if learner is not None else FlowLearner()
    if not isinstance(learner, AbstractLearner) or learner.multiclass:
        raise JaxDistillError(f"learner must be a binary jaxdistill.students.AbstractLearner, got "
                              f"{type(learner).__name__} (K-class and kernel / network students: "
                              "nonlinear.risk_monotonicity_index)")
    if not isinstance(task, Task):
        raise JaxDistillError(f"task must be a jaxdistill.tasks.Task, got {type(task).__name__}")
    n = task.check_n(n, extra=1)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    dtype = check_dtype(dtype)
    learner = learner.for_dtype(dtype)
    learner.check_targets(check_target_spec(targets))
    risk = resolve_risk_method(task, risk)
    num_test = resolve_num_test(task, risk, num_test)
    check_coupling(coupling, learner)
    check_choice("kind", kind, MONOTONICITY_KINDS)
    if atol is None:
        atol = (0.0 if risk == "mc" else EXACT_ANGLE_ATOL) if kind == "risk" else default_angle_atol(learner)
    atol = check_real("atol", atol, ge=0.0)
    sampler = resolve_sampler(sampler, task, n + 1, learner, risk, False, nested=True)
    plan = plan_chunks(num_sets, chunk_size, n=n + 1, width=sampler_kind(sampler).width(task, n + 1), fits_per_set=2)
    key, seed_repr = as_key(key), key_repr(key)
    with precision(dtype):
        task_c = task.cast(dtype)
        X_test = task_c.held_out(held_out_key(key), num_test) if risk == "mc" else None
    program = NestedSetProgram(task_c, learner, targets, n, risk, coupling, kind, sampler)
    store = None
    if out is not None:
        config = {**task.config(), **learner.config(), "estimand": "monotonicity_index", "n": n,
                  "num_sets": num_sets, "targets": targets.kind, "temperature": targets.temperature,
                  "seed": seed_repr, "chunk_size": plan.chunk_size, "risk": risk, "num_test": num_test, "dtype": dtype}
        if coupling != "shared":  # older stores (shared coupling) keep resuming
            config["coupling"] = coupling
        if kind != "angle":
            config["monotonicity_kind"] = kind
        if sampler == "gram":  # inputs-sampler stores keep resuming
            config["sampler"] = "gram"
        store = RunStore(out, config)
    run = run_program(program, key, plan, shared=X_test, dtype=dtype, store=store, progress=progress, hosts=hosts)
    if not run.merged:
        return None
    a = run.arrays
    if kind == "risk":
        return monotonicity_from_risks(a["risk_X"], a["risk_plus"], run.ok, atol=atol, risk_method=risk,
                                       num_test=num_test if risk == "mc" else None, failed=run.failed_sets(),
                                       coupling=coupling)
    est = monotonicity_from_angles(a["angle_X"], a["angle_plus"], run.ok, a["risk_X"], risk_method=risk, atol=atol)
    return dataclasses.replace(est, coupling=coupling)


__all__ = [
    "check_coupling",
    "default_angle_atol",
    "EXACT_ANGLE_ATOL",
    "COUPLINGS",
    "MONOTONICITY_KINDS",
    "MonotonicityEstimate",
    "RiskMonotonicityEstimate",
    "monotonicity_from_risks",
    "monotonicity_index",
    "monotonicity_from_angles",
    "monotonicity_from_students",
    "nested_sets",
    "NestedSetProgram",
    "EXTRA_STREAM",
]
