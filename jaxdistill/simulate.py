"""Batched simulation: transfer sets -> students -> per-set statistics.

PRNG discipline: set i (global index) uses ``fold_in(key, i)``, split into
a sampling key and a learner key, so results do not depend on the chunk
size, on the number of devices, or on where a resumed run restarts.

Chunking: sets are processed ``chunk_size`` at a time by one compiled
function of fixed shape (the last chunk is padded and the padding dropped),
so B = 100,000 never materialises [B, n, d] and changing B, the seed or the
data does not recompile.  Within a chunk the sets are vmapped; the chunk is
sharded over all local devices along the batch axis (``jax.sharding``).
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
from .students.flow import STATUS_NAMES, SUCCESS_CODES
from .tasks import PoolTask, Task
from .teachers import TargetSpec, teacher_logits
from .validation import JaxDistillError, check_choice, check_int

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
    with precision(dtype):
        key = as_key(key)
        task = _cast_task(task, dtype)
        keys = set_keys(key, jnp.arange(start, start + num_sets))
        return jax.vmap(lambda k: task.sample(jax.random.split(k)[0], n))(keys)


def iter_transfer_sets(key, task: Task, n: int, num_sets: int, chunk_size: int, *, dtype: str = "float64") -> Iterator[jax.Array]:
    """Yield [C, n, d] chunks of the same sets as ``sample_transfer_sets``."""
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    for start in range(0, num_sets, chunk_size):
        yield sample_transfer_sets(key, task, n, min(chunk_size, num_sets - start), start=start, dtype=dtype)


def as_key(key) -> jax.Array:
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return key


def _check_n(task: Task, n: int) -> int:
    n = check_int("n", n, minimum=1)
    if isinstance(task, PoolTask) and n > task.pool_size:
        raise JaxDistillError(f"n must be <= the pool size {task.pool_size} (sampling without replacement), got {n}")
    return n


def default_chunk_size(n: int, d: int, budget_bytes: int = 256 * 2**20) -> int:
    """Largest chunk whose [C, n, d] float64 sets fit in ``budget_bytes`` (<= 1000)."""
    return int(max(1, min(1000, budget_bytes // (8 * n * d * 4))))


@eqx.filter_jit
def _run_chunk(task: Task, learner, targets: TargetSpec, n: int, key, indices, X_test, risk_method: str):
    """One compiled chunk: sample, label, fit, and evaluate every set."""

    def one(i):
        k_data, k_learn = jax.random.split(jax.random.fold_in(key, i))
        X = task.sample(k_data, n)
        u = teacher_logits(X, task.w_star, targets)
        out = learner.fit(k_learn, X, u)
        if targets.is_soft:
            w_hat = closed_form(X, u)
            rel = jnp.linalg.norm(out.w - w_hat) / jnp.linalg.norm(w_hat)
        else:
            rel = jnp.asarray(jnp.nan, X.dtype)
        return out, rel

    out, rel = jax.vmap(one)(indices)
    angle = signed_angle(out.w, task.w_star)
    if risk_method == "exact":
        risk = exact_risk(task, out.w)
        risk_se = jnp.zeros_like(risk)
    else:
        risk, risk_se = mc_risk(out.w, X_test, task.w_star)
    return out, rel, angle, risk, risk_se


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
) -> Iterator[tuple[int, dict]]:
    """Yield (chunk index, per-set numpy arrays) chunk by chunk.

    The building block of ``distill`` and of resumable runs: chunk c covers
    global set indices [c * chunk_size, min((c + 1) * chunk_size, num_sets)).
    """
    learner = learner if learner is not None else FlowLearner()
    n = _check_n(task, n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
    chunk_size = default_chunk_size(n, task.d) if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)
    check_choice("risk", risk, RISK_METHODS)
    check_int("num_test", num_test, minimum=1)
    check_dtype(dtype)
    if learner.name == "closed-form" and not targets.is_soft:
        raise JaxDistillError("method closed-form needs soft targets: with hard labels the loss has no finite minimiser")
    if risk == "auto":
        risk = "exact" if has_exact_risk(task) else "mc"
    if risk == "exact" and not has_exact_risk(task):
        raise JaxDistillError(f"risk='exact' is not available for {type(task).__name__}; use risk='mc'")
    with precision(dtype):
        key = as_key(key)
        task_c = _cast_task(task, dtype)
        if risk == "mc":
            X_test = task_c.held_out(jax.random.fold_in(key, TEST_STREAM), num_test)
        else:
            X_test = jnp.zeros((1, task.d))
        num_chunks = math.ceil(num_sets / chunk_size)
        for c in range(start_chunk, num_chunks):
            lo = c * chunk_size
            hi = min(lo + chunk_size, num_sets)
            idx = jnp.arange(lo, lo + chunk_size)  # fixed shape; padding dropped below
            out, rel, angle, r, r_se = _run_chunk(task_c, learner, targets, n, key, idx, X_test, risk)
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
        dtype: "float64" (default) or "float32".
        progress: show a progress bar.

    Returns:
        ``DistillResult``; ``.summary()`` gives the statistics.

    Example:
        >>> task = KappaPolynomialTask(d=1000, kappa=1.0)
        >>> res = distill(0, task, n=20, num_sets=2000)
        >>> res.expected_risk()
    """
    learner = learner if learner is not None else make_learner(method, flow=flow, gd=gd)
    n = _check_n(task, n)
    num_sets = check_int("num_sets", num_sets, minimum=1)
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
    config = run_config(task, n, num_sets, learner, targets, repr(key) if not isinstance(key, int) else str(key), cs, risk_method, num_test, dtype)
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
