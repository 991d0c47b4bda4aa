"""Batched simulation: transfer sets -> students -> per-set statistics.

PRNG discipline: set i (global index) uses ``fold_in(key, i)``, split into
a sampling key and a learner key, so results do not depend on the chunk
size, on the number of devices, or on where a resumed run restarts.

Chunking: sets are processed ``chunk_size`` at a time by one compiled
function of fixed shape (the last chunk is padded and the padding dropped),
so B = 100,000 never materialises [B, n, d] and changing B, the seed or the
data does not recompile.  Within a chunk the sets are vmapped.

Several devices: each chunk is sharded over all local devices along the
batch axis -- a ``jax.sharding.Mesh`` with one axis ``"sets"`` and
``shard_map`` with ``PartitionSpec("sets")`` -- with no change to user code.
Each device runs its own slice of the chunk (its own adaptive solves, so a
slow set holds up only its device).  The compiled batch is the chunk size
rounded up to a multiple of the device count (at least 2 sets per device,
see ``padded_batch``); the extra sets are computed and dropped.  Chunk boundaries do not depend on the device count, so a run
resumed on a machine with a different number of devices continues the same
chunks and gives the same numbers.

Several hosts (``jax.distributed``): start one process per host, each with

    import jax
    jax.distributed.initialize()   # or coordinator_address=..., num_processes=P, process_id=i
    from jaxdistill.cli import main
    main(["run", ..., "--out", "/shared/run1"])

or ``python -c "import jax; jax.distributed.initialize(); from jaxdistill.cli
import main; main()" run ... --out /shared/run1`` on every host (on SLURM
and Cloud TPU ``initialize()`` finds its arguments itself).  With
``jax.process_count() = P > 1``, process i computes exactly the chunks
c with c % P == i (``chunks_for_process``), each on its own local devices,
and writes them to the shared ``--out`` folder; process 0 then waits until
every chunk file is there and writes ``sets.csv`` and ``summary.json``.
No cross-host collectives are used, so a lost host only loses its
unfinished chunks: rerunning (with any number of hosts) resumes.  The
Python API (``distill``) computes everything on the local devices of the
process that calls it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._precision import check_dtype, precision
from .analysis.angles import signed_angle
from .analysis.risk import RiskEstimate, exact_risk, expected_risk, has_exact_risk, mc_risk
from .students.base import ClosedFormLearner, FlowLearner, GDLearner
from .students.closed_form import closed_form
from .students.flow import NONFINITE, STATUS_NAMES, SUCCESS_CODES, FlowConfig
from .tasks import PoolTask, Task
from .teachers import TargetSpec, teacher_logits
from .validation import JaxDistillError, check_choice, check_int

# In float32 the flow's stopping test cannot certify a relative distance
# below ~1e-6 (the residual sigma(z) - y is computed to ~1e-7); below this
# value the Newton step is rounding noise.  ``distill(dtype="float32")``
# therefore raises FlowConfig.newton_tol to at least this (recorded in the
# run's config); measured accuracy of float32 flows: see _precision.
FLOAT32_MIN_NEWTON_TOL = 1e-5

TEST_STREAM = 0x7E57  # fold_in tag of the held-out-input stream
RISK_METHODS = ("auto", "exact", "mc")


def set_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
    """The key of each set: fold_in(key, global index)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)


def sample_transfer_sets(key, task: Task, n: int, num_sets: int, *, start: int = 0, dtype: str = "float64") -> jax.Array:
    """B = num_sets transfer sets of n inputs, [B, n, d] in ``dtype``.

    Set i is drawn from the first half of split(fold_in(key, start + i)),
    exactly as inside ``distill``, so these are the sets ``distill`` trains
    on.  For large B use ``iter_transfer_sets`` (chunks) instead.
    """
    n = _check_n(task, n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    start = check_int("start", start, minimum=0)
    key = as_key(key)
    with precision(dtype):
        task = _cast_task(task, dtype)
        keys = set_keys(key, jnp.arange(start, start + num_sets))
        return jax.vmap(lambda k: task.sample(jax.random.split(k)[0], n))(keys)


def iter_transfer_sets(key, task: Task, n: int, num_sets: int, chunk_size: int, *, dtype: str = "float64") -> Iterator[jax.Array]:
    """Yield [C, n, d] chunks of the same sets as ``sample_transfer_sets``."""
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    for start in range(0, num_sets, chunk_size):
        yield sample_transfer_sets(key, task, n, min(chunk_size, num_sets - start), start=start, dtype=dtype)


def as_key(key) -> jax.Array:
    """An integer seed in [0, 2**63) or a jax PRNG key -> a jax PRNG key."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        check_int("seed", key, minimum=0, maximum=2**63 - 1)
        return jax.random.PRNGKey(int(key))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if isinstance(key, (jax.Array, np.ndarray)) and key.shape == (2,) and key.dtype == np.uint32:
        return jnp.asarray(key)
    raise JaxDistillError(
        f"key must be an integer seed >= 0 or a jax.random key (PRNGKey(seed) or jax.random.key(seed)), got {key!r}"
    )


def _key_repr(key) -> str:
    if isinstance(key, (int, np.integer)):
        return str(int(key))
    try:
        data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        return "key:" + ",".join(str(int(v)) for v in np.asarray(data).ravel())
    except Exception:  # pragma: no cover
        return repr(key)


def _check_task(task) -> Task:
    if not isinstance(task, Task):
        raise JaxDistillError(f"task must be a jaxdistill.tasks.Task (e.g. KappaPolynomialTask(d, kappa)), got {type(task).__name__}")
    return task


def _check_learner(learner):
    if not (isinstance(getattr(learner, "name", None), str) and callable(getattr(learner, "fit", None))):
        raise JaxDistillError(
            f"learner must have a str 'name' and a method fit(key, X, u) -> LearnerOutput (students.base), got {type(learner).__name__}"
        )
    try:
        hash(learner)
    except TypeError:
        raise JaxDistillError(f"learner must be hashable (a frozen dataclass), got {type(learner).__name__}") from None
    return learner


def _check_targets(targets) -> TargetSpec:
    if not isinstance(targets, TargetSpec):
        raise JaxDistillError(f"targets must be a TargetSpec (e.g. TargetSpec('soft', temperature=1.0)), got {targets!r}")
    return targets


def precision_adjusted(learner, dtype: str):
    """The learner as it runs in ``dtype``.

    float64: unchanged.  float32: every ``FlowConfig`` field of the learner
    gets ``newton_tol = max(newton_tol, FLOAT32_MIN_NEWTON_TOL)`` (1e-5),
    since a Newton step below float32 resolution certifies nothing; the run's
    config records the value used.
    """
    import dataclasses

    if dtype != "float32" or not dataclasses.is_dataclass(learner):
        return learner
    changes = {}
    for f in dataclasses.fields(learner):
        v = getattr(learner, f.name)
        if f.init and isinstance(v, FlowConfig) and v.newton_tol < FLOAT32_MIN_NEWTON_TOL:
            changes[f.name] = dataclasses.replace(v, newton_tol=FLOAT32_MIN_NEWTON_TOL)
    return dataclasses.replace(learner, **changes) if changes else learner


def _check_n(task: Task, n: int) -> int:
    _check_task(task)
    n = check_int("n", n, minimum=1)
    if isinstance(task, PoolTask) and n > task.pool_size:
        raise JaxDistillError(f"n must be <= the pool size {task.pool_size} (sampling without replacement), got {n}")
    return n


def default_chunk_size(n: int, d: int, budget_bytes: int = 256 * 2**20) -> int:
    """Largest chunk whose [C, n, d] float64 sets fit in ``budget_bytes``, at
    most 256: a vmapped adaptive solve steps until its slowest set is done,
    so smaller chunks waste fewer steps (measured for d = 1000, n = 20:
    1,650 flows/s in chunks of 250 vs ~1,000/s in chunks of 1,000)."""
    return int(max(1, min(256, budget_bytes // (8 * n * d * 4))))


def local_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh ("sets") over this process's local devices."""
    return jax.sharding.Mesh(np.array(jax.local_devices()), ("sets",))


def padded_batch(chunk_size: int, num_devices: int) -> int:
    """The compiled batch: ``chunk_size`` rounded up to a multiple of the
    device count, with at least 2 sets per device.

    Why at least 2: XLA compiles a vmap of size 1 without the batch axis,
    into different kernels whose results differ in the last bit (measured:
    3e-16); from 2 sets per device on, every set's numbers are bit-identical
    whatever the per-device batch, hence whatever the chunk size and the
    device count.
    """
    return max(2, -(-chunk_size // num_devices)) * num_devices


def chunks_for_process(num_chunks: int, process_index: int, process_count: int) -> list[int]:
    """Chunks computed by process i of P in a multi-host run: c % P == i."""
    return [c for c in range(num_chunks) if c % process_count == process_index]


def _one_set(task: Task, learner, targets: TargetSpec, n: int, key, i):
    """Sample, label and fit set i; a set with non-finite inputs or
    teacher logits is replaced by a harmless stand-in (so its solver
    finishes at once) and marked non_finite."""
    k_data, k_learn = jax.random.split(jax.random.fold_in(key, i))
    X = task.sample(k_data, n)
    u = teacher_logits(X, task.w_star, targets)
    finite = jnp.all(jnp.isfinite(X)) & (jnp.all(jnp.isfinite(u)) if targets.is_soft else ~jnp.any(jnp.isnan(u)))
    stand_in = jnp.eye(n, task.d, dtype=X.dtype)
    X = jnp.where(finite, X, stand_in)
    u = jnp.where(finite, u, teacher_logits(stand_in, task.w_star, targets))
    out = learner.fit(k_learn, X, u)
    out = eqx.tree_at(lambda o: o.status, out, jnp.where(finite, out.status, NONFINITE).astype(out.status.dtype))
    if targets.is_soft:
        w_hat = closed_form(X, u)
        rel = jnp.linalg.norm(out.w - w_hat) / jnp.linalg.norm(w_hat)
    else:
        rel = jnp.asarray(jnp.nan, X.dtype)
    return out, rel


@eqx.filter_jit
def _run_chunk(task: Task, learner, targets: TargetSpec, n: int, key, indices, X_test, risk_method: str,
               mesh: jax.sharding.Mesh):
    """One compiled chunk: sample, label, fit, and evaluate every set.

    ``indices`` [C] (C a multiple of the mesh size) are split over the mesh's
    "sets" axis; each device vmaps over its C / num_devices sets.  Outputs
    are global arrays sharded as PartitionSpec("sets").
    """
    from jax.experimental.shard_map import shard_map
    from jax.sharding import PartitionSpec as P

    def local(task, key, idx, X_test):
        out, rel = jax.vmap(lambda i: _one_set(task, learner, targets, n, key, i))(idx)
        angle = signed_angle(out.w, task.w_star)
        if risk_method == "exact":
            risk = exact_risk(task, out.w)
            risk_se = jnp.zeros_like(risk)
        else:
            risk, risk_se = mc_risk(out.w, X_test, task.w_star)
        return out, rel, angle, risk, risk_se

    sharded = shard_map(local, mesh=mesh, in_specs=(P(), P(), P("sets"), P()), out_specs=P("sets"), check_rep=False)
    return sharded(task, key, indices, X_test)


def device_chunk(task: Task, learner, targets: TargetSpec, n: int, key, lo: int, chunk_size: int, X_test,
                 risk_method: str, mesh: jax.sharding.Mesh | None = None):
    """Device arrays (sharded over ``mesh``) of the sets lo, lo + 1, ... of one
    chunk, padded to a multiple of the device count.  Call inside ``precision``."""
    mesh = local_mesh() if mesh is None else mesh
    size = padded_batch(chunk_size, mesh.size)
    idx = jax.device_put(np.arange(lo, lo + size, dtype=np.int32),
                         jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sets")))
    return _run_chunk(task, learner, targets, n, key, idx, X_test, risk_method, mesh)


@dataclass
class DistillResult:
    """Per-set outputs of ``distill`` (numpy arrays, leading axis = set index).

    Attributes:
        students: [B, d] final students (None when keep_students=False).
        status: [B] status codes; ``status_names`` maps them to words.
        num_steps: [B] solver/optimiser steps.
        loss: [B] final training loss (eq. 1).
        angle: [B] signed student-teacher angle (eq. 28).
        risk, risk_se: [B] transfer risk (eq. 4) and its MC standard error
            (0 when exact).
        rel_dist_closed_form: [B] ||w - w_hat|| / ||w_hat|| (NaN for hard labels).
        extras: learner-specific per-set arrays.
        config: the run's configuration; elapsed: seconds.
    """

    students: np.ndarray | None
    status: np.ndarray
    num_steps: np.ndarray
    loss: np.ndarray
    angle: np.ndarray
    risk: np.ndarray
    risk_se: np.ndarray
    rel_dist_closed_form: np.ndarray
    extras: dict
    config: dict
    risk_method: str
    elapsed: float = 0.0

    @property
    def num_sets(self) -> int:
        return int(self.status.shape[0])

    @property
    def ok(self) -> np.ndarray:
        return np.isin(self.status, SUCCESS_CODES)

    def failed_sets(self) -> list[dict]:
        """Every failed set with its global index and reason."""
        return [
            {"index": int(i), "status": STATUS_NAMES[int(self.status[i])], "num_steps": int(self.num_steps[i])}
            for i in np.flatnonzero(~self.ok)
        ]

    def expected_risk(self) -> RiskEstimate:
        return expected_risk(self.risk, self.ok)

    def summary(self) -> dict:
        """JSON-able statistics over the successful sets (and the failures)."""
        ok = self.ok
        est = self.expected_risk()
        rel = self.rel_dist_closed_form[ok]
        is_cf = self.config.get("method") == "closed-form"
        ang = self.angle[ok]
        out = {
            "risk_mean": est.mean,
            "risk_se": est.se,
            "risk_ci95": list(est.ci95),
            "risk_method": self.risk_method,
            "num_sets": est.num_sets,
            "num_sets_requested": self.num_sets,
            "num_failed": int((~ok).sum()),
            "failed_sets": self.failed_sets(),
            "angle_mean": float(np.mean(ang)) if ang.size else float("nan"),
            "angle_se": float(np.std(ang, ddof=1) / math.sqrt(ang.size)) if ang.size > 1 else float("nan"),
            "max_rel_dist_closed_form": None if (is_cf or rel.size == 0 or np.all(np.isnan(rel))) else float(np.nanmax(rel)),
            "mean_num_steps": float(np.mean(self.num_steps[ok])) if ok.any() else float("nan"),
            "max_num_steps": int(np.max(self.num_steps[ok])) if ok.any() else 0,
            "elapsed_s": self.elapsed,
            "config": self.config,
        }
        return _jsonable(out)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) else f
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def make_learner(method: str, *, flow=None, gd=None):
    check_choice("method", method, ("closed-form", "flow", "gd"))
    from .students.discrete import GDConfig

    if flow is not None and not isinstance(flow, FlowConfig):
        raise JaxDistillError(f"flow must be a FlowConfig, got {type(flow).__name__}")
    if gd is not None and not isinstance(gd, GDConfig):
        raise JaxDistillError(f"gd must be a GDConfig, got {type(gd).__name__}")
    if method == "closed-form":
        return ClosedFormLearner()
    if method == "flow":
        return FlowLearner(flow) if flow is not None else FlowLearner()
    return GDLearner(gd) if gd is not None else GDLearner()


def learner_config(learner) -> dict:
    cfg = {"method": learner.name}
    for k, v in vars(learner).items():
        if k == "name":
            continue
        cfg[k] = {kk: (vv if isinstance(vv, (int, float, str, bool, type(None))) else repr(vv)) for kk, vv in vars(v).items()} if hasattr(v, "__dataclass_fields__") else (v if isinstance(v, (int, float, str, bool)) else repr(v))
    return cfg


def distill_chunks(
    key,
    task: Task,
    n: int,
    num_sets: int,
    *,
    learner=None,
    targets: TargetSpec = TargetSpec(),
    chunk_size: int | None = None,
    risk: str = "auto",
    num_test: int = 10_000,
    keep_students: bool = True,
    dtype: str = "float64",
    start_chunk: int = 0,
    chunks: list[int] | None = None,
) -> Iterator[tuple[int, dict]]:
    """Yield (chunk index, per-set numpy arrays) chunk by chunk.

    The building block of ``distill`` and of resumable runs: chunk c covers
    global set indices [c * chunk_size, min((c + 1) * chunk_size, num_sets)).
    Computes chunks start_chunk, start_chunk + 1, ... or exactly ``chunks``
    when given.  Each chunk is sharded over all local devices.
    """
    dtype = check_dtype(dtype)
    learner = precision_adjusted(_check_learner(learner if learner is not None else FlowLearner()), dtype)
    _check_targets(targets)
    n = _check_n(task, n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    chunk_size = default_chunk_size(n, task.d) if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)
    check_choice("risk", risk, RISK_METHODS)
    check_int("num_test", num_test, minimum=1)
    start_chunk = check_int("start_chunk", start_chunk, minimum=0)
    key = as_key(key)
    if chunks is not None:
        chunks = sorted({check_int("chunks", c, minimum=0) for c in chunks})
    if learner.name == "closed-form" and not targets.is_soft:
        raise JaxDistillError("method closed-form needs soft targets: with hard labels the loss has no finite minimiser")
    if risk == "auto":
        risk = "exact" if has_exact_risk(task) else "mc"
    if risk == "exact" and not has_exact_risk(task):
        raise JaxDistillError(f"risk='exact' is not available for {type(task).__name__}; use risk='mc'")
    with precision(dtype):
        task_c = _cast_task(task, dtype)
        if risk == "mc":
            X_test = task_c.held_out(jax.random.fold_in(key, TEST_STREAM), num_test)
        else:
            X_test = jnp.zeros((1, task.d))
        mesh = local_mesh()
        num_chunks = math.ceil(num_sets / chunk_size)
        todo = range(start_chunk, num_chunks) if chunks is None else [c for c in chunks if c < num_chunks]
        for c in todo:
            lo = c * chunk_size
            hi = min(lo + chunk_size, num_sets)
            # fixed shape (chunk size rounded up to the device count); padding dropped below
            out, rel, angle, r, r_se = device_chunk(task_c, learner, targets, n, key, lo, chunk_size, X_test, risk, mesh)
            m = hi - lo
            arrays = {
                "status": np.asarray(out.status)[:m],
                "num_steps": np.asarray(out.num_steps)[:m],
                "loss": np.asarray(out.loss)[:m],
                "angle": np.asarray(angle)[:m],
                "risk": np.asarray(r)[:m],
                "risk_se": np.asarray(r_se)[:m],
                "rel_dist_closed_form": np.asarray(rel)[:m],
            }
            for k, v in out.extras.items():
                arrays["extra_" + k] = np.asarray(v)[:m]
            if keep_students:
                arrays["students"] = np.asarray(out.w)[:m]
            # a NaN anywhere in a set's outputs marks it failed (never averaged)
            bad = ~np.isfinite(arrays["risk"]) | ~np.isfinite(arrays["angle"])
            arrays["status"] = np.where(bad & np.isin(arrays["status"], SUCCESS_CODES), 2, arrays["status"])
            yield c, arrays


def _cast_task(task: Task, dtype: str) -> Task:
    """Cast the task's floating arrays to ``dtype``."""
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt) if eqx.is_inexact_array(a) or isinstance(a, np.ndarray) else a, task)


def assemble(chunks: list[dict], config: dict, risk_method: str, elapsed: float) -> DistillResult:
    cat = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    extras = {k[len("extra_"):]: v for k, v in cat.items() if k.startswith("extra_")}
    return DistillResult(
        students=cat.get("students"),
        status=cat["status"],
        num_steps=cat["num_steps"],
        loss=cat["loss"],
        angle=cat["angle"],
        risk=cat["risk"],
        risk_se=cat["risk_se"],
        rel_dist_closed_form=cat["rel_dist_closed_form"],
        extras=extras,
        config=config,
        risk_method=risk_method,
        elapsed=elapsed,
    )


def run_config(task: Task, n: int, num_sets: int, learner, targets: TargetSpec, seed_repr: str, chunk_size: int, risk: str, num_test: int, dtype: str) -> dict:
    cfg = dict(task.config())
    cfg.update(learner_config(learner))
    cfg.update(
        {"n": n, "num_sets": num_sets, "targets": targets.kind, "temperature": targets.temperature, "seed": seed_repr,
         "chunk_size": chunk_size, "risk": risk, "num_test": num_test, "dtype": dtype}
    )
    return cfg


def distill(
    key,
    task: Task,
    n: int,
    num_sets: int,
    *,
    method: str = "flow",
    learner=None,
    targets: TargetSpec = TargetSpec(),
    flow=None,
    gd=None,
    chunk_size: int | None = None,
    risk: str = "auto",
    num_test: int = 10_000,
    keep_students: bool = True,
    dtype: str = "float64",
    progress: bool = False,
) -> DistillResult:
    """Sample ``num_sets`` transfer sets of size n, train a student on each,
    and evaluate it.  The library's main entry point.

    Args:
        key: PRNG key or integer seed.
        task: a ``tasks.Task``.
        n: transfer-set size (>= 1; <= pool size for pools).
        num_sets: number of transfer sets B.
        method: "flow" (gradient flow, eq. 3, default), "closed-form"
            (Thm 1), or "gd" (optax); ignored when ``learner`` is given.
        learner: any learner object (``students.base``), e.g. a deep one.
        targets: ``TargetSpec`` (soft / temperature / hard).
        flow, gd: ``FlowConfig`` / ``GDConfig`` for those methods.
        chunk_size: sets per compiled chunk (default: bounded memory).
        risk: "auto" (exact where possible), "exact", or "mc".
        num_test: held-out inputs for Monte-Carlo risk.
        keep_students: keep the [B, d] students in memory.
        dtype: "float64" (default) or "float32" (flows then use
            newton_tol >= 1e-5, ``FLOAT32_MIN_NEWTON_TOL``).
        progress: show a progress bar (sets done, rate, time left).

    Failures: a set whose solver hits max_steps, fails, is rank deficient or
    produces non-finite values (including non-finite sampled inputs) keeps
    its index and reason (``failed_sets()``); statistics use the other sets.
    Bad arguments raise ``JaxDistillError`` naming the parameter, before
    any tracing.

    Returns:
        ``DistillResult``; ``.summary()`` gives the statistics.

    Example:
        >>> task = KappaPolynomialTask(d=1000, kappa=1.0)
        >>> res = distill(0, task, n=20, num_sets=2000)
        >>> res.expected_risk()
    """
    dtype = check_dtype(dtype)
    learner = learner if learner is not None else make_learner(method, flow=flow, gd=gd)
    learner = precision_adjusted(_check_learner(learner), dtype)
    _check_targets(targets)
    n = _check_n(task, n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    check_choice("risk", risk, RISK_METHODS)
    as_key(key)
    cs = default_chunk_size(n, task.d) if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)
    cs = min(cs, num_sets) if chunk_size is None else cs
    risk_method = risk if risk != "auto" else ("exact" if has_exact_risk(task) else "mc")
    t0 = time.perf_counter()
    chunks = []
    bar = _progress_bar(num_sets, progress)
    for _, arrays in distill_chunks(
        key, task, n, num_sets, learner=learner, targets=targets, chunk_size=cs, risk=risk, num_test=num_test,
        keep_students=keep_students, dtype=dtype,
    ):
        chunks.append(arrays)
        bar.update(len(arrays["status"]))
    bar.close()
    config = run_config(task, n, num_sets, learner, targets, _key_repr(key), cs, risk_method, num_test, dtype)
    return assemble(chunks, config, risk_method, time.perf_counter() - t0)


class _NoBar:
    def update(self, k):
        pass

    def close(self):
        pass


def _progress_bar(total: int, enabled: bool, initial: int = 0):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="set", desc="transfer sets", dynamic_ncols=True, mininterval=0.5)
