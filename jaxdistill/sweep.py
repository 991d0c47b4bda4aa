"""Studies, not single runs: ``sweep`` runs a grid of ``distill`` points.

Each point is a ``jaxdistill run`` configuration: the sweep's settings with
the point's values put in, resolved by the command's own code
(``cli.spec.run_spec``, ``simulate.setup_run``) and run by the one runner
(``runner.run_program``), so every option of ``run`` works in a sweep and
is refused there as in ``run``.  With ``out`` every point is a run folder
``out/points/<axis=value,...>/`` in the format of one run (manifest, chunks,
sets.csv, summary.json): a killed sweep resumes point by point and chunk by
chunk, and a finished point is read back with ``results.load``.  The study
itself is ``out/sweep.csv`` (one row per point), ``out/sweep.json``
(settings, axes, points, compilations, time) and ``out/sweep.png``.

Points that differ only in traced values reuse the compiled chunk: the
seed and every setting declared traced (``jaxdistill.traced``: kappa,
margin, temperature, soft ratio, delta, bandwidth, teacher scale) are
arguments of the one compiled program.  An axis that changes a shape (n, d,
K, widths, the test size, the chunk size) or the program's structure (the
method, the learner, the targets' kind, a soft ratio of 0) compiles once per
value.
``sweep.json`` records the number of XLA compilations measured and the
programs loaded instead from JAX's persistent compilation cache.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .results import jsonable, load, per_set_table
from .validation import JaxDistillError

POINTS_DIR = "points"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax's backend compile (or persistent-cache load)
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"  # a program loaded from JAX's persistent compilation cache
COMPILE_STAGE_EVENTS = (COMPILE_EVENT, "/jax/core/compile/jaxpr_trace_duration",
                        "/jax/core/compile/jaxpr_to_mlir_module_duration")  # tracing, lowering, XLA compiling
SE_OF = {"risk_mean": "risk_se", "error_mean": "error_se", "monotonicity": "monotonicity_se"}
MAX_LINES = 6
BOUND_APPLIES = ("--with-bound applies only to binary tasks with a teacher vector w_star [d] (Thm 3 is for a binary "
                 "linear teacher)")


_ACTIVE_COUNTERS: list["CompileCounter"] = []
_LISTENING: list[bool] = [False]


def _on_duration_event(event: str, duration: float, **kwargs) -> None:
    if event in COMPILE_STAGE_EVENTS:
        for counter in _ACTIVE_COUNTERS:
            counter.seconds += duration
            counter._backend_events += event == COMPILE_EVENT


def _on_event(event: str, **kwargs) -> None:
    if event == CACHE_HIT_EVENT:
        for counter in _ACTIVE_COUNTERS:
            counter.cache_loads += 1


class CompileCounter:
    """Counts XLA backend compilations (``count``), the programs loaded
    instead from JAX's persistent compilation cache (``cache_loads``; only
    with ``JAX_COMPILATION_CACHE_DIR`` set) and the seconds spent tracing,
    lowering and compiling or loading (``seconds``) while active.  jax
    reports a load from the cache as a backend compilation too, so ``count``
    is those events less the loads.  The ``jax.monitoring`` listeners are
    registered once per process and feed every active counter (jax < 0.7 has
    no public way to unregister a listener)."""

    def __init__(self):
        self._backend_events = 0
        self.cache_loads = 0
        self.seconds = 0.0

    @property
    def count(self) -> int:
        """XLA compilations (programs loaded from the persistent cache excluded)."""
        return self._backend_events - self.cache_loads

    def __enter__(self) -> "CompileCounter":
        import jax

        if not _LISTENING[0]:
            jax.monitoring.register_event_duration_secs_listener(_on_duration_event)
            jax.monitoring.register_event_listener(_on_event)
            _LISTENING[0] = True
        _ACTIVE_COUNTERS.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE_COUNTERS.remove(self)


@dataclass
class SweepResult:
    """The result of a sweep.

    Attributes:
        axes: the axis names, in order (the first is the x axis of ``plot``).
        table: one row (a dict) per point: the axis values, then risk_mean,
            risk_se, risk_ci95_lo, risk_ci95_hi, error_mean, error_se (None
            without labels), monotonicity and monotonicity_se (with
            monotonicity), bound (with ``with_bound``), num_sets,
            num_failed, seconds; the rows of sweep.csv.
        results: the ``DistillResult`` of each point, in table order.
        info: settings, points, compilations, sets_computed, seconds.
        out: the output folder, or None.
    """

    axes: list
    table: list
    results: list = field(repr=False)
    info: dict = field(default_factory=dict)
    out: str | None = None

    def to_pandas(self):
        """``table`` as a pandas DataFrame (pandas is an optional extra)."""
        return _pandas().DataFrame(self.table)

    def sets_to_pandas(self):
        """Per-set data in long format: one row per point and set, the axis
        values then ``set`` and the columns of each point's sets.csv.  An
        axis named like a sets.csv column (``risk``: the risk method, against
        each set's ``risk``) is the column ``<axis>_axis``."""
        pd = _pandas()
        frames = []
        for row, res in zip(self.table, self.results):
            df = pd.DataFrame(per_set_table(res.arrays)).rename_axis("set").reset_index()
            for axis in reversed(self.axes):
                df.insert(0, f"{axis}_axis" if axis in df.columns else axis, row[axis])
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def plot(self, metric: str = "risk_mean", facet: str | None = None, logx: bool | None = None,
             logy: bool | None = None):
        """``metric`` against the first axis (error bars: its SE), one line per
        value of the other axes, one panel per value of ``facet`` (default:
        the third axis); returns the matplotlib Figure."""
        return plot_table(self.table, self.axes, metric=metric, facet=facet, logx=logx, logy=logy)

    def format_table(self) -> str:
        """A short fixed-width table of the rows."""
        from .experiments._common import format_table

        return format_table(self.table, columns(self.axes, self.info))


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise JaxDistillError("to_pandas needs pandas (an optional extra): pip install pandas") from None
    return pd


def columns(axes: list, info: dict) -> list:
    """The columns of sweep.csv."""
    cols = list(axes) + ["risk_mean", "risk_se", "risk_ci95_lo", "risk_ci95_hi", "error_mean", "error_se"]
    if info.get("monotonicity"):
        cols += ["monotonicity", "monotonicity_se"]
    if info.get("with_bound"):
        cols.append("bound")
    return cols + ["num_sets", "num_failed", "seconds"]


def point_label(point: dict) -> str:
    """The folder name of a point: "axis=value,..." (safe characters only)."""
    def fmt(v):
        if isinstance(v, float) and float(f"{v:g}") == v:
            return f"{v:g}"
        return str(v)

    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", ",".join(f"{k}={fmt(v)}" for k, v in point.items()))


def table_row(point: dict, summary: dict, bound: float | None, with_bound: bool, monotonicity: bool) -> dict:
    """The sweep.csv row of a point from its summary."""
    lo, hi = summary["risk_ci95"]
    row = dict(point)
    row.update({"risk_mean": summary["risk_mean"], "risk_se": summary["risk_se"], "risk_ci95_lo": lo,
                "risk_ci95_hi": hi, "error_mean": summary.get("error_mean"), "error_se": summary.get("error_se")})
    if monotonicity:
        row.update({"monotonicity": summary.get("monotonicity"), "monotonicity_se": summary.get("monotonicity_se")})
    if with_bound:
        row["bound"] = bound
    row.update({"num_sets": summary["num_sets"], "num_failed": summary["num_failed"],
                "seconds": summary["elapsed_s"]})
    return jsonable(row)


def thm3_of(task, n: int, args=None) -> float:
    """The Theorem 3 bound (eq. 19 minimised over beta; 0 for n >= d, eq. 18)
    of a binary task with a teacher vector, as ``jaxdistill bound``; refused
    with ``bound_refusal``'s reason otherwise (``args``: the point's parsed
    ``run`` options, when there are any)."""
    import jax.numpy as jnp

    from ._precision import precision
    from .analysis.bounds import thm3_bound
    from .analysis.ptheta import p_function
    from .tasks import PoolTask

    refusal = bound_refusal(args, task)
    if refusal is not None:
        raise JaxDistillError(refusal)
    with precision():
        res = thm3_bound(p_function(task), jnp.asarray([n]), None if isinstance(task, PoolTask) else task.d)
    return float(res.bound[0])


def bound_refusal(args, task) -> str | None:
    """Why ``thm3_of`` has no bound for a point (its parsed ``run`` options,
    or None, and the task its run uses), or None when it has one: a student
    that is not linear, a K-class task, a teacher given by its logits."""
    from .tasks import Task

    if isinstance(task, Task):
        return None
    student = getattr(args, "student", "linear")
    classes = getattr(args, "classes", None)
    task_name = getattr(args, "task", type(task).__name__)
    reasons = []
    if student != "linear":
        reasons.append(f"a {student} student (--student {student}; Thm 3 bounds the linear student)")
    if classes is not None:
        reasons.append(f"a K-class task (--task {task_name} --classes {classes})")
    if not reasons:
        reasons.append(f"a teacher-logits task (--task {task_name}: no teacher vector w_star)" if args is not None
                       else f"a task without a teacher vector w_star ({task_name})")
    return f"{BOUND_APPLIES}; this sweep has " + " and ".join(reasons)


def check_plot(axes: list, cols: list, metric: str = "risk_mean", facet: str | None = None, **_) -> None:
    """The figure's ``metric`` (a column of ``cols``) and ``facet`` (an axis),
    checked before anything is computed; the other plot options are not
    checked here."""
    if metric not in cols:
        raise JaxDistillError(f"metric {metric!r} is not a column of this sweep (columns: "
                              f"{', '.join(cols) or 'none'})")
    if facet is not None and facet not in axes:
        raise JaxDistillError(f"--facet {facet} is not an axis of this sweep (axes: {', '.join(axes)})")


def write_sweep_files(res: SweepResult, out: Path, plot: dict) -> None:
    """sweep.csv, sweep.json and sweep.png."""
    from .experiments._common import savefig, write_csv
    from .runstore import write_json

    cols = columns(res.axes, res.info)
    write_csv(out / "sweep.csv", res.table, cols)
    labels = [point_label(p) for p in res.info["points"]]
    write_json(out / "sweep.json", {**res.info, "columns": cols, "point_dirs": [f"{POINTS_DIR}/{x}" for x in labels],
                                    "table": res.table})
    savefig(res.plot(**plot), out / "sweep.png")


def load_sweep(out) -> SweepResult:
    """The ``SweepResult`` of a finished sweep folder (``jd.sweep(out=...)``,
    ``jaxdistill sweep --out``): its table and every point's result."""
    root = Path(out)
    path = root / "sweep.json"
    if not path.exists():
        raise JaxDistillError(f"{root} holds no finished sweep: sweep.json is missing (rerun the same sweep to "
                              "finish it)")
    info = json.loads(path.read_text())
    results = [load(root / d) for d in info.pop("point_dirs")]
    table = info.pop("table")
    info.pop("columns")
    return SweepResult(info["axes"], table, results, info, str(root))


def sweep(grid: dict | None = None, points: list | None = None, out=None, *, with_bound: bool = False,
          progress: bool = True, **settings) -> SweepResult:
    """Run a study: every point of ``grid`` (the product of the axes, the
    first varying slowest) or of ``points`` (a list of dicts), each a
    ``distill`` run of ``settings`` with the point's values put in.

    Args:
        grid: {axis: [values]}, e.g. {"n": [2, 5, 10], "kappa": [0.5, 2]}.
        points: [{axis: value, ...}, ...] for studies that are not products
            (instead of ``grid``).
        out: a folder: each point is a resumable run folder
            ``out/points/<axis=value,...>/`` and the study is written to
            ``out/sweep.csv``, ``out/sweep.json``, ``out/sweep.png``; a rerun
            computes only what is missing.
        with_bound: add the Theorem 3 bound of each point (column bound).
        progress: one bar over the whole sweep and a line per finished point.
        settings: the options of ``jaxdistill run`` by name, as Python
            values: task ("kappa", "margin", "gaussian", ...), d, kappa,
            margin, teacher_norm, n, num_sets, seed, method, targets,
            temperature, learner ("distill", "wdelta", ...), delta, depth,
            student, kernel, bandwidth, risk, num_test, dtype, sampler,
            chunk_size, monotonicity, keep_students, ... (defaults as
            ``jaxdistill run``).  Axes are names from the same list.  An axis
            or setting that does not apply is refused naming it.

    Examples:
        >>> res = sweep(grid={"n": [2, 5, 10], "kappa": [0.5, 2]}, task="kappa", d=20, method="closed-form",
        ...             num_sets=8, out="study")
        >>> res.table[0]["risk_mean"], res.plot()
    """
    from .cli.sweep import axis_name, check_point_axes, check_same_option, grid_points, run_parser, run_sweep
    from .cli.sweep import settings_args

    if (grid is None) == (points is None):
        raise JaxDistillError("sweep needs either grid={axis: [values]} or points=[{axis: value}, ...]")
    pts = grid_points(grid) if grid is not None else list(points)
    if not pts or not all(isinstance(p, dict) and p for p in pts):
        raise JaxDistillError("points must be a non-empty list of non-empty dicts")
    parser = run_parser()
    check_same_option(list(settings), parser, "settings")
    base = settings_args(settings)
    if base.save_students and out is None:
        raise JaxDistillError("keep_students=True needs out=DIR: a sweep writes each point's students to its run "
                              "folder (out/points/<point>/students.npy)")
    pts = check_point_axes(pts, parser)
    given = {axis_name(k, parser) for k in settings}
    for axis in pts[0]:
        if axis_name(axis, parser) in given:
            raise JaxDistillError(f"{axis!r} is both a setting and an axis of the sweep; give its values once")
    return run_sweep(base, pts, out, with_bound=with_bound, progress=progress,
                     settings={k: getattr(base, axis_name(k, parser)) for k in settings})


# --- the figure --------------------------------------------------------------------------------------------------


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _log_span(values) -> bool:
    """True when the positive values span at least two decades."""
    v = [x for x in values if _is_num(x) and x is not None and x > 0]
    return len(v) >= 2 and max(v) / min(v) >= 100


def plot_table(table: list, axes: list, *, metric: str = "risk_mean", facet: str | None = None,
               logx: bool | None = None, logy: bool | None = None):
    """The figure of a sweep table: ``metric`` against the first axis."""
    from .experiments._common import pyplot

    check_plot(axes, list(table[0]) if table else [], metric, facet)
    facet = facet if facet is not None else (axes[2] if len(axes) > 2 else None)
    x_axis = next(a for a in axes if a != facet)
    line_axes = [a for a in axes if a not in (x_axis, facet)]
    xs = list(dict.fromkeys(r[x_axis] for r in table))
    numeric = all(_is_num(x) for x in xs)
    panels = _panels(table, facet, line_axes)
    plt = pyplot()
    fig, axs = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 1.8, 4), squeeze=False)
    se = SE_OF.get(metric)
    for ax, (title, lines) in zip(axs[0], panels):
        for name, rows in lines:
            rows = [r for r in rows if r[metric] is not None]
            x = [r[x_axis] if numeric else xs.index(r[x_axis]) for r in rows]
            y = [r[metric] for r in rows]
            err = [r.get(se) or 0.0 for r in rows] if se else None
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
        ax.set_xticks(xs if numeric else range(len(xs)))
        ax.set_xticklabels([f"{x:g}" if _is_num(x) else str(x) for x in xs])
        if numeric and (logx if logx is not None else _log_span(xs)):
            ax.set_xscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{x:g}" for x in xs])
            ax.minorticks_off()
        if logy if logy is not None else _log_span([r[metric] for r in table]):
            ax.set_yscale("log")
        ax.set_xlabel(x_axis)
        ax.set_ylabel(metric + (f" (+- {se})" if se else ""))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if any(name for name, _ in lines):
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle(f"{metric} vs {x_axis}" + (f" by {', '.join(line_axes)}" if line_axes else ""))
    fig.tight_layout()
    return fig


def _panels(table: list, facet: str | None, line_axes: list) -> list:
    """[(panel title, [(line label, rows)])]: one panel per facet value, each
    with at most ``MAX_LINES`` lines (more are split over several panels)."""
    by_facet = {}
    for r in table:
        by_facet.setdefault(r[facet] if facet else None, []).append(r)
    panels = []
    for fv, rows in by_facet.items():
        lines = {}
        for r in rows:
            lines.setdefault(", ".join(f"{a}={r[a]:g}" if _is_num(r[a]) else f"{a}={r[a]}" for a in line_axes),
                             []).append(r)
        items = list(lines.items())
        groups = [items[i:i + MAX_LINES] for i in range(0, len(items), MAX_LINES)]
        for j, group in enumerate(groups):
            title = "" if facet is None else f"{facet}={fv:g}" if _is_num(fv) else f"{facet}={fv}"
            if len(groups) > 1:
                title += f" ({j + 1}/{len(groups)})"
            panels.append((title.strip(), group))
    return panels


__all__ = ["sweep", "SweepResult", "load_sweep", "write_sweep_files", "plot_table", "table_row", "thm3_of",
           "bound_refusal", "check_plot", "point_label", "columns", "CompileCounter", "POINTS_DIR", "BOUND_APPLIES"]
