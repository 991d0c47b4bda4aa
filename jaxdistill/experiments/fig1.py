"""Figure 1: p(theta) (eq. 17) for three transfer tasks like Tasks A, B, C.

* Task A — well aligned: the kappa-polynomial task with kappa = 3
  (p(theta) = (1 - 2 theta / pi)^3 drops fast);
* Task B — aligned and with an angular margin: the margin task with
  beta0 = 0.3 rad and kappa = 2 (p reaches 0 at theta0 = pi/2 - 0.3 < pi/2);
* Task C — poorly aligned, mass near the decision boundary: kappa = 0.3
  (p drops slowly).

p is exact (``analysis.ptheta.exact_p_theta``); each curve is checked
against the empirical reverse CDF of sampled angles
(``empirical_p_theta``), whose largest deviation is stored per task in
``OUT/fig1_points`` (it is a Monte-Carlo check, not part of the table).
Table columns: task, theta, p.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import Grid, pyplot, savefig, write_csv

NAME = "fig1"
COLUMNS = ("task", "theta", "p")
TASKS = {
    "A (kappa=3)": ("kappa", {"kappa": 3.0}),
    "B (margin=0.3, kappa=2)": ("margin", {"margin": 0.3, "kappa": 2.0}),
    "C (kappa=0.3)": ("kappa", {"kappa": 0.3}),
}
D = 50


def _task(label):
    from ..tasks import make_task

    kind, kw = TASKS[label]
    return make_task(kind, d=D, **kw)


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_theta: int = 181,
        num_samples: int | None = None) -> list[dict]:
    """Tabulate p(theta) on a grid of ``num_theta`` angles in [0, pi/2] for tasks A, B, C."""
    import jax

    from .._precision import precision
    from ..analysis.ptheta import empirical_p_theta, exact_p_theta, sample_angles

    num_samples = num_samples or (20_000 if quick else 200_000)
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_theta": num_theta, "num_samples": num_samples, "d": D})
    theta = np.linspace(0.0, math.pi / 2, num_theta)

    def compute(label):
        task = _task(label)
        with precision():
            p = np.asarray(exact_p_theta(task, theta))
            ang = sample_angles(jax.random.PRNGKey(seed), task, num_samples)
            emp = np.asarray(empirical_p_theta(ang, theta))
        dev = float(np.max(np.abs(emp - p)))
        return [{"task": label, "theta": float(t), "p": float(v), "_mc_max_dev": dev} for t, v in zip(theta, p)]

    rows = grid.run(list(TASKS), compute, progress=progress)
    write_csv(grid.out / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, grid.out / f"{NAME}.png")
    return [{k: r[k] for k in COLUMNS} for r in rows]


def plot(rows, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label in TASKS:
        rs = [r for r in rows if r["task"] == label]
        ax.plot([r["theta"] for r in rs], [r["p"] for r in rs], label=f"Task {label}")
    ax.set_xlabel(r"$\theta$ (rad)")
    ax.set_ylabel(r"$p(\theta) = P[\bar\alpha(w_*, x) \geq \theta]$")
    ax.set_xlim(0, math.pi / 2)
    ax.set_ylim(0, 1.02)
    ax.set_title("Fig. 1: angular alignment p(theta)")
    ax.legend(fontsize=8)
    savefig(fig, path)


def summary_rows(rows):
    """A few rows per task for the printed table."""
    out = []
    for label in TASKS:
        rs = [r for r in rows if r["task"] == label]
        idx = np.linspace(0, len(rs) - 1, 5).round().astype(int)
        out += [rs[i] for i in idx]
    return out
