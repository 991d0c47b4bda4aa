"""``jaxdistill sweep``: a study over a grid of ``jaxdistill run`` points.

``--grid AXIS=V1,V2,...`` (repeatable; the product of the axes) or
``--points FILE`` (a JSON list of objects or a CSV file with a header: any
set of points) names the points; an axis is any option of ``run`` by its
name (``n``, ``kappa``, ``soft-ratio`` or ``soft_ratio``, ``method``, ...;
not ``num-sets``, a column of the table).
Each point is the ``run`` command of the other options with the point's
values put in, resolved and validated by the same code
(``spec.run_spec``, ``simulate.setup_run``): an axis that does not apply
is refused as ``run`` refuses the option.  Every point is a run folder
``OUT/points/<axis=value,...>/`` (resumable chunk by chunk); ``OUT/sweep.csv``,
``OUT/sweep.json`` and ``OUT/sweep.png`` summarise the study
(``jaxdistill.sweep``).
"""

from __future__ import annotations

import argparse
import csv
import copy
import itertools
import json
import sys
import time
from pathlib import Path

from .hosts import HOST_OPTIONS
from .run import add_run_arguments

# options of ``run`` that are not settings of a point (or not an axis of a sweep)
NOT_SETTINGS = ("out", "quiet", "json", "strict", *HOST_OPTIONS, "func", "command")
SWEEP_METRICS = ("risk_mean", "error_mean", "monotonicity", "bound", "risk_se", "num_failed", "seconds")
# what a result column of sweep.csv holds, for the refusal of an axis of the same name
RESULT_COLUMN_MEANING = {"num_sets": "counts the sets behind each point's statistics",
                         "num_failed": "counts each point's failed sets", "seconds": "is each point's run time",
                         "monotonicity": "is each point's monotonicity estimate",
                         "bound": "is each point's Theorem 3 bound"}


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="a study: run a grid of points, one table, one figure",
                       description="Run every point of a grid (--grid AXIS=V1,V2,..., repeatable: their product) or "
                                   "of a list (--points FILE) as a 'jaxdistill run' with the other options; an axis "
                                   "is any option of run (n, kappa, d, margin, temperature, seed, method, kernel, "
                                   "bandwidth, learner, ...; not num-sets, a column of the table).  Writes "
                                   "OUT/points/<axis=value,...>/ (the run folder of each point, resumable), "
                                   "OUT/sweep.csv (one row per point), OUT/sweep.json and "
                                   "OUT/sweep.png.  Rerunning the same command resumes; a finished sweep computes "
                                   "nothing.  Several hosts: the chunks of all points are numbered in one sequence "
                                   "and process i of P computes those with number % P == i; process 0 writes every "
                                   "point's summary and the sweep's files.")
    add_run_arguments(p)
    for action in _actions(p).values():  # only the options given are set: given_options tells them
        action.default = argparse.SUPPRESS
    g = p.add_argument_group("sweep")
    g.add_argument("--grid", action="append", default=None, metavar="AXIS=V1,V2,...",
                   help="an axis and its values, e.g. --grid n=2,5,10 --grid kappa=0.5,2 (repeatable; the points "
                        "are the product of the axes, the first axis varying slowest)")
    g.add_argument("--points", default=None, metavar="FILE",
                   help="the points as a JSON list of objects ({\"n\": 5, \"kappa\": 2}, ...) or a CSV file with a "
                        "header (one column per axis), for studies that are not products; refused with --grid")
    g.add_argument("--with-bound", action="store_true",
                   help="add the Theorem 3 bound (eq. 19, minimised over beta; 0 for n >= d) of each point's task "
                        "and n as the column bound (binary tasks with a teacher vector)")
    g.add_argument("--facet", default=None, metavar="AXIS",
                   help="sweep.png: one panel per value of this axis (default: the third axis, if any)")
    g.add_argument("--metric", choices=SWEEP_METRICS, default="risk_mean",
                   help="sweep.png: the column plotted against the first axis (default risk_mean, with its SE)")
    g.add_argument("--logx", action=argparse.BooleanOptionalAction, default=None,
                   help="sweep.png: log x axis (default: where the values span >= 2 decades)")
    g.add_argument("--logy", action=argparse.BooleanOptionalAction, default=None,
                   help="sweep.png: log y axis (default: where the values span >= 2 decades)")
    p.set_defaults(func=main)


def run_parser() -> argparse.ArgumentParser:
    """A parser with exactly the options of ``jaxdistill run``."""
    p = argparse.ArgumentParser(prog="jaxdistill run", add_help=False)
    add_run_arguments(p)
    return p


def _actions(parser: argparse.ArgumentParser) -> dict:
    return {a.dest: a for a in parser._actions if a.dest not in NOT_SETTINGS and a.option_strings}


def axis_name(name: str, parser: argparse.ArgumentParser) -> str:
    """The option dest of an axis or setting name ("num-sets", "--num-sets",
    "num_sets" -> "num_sets"), refused naming it when ``run`` has no such option."""
    from ..validation import JaxDistillError

    dest = name.strip().lstrip("-").replace("-", "_")
    dest = {"keep_students": "save_students"}.get(dest, dest)
    if dest not in _actions(parser):
        raise JaxDistillError(f"{name!r} is not an option of jaxdistill run (axes and settings are run's options: "
                              f"{', '.join(sorted(_actions(parser)))})")
    return dest


def coerce(dest: str, value, parser: argparse.ArgumentParser):
    """``value`` checked and converted as ``run`` parses its option ``dest``
    (its type, range and choices), refused naming the option otherwise."""
    from ..validation import JaxDistillError

    action = _actions(parser)[dest]
    opt = action.option_strings[-1]
    if action.nargs == 0:  # a flag
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise JaxDistillError(f"{opt} is a flag: give true or false, got {value!r}")
        return value
    if value is None:
        return None
    try:
        out = action.type(str(value)) if action.type is not None else str(value)
    except argparse.ArgumentTypeError as e:
        # an integer-valued float (np.linspace's 2.0) is the integer, as in jd.distill (validation.check_int)
        if not (_integer_valued(value) and action.type is not None):
            raise JaxDistillError(str(e)) from None
        try:
            out = action.type(str(int(value)))
        except argparse.ArgumentTypeError:
            raise JaxDistillError(str(e)) from None
    if action.choices is not None and out not in action.choices:
        raise JaxDistillError(f"{opt} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return out


def _integer_valued(value) -> bool:
    """A float (Python or numpy, not bool) equal to an integer within float precision (|value| <= 2**53)."""
    import numbers

    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral))
            and float(value).is_integer() and abs(float(value)) <= 2**53)


def with_values(args, values: dict, parser: argparse.ArgumentParser):
    """A copy of parsed ``run`` options with ``values`` ({name: value}) put in."""
    out = copy.copy(args)
    for name, value in values.items():
        dest = axis_name(name, parser)
        setattr(out, dest, coerce(dest, value, parser))
    return out


def settings_args(settings: dict):
    """The ``run`` options of Python settings ({"d": 20, "method": "closed-form", ...}),
    every other option at its default."""
    parser = run_parser()
    args = parser.parse_args([])
    args.quiet = True
    return with_values(args, settings, parser)


def grid_values(axis, values) -> list:
    """The values of a grid axis as a list: any ordered iterable (a list, a
    tuple, a range, an array, a generator, read once); refused naming the
    axis for a string, a mapping, a set (no order) or an empty one."""
    from ..validation import JaxDistillError

    unordered = isinstance(values, (set, frozenset, dict))
    if isinstance(values, (str, bytes)) or unordered or not hasattr(values, "__iter__"):
        raise JaxDistillError(f"grid axis {axis!r} needs a non-empty list of values, got "
                              f"{type(values).__name__ if unordered else repr(values)}"
                              f"{' (it has no order)' if unordered else ''}")
    out = list(values)
    if not out:
        raise JaxDistillError(f"grid axis {axis!r} needs a non-empty list of values, got no values")
    return out


def grid_points(grid: dict) -> list[dict]:
    """The product of the axes ({axis: [values]}), the first axis varying slowest."""
    from ..validation import JaxDistillError

    if not isinstance(grid, dict):
        raise JaxDistillError(f"grid must be a dict {{axis: [values]}}, got {type(grid).__name__}")
    grid = {axis: grid_values(axis, values) for axis, values in grid.items()}
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[a] for a in names))]


def check_same_option(names: list, parser: argparse.ArgumentParser, what: str = "axes") -> None:
    """Two names of one ``run`` option ("num-sets" and "num_sets") are refused naming both and the option."""
    from ..validation import JaxDistillError

    seen = {}
    for name in names:
        dest = axis_name(name, parser)
        if dest in seen:
            opt = _actions(parser)[dest].option_strings[-1]
            raise JaxDistillError(f"{what} {seen[dest]!r} and {name!r} are both the option {opt} of jaxdistill "
                                  "run; give it once")
        seen[dest] = name


def check_not_a_column(axis: str, parser: argparse.ArgumentParser) -> None:
    """An axis named as a result column of sweep.csv (num_sets, ...) is refused:
    the table would hold two columns of that name."""
    from ..sweep import columns
    from ..validation import JaxDistillError

    dest = axis_name(axis, parser)
    if dest in columns([], {"monotonicity": True, "with_bound": True}):
        opt = _actions(parser)[dest].option_strings[-1]
        raise JaxDistillError(f"{axis!r} cannot be an axis of a sweep: the table's {dest} column "
                              f"{RESULT_COLUMN_MEANING.get(dest, 'is a result of each point')}; give {dest} as a "
                              f"setting ({opt}), or run one sweep per value")


def check_point_axes(points: list, parser: argparse.ArgumentParser) -> list[dict]:
    """The points with their axes checked (each a ``run`` option, once, not a
    result column; the same axes at every point, in any order) and put in
    the first point's order (the table's columns)."""
    from ..validation import JaxDistillError

    axes = list(points[0])
    check_same_option(axes, parser)
    for axis in axes:
        check_not_a_column(axis, parser)
    for p in points:
        if set(p) != set(axes):
            raise JaxDistillError(f"every point needs the same axes {axes}, got {list(p)}")
    return [{axis: p[axis] for axis in axes} for p in points]


def parse_grid_options(items: list[str]) -> dict:
    """--grid AXIS=V1,V2 options -> {axis: [text values]} (an axis once)."""
    from ..validation import JaxDistillError

    grid = {}
    for item in items:
        axis, sep, values = item.partition("=")
        if not sep or not axis.strip() or not values.strip():
            raise JaxDistillError(f"--grid takes AXIS=V1,V2,... (e.g. --grid n=2,5,10), got {item!r}")
        axis = axis.strip()
        if axis in grid:
            raise JaxDistillError(f"--grid axis {axis} is given twice")
        grid[axis] = [v.strip() for v in values.split(",")]
    return grid


def read_points_file(path) -> list[dict]:
    """--points FILE: a JSON list of objects, or a CSV file with a header."""
    from ..validation import JaxDistillError

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise JaxDistillError(f"--points {path} cannot be read: {e.strerror or e}") from None
    if str(path).lower().endswith(".json") or text.lstrip().startswith("["):
        try:
            points = json.loads(text, object_pairs_hook=lambda pairs: _json_point(path, pairs))
        except json.JSONDecodeError as e:
            raise JaxDistillError(f"--points {path} is not valid JSON: {e}") from None
    else:
        points = read_points_csv(path, text)
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) and p for p in points):
        raise JaxDistillError(f"--points {path} must hold a non-empty list of points (a JSON list of objects, or a "
                              "CSV file with a header and one row per point)")
    return points


def _json_point(path, pairs: list) -> dict:
    """A JSON object of --points FILE; a key given twice is refused naming it."""
    from ..validation import JaxDistillError

    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise JaxDistillError(f"--points {path}: a point gives {k!r} twice")
    return dict(pairs)


def read_points_csv(path, text: str) -> list[dict]:
    """The points of a CSV --points file (a header, one row per point; blank
    lines skipped).  A column named twice, or a row with fewer or more
    values than columns, is refused naming the file, the row and the column."""
    from ..validation import JaxDistillError

    reader = csv.reader(text.splitlines())
    header = next(reader, None) or []
    for name in header:
        if header.count(name) > 1:
            raise JaxDistillError(f"--points {path}: column {name!r} is named twice in the header")
    points = []
    for row in reader:
        if not row:
            continue
        where = f"--points {path}: row {len(points) + 1} (line {reader.line_num})"
        if len(row) < len(header):
            raise JaxDistillError(f"{where} has no value for column {header[len(row)]!r} ({len(row)} values for "
                                  f"{len(header)} columns: {', '.join(header)})")
        if len(row) > len(header):
            raise JaxDistillError(f"{where} has {len(row)} values for {len(header)} columns "
                                  f"({', '.join(header)})")
        points.append(dict(zip(header, row)))
    return points


def given_options(args, parser: argparse.ArgumentParser) -> set:
    """The dests of the ``run`` options the command line gave (in any form:
    ``--n 5``, ``--n=5``, an abbreviation): the sweep's parser leaves the
    others out (their defaults are suppressed); they are set here to
    ``run``'s defaults."""
    defaults = parser.parse_args([])
    given = set()
    for dest in _actions(parser):
        if hasattr(args, dest):
            given.add(dest)
        else:
            setattr(args, dest, getattr(defaults, dest))
    return given


def check_axes(given: set, axes: list[str], parser: argparse.ArgumentParser) -> None:
    """An axis that is also given as an option (``given``: their dests, see
    ``given_options``) is refused, whatever its value (which value would count?)."""
    from ..validation import JaxDistillError

    for axis in axes:
        dest = axis_name(axis, parser)
        if dest in given:
            opt = _actions(parser)[dest].option_strings[-1]
            raise JaxDistillError(f"{opt} is both an option and an axis of the sweep; give its values once")


def main(args) -> int:
    from .hosts import initialize_from_args
    from ..validation import JaxDistillError

    if args.json:
        raise JaxDistillError("--json applies only to jaxdistill run (a sweep writes OUT/sweep.json)")
    if not args.out:
        raise JaxDistillError("jaxdistill sweep needs --out DIR (the points' run folders, sweep.csv, sweep.json, "
                              "sweep.png)")
    if (args.grid is None) == (args.points is None):
        raise JaxDistillError("jaxdistill sweep needs either --grid AXIS=V1,V2,... (repeatable) or --points FILE")
    parser = run_parser()
    given = given_options(args, parser)
    points = grid_points(parse_grid_options(args.grid)) if args.grid else read_points_file(args.points)
    points = check_point_axes(points, parser)
    check_axes(given, list(points[0]), parser)
    hosts = initialize_from_args(args)  # before anything touches a JAX backend
    base = copy.copy(args)
    axes = {axis_name(a, parser) for a in points[0]}
    settings = {a.dest: getattr(args, a.dest) for a in _actions(parser).values() if a.dest not in axes}
    res = run_sweep(base, points, args.out, with_bound=args.with_bound, progress=not args.quiet,
                    settings=settings, plot={"metric": args.metric, "facet": args.facet, "logx": args.logx,
                                             "logy": args.logy}, hosts=hosts)
    if res is None:
        print(f"jaxdistill sweep: process {hosts.process_index} of {hosts.process_count}: its chunks are done; "
              f"process 0 writes {args.out}/sweep.csv")
        return 0
    print(res.format_table())
    num_points = len(res.table)
    print(f"written {args.out}/sweep.csv, sweep.json, sweep.png ({num_points} point{'' if num_points == 1 else 's'}, "
          f"{res.info['sets_computed']} sets computed, {res.info['compilations']} compilations, "
          f"{_loaded(res.info)}{res.info['seconds']:.1f} s)")
    if args.strict and any(row["num_failed"] for row in res.table):
        print("jaxdistill sweep: --strict: some transfer sets failed", file=sys.stderr)
        return 3
    return 0


def _loaded(info: dict) -> str:
    """'N programs loaded from the compilation cache, ' when JAX's persistent cache supplied any."""
    n = info["programs_loaded_from_cache"]
    return f"{n} program{'' if n == 1 else 's'} loaded from the compilation cache, " if n else ""


def run_point(args, label: str, out: Path | None, bar, hosts=None) -> tuple:
    """One point: computed (resuming its folder) or, when finished, loaded.
    Returns its ``RunSetup``, its result and the number of sets computed.
    On the processes other than 0 of a multi-host run (``hosts``): computes
    this process's chunks of the point; the result is None."""
    from ..results import load, write_run_files
    from ..runner import run_program
    from ..runstore import RunStore
    from ..sweep import POINTS_DIR
    from ..validation import JaxDistillError
    from .run import estimand_info, setup_from_args

    setup = setup_from_args(args)
    share = setup.plan.num_sets if hosts is None else hosts.sets_of(setup.plan)
    root = None if out is None else out / POINTS_DIR / label
    store = None
    if root is not None:
        try:
            store = RunStore(root, setup.config)
        except JaxDistillError as e:
            raise JaxDistillError(f"point {label}: {e}") from None
        if point_finished(out, label):
            bar.update(share)
            return setup, load(root) if hosts is None or hosts.merges else None, 0
    run = run_program(setup.program, setup.key, setup.plan, shared=setup.shared, dtype=setup.dtype, store=store,
                      on_sets=bar.update, hosts=hosts)
    bar.update(share - run.sets_computed)  # the chunks a killed run had finished
    info = estimand_info(args, setup, root, hosts)
    if not run.merged:
        return setup, None, run.sets_computed
    result = setup.result(run)
    result.info.update(info)
    if root is not None:
        write_run_files(root, result, save_students=args.save_students)
    return setup, result, run.sets_computed


def run_sweep(base, points: list, out, *, with_bound: bool = False, progress: bool = True, settings: dict,
              plot: dict | None = None, hosts=None):
    """Run every point (``base``: parsed ``run`` options; each point's values
    are put in) and write the sweep's files into ``out`` (when given).
    Every point is validated before anything is computed; the XLA
    compilations of the whole sweep are counted.  ``hosts``: a multi-host
    run (``out`` shared by all processes); the chunks of all points are
    numbered in one sequence and split over the processes; process 0 returns
    the ``SweepResult`` and writes the files, the others return None."""
    from ..results import jsonable
    from ..sweep import CompileCounter, SweepResult, check_plot, columns, write_sweep_files

    t0 = time.perf_counter()
    out = None if out is None else Path(out)
    if hosts is not None and hosts.several and out is None:
        from ..validation import JaxDistillError

        raise JaxDistillError("a multi-host sweep needs --out on a filesystem shared by all processes")
    cols = columns(list(points[0]), {"monotonicity": bool(base.monotonicity), "with_bound": with_bound})
    check_plot(list(points[0]), cols, **(plot or {}))  # before anything is computed
    with CompileCounter() as compiles:
        point_args = validate_points(base, points, out, with_bound=with_bound)
        results, rows, computed = run_points(point_args, out, with_bound, progress, hosts)
    if hosts is not None and not hosts.merges:
        return None
    info = {"settings": jsonable(settings), "axes": list(points[0]), "points": [x[2] for x in point_args],
            "with_bound": with_bound, "monotonicity": bool(base.monotonicity), "compilations": compiles.count,
            "programs_loaded_from_cache": compiles.cache_loads, "sets_computed": computed,
            "seconds": time.perf_counter() - t0}
    res = SweepResult(list(points[0]), rows, results, info, None if out is None else str(out))
    if out is not None:
        write_sweep_files(res, out, plot or {})
    return res


def validate_points(base, points: list, out: Path | None = None, *, with_bound: bool = False) -> list:
    """[(point's run options, its ``ChunkPlan``, its axis values, its label,
    its program's ``runner.program_signature``)],
    every point resolved (and refused where an axis does not apply) as ``run`` would,
    its axes in the first point's order (``check_point_axes``); with
    ``with_bound``, a point whose task or student has no Theorem 3 bound is refused.
    A point's ``out`` is its run folder ``out/points/<label>`` (None without
    ``out``), so the options that need ``--out`` (``--save-students``) see it."""
    from ..runner import program_signature
    from ..sweep import POINTS_DIR, bound_refusal, point_label
    from ..validation import JaxDistillError
    from .run import setup_from_args

    parser = run_parser()
    points = check_point_axes(points, parser)
    resolved = []
    for p in points:
        try:
            a = with_values(base, p, parser)
            values = {k: getattr(a, axis_name(k, parser)) for k in p}
            a.quiet = True  # one bar for the whole sweep
            a.out = None if out is None else str(Path(out) / POINTS_DIR / point_label(values))
            setup = setup_from_args(a)  # refuses an axis that does not apply
            refusal = bound_refusal(a, setup.task) if with_bound else None
            if refusal:
                raise JaxDistillError(refusal)
        except JaxDistillError as e:
            raise JaxDistillError(f"sweep point {point_label(p)}: {e}") from None
        signature = program_signature(setup.program, setup.plan, shared=setup.shared, dtype=setup.dtype)
        resolved.append((a, setup.plan, values, point_label(values), signature))
    labels = [x[3] for x in resolved]
    if len(set(labels)) < len(labels):
        raise JaxDistillError("the sweep has the same point twice: " + next(x for x in labels if labels.count(x) > 1))
    return resolved


def point_finished(out: Path | None, label: str) -> bool:
    """Whether the point's run folder holds a finished run (its summary)."""
    from ..results import SUMMARY_FILE
    from ..sweep import POINTS_DIR

    return out is not None and (out / POINTS_DIR / label / SUMMARY_FILE).exists()


def compile_point(args, label: str, out: Path | None) -> None:
    """Compile the point's chunk program without running it
    (``runner.compile_chunks``), unless the point is finished.  A point
    whose program another point already compiled (it differs only in
    traced settings) costs only the lookup."""
    from ..runner import compile_chunks
    from .run import setup_from_args

    if not point_finished(out, label):
        setup = setup_from_args(args)
        compile_chunks(setup.program, setup.key, setup.plan, shared=setup.shared, dtype=setup.dtype)


def program_groups(point_args: list) -> list[list[int]]:
    """The points grouped by compiled program (``runner.program_signature``;
    groups in order of first appearance, points within a group in table
    order).  The sweep runs them group by group, so that one program's
    points run back to back while the next one compiles (``CompileAhead``).
    Every point's numbers are independent of the order; the table keeps the
    points' order."""
    groups: list[tuple] = []  # (signature, [point indices])
    for k, x in enumerate(point_args):
        for signature, members in groups:
            if _same(signature, x[4]):
                members.append(k)
                break
        else:
            groups.append((x[4], [k]))
    return [members for _, members in groups]


def _same(a: tuple, b: tuple) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a static value without a plain equality: treat as different programs
        return False


class CompileAhead:
    """Compiles the programs of the groups after the first, in order, in one
    background thread while the main thread runs the points group by group
    (``program_groups``; one unfinished point of each group is compiled):
    the next program's compilation overlaps the points of the one before
    (XLA compiles on the CPU whatever the device; a CPU run keeps about one
    core busy).  The main thread makes each point's setup again: equal
    settings give an equal program, which finds the compiled one."""

    def __init__(self, point_args: list, groups: list[list[int]], out: Path | None):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxdistill-compile-ahead")
        self._futures = [None] * len(point_args)
        for members in groups[1:]:  # the first group's program compiles in the main thread, meanwhile
            pending = [k for k in members if not point_finished(out, point_args[k][3])]
            if pending:
                a, _, _, label, _ = point_args[pending[0]]
                self._futures[pending[0]] = self._pool.submit(compile_point, a, label, out)

    def wait(self, k: int) -> None:
        """Wait until point k's program is compiled (or its compilation
        failed: the point's own run then reports the error)."""
        future = self._futures[k]
        if future is not None:
            try:
                future.result()
            except Exception:  # noqa: BLE001 - the main thread's own setup raises it with the point's name
                pass

    def close(self) -> None:
        for future in self._futures:
            if future is not None:
                future.cancel()
        self._pool.shutdown(wait=False)


def run_points(point_args: list, out: Path | None, with_bound: bool, progress: bool, hosts=None) -> tuple:
    """Run (or load) every point under one progress bar: (results, table rows
    in the points' order, sets computed), group by group
    (``program_groups``), compiling the next group's program meanwhile
    (``CompileAhead``).  Multi-host (``hosts``): the chunks of all points
    are numbered in one sequence (point k's chunk c is number offset_k + c)
    and split over the processes by that number; only process 0 has
    results."""
    from ..progress import progress_bar
    from ..sweep import table_row, thm3_of

    several = hosts is not None and hosts.several
    offsets = [sum(x[1].num_chunks for x in point_args[:k]) for k in range(len(point_args))]
    share = (lambda k, plan: hosts.shifted(offsets[k]).sets_of(plan)) if several else (lambda k, plan: plan.num_sets)
    bar = progress_bar(sum(share(k, x[1]) for k, x in enumerate(point_args)), progress, desc="sweep")
    groups = program_groups(point_args)
    order = [k for members in groups for k in members]
    ahead = CompileAhead(point_args, groups, out)
    by_point, computed = {}, 0
    try:
        for k in order:
            a, _, values, label, _ = point_args[k]
            bar.set_description(f"sweep {label}")
            ahead.wait(k)
            setup, res, sets = run_point(a, label, out, bar, hosts.shifted(offsets[k]) if several else None)
            computed += sets
            if res is None:
                continue
            bound = thm3_of(setup.task, a.n, a) if with_bound else None
            r = table_row(values, res.summary(), bound, with_bound, bool(a.monotonicity))
            by_point[k] = (res, r)
            bar.write(f"{label}: risk {_num(r['risk_mean'])} +- {_num(r['risk_se'])} ({r['num_sets']} sets, "
                      f"{r['num_failed']} failed, {sets} computed now, {r['seconds']:.2f} s)", file=sys.stderr)
    finally:
        ahead.close()
        bar.close()
    results = [by_point[k][0] for k in sorted(by_point)]
    rows = [by_point[k][1] for k in sorted(by_point)]
    return results, rows, computed


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


__all__ = ["add_parser", "main", "run_parser", "axis_name", "coerce", "with_values", "settings_args", "grid_points",
           "grid_values", "check_same_option", "check_not_a_column", "check_point_axes", "parse_grid_options",
           "read_points_file", "read_points_csv", "given_options", "check_axes", "run_point", "run_sweep",
           "validate_points", "run_points", "compile_point", "point_finished", "CompileAhead", "program_groups",
           "SWEEP_METRICS"]
