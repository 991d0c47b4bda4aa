"""The K-class path of ``jd.distill``: K-class transfer sets -> softmax students -> risk and error.

:class:`MultiClassSampler` is the K-class piece of the one set program
``simulate.DistillProgram`` (sampler "multiclass", beside the binary
"inputs" and "gram" pieces of ``samplers``): how a K-class set is drawn
(sample, targets) and how its student is measured (distance to the closed
form or minimiser; argmax risk and error per batch).  The program runs on
the one chunked runner (``runner.run_program``), so keys, chunks, padding,
sharding, failure reporting and resuming are those of every other run
(docs/design.md fact 7).  ``setup_multiclass`` validates a K-class run.

Per set: the transfer risk is the rate at which the student's argmax
differs from the teacher's on the held-out inputs (exact for finite test
sets, else Monte-Carlo with its binomial SE); with ground-truth labels the
test error is the rate at which the student's argmax differs from the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._precision import check_dtype, precision
from ..design import InputsDesign
from ..finite import replace_non_finite
from ..keys import as_key, held_out_key, key_repr
from ..sequencing import after
from ..defaults import DEFAULTS
from ..runner import ChunkPlan, plan_chunks
from ..validation import DOCS_CLOSED_FORM, JaxDistillError, check_choice, check_int
from .learners import AbstractSoftmaxLearner, SoftmaxClosedFormLearner, make_softmax_learner
from .minimiser import LimitKind
from .targets import MultiTargetSpec, predicted_class, target_log_probs
from .tasks import AbstractMultiClassTask


DEFAULT_NUM_TEST = DEFAULTS.num_test


class MultiClassDrawnSet(eqx.Module):
    """One K-class transfer set as :class:`MultiClassSampler` drew it.

    Attributes:
        design: ``InputsDesign(X)`` [n, d].
        V: the log targets the student is trained on, [n, K] (-inf allowed: hard labels).
    """

    design: InputsDesign
    V: Float[Array, "n K"]


class MultiClassSampler(eqx.Module):
    """The K-class piece of ``simulate.DistillProgram`` (sampler
    "multiclass"), beside the binary ``samplers.InputsSampler`` and
    ``samplers.GramSampler``: how a K-class task's set is drawn and how a
    softmax student fitted on it is measured.

    * draw: (X, U, y) = ``task.sample_set``, V = ``target_log_probs(U, y,
      targets)``; a non-finite set becomes the stand-in (I [n, d], 0, I [n, K]);
    * measure (per set, after the fit: ``sequencing.after`` keeps the limit's
      factorisations behind every output of the fit, docs/design.md fact 11):
      the student W, the distance to the learner's reference (the interpolant
      or the convex minimiser, ``minimiser.LimitKind``) where the targets
      have a finite minimiser, and the set's inputs for students that
      predict from them (``needs_inputs``);
    * finish (per batch, on the shared held-out (X_test, U_test, y_test)):
      the rate at which each student's argmax (its own ``predict``, one
      student at a time under ``lax.map``) differs from the teacher's
      (exact over a finite test set, else Monte-Carlo with its binomial SE)
      and, with labels, from the label.
    """

    finite_outputs = ("risk",)

    def width(self, task: AbstractMultiClassTask, rows: int) -> int:
        """Numbers per row of a drawn set (``runner.plan_chunks``): d."""
        return task.d

    def draw(self, task: AbstractMultiClassTask, key: PRNGKeyArray, n: int,
             targets: MultiTargetSpec) -> tuple[Bool[Array, ""], MultiClassDrawnSet]:
        """(X, U, y) = ``task.sample_set(key, n)`` and its log targets V."""
        K = task.num_classes
        X, U, y = task.sample_set(key, n)
        V = target_log_probs(U, y, targets)
        finite, (X, U, V) = replace_non_finite((X, U, V), (jnp.eye(n, task.d, dtype=X.dtype), jnp.zeros_like(U),
                                                           jnp.eye(n, K, dtype=X.dtype)), allow_inf=(False, False, True))
        return finite, MultiClassDrawnSet(InputsDesign(X), V)

    def measure(self, task: AbstractMultiClassTask, learner: AbstractSoftmaxLearner, s: MultiClassDrawnSet, out,
                targets: MultiTargetSpec) -> dict[str, Array]:
        """Per set: the student W, its distance to the reference and the limit's kind."""
        X, V = s.design.X, s.V
        # the limit's factorisations wait for every output of the fit (its final Newton solve included);
        # limit_kind: the reference is the interpolant or the convex minimiser (minimiser.LimitKind)
        if targets.has_finite_minimiser:
            W_hat, limit_kind = learner.reference(after(X, out), V)
        else:
            W_hat, limit_kind = None, jnp.asarray(LimitKind.NONE, jnp.int32)
        if W_hat is not None:
            rel = jnp.linalg.norm(out.W - W_hat) / jnp.linalg.norm(W_hat)
        else:
            rel = jnp.asarray(jnp.nan, X.dtype)
        outputs = {"students": out.W, "rel_dist_closed_form": rel, "limit_kind": limit_kind}
        if learner.needs_inputs:
            outputs["inputs"] = X
        return outputs

    def finish(self, task: AbstractMultiClassTask, learner: AbstractSoftmaxLearner, batch: dict[str, Array],
               shared, risk_method: str, keep_students: bool) -> dict[str, Array]:
        """Per batch: argmax risk (and SE) and, with labels, test error."""
        X_test, U_test, y_test = shared
        teacher = predicted_class(U_test)
        W = batch["students"]
        M = X_test.shape[0]
        # every student's logits through its own ``predict`` (students with
        # ``needs_inputs`` also get their set's transfer inputs)
        classes = jax.lax.map(lambda a: predicted_class(learner.predict(a[0], a[1], X_test)),
                              (W, batch.get("inputs")))
        batch["risk"] = jnp.mean((classes != teacher).astype(X_test.dtype), axis=-1)
        if y_test is not None:
            batch["error"] = jnp.mean((classes != y_test).astype(X_test.dtype), axis=-1)
        batch["risk_se"] = (jnp.zeros_like(batch["risk"]) if task.risk_is_exact
                            else jnp.sqrt(batch["risk"] * (1.0 - batch["risk"]) / M))
        if not keep_students:
            del batch["students"]
            batch.pop("inputs", None)
        return batch


@dataclass(frozen=True)
class MultiClassSetup:
    """A validated K-class run: what ``simulate.setup_run`` builds its
    ``DistillProgram`` (sampler "multiclass") from, and the rest of the run."""

    task: AbstractMultiClassTask  # cast to the run's dtype
    learner: AbstractSoftmaxLearner
    targets: MultiTargetSpec
    n: int
    risk_method: str
    keep_students: bool
    key: jax.Array
    plan: ChunkPlan
    shared: tuple
    config: dict
    dtype: str
    teacher_error: float | None


def setup_multiclass(key, task: AbstractMultiClassTask, n: int, num_sets: int, *,
                     learner: AbstractSoftmaxLearner | None = None, targets: MultiTargetSpec = MultiTargetSpec(),
                     chunk_size: int | None = None, num_test: int | None = None, keep_students: bool = True,
                     dtype: str = "float64", risk: str = "auto", sampler: str = "auto") -> MultiClassSetup:
    """Validate every argument (before tracing) and build the K-class run
    (``simulate.setup_run`` calls it; ``jd.distill`` is the public entry).

    ``risk``: "auto", or "exact" / "mc" where they are what the task has
    (exact over a finite test set, Monte-Carlo on ``num_test`` held-out
    inputs otherwise); ``num_test`` is refused where the risk is exact;
    ``sampler``: "auto" or "inputs" (the Gram sampler is binary-only)."""
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
    check_multiclass_risk(task, risk, num_test)
    check_choice("sampler", sampler, ("auto", "gram", "inputs"))
    if sampler == "gram":
        raise JaxDistillError("sampler 'gram' (--sampler gram) applies only to binary linear students on the kappa, "
                              "margin and isotropic gaussian tasks; K-class tasks and kernel / network students draw "
                              "their inputs: use sampler 'auto' or 'inputs'")
    if isinstance(learner, SoftmaxClosedFormLearner) and n > task.d and not task.has_linear_teacher:
        raise JaxDistillError(
            f"method 'closed-form': no closed form exists here: with n = {n} > d = {task.d} and a teacher whose logits "
            "are not linear in the inputs, the flow's limit is the minimiser of the cross-entropy, not an "
            "interpolant; use method 'flow' (its distance to that minimiser is reported) or n <= d; see "
            f"{DOCS_CLOSED_FORM}")
    num_test = DEFAULT_NUM_TEST if num_test is None else check_int("num_test", num_test, minimum=1)
    key, seed_repr = as_key(key), key_repr(key)
    plan = plan_chunks(num_sets, chunk_size, n=n, width=MultiClassSampler().width(task, n))
    with precision(dtype):
        task_c = task.cast(dtype)
        shared = task_c.held_out(held_out_key(key), num_test)
        teacher_error = (None if shared[2] is None
                         else float(np.mean(np.asarray(predicted_class(shared[1])) != np.asarray(shared[2]))))
    risk_method = "exact" if task.risk_is_exact else "mc"
    config = dict(task.config())
    config.update(learner.config())
    config.update(targets.config())
    config.update({"n": n, "num_sets": num_sets, "seed": seed_repr, "chunk_size": plan.chunk_size,
                   "risk": risk_method, "num_test": None if task.risk_is_exact else num_test,
                   "dtype": dtype})
    return MultiClassSetup(task_c, learner, targets, n, risk_method, keep_students, key, plan, shared, config, dtype,
                           teacher_error)


def check_multiclass_risk(task: AbstractMultiClassTask, risk: str, num_test: int | None) -> None:
    """A K-class task has one risk: exact over a finite test set, else
    Monte-Carlo; ``risk`` and ``num_test`` must agree with it."""
    check_choice("risk", risk, ("auto", "exact", "mc"))
    if risk == "exact" and not task.risk_is_exact:
        raise JaxDistillError("risk 'exact' (--risk exact) is not available for this K-class task: its risk is "
                              "Monte-Carlo on held-out inputs; use risk 'mc' or 'auto'")
    if risk == "mc" and task.risk_is_exact:
        raise JaxDistillError("risk 'mc' (--risk mc): this pool's risk is exact over its test inputs; use risk "
                              "'auto' or 'exact'")
    if num_test is not None and task.risk_is_exact:
        raise JaxDistillError("num_test (--num-test) applies only to Monte-Carlo risk; this pool's risk is exact "
                              "over its test inputs")


__all__ = ["MultiClassDrawnSet", "MultiClassSampler", "MultiClassSetup", "setup_multiclass", "check_multiclass_risk"]
