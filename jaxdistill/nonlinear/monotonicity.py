"""Risk-monotonicity index for K-class and nonlinear students
(docs/design.md fact 12).

Eq. 34 of the paper measures monotonicity by the unsigned angle between the
student and the teacher vector w*.  A kernel or network student, or any
student of a teacher given by its logits, has no such angle; what remains
comparable is its transfer risk.  The risk-monotonicity index is

    m_R = P_{X ~ P_x^n, x ~ P_x}[ R(f([X, x])) < R(f(X)) ],

R the transfer risk (argmax disagreement with the teacher) of the student
trained on the transfer set, with BOTH risks measured on ONE held-out
sample shared by both students (so the comparison adds no sampling noise
between them; a pool's test set is exact).  Choices stated with the number
(``RiskMonotonicityEstimate``):

* ties: on M held-out inputs a risk moves in steps of 1/M and many
  additions leave the student's argmax unchanged on all of them: equal risks
  count as "no decrease", as eq. 34's strict inequality counts equal angles;
  their share is reported (``ties``), as are increases;
* coupling: "shared" (default) gives the second fit the same learner key
  (a randomised learner's initialisation or draw is common to both fits),
  "independent" gives it fold_in(k_learn, 1) -- as for the angle index.

Nested sets: set i has keys k_data, k_learn = split(fold_in(key, i))
(``keys.set_key_pair``); ``task.sample_set(k_data, n + 1)`` draws n + 1
inputs and X is the first n, x the last.  That is a transfer set of n and
one more input from P_x for a task with i.i.d. inputs (the K-class Gaussian
task), and for a pool: ``MultiClassPoolTask`` samples with
``jax.random.choice(replace=False)``, i.e. a prefix of one random
permutation, so X is exactly the set ``distill_multiclass`` trains on for
set i and x is uniform over the pool minus X.

For binary linear students both kinds exist (``analysis.monotonicity_index``
with ``kind="angle"`` or ``"risk"``); how they relate is fact 12.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from .._precision import check_dtype, precision
from ..analysis.monotonicity import RiskMonotonicityEstimate, check_coupling, monotonicity_from_risks
from ..design import InputsDesign
from ..finite import replace_non_finite
from ..keys import as_key, held_out_key, key_repr, set_key_pair
from ..multiclass.learners import AbstractSoftmaxLearner
from ..multiclass.targets import MultiTargetSpec, predicted_class, target_log_probs
from ..multiclass.tasks import AbstractMultiClassTask
from ..runner import SetProgram, plan_chunks, run_program
from ..runstore import RunStore
from ..sequencing import after
from ..status import SUCCESS_CODES, Status
from ..validation import JaxDistillError, check_int


class RiskNestedSetProgram(SetProgram):
    """One nested pair (X [n, d], [X, x] [n + 1, d]) of a K-class task: fit
    the learner on both, then (``finish``) both students' risks on the shared
    held-out inputs.

    The second fit is sequenced after the first (``sequencing.after``: a data
    dependency), so their factorisations never run concurrently
    (docs/design.md fact 11).  Outputs per pair: ``risk_X``, ``risk_plus``
    (argmax disagreement with the teacher), ``status`` (the first failure of
    the two fits), ``status_X``, ``status_plus``.
    """

    task: AbstractMultiClassTask
    learner: AbstractSoftmaxLearner
    targets: MultiTargetSpec = eqx.field(static=True)
    n: int = eqx.field(static=True)
    coupling: str = eqx.field(static=True, default="shared")

    finite_outputs = ("risk_X", "risk_plus")

    def one_set(self, key: PRNGKeyArray, index: Int[Array, ""], shared) -> dict[str, Array]:
        n, d, K = self.n, self.task.d, self.task.num_classes
        k_data, k_learn = set_key_pair(key, index)
        Xp, Up, yp = self.task.sample_set(k_data, n + 1)  # [n + 1, d], [n + 1, K], [n + 1] | None
        Vp = target_log_probs(Up, yp, self.targets)  # row-wise: V of X is Vp[:n]
        finite, (Xp, Up, Vp) = replace_non_finite((Xp, Up, Vp), (jnp.eye(n + 1, d, dtype=Xp.dtype), jnp.zeros_like(Up),
                                                               jnp.eye(n + 1, K, dtype=Xp.dtype)),
                                                  allow_inf=(False, False, True))
        X, V = Xp[:n], Vp[:n]
        out0 = self.learner.fit(k_learn, InputsDesign(X), V)
        Xp = after(Xp, out0)  # the second fit waits for every output of the first
        k_plus = k_learn if self.coupling == "shared" else jax.random.fold_in(k_learn, 1)
        out1 = self.learner.fit(k_plus, InputsDesign(Xp), Vp)
        ok0 = jnp.isin(out0.status, jnp.asarray(SUCCESS_CODES))
        status = jnp.where(ok0, out1.status, out0.status)
        status = jnp.where(finite, status, Status.NON_FINITE).astype(out0.status.dtype)
        return {"W_X": out0.W, "W_plus": out1.W, "inputs": Xp, "status": status, "status_X": out0.status,
                "status_plus": out1.status}

    def finish(self, batch: dict[str, Array], shared) -> dict[str, Array]:
        X_test, U_test, _ = shared
        teacher = predicted_class(U_test)  # [M]
        n = self.n
        learner = self.learner

        def risks(args):  # one pair; lax.map keeps the [M, K] logits of one student at a time
            W0, W1, Xp = args
            c0 = predicted_class(learner.predict(W0, Xp[:n], X_test))
            c1 = predicted_class(learner.predict(W1, Xp, X_test))
            return (jnp.mean((c0 != teacher).astype(X_test.dtype)), jnp.mean((c1 != teacher).astype(X_test.dtype)))

        batch["risk_X"], batch["risk_plus"] = jax.lax.map(risks, (batch.pop("W_X"), batch.pop("W_plus"),
                                                                  batch.pop("inputs")))
        return batch


def risk_monotonicity_index(
    key,
    task: AbstractMultiClassTask,
    n: int,
    num_sets: int,
    learner: AbstractSoftmaxLearner,
    targets: MultiTargetSpec = MultiTargetSpec(),
    *,
    coupling: str = "shared",
    num_test: int | None = None,
    chunk_size: int | None = None,
    dtype: str = "float64",
    out: str | None = None,
    progress: bool = False,
    hosts=None,
) -> RiskMonotonicityEstimate | None:
    """Risk-monotonicity index of a K-class student (module docstring;
    docs/design.md fact 12): the share of nested pairs where adding one input
    strictly lowers the transfer risk, with its SE, ties and increases.

    Runs through the library's chunked runner (``runner.run_program``): pair
    i uses fold_in(key, i), so the numbers do not depend on the chunk size;
    failed pairs are reported by index with their status and left out;
    ``out`` makes the run resumable.

    Args:
        key: PRNG key or integer seed (the held-out inputs use
            ``keys.held_out_key(key)``, as ``distill_multiclass``).
        task: any ``multiclass.AbstractMultiClassTask`` (pools: n + 1 <= P).
        n: size of X; [X, x] has n + 1 inputs.
        num_sets: number of pairs.
        learner: any ``multiclass.AbstractSoftmaxLearner`` (linear softmax
            students, ``KernelLearner``, network students).
        targets: ``MultiTargetSpec`` (soft by default).
        coupling: "shared" (default) or "independent": the learner key of the
            second fit (module docstring); deterministic learners give the
            same numbers either way.
        num_test: held-out inputs of the Monte-Carlo risk (default 10,000);
            refused for tasks whose risk is exact over a finite test set.
        chunk_size: pairs per compiled chunk (default: bounded memory).
        dtype: "float64" (default) or "float32".
        out: a folder for the resumable store of the per-pair results.
        progress: show a progress bar.
        hosts: a ``hosts.Hosts`` of a multi-host run (needs ``out`` in a
            folder shared by all processes): this process computes its
            chunks of the pairs; process 0 merges them, the other
            processes return None.

    Returns:
        ``analysis.RiskMonotonicityEstimate`` (``kind == "risk"``).

    Example:
        >>> task = MultiClassGaussianTask(10, 3)
        >>> est = risk_monotonicity_index(0, task, 20, 500, KernelLearner(RBFKernel(3.0)))
        >>> est.index, est.se, est.ties
    """
    if not isinstance(task, AbstractMultiClassTask):
        raise JaxDistillError(f"task must be a K-class task (multiclass.AbstractMultiClassTask), got "
                              f"{type(task).__name__}; for a binary task with a teacher vector use "
                              "analysis.monotonicity_index(..., kind='risk')")
    if not isinstance(learner, AbstractSoftmaxLearner):
        raise JaxDistillError(f"learner must be a multiclass.AbstractSoftmaxLearner, got {type(learner).__name__}")
    if not isinstance(targets, MultiTargetSpec):
        raise JaxDistillError(f"targets must be a MultiTargetSpec, got {targets!r}")
    check_coupling(coupling, learner)
    dtype = check_dtype(dtype)
    learner = learner.for_dtype(dtype)
    learner.check_targets(targets)
    if targets.needs_labels and not task.has_labels:
        raise JaxDistillError("targets='mixed' needs ground-truth labels: a task with labels")
    n = task.check_n(n)
    try:
        task.check_n(n + 1)  # X and x are distinct draws (pools: without replacement)
    except JaxDistillError as e:
        raise JaxDistillError(f"n + 1 = {n + 1} inputs (X and the extra input x) must fit the task: {e}") from None
    num_sets = check_int("num_sets", num_sets, minimum=1)
    if task.risk_is_exact:
        if num_test is not None:
            raise JaxDistillError("num_test applies only to Monte-Carlo risk; this task's risk is exact over its "
                                  "test inputs")
    else:
        num_test = check_int("num_test", 10_000 if num_test is None else num_test, minimum=1)
    plan = plan_chunks(num_sets, chunk_size, n=n + 1, width=task.d, fits_per_set=2)
    key, seed_repr = as_key(key), key_repr(key)
    with precision(dtype):
        task_c = task.cast(dtype)
        shared = task_c.held_out(held_out_key(key), 1 if num_test is None else num_test)
    program = RiskNestedSetProgram(task_c, learner, targets, n, coupling)
    risk_method = "exact" if task.risk_is_exact else "mc"
    store = None
    if out is not None:
        config = {**task.config(), **learner.config(), **targets.config(), "estimand": "risk_monotonicity_index",
                  "n": n, "num_sets": num_sets, "seed": seed_repr, "chunk_size": plan.chunk_size,
                  "risk": risk_method, "num_test": num_test, "dtype": dtype, "coupling": coupling}
        store = RunStore(out, config)
    run = run_program(program, key, plan, shared=shared, dtype=dtype, store=store, progress=progress, hosts=hosts)
    if not run.merged:
        return None
    a = run.arrays
    return monotonicity_from_risks(a["risk_X"], a["risk_plus"], run.ok, atol=0.0, risk_method=risk_method,
                                   num_test=num_test, failed=run.failed_sets(), coupling=coupling)


__all__ = ["RiskNestedSetProgram", "risk_monotonicity_index"]
