"""``distill``: transfer sets -> students -> per-set statistics.

The library's main entry point.  It builds a :class:`DistillProgram` (what
happens to ONE transfer set, of every task kind: draw its design with the
run's sampler piece (binary, ``samplers``: inputs X or the Gram matrix G;
K-class, ``multiclass.program.MultiClassSampler``), label, fit, compare with
the closed form, measure angle and risk) and hands it to the one chunked runner
(``runner.run_program``), which owns keys, chunking, padding, sharding over
devices, failure reporting and the resumable store (docs/design.md,
"Data flow").

Several hosts (``jax.distributed``): start one process per host with the
same ``jaxdistill run ... --out /shared/run1 --coordinator HOST:PORT
--num-processes P --process-id I`` command (``hosts.py``); process i
computes the chunks c with c % P == i and process 0 writes the summary.
``distill`` itself computes everything on the local devices of the
process that calls it (``runner.run_program(hosts=...)`` splits a run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._precision import check_dtype, precision
from .analysis.risk import RISK_METHODS, resolve_num_test, resolve_risk_method
from .keys import as_key, held_out_key, key_repr, set_key_pair, set_keys
from .defaults import DEFAULTS
from .results import DistillResult, warn_if_failed, write_run_files
from .runner import ChunkPlan, SetProgram, iter_chunks, plan_chunks, run_program
from .runstore import RunStore
from .multiclass.learners import AbstractSoftmaxLearner
from .multiclass.program import MultiClassSampler, setup_multiclass
from .multiclass.targets import MultiTargetSpec
from .multiclass.tasks import AbstractMultiClassTask
from .samplers import SAMPLER_KINDS, sampler_kind
from .status import Status
from .students import make_learner
from .students.base import AbstractLearner
from .students.gram import resolve_sampler
from .tasks import Task
from .teachers import TargetSpec, check_target_spec
from .validation import JaxDistillError, check_choice, check_int

SET_PIECES = {**SAMPLER_KINDS, "multiclass": MultiClassSampler()}

def check_task(task) -> Task:
    """``task`` if it is a ``tasks.Task``, else a ``JaxDistillError``."""
    if not isinstance(task, Task):
        raise JaxDistillError(f"task must be a jaxdistill.tasks.Task (e.g. KappaPolynomialTask(d, kappa)), got {type(task).__name__}")
    return task


def check_learner(learner) -> AbstractLearner:
    """``learner`` if it is a ``students.AbstractLearner``, else a ``JaxDistillError``."""
    if not isinstance(learner, AbstractLearner) or learner.multiclass:
        raise JaxDistillError(
            "learner must be a binary jaxdistill learner (an equinox Module with fit(key, design, V) -> LearnerOutput: "
            f"a subclass of jaxdistill.AbstractBinaryLearner implementing fit_logits(key, X, u)), got "
            f"{type(learner).__name__}")
    return learner


def set_piece(sampler: str):
    """The piece of a set program's ``sampler``: "inputs" or "gram" (binary,
    ``samplers``) or "multiclass" (``multiclass.program.MultiClassSampler``)."""
    return SET_PIECES[check_choice("sampler", sampler, tuple(SET_PIECES))]


class DistillProgram(SetProgram):
    """One transfer set of ``distill``: draw, label, fit, measure; the one
    set program of every task kind.

    The static ``sampler`` chooses the piece (``set_piece``) that knows how
    this task kind's set is drawn and measured: "inputs" (binary, X [n, d],
    ``task.sample``) or "gram" (binary, (G, X w*), ``task.sample_gram``,
    docs/design.md fact 13), both in ``samplers``, or "multiclass" (K-class,
    (X, U, y) = ``task.sample_set`` and its log targets V,
    ``multiclass.program.MultiClassSampler``).  The learner is called once,
    ``learner.fit(k_learn, design, V)`` (the learner key: a random
    initialisation, w_delta's direction; binary V = ``two_class_logits(u)``),
    and the piece measures the student: binary, the signed angle to w*
    (eq. 28), transfer risk (eq. 4) and, for soft targets, the distance to
    the closed form of Thm 1 (``rel_dist_closed_form``); K-class, the
    distance to the learner's reference, argmax risk and error.  Every
    measurement is computed after the fit (a data dependency, so two batched
    factorisations never run concurrently; docs/design.md fact 11).  A set
    with non-finite inputs or targets is replaced by a harmless stand-in (so
    its solver finishes at once) and marked ``NON_FINITE``.  The Gram
    sampler has no ``students`` output (it never forms them) and only exact
    risk; ``finite_outputs`` are the piece's.
    """

    task: Task | AbstractMultiClassTask
    learner: AbstractLearner | AbstractSoftmaxLearner
    targets: TargetSpec | MultiTargetSpec  # a pytree: temperature (soft ratio) is traced (jaxdistill.traced)
    n: int = eqx.field(static=True)
    risk_method: str = eqx.field(static=True)
    keep_students: bool = eqx.field(static=True, default=True)
    sampler: str = eqx.field(static=True, default="inputs")

    @property
    def finite_outputs(self) -> tuple[str, ...]:
        return set_piece(self.sampler).finite_outputs

    def one_set(self, key, index, shared):
        piece = set_piece(self.sampler)
        k_data, k_learn = set_key_pair(key, index)
        finite, s = piece.draw(self.task, k_data, self.n, self.targets)
        out = self.learner.fit(k_learn, s.design, s.V)
        status = jnp.where(finite, out.status, Status.NON_FINITE).astype(out.status.dtype)
        outputs = {"status": status, "num_steps": out.num_steps, "loss": out.loss,
                   **piece.measure(self.task, self.learner, s, out, self.targets)}
        outputs.update({"extra_" + k: v for k, v in out.extras.items()})
        return outputs

    def finish(self, batch, shared):
        return set_piece(self.sampler).finish(self.task, self.learner, batch, shared, self.risk_method,
                                              self.keep_students)


def run_config(task: Task, n: int, num_sets: int, learner: AbstractLearner, targets: TargetSpec, seed_repr: str,
               chunk_size: int, risk: str, num_test: int, dtype: str) -> dict:
    """The JSON-able configuration of a run (its manifest)."""
    cfg = dict(task.config())
    cfg.update(learner.config())
    cfg.update(
        {"n": n, "num_sets": num_sets, "targets": targets.kind, "temperature": targets.temperature, "seed": seed_repr,
         "chunk_size": chunk_size, "risk": risk, "num_test": num_test, "dtype": dtype}
    )
    return cfg


@dataclass(frozen=True)
class DistillSetup:
    """A validated ``distill`` run: the program, its key, chunking and
    held-out inputs, ready for ``runner.run_program`` (used by ``distill``
    and by ``jaxdistill run``)."""

    program: DistillProgram
    key: jax.Array
    plan: ChunkPlan
    X_test: Float[Array, "M d"] | None
    config: dict
    dtype: str


def setup_distill(key, task: Task, n: int, num_sets: int, *, learner: AbstractLearner,
                  targets: TargetSpec = TargetSpec(), chunk_size: int | None = None, risk: str = "auto",
                  num_test: int = DEFAULTS.num_test, keep_students: bool = True, dtype: str = "float64",
                  sampler: str = "inputs") -> DistillSetup:
    """Validate every argument (before any tracing) and build the run
    (``sampler``: "inputs", "gram" or "auto", see ``samplers``)."""
    dtype = check_dtype(dtype)
    learner = check_learner(learner).for_dtype(dtype)
    check_target_spec(targets)
    learner.check_targets(targets)
    n = check_task(task).check_n(n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    risk_method = resolve_risk_method(task, risk)
    num_test = check_int("num_test", num_test, minimum=1)
    key, seed_repr = as_key(key), key_repr(key)
    sampler = resolve_sampler(sampler, task, n, learner, risk_method, keep_students)
    # a Gram-sampled set holds [n, n] numbers, not [n, d]
    plan = plan_chunks(num_sets, chunk_size, n=n, width=sampler_kind(sampler).width(task, n))
    with precision(dtype):
        task_c = task.cast(dtype)
        X_test = task_c.held_out(held_out_key(key), num_test) if risk_method == "mc" else None
    program = DistillProgram(task_c, learner, targets, n, risk_method, keep_students, sampler)
    config = run_config(task, n, num_sets, learner, targets, seed_repr, plan.chunk_size, risk_method, num_test, dtype)
    if sampler == "gram":  # the inputs sampler keeps the manifests of earlier runs unchanged
        config["sampler"] = "gram"
    return DistillSetup(program, key, plan, X_test, config, dtype)


@dataclass(frozen=True)
class RunSetup:
    """A validated run of ``distill`` / ``jaxdistill run`` on either path
    (binary, with the "inputs" or "gram" sampler, or K-class: sampler
    "multiclass"), one ``DistillProgram``, ready for ``runner.run_program``.

    Attributes:
        program: the ``DistillProgram`` that computes one set.
        key: the run's key (set i uses ``fold_in(key, i)``).
        plan: the ``ChunkPlan`` (number of sets, chunk size).
        shared: held-out data every set needs.
        config: the configuration written to the manifest.
        dtype: "float64" or "float32".
        task: the task the run uses (its K-class form on the K-class path).
        learner: the learner the run uses (likewise).
        targets: the targets the run uses (likewise).
        multiclass: which path the run takes.
        teacher_error: the teacher's own error on held-out labels.
    """

    program: DistillProgram
    key: jax.Array
    plan: ChunkPlan
    shared: object
    config: dict
    dtype: str
    task: object
    learner: object
    targets: object
    multiclass: bool
    teacher_error: float | None = None

    def result(self, run, **info) -> DistillResult:
        """The ``DistillResult`` of a finished ``run_program`` of this setup."""
        info = {"sets_computed_this_run": run.sets_computed, "num_devices": jax.local_device_count(),
                "num_processes": jax.process_count(), **info}
        return DistillResult(run.arrays, self.config, run.elapsed, self.teacher_error, info)


def setup_run(key, task, n: int, num_sets: int, *, method: str | None = None, learner=None, targets=None, flow=None,
              gd=None, chunk_size: int | None = None, risk: str = DEFAULTS.risk, num_test: int | None = None,
              keep_students: bool = DEFAULTS.keep_students, dtype: str = DEFAULTS.dtype,
              sampler: str = DEFAULTS.sampler) -> RunSetup:
    """Validate every argument of a run (before any tracing) and build it
    on the path it takes (``dispatch``): the arguments of ``distill``."""
    from .dispatch import (binary_learner, binary_targets, is_multiclass_run, multiclass_learner,
                           multiclass_targets, refuse_flow_without_horizon)

    if is_multiclass_run(task, learner):
        from .nonlinear.tasks import as_multiclass_task

        task = as_multiclass_task(task)
        learner = multiclass_learner(learner, method, flow, gd)
        targets = multiclass_targets(targets)
        refuse_flow_without_horizon(learner, targets.has_finite_minimiser, multiclass=True)
        s = setup_multiclass(key, task, n, num_sets, learner=learner, targets=targets, chunk_size=chunk_size,
                             num_test=num_test, keep_students=keep_students, dtype=dtype, risk=risk, sampler=sampler)
        program = DistillProgram(s.task, s.learner, s.targets, s.n, s.risk_method, s.keep_students, "multiclass")
        return RunSetup(program, s.key, s.plan, s.shared, s.config, s.dtype, task, learner, targets, True,
                        s.teacher_error)
    learner = binary_learner(learner, method, flow, gd)
    targets = binary_targets(targets)
    refuse_flow_without_horizon(learner, targets.is_soft, multiclass=False)
    risk_method = resolve_risk_method(check_task(task), risk)
    s = setup_distill(key, task, n, num_sets, learner=learner, targets=targets, chunk_size=chunk_size, risk=risk,
                      num_test=resolve_num_test(task, risk_method, num_test), keep_students=keep_students,
                      dtype=dtype, sampler=sampler)
    return RunSetup(s.program, s.key, s.plan, s.X_test, s.config, s.dtype, task, learner, targets, False)


def distill(
    key,
    task,
    n: int,
    num_sets: int,
    *,
    method: str | None = None,
    learner=None,
    targets=None,
    flow=None,
    gd=None,
    chunk_size: int | None = None,
    risk: str = DEFAULTS.risk,
    num_test: int | None = None,
    keep_students: bool = DEFAULTS.keep_students,
    dtype: str = DEFAULTS.dtype,
    progress: bool = False,
    out: str | None = None,
    sampler: str = DEFAULTS.sampler,
) -> DistillResult:
    """Sample ``num_sets`` transfer sets of size n, train a student on each,
    and evaluate it: the library's one entry point, for every task and
    student (binary = K = 2, ``dispatch``).  ``jaxdistill run`` runs exactly
    this with the same defaults (``defaults.DEFAULTS``).

    Args:
        key: PRNG key or integer seed.
        task: a binary task (``KappaPolynomialTask``, ``PoolTask``, ...) or a
            K-class one (``MultiClassGaussianTask``, ``MultiClassPoolTask``,
            ``ReluTeacherTask``, ``digits_task()``).
        n: transfer-set size (>= 1; <= pool size for pools).
        num_sets: number of transfer sets B.
        method: "flow" (gradient flow, eq. 3; the default), "closed-form"
            (Thm 1) or "gd" (optax).  Refused together with ``learner``.
        learner: a learner object: ``ClosedFormLearner``, ``FlowLearner``,
            ``GDLearner`` (any task); ``DeepLearner``, ``WDeltaLearner``,
            ``HardTargetLearner`` (binary tasks); ``KernelLearner``,
            ``MLPLearner`` (any task: a binary one is the K = 2 task with
            logits [0, w*.x]).
        targets: ``TargetSpec`` (soft at a temperature, or hard) or
            ``MultiTargetSpec`` (also mixed, on tasks with labels); default
            soft at T = 1.  A gradient flow on hard targets needs
            ``FlowConfig(t_end=...)`` (no steady state).
        flow: a ``FlowConfig``; refused unless the method is "flow".
        gd: a ``GDConfig``; refused unless the method is "gd".
        chunk_size: sets per compiled chunk (default: bounded memory, <= 256).
        risk: "auto" (exact where the task has it), "exact", or "mc".
        num_test: held-out inputs of Monte-Carlo risk (default 10,000);
            refused where the risk is exact.
        keep_students: keep the students ([B, d]; K-class [B, K, d]) in
            ``res.arrays["students"]`` (and ``students.npy`` with ``out``);
            default False, as ``jaxdistill run`` without ``--save-students``.
        dtype: "float64" (default) or "float32" (flows then use
            newton_tol >= 1e-5, see ``students.base``).
        progress: show a progress bar (sets done, rate, time left).
        out: a folder: finished chunks are saved there as they finish, a
            rerun with the same arguments resumes (a different configuration
            is refused), and at the end sets.csv and summary.json (and
            students.npy with keep_students) are written, as by
            ``jaxdistill run --out``; ``load(out)`` reads the result back.
        sampler: "auto" (default: "gram" where it applies, else "inputs"),
            "inputs" (draw X [n, d]) or "gram" (draw G = X X^T and X w*
            directly, O(n^2) a set whatever d: the kappa, margin and
            isotropic gaussian tasks with the flow, the closed form or
            w_delta, exact risk, n < d and keep_students=False; refused
            elsewhere, naming why).  The two samplers draw sets of the same
            law, not the same sets (docs/design.md fact 13).

    Failures: a set whose solver hits max_steps, fails, is rank deficient or
    produces non-finite values keeps its index and reason
    (``res.failed_sets()``), a ``FailedSetsWarning`` gives their count, and
    statistics use the other sets.  Bad arguments raise ``JaxDistillError``
    naming the parameter, before any tracing.

    Example:
        >>> res = distill(0, KappaPolynomialTask(d=1000, kappa=1.0), n=20, num_sets=2000)
        >>> res.expected_risk()
        >>> distill(0, KappaPolynomialTask(20, 1.0), 10, 16, learner=KernelLearner(RBFKernel(3.0)))
    """
    setup = setup_run(key, task, n, num_sets, method=method, learner=learner, targets=targets, flow=flow, gd=gd,
                      chunk_size=chunk_size, risk=risk, num_test=num_test, keep_students=keep_students, dtype=dtype,
                      sampler=sampler)
    store = RunStore(out, setup.config) if out is not None else None
    run = run_program(setup.program, setup.key, setup.plan, shared=setup.shared, dtype=setup.dtype, store=store,
                      progress=progress)
    result = setup.result(run)
    if out is not None:
        write_run_files(out, result, save_students=keep_students)
    warn_if_failed(result)
    return result


def distill_chunks(
    key,
    task: Task,
    n: int,
    num_sets: int,
    *,
    learner: AbstractLearner | None = None,
    targets: TargetSpec = TargetSpec(),
    chunk_size: int | None = None,
    risk: str = "auto",
    num_test: int = 10_000,
    keep_students: bool = True,
    dtype: str = "float64",
    start_chunk: int = 0,
    chunks: list[int] | None = None,
) -> Iterator[tuple[int, dict]]:
    """Yield (chunk index, per-set numpy arrays) chunk by chunk, the same
    numbers as ``distill``: chunk c covers the global set indices
    [c * chunk_size, min((c + 1) * chunk_size, num_sets)).  Computes chunks
    start_chunk, start_chunk + 1, ... or exactly ``chunks`` when given.
    """
    setup = setup_distill(key, task, n, num_sets, learner=learner if learner is not None else make_learner("flow"),
                          targets=targets, chunk_size=chunk_size, risk=risk, num_test=num_test,
                          keep_students=keep_students, dtype=dtype)
    start_chunk = check_int("start_chunk", start_chunk, minimum=0)
    plan = setup.plan
    todo = range(start_chunk, plan.num_chunks) if chunks is None else sorted(
        {check_int("chunks", c, minimum=0) for c in chunks if c < plan.num_chunks})
    with precision(setup.dtype):
        yield from iter_chunks(setup.program, setup.key, plan, todo, shared=setup.X_test)


def sample_transfer_sets(key, task: Task, n: int, num_sets: int, *, start: int = 0, dtype: str = "float64") -> jax.Array:
    """B = num_sets transfer sets of n inputs, [B, n, d] in ``dtype``.

    Set i is drawn from the data key of set start + i (``keys.set_key_pair``),
    exactly as inside ``distill``, so these are the sets ``distill`` trains
    on.  For large B use ``iter_transfer_sets`` (chunks) instead.
    """
    n = check_task(task).check_n(n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    start = check_int("start", start, minimum=0)
    key = as_key(key)
    with precision(dtype):
        task = task.cast(check_dtype(dtype))
        keys = set_keys(key, jnp.arange(start, start + num_sets))
        return jax.vmap(lambda k: task.sample(jax.random.split(k)[0], n))(keys)


def iter_transfer_sets(key, task: Task, n: int, num_sets: int, chunk_size: int, *, dtype: str = "float64") -> Iterator[jax.Array]:
    """Yield [C, n, d] chunks of the same sets as ``sample_transfer_sets``."""
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    for start in range(0, num_sets, chunk_size):
        yield sample_transfer_sets(key, task, n, min(chunk_size, num_sets - start), start=start, dtype=dtype)


__all__ = [
    "RunSetup",
    "setup_run",
    "DistillProgram",
    "SET_PIECES",
    "set_piece",
    "DistillResult",
    "DistillSetup",
    "distill",
    "distill_chunks",
    "setup_distill",
    "run_config",
    "check_task",
    "check_learner",
    "sample_transfer_sets",
    "iter_transfer_sets",
    "RISK_METHODS",
]
