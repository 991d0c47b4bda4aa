"""Figure 2: 2-D samples of the margin task (left) and of the kappa = 1 and
kappa = 2 polynomial tasks (centre, right), with the teacher w* = e_1.

Columns: task, x1, x2 (plus the teacher's label in the plot's colours).
"""

from __future__ import annotations


import numpy as np

from ._common import Grid, pyplot, savefig, write_csv

NAME = "fig2"
COLUMNS = ("task", "x1", "x2")
TASKS = {
    "margin (beta0=0.3)": ("margin", {"margin": 0.3, "kappa": 1.0}),
    "kappa=1": ("kappa", {"kappa": 1.0}),
    "kappa=2": ("kappa", {"kappa": 2.0}),
}


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_points: int | None = None) -> list[dict]:
    """Draw ``num_points`` (default 1000; 300 with quick) inputs of each 2-D task."""
    import jax

    from .._precision import precision
    from ..tasks import make_task

    num_points = num_points or (300 if quick else 1000)
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_points": num_points})

    def compute(label):
        kind, kw = TASKS[label]
        task = make_task(kind, d=2, **kw)
        with precision():
            X = np.asarray(task.sample(jax.random.PRNGKey(seed), num_points))
        return [{"task": label, "x1": float(a), "x2": float(b)} for a, b in X]

    rows = grid.run(list(TASKS), compute, progress=progress)
    write_csv(grid.out / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, grid.out / f"{NAME}.png")
    return rows


def plot(rows, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
    for ax, label in zip(axes, TASKS):
        X = np.array([[r["x1"], r["x2"]] for r in rows if r["task"] == label])
        pos = X[:, 0] >= 0
        ax.scatter(X[pos, 0], X[pos, 1], s=4, c="tab:blue", label="w*.x >= 0")
        ax.scatter(X[~pos, 0], X[~pos, 1], s=4, c="tab:orange", label="w*.x < 0")
        lim = float(np.quantile(np.abs(X), 0.99)) * 1.1
        ax.axvline(0.0, color="k", lw=0.8)
        ax.annotate("", xy=(lim * 0.6, 0), xytext=(0, 0), arrowprops=dict(arrowstyle="->", color="k"))
        ax.text(lim * 0.6, lim * 0.05, "w*", fontsize=9)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(label)
        ax.set_xlabel("$x_1$ (along the teacher $w^*$)")
    axes[0].set_ylabel("$x_2$")
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("Fig. 2: margin condition (left) and polynomial condition (centre, right)")
    savefig(fig, path)


def summary_rows(rows):
    out = []
    for label in TASKS:
        out += [r for r in rows if r["task"] == label][:3]
    return out
