"""``distill``: transfer sets -> students -> per-set statistics.

The library's main entry point.  It builds a :class:`DistillProgram` (what
happens to ONE transfer set: sample, label, fit, compare with the closed
form, measure angle and risk) and hands it to the one chunked runner
(``runner.run_program``), which owns keys, chunking, padding, sharding over
devices, failure reporting and the resumable store (docs/design.md,
"Data flow").

Several hosts (``jax.distributed``): start one process per host, each with
``jax.distributed.initialize()`` and the same ``jaxdistill run ... --out
/shared/run1`` command (see ``cli/run.py``); process i computes the chunks
c with c % P == i and process 0 writes the summary.  The Python API
computes everything on the local devices of the process that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._precision import check_dtype, precision
from .analysis.angles import signed_angle
from .analysis.risk import RISK_METHODS, mc_risk, resolve_risk_method
from .finite import replace_non_finite
from .keys import as_key, held_out_key, key_repr, set_key_pair, set_keys
from .results import DistillResult
from .runner import ChunkPlan, SetProgram, default_chunk_size, iter_chunks, run_program
from .runstore import RunStore
from .sequencing import after
from .simulate_gram import GramDistillProgram, resolve_sampler
from .status import Status
from .students import make_learner
from .students.base import AbstractLearner
from .students.closed_form import closed_form
from .tasks import Task
from .teachers import TargetSpec, teacher_logits
from .validation import JaxDistillError, check_int

def check_task(task) -> Task:
    """``task`` if it is a ``tasks.Task``, else a ``JaxDistillError``."""
    if not isinstance(task, Task):
        raise JaxDistillError(f"task must be a jaxdistill.tasks.Task (e.g. KappaPolynomialTask(d, kappa)), got {type(task).__name__}")
    return task


def check_learner(learner) -> AbstractLearner:
    """``learner`` if it is a ``students.AbstractLearner``, else a ``JaxDistillError``."""
    if not isinstance(learner, AbstractLearner):
        raise JaxDistillError(
            "learner must be a jaxdistill.students.AbstractLearner (an equinox Module with fit(key, X, u) -> "
            f"LearnerOutput), got {type(learner).__name__}")
    return learner


def check_targets(targets) -> TargetSpec:
    if not isinstance(targets, TargetSpec):
        raise JaxDistillError(f"targets must be a TargetSpec (e.g. TargetSpec('soft', temperature=1.0)), got {targets!r}")
    return targets


def resolve_learner(learner, method: str | None, flow, gd) -> AbstractLearner:
    """The learner of a ``distill`` call: ``learner`` itself, or the one
    ``method``/``flow``/``gd`` describe; refuses both at once."""
    if learner is not None:
        given = [name for name, v in (("method", method), ("flow", flow), ("gd", gd)) if v is not None]
        if given:
            raise JaxDistillError(f"{', '.join(given)} cannot be combined with learner=: the learner object carries "
                                  "its own method and settings")
        return check_learner(learner)
    return make_learner("flow" if method is None else method, flow=flow, gd=gd)


class DistillProgram(SetProgram):
    """One transfer set of ``distill``: sample, label, fit, evaluate.

    A set with non-finite inputs or teacher logits is replaced by a harmless
    stand-in (so its solver finishes at once) and marked ``NON_FINITE``.
    For soft targets the student is compared with the closed form of Thm 1
    (``rel_dist_closed_form``), computed after the fit (a data dependency,
    so the two batched factorisations never run concurrently; see
    docs/jax-cpu-lapack-deadlock.md).
    """

    task: Task
    learner: AbstractLearner
    targets: TargetSpec = eqx.field(static=True)
    n: int = eqx.field(static=True)
    risk_method: str = eqx.field(static=True)
    keep_students: bool = eqx.field(static=True, default=True)

    finite_outputs = ("risk", "angle")

    def one_set(self, key, index, shared):
        task, n, targets = self.task, self.n, self.targets
        k_data, k_learn = set_key_pair(key, index)
        X = task.sample(k_data, n)
        u = teacher_logits(X, task.w_star, targets)
        stand_in = jnp.eye(n, task.d, dtype=X.dtype)
        finite, (X, u) = replace_non_finite((X, u), (stand_in, teacher_logits(stand_in, task.w_star, targets)),
                                            allow_inf=(False, not targets.is_soft))
        out = self.learner.fit(k_learn, X, u)
        status = jnp.where(finite, out.status, Status.NON_FINITE).astype(out.status.dtype)
        if targets.is_soft:
            w_hat = closed_form(after(X, out.w), u)
            rel = jnp.linalg.norm(out.w - w_hat) / jnp.linalg.norm(w_hat)
        else:
            rel = jnp.asarray(jnp.nan, X.dtype)
        outputs = {"students": out.w, "status": status, "num_steps": out.num_steps, "loss": out.loss,
                   "rel_dist_closed_form": rel}
        outputs.update({"extra_" + k: v for k, v in out.extras.items()})
        return outputs

    def finish(self, batch, X_test):
        W = batch["students"]
        batch["angle"] = signed_angle(W, self.task.w_star)
        if self.risk_method == "exact":
            batch["risk"] = self.task.exact_risk(W)
            batch["risk_se"] = jnp.zeros_like(batch["risk"])
        else:
            batch["risk"], batch["risk_se"] = mc_risk(W, X_test, self.task.w_star)
        if not self.keep_students:
            del batch["students"]
        return batch


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
                  num_test: int = 10_000, keep_students: bool = True, dtype: str = "float64",
                  sampler: str = "inputs") -> DistillSetup:
    """Validate every argument (before any tracing) and build the run
    (``sampler``: "inputs", "gram" or "auto", see ``simulate_gram``)."""
    dtype = check_dtype(dtype)
    learner = check_learner(learner).for_dtype(dtype)
    check_targets(targets)
    learner.check_targets(targets)
    n = check_task(task).check_n(n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    risk_method = resolve_risk_method(task, risk)
    num_test = check_int("num_test", num_test, minimum=1)
    key, seed_repr = as_key(key), key_repr(key)
    sampler = resolve_sampler(sampler, task, n, learner, risk_method, keep_students)
    if chunk_size is None:  # a Gram-sampled set holds [n, n] numbers, not [n, d]
        chunk_size = min(default_chunk_size(n, n + 1 if sampler == "gram" else task.d), num_sets)
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    with precision(dtype):
        task_c = task.cast(dtype)
        X_test = task_c.held_out(held_out_key(key), num_test) if risk_method == "mc" else None
    program = DistillProgram(task_c, learner, targets, n, risk_method, keep_students)
    config = run_config(task, n, num_sets, learner, targets, seed_repr, chunk_size, risk_method, num_test, dtype)
    if sampler == "gram":  # the inputs sampler keeps the manifests of earlier runs unchanged
        program = GramDistillProgram(task_c, learner, targets, n)
        config["sampler"] = "gram"
    return DistillSetup(program, key, ChunkPlan(num_sets, chunk_size), X_test, config, dtype)


def distill(
    key,
    task: Task,
    n: int,
    num_sets: int,
    *,
    method: str | None = None,
    learner: AbstractLearner | None = None,
    targets: TargetSpec = TargetSpec(),
    flow=None,
    gd=None,
    chunk_size: int | None = None,
    risk: str = "auto",
    num_test: int = 10_000,
    keep_students: bool = True,
    dtype: str = "float64",
    progress: bool = False,
    out: str | None = None,
    sampler: str = "inputs",
) -> DistillResult:
    """Sample ``num_sets`` transfer sets of size n, train a student on each,
    and evaluate it.

    Args:
        key: PRNG key or integer seed.
        task: a ``tasks.Task``.
        n: transfer-set size (>= 1; <= pool size for pools).
        num_sets: number of transfer sets B.
        method: "flow" (gradient flow, eq. 3; the default), "closed-form"
            (Thm 1) or "gd" (optax).  Refused together with ``learner``.
        learner: any ``students.AbstractLearner`` (deep, w_delta, hard, ...).
        targets: ``TargetSpec`` (soft / temperature / hard).
        flow, gd: ``FlowConfig`` / ``GDConfig``; each is refused unless the
            method uses it (flow with "flow", gd with "gd").
        chunk_size: sets per compiled chunk (default: bounded memory, <= 256).
        risk: "auto" (exact where the task has it), "exact", or "mc".
        num_test: held-out inputs for Monte-Carlo risk.
        keep_students: keep the [B, d] students in memory.
        dtype: "float64" (default) or "float32" (flows then use
            newton_tol >= 1e-5, see ``students.base``).
        progress: show a progress bar (sets done, rate, time left).
        out: a folder; finished chunks are saved there and a rerun with the
            same arguments resumes (a different configuration is refused).
        sampler: "inputs" (default: draw X [n, d]; students kept), "gram"
            (draw G = X X^T and X w* directly, O(n^2) a set whatever d, for
            the kappa, margin and isotropic gaussian tasks with the flow,
            the closed form or w_delta, exact risk, n < d and
            keep_students=False;
            refused elsewhere) or "auto" (gram where it applies).  The two
            samplers draw sets of the same law, not the same sets
            (docs/design.md fact 13; ``simulate_gram``).

    Failures: a set whose solver hits max_steps, fails, is rank deficient or
    produces non-finite values (including non-finite sampled inputs) keeps
    its index and reason (``failed_sets()``); statistics use the other sets.
    Bad arguments raise ``JaxDistillError`` naming the parameter, before
    any tracing.

    Example:
        >>> task = KappaPolynomialTask(d=1000, kappa=1.0)
        >>> res = distill(0, task, n=20, num_sets=2000)
        >>> res.expected_risk()
    """
    learner = resolve_learner(learner, method, flow, gd)
    setup = setup_distill(key, task, n, num_sets, learner=learner, targets=targets, chunk_size=chunk_size, risk=risk,
                          num_test=num_test, keep_students=keep_students, dtype=dtype, sampler=sampler)
    store = RunStore(out, setup.config) if out is not None else None
    run = run_program(setup.program, setup.key, setup.plan, shared=setup.X_test, dtype=setup.dtype, store=store,
                      progress=progress)
    return DistillResult.from_arrays(run.arrays, setup.config, setup.program.risk_method, run.elapsed)


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
    "DistillProgram",
    "DistillResult",
    "DistillSetup",
    "distill",
    "distill_chunks",
    "setup_distill",
    "run_config",
    "resolve_learner",
    "check_task",
    "check_learner",
    "sample_transfer_sets",
    "iter_transfer_sets",
    "RISK_METHODS",
]
