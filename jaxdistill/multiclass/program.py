"""``distill_multiclass``: K-class transfer sets -> softmax students -> risk and error.

The K-class counterpart of ``simulate.distill``: a :class:`MultiClassProgram`
(one transfer set: sample, targets, fit, distance to the closed form) run
by the one chunked runner (``runner.run_program``), so keys, chunks,
padding, sharding, failure reporting and resuming are those of every other
run (docs/design.md fact 7).

Per set: the transfer risk is the rate at which the student's argmax
differs from the teacher's on the held-out inputs (exact for finite test
sets, else Monte-Carlo with its binomial SE); with ground-truth labels the
test error is the rate at which the student's argmax differs from the label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._precision import check_dtype, precision
from ..analysis.risk import expected_risk
from ..finite import replace_non_finite
from ..keys import as_key, held_out_key, key_repr, set_key_pair
from ..results import jsonable
from ..sequencing import after
from ..runner import ChunkPlan, SetProgram, default_chunk_size, failed_sets, run_program
from ..runstore import RunStore
from ..status import Status, is_success
from ..validation import JaxDistillError, check_int
from .learners import AbstractSoftmaxLearner, make_softmax_learner
from .targets import MultiTargetSpec, predicted_class, target_log_probs
from .tasks import AbstractMultiClassTask


class MultiClassProgram(SetProgram):
    """One K-class transfer set: sample (X, U, y), targets V, fit, compare
    with the closed form (after the fit: a data dependency (``sequencing.after``)
    keeps the two factorisations sequential, docs/design.md fact 11)."""

    task: AbstractMultiClassTask
    learner: AbstractSoftmaxLearner
    targets: MultiTargetSpec = eqx.field(static=True)
    n: int = eqx.field(static=True)
    keep_students: bool = eqx.field(static=True, default=True)

    finite_outputs = ("risk",)

    def one_set(self, key, index, shared):
        task, n, K = self.task, self.n, self.task.num_classes
        k_data, k_learn = set_key_pair(key, index)
        X, U, y = task.sample_set(k_data, n)
        V = target_log_probs(U, y, self.targets)
        finite, (X, U, V) = replace_non_finite((X, U, V), (jnp.eye(n, task.d, dtype=X.dtype), jnp.zeros_like(U),
                                                           jnp.eye(n, K, dtype=X.dtype)), allow_inf=(False, False, True))
        out = self.learner.fit(k_learn, X, V)
        # the closed form's factorisation waits for every output of the fit (its final Newton solve included)
        W_hat = self.learner.limit(after(X, out), V) if self.targets.has_finite_minimiser else None
        if W_hat is not None:
            rel = jnp.linalg.norm(out.W - W_hat) / jnp.linalg.norm(W_hat)
        else:
            rel = jnp.asarray(jnp.nan, X.dtype)
        status = jnp.where(finite, out.status, Status.NON_FINITE).astype(out.status.dtype)
        outputs = {"students": out.W, "status": status, "num_steps": out.num_steps, "loss": out.loss,
                   "rel_dist_closed_form": rel}
        if self.learner.needs_inputs:
            outputs["inputs"] = X
        outputs.update({"extra_" + k: v for k, v in out.extras.items()})
        return outputs

    def finish(self, batch, shared):
        X_test, U_test, y_test = shared
        teacher = predicted_class(U_test)
        W = batch["students"]
        M = X_test.shape[0]
        # every student's logits through its own ``predict`` (students with
        # ``needs_inputs`` also get their set's transfer inputs)
        classes = jax.lax.map(lambda a: predicted_class(self.learner.predict(a[0], a[1], X_test)),
                              (W, batch.get("inputs")))
        batch["risk"] = jnp.mean((classes != teacher).astype(X_test.dtype), axis=-1)
        if y_test is not None:
            batch["error"] = jnp.mean((classes != y_test).astype(X_test.dtype), axis=-1)
        batch["risk_se"] = (jnp.zeros_like(batch["risk"]) if self.task.risk_is_exact
                            else jnp.sqrt(batch["risk"] * (1.0 - batch["risk"]) / M))
        if not self.keep_students:
            del batch["students"]
            batch.pop("inputs", None)
        return batch


@dataclass
class MultiClassResult:
    """Per-set arrays of a K-class run and their statistics.

    Attributes:
        arrays: status, num_steps, loss, risk, risk_se, rel_dist_closed_form,
            error (with labels), extra_* and students [B, K, d] (if kept).
        config: the run's configuration; teacher_error: the teacher's own
            error on the held-out labels (None without labels); elapsed: seconds.
    """

    arrays: dict
    config: dict
    teacher_error: float | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> np.ndarray:
        return is_success(self.arrays["status"])

    @property
    def students(self):
        return self.arrays.get("students")

    def failed_sets(self) -> list[dict]:
        return failed_sets(self.arrays["status"], self.arrays.get("num_steps"))

    def expected_risk(self):
        return expected_risk(self.arrays["risk"], self.ok)

    def expected_error(self):
        """Mean test error against the labels over the successful sets (None without labels)."""
        return expected_risk(self.arrays["error"], self.ok) if "error" in self.arrays else None

    def summary(self) -> dict:
        ok = self.ok
        est = self.expected_risk()
        rel = self.arrays["rel_dist_closed_form"][ok]
        steps = self.arrays["num_steps"][ok]
        out = {
            "num_classes": self.config["num_classes"],
            "risk_mean": est.mean,
            "risk_se": est.se,
            "risk_ci95": list(est.ci95),
            "risk_method": self.config["risk"],
            "num_sets": est.num_sets,
            "num_sets_requested": int(ok.size),
            "num_failed": int((~ok).sum()),
            "failed_sets": self.failed_sets(),
            "angle_mean": None,
            "max_rel_dist_closed_form": (None if self.config.get("method") == "closed-form" or rel.size == 0
                                         or np.all(np.isnan(rel)) else float(np.nanmax(rel))),
            "mean_num_steps": float(np.mean(steps)) if steps.size else float("nan"),
            "max_num_steps": int(np.max(steps)) if steps.size else 0,
            "elapsed_s": self.elapsed,
            "config": self.config,
        }
        err = self.expected_error()
        if err is not None:
            out.update({"error_mean": err.mean, "error_se": err.se, "error_ci95": list(err.ci95),
                        "teacher_error": self.teacher_error})
        return jsonable(out)


@dataclass(frozen=True)
class MultiClassSetup:
    """A validated K-class run, ready for ``runner.run_program``."""

    program: MultiClassProgram
    key: jax.Array
    plan: ChunkPlan
    shared: tuple
    config: dict
    dtype: str
    teacher_error: float | None


def setup_multiclass(key, task: AbstractMultiClassTask, n: int, num_sets: int, *,
                     learner: AbstractSoftmaxLearner | None = None, targets: MultiTargetSpec = MultiTargetSpec(),
                     chunk_size: int | None = None, num_test: int = 10_000, keep_students: bool = True,
                     dtype: str = "float64") -> MultiClassSetup:
    """Validate every argument (before tracing) and build the run."""
    if not isinstance(task, AbstractMultiClassTask):
        raise JaxDistillError(f"task must be a K-class task (multiclass.MultiClassPoolTask, MultiClassGaussianTask), "
                              f"got {type(task).__name__}")
    learner = make_softmax_learner("flow") if learner is None else learner
    if not isinstance(learner, AbstractSoftmaxLearner):
        raise JaxDistillError(f"learner must be a multiclass.AbstractSoftmaxLearner, got {type(learner).__name__}")
    if not isinstance(targets, MultiTargetSpec):
        raise JaxDistillError(f"targets must be a MultiTargetSpec, got {targets!r}")
    dtype = check_dtype(dtype)
    learner = learner.for_dtype(dtype)
    learner.check_targets(targets)
    if targets.needs_labels and not task.has_labels:
        raise JaxDistillError("targets='mixed' needs ground-truth labels: a pool with 'labels' (and 'test_labels' "
                              "with test inputs) or a task with a labelling teacher")
    n = task.check_n(n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    num_test = check_int("num_test", num_test, minimum=1)
    key, seed_repr = as_key(key), key_repr(key)
    if chunk_size is None:
        chunk_size = min(default_chunk_size(n, task.d), num_sets)
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    with precision(dtype):
        task_c = task.cast(dtype)
        shared = task_c.held_out(held_out_key(key), num_test)
        teacher_error = (None if shared[2] is None
                         else float(np.mean(np.asarray(predicted_class(shared[1])) != np.asarray(shared[2]))))
    program = MultiClassProgram(task_c, learner, targets, n, keep_students)
    config = dict(task.config())
    config.update(learner.config())
    config.update(targets.config())
    config.update({"n": n, "num_sets": num_sets, "seed": seed_repr, "chunk_size": chunk_size,
                   "risk": "exact" if task.risk_is_exact else "mc", "num_test": None if task.risk_is_exact else num_test,
                   "dtype": dtype})
    return MultiClassSetup(program, key, ChunkPlan(num_sets, chunk_size), shared, config, dtype, teacher_error)


def distill_multiclass(key, task: AbstractMultiClassTask, n: int, num_sets: int, *, method: str | None = None,
                       learner: AbstractSoftmaxLearner | None = None, targets: MultiTargetSpec = MultiTargetSpec(),
                       flow=None, gd=None, chunk_size: int | None = None, num_test: int = 10_000,
                       keep_students: bool = True, dtype: str = "float64", progress: bool = False,
                       out: str | None = None) -> MultiClassResult:
    """Distil a K-class teacher into linear softmax students on ``num_sets``
    transfer sets of size n (the K-class ``distill``).

    Args:
        key: PRNG key or integer seed.
        task: an ``AbstractMultiClassTask``.
        method: "flow" (default), "closed-form" or "gd"; or ``learner``.
        targets: ``MultiTargetSpec`` (soft / hard / mixed, temperature, soft_ratio).
        flow, gd: ``FlowConfig`` / ``GDConfig`` for the method that uses them.
        num_test: held-out inputs of Monte-Carlo risk (tasks without a finite test set).
        out: a folder: finished chunks are saved and a rerun resumes.

    Returns:
        ``MultiClassResult``: per-set risk (argmax disagreement with the
        teacher), error against labels when the task has them, distance to
        the closed form, status.
    """
    if learner is not None and (method is not None or flow is not None or gd is not None):
        raise JaxDistillError("method/flow/gd cannot be combined with learner=")
    if learner is None:
        learner = make_softmax_learner("flow" if method is None else method, flow=flow, gd=gd)
    setup = setup_multiclass(key, task, n, num_sets, learner=learner, targets=targets, chunk_size=chunk_size,
                             num_test=num_test, keep_students=keep_students, dtype=dtype)
    store = RunStore(out, setup.config) if out is not None else None
    run = run_program(setup.program, setup.key, setup.plan, shared=setup.shared, dtype=setup.dtype, store=store,
                      progress=progress)
    return MultiClassResult(run.arrays, setup.config, setup.teacher_error, run.elapsed)


__all__ = ["MultiClassProgram", "MultiClassResult", "MultiClassSetup", "setup_multiclass", "distill_multiclass"]
