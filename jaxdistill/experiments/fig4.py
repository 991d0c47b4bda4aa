"""Figure 4 (section 5.2, optimisation bias): transfer risk of the
reduced-bias learners w_delta = w_hat + delta ||w_hat|| / ||q|| q on
MNIST digits 0/1, delta in {0, 10, ..., 90}, n = 100.

Task: ``datasets.mnist01_task(seed=task_seed)`` (teacher: logistic
regression on a seeded half of the training images; transfer sets from the
other half; risk = disagreement with the teacher on the 2,115 test images,
exact for the pool, so risk_se is the standard error over transfer sets).
Learner: ``WDeltaLearner(delta)`` with w_hat from the closed form (Thm 1,
eq. 6), which is exactly the gradient flow's limit and far cheaper at
d = 784.  All deltas share the transfer sets and the Gaussian directions q
(same seed: common random numbers), so the curve shows delta's effect alone.
Because of that sharing, one pass computes every delta from a single QR
per set (``w_delta_risks``); set i uses exactly the keys of
``distill(seed, task, n, B, learner=WDeltaLearner(delta))``, so each delta's
numbers equal that call's (the tests check it).

Columns: delta, risk_mean, risk_se, num_sets.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._precision import precision
from ..keys import as_key, set_key_pair
from ..runner import ChunkPlan, SetProgram, run_program
from ..status import Status
from ..students.closed_form import reduce_data, reduced_target
from ..students.wdelta import orthogonal_gaussian, w_delta_from
from ..tasks import Task
from ..teachers import teacher_logits
from ._common import Grid, pyplot, savefig, write_csv

NAME = "fig4"
COLUMNS = ("delta", "risk_mean", "risk_se", "num_sets")
DELTAS = tuple(float(x) for x in range(0, 100, 10))
N = 100


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        deltas=DELTAS, n: int = N, task_seed: int = 0) -> list[dict]:
    """Risk vs delta on MNIST 0/1.  Defaults: n = 100, 1000 transfer sets per
    delta (100 with ``quick``)."""
    from ..analysis.risk import expected_risk
    from ..datasets import mnist01_task

    num_sets = num_sets or (100 if quick else 1000)
    deltas = tuple(float(x) for x in deltas)
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_sets": num_sets, "deltas": list(deltas), "n": n,
                                "task_seed": task_seed})
    keys = [f"delta={x:g}" for x in deltas]
    cache = {}

    def compute(key):
        if "risks" not in cache:  # one pass for every delta not yet on disk
            todo = [float(k.split("=")[1]) for k in keys if not grid.path(k).exists()]
            task = mnist01_task(seed=task_seed)
            cache["risks"] = dict(zip(todo, w_delta_risks(seed, task, n, num_sets, todo, progress=progress)))
        delta = float(key.split("=")[1])
        r, ok = cache["risks"][delta]
        est = expected_risk(r, ok)
        return [{"delta": delta, "risk_mean": est.mean, "risk_se": est.se, "num_sets": est.num_sets,
                 "num_failed": int((~ok).sum())}]

    rows = grid.run(keys, compute, progress=progress)
    write_csv(grid.out / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, grid.out / f"{NAME}.png", n=n)
    return rows


class WDeltaRiskProgram(SetProgram):
    """One transfer set of Figure 4: w_hat by the closed form, then w_delta for
    every delta with the set's Gaussian direction q; exact pool risk of each."""

    task: Task
    n: int = eqx.field(static=True)
    deltas: Float[Array, " K"]

    finite_outputs = ("risk",)

    def one_set(self, key, index, shared):
        k_data, k_learn = set_key_pair(key, index)
        X = self.task.sample(k_data, self.n)
        red = reduce_data(X)
        w_hat = red.Q @ reduced_target(red, teacher_logits(X, self.task.w_star))
        W = w_delta_from(w_hat, orthogonal_gaussian(k_learn, X, red), self.deltas)  # [K, d], one QR for both
        ok = red.rank_ok & jnp.all(jnp.isfinite(W))
        return {"W": W, "status": jnp.where(ok, Status.CONVERGED, Status.RANK_DEFICIENT).astype(jnp.int32)}

    def finish(self, batch, shared):
        batch["risk"] = self.task.exact_risk(batch.pop("W"))  # [C, K]
        return batch


def w_delta_risks(seed, task, n: int, num_sets: int, deltas, *, chunk_size: int = 50, progress: bool = False):
    """Per-set transfer risks of w_delta for several deltas at once.

    Returns a list (one per delta) of (risks [B], ok [B]) numpy pairs.  Set i
    draws X and q exactly as ``distill`` does with ``WDeltaLearner``.  Runs
    through the library's chunked runner (sharded over devices).
    """
    n = task.check_n(n)
    deltas = [float(x) for x in deltas]
    with precision():
        program = WDeltaRiskProgram(task.cast("float64"), n, jnp.asarray(deltas, jnp.float64))
    run = run_program(program, as_key(seed), ChunkPlan(num_sets, chunk_size), progress=progress)
    R, OK = run.arrays["risk"], run.ok
    return [(R[:, j], OK) for j in range(len(deltas))]


def plot(rows, path, *, n=N):
    plt = pyplot()
    x = np.array([r["delta"] for r in rows])
    m = np.array([r["risk_mean"] for r in rows])
    se = np.array([r["risk_se"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.errorbar(x, m, yerr=se, fmt="o-", ms=4, capsize=3, label=r"$w_\delta$, mean $\pm$ SE")
    ax.set_xlabel(r"$\delta$ (weaker optimisation bias $\rightarrow$)")
    ax.set_ylabel("transfer risk on MNIST 0/1 test images")
    ax.set_title(f"Fig. 4: risk vs optimisation bias (MNIST 0/1, n={n})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    savefig(fig, path)


def summary_rows(rows):
    return rows
