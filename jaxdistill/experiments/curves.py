"""Learning curves (beyond the paper): expected transfer risk vs n, from
n = 1 to past d, for soft-label distillation, hard-label learning and
w_delta, with the Theorem 3 / Corollary 1 / Corollary 2 bounds drawn over
them, on a kappa-polynomial task and on an angular-margin task (d = 50).

Learners (one pass per (task, n), the same transfer sets for all three;
set i uses the keys of ``distill``):

* soft: the distilled student in closed form (Thm 1, eq. 6) — exactly the
  gradient flow's limit, and cheap for the 2 x 18 sizes of the sweep;
* hard: the hard-target learner's long-run limit, the max-margin separator
  through the origin (``students.hard.max_margin``);
* w_delta: ``delta`` = 0.5 (``students.wdelta``).

Risk is exact (rotationally symmetric tasks).  For n >= d the soft student
equals w* (eq. 6), so its risk is 0 (to rounding) — Thm 3, eq. 18 — while
the hard-label learner's is not.

Columns: task, learner, n, risk_mean, risk_se, num_sets, thm3_bound,
cor1_bound (margin task only), cor2_bound.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._precision import precision
from ..keys import as_key, set_key_pair
from ..runner import ChunkPlan, SetProgram, run_program
from ..sequencing import after
from ..status import Status
from ..students.closed_form import reduce_data, reduced_target
from ..students.hard import max_margin
from ..students.wdelta import orthogonal_gaussian, w_delta_from
from ..tasks import Task
from ..teachers import teacher_logits
from ._common import Grid, pyplot, savefig, write_csv

NAME = "curves"
COLUMNS = ("task", "learner", "n", "risk_mean", "risk_se", "num_sets", "thm3_bound", "cor1_bound", "cor2_bound")
D = 50
NS = (1, 2, 3, 5, 8, 12, 16, 20, 25, 30, 35, 40, 45, 49, 50, 55, 60, 70)
TASKS = {"kappa=1": ("kappa", {"kappa": 1.0}), "margin=0.3": ("margin", {"margin": 0.3, "kappa": 1.0})}
LEARNERS = ("soft", "hard", "w_delta")
DELTA = 0.5
FLOOR = 1e-7  # zero risks are drawn at this level on the log axis


def _task(label, d):
    from ..tasks import make_task

    kind, kw = TASKS[label]
    return make_task(kind, d=d, **kw)


class CurveProgram(SetProgram):
    """One transfer set of the learning curves: the soft student (closed
    form), the max-margin hard-target student and w_delta on the same set;
    exact risk of each.  ``ok`` [3] says which of the three succeeded; the
    set's status is the first failure (or converged)."""

    task: Task
    n: int = eqx.field(static=True)
    delta: float = eqx.field(static=True)

    finite_outputs = ()

    def one_set(self, key, index, shared):
        n, task = self.n, self.task
        k_data, k_learn = set_key_pair(key, index)
        X = task.sample(k_data, n)
        u = teacher_logits(X, task.w_star)
        red = reduce_data(X)
        w_hat = red.Q @ reduced_target(red, u)
        w_d = w_delta_from(w_hat, orthogonal_gaussian(k_learn, X, red), self.delta)  # one QR for both
        mm = max_margin(after(X, w_d), jnp.where(u >= 0, 1.0, -1.0).astype(X.dtype))
        W = jnp.stack([w_hat, mm.w, w_d])
        ok = jnp.stack([red.rank_ok | (n > task.d), mm.status == Status.CONVERGED, red.rank_ok | (n > task.d)])
        ok = ok & jnp.all(jnp.isfinite(W), axis=1)
        status = jnp.where(jnp.all(ok), Status.CONVERGED, jnp.where(jnp.all(jnp.isfinite(W)), mm.status, Status.NON_FINITE))
        return {"W": W, "ok": ok, "status": status.astype(jnp.int32)}

    def finish(self, batch, shared):
        batch["risk"] = self.task.exact_risk(batch.pop("W"))  # [C, 3]
        return batch


def learner_risks(seed, task, n: int, num_sets: int, *, delta: float = DELTA, chunk_size: int = 250):
    """Per-set exact risks [B, 3] of the soft, hard and w_delta learners and a
    success mask [B, 3] (through the library's chunked runner)."""
    with precision():
        program = CurveProgram(task.cast("float64"), task.check_n(n), float(delta))
    run = run_program(program, as_key(seed), ChunkPlan(num_sets, min(chunk_size, num_sets)))
    return run.arrays["risk"], run.arrays["ok"] & np.isfinite(run.arrays["risk"])


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        ns=NS, d: int = D, delta: float = DELTA) -> list[dict]:
    """Risk vs n for both tasks.  Defaults: d = 50, n in NS (1 to 70),
    500 transfer sets per point (100 with ``quick``)."""
    from ..analysis.bounds import cor1_bound, cor2_bound, thm3_bound
    from ..analysis.risk import expected_risk

    num_sets = num_sets or (100 if quick else 500)
    ns = tuple(int(x) for x in ns)
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_sets": num_sets, "ns": list(ns), "d": d,
                                "delta": delta})
    keys = [f"{t}_n={n}" for t in TASKS for n in ns]

    def compute(key):
        label, n = key.rsplit("_n=", 1)
        n = int(n)
        task = _task(label, d)
        R, OK = learner_risks(seed, task, n, num_sets, delta=delta)
        b3 = float(thm3_bound(task.p_theta, n, d).bound)
        c1 = float(cor1_bound(task.p_theta, n, d)) if TASKS[label][0] == "margin" else None
        c2 = float(cor2_bound(n, TASKS[label][1]["kappa"]))
        rows = []
        for j, lr in enumerate(LEARNERS):
            est = expected_risk(R[:, j], OK[:, j])
            rows.append({"task": label, "learner": lr, "n": n, "risk_mean": est.mean, "risk_se": est.se,
                         "num_sets": est.num_sets, "thm3_bound": b3, "cor1_bound": c1, "cor2_bound": c2})
        return rows

    rows = grid.run(keys, compute, progress=progress)
    write_csv(grid.out / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, grid.out / f"{NAME}.png", d=d, delta=delta)
    return rows


def plot(rows, path, *, d=D, delta=DELTA):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = {"soft": ("tab:blue", "soft labels (distillation)"), "hard": ("tab:orange", "hard labels (max-margin limit)"),
              "w_delta": ("tab:green", f"$w_\\delta$, $\\delta$={delta:g}")}
    for ax, label in zip(axes, TASKS):
        rs = [r for r in rows if r["task"] == label]
        for lr, (c, name) in styles.items():
            sub = [r for r in rs if r["learner"] == lr]
            n = np.array([r["n"] for r in sub])
            m = np.maximum(np.array([r["risk_mean"] for r in sub]), FLOOR)
            ax.plot(n, m, "o-", ms=3, color=c, label=name)
        sub = [r for r in rs if r["learner"] == "soft"]
        n = np.array([r["n"] for r in sub])
        for col, ls, name in (("thm3_bound", "--", "Thm 3 bound"), ("cor1_bound", ":", "Cor. 1 bound"),
                              ("cor2_bound", "-.", "Cor. 2 bound")):
            v = np.array([np.nan if r[col] is None else r[col] for r in sub], dtype=float)
            if np.all(np.isnan(v)):
                continue
            ax.plot(n, np.clip(v, FLOOR, None), ls, color="gray" if col != "cor1_bound" else "k", lw=1, label=name)
        ax.axvline(d, color="r", lw=0.8, alpha=0.6)
        ax.text(d, 0.5, " n = d", color="r", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(FLOOR * 0.5, 1.0)
        ax.set_xlabel("transfer-set size n")
        ax.set_title(f"{label} task, d={d}")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"expected transfer risk (0 drawn at {FLOOR:g})")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle("Learning curves: risk vs n with the paper's bounds")
    savefig(fig, path)


def summary_rows(rows):
    keep = {1, 5, 20, 49, 50, 70}
    return [r for r in rows if r["n"] in keep]
