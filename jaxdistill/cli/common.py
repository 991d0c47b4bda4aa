"""Options shared by several subcommands (task, size, precision)."""

from __future__ import annotations

import argparse
import math

from ..defaults import DEFAULTS

TASKS = ("kappa", "margin", "gaussian", "pool", "mnist", "digits", "relu-teacher")


def positive_int(name: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 1, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 1, got {v}")
        return v

    return parse


def nonnegative_int(name: str, maximum: int | None = None):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 0, got {text!r}") from None
        if v < 0 or (maximum is not None and v > maximum):
            rng = f"in [0, {maximum}]" if maximum is not None else ">= 0"
            raise argparse.ArgumentTypeError(f"{name} must be an integer {rng}, got {v}")
        return v

    return parse


def int_at_least(name: str, minimum: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {v}")
        return v

    return parse


def finite_float(name: str, *, gt: float | None = None, ge: float | None = None, lt: float | None = None):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a real number, got {text!r}") from None
        if not math.isfinite(v) or (gt is not None and v <= gt) or (ge is not None and v < ge) or (lt is not None and v >= lt):
            rng = " and ".join(s for s in (f"> {gt}" if gt is not None else "", f">= {ge}" if ge is not None else "",
                                            f"< {lt}" if lt is not None else "") if s)
            raise argparse.ArgumentTypeError(f"{name} must be a finite real number{' ' + rng if rng else ''}, "
                                             f"got {text!r}")
        return v

    return parse


def targets_of(args) -> str:
    """``--targets`` as given, else its default (``DEFAULTS.targets``); the
    option itself defaults to None so that a given value can be told apart."""
    return DEFAULTS.targets if args.targets is None else args.targets


TASK_OPTIONS = {
    # option: (argparse dest, default, tasks it applies to)
    "--kappa": ("kappa", DEFAULTS.kappa, ("kappa", "margin")),
    "--margin": ("margin", DEFAULTS.margin, ("margin",)),
    "--d": ("d", DEFAULTS.d, ("kappa", "margin", "gaussian", "relu-teacher")),
    "--teacher-norm": ("teacher_norm", DEFAULTS.teacher_norm, ("kappa", "margin", "gaussian")),
    "--pool-file": ("pool_file", None, ("pool",)),
    "--task-seed": ("task_seed", DEFAULTS.task_seed, ("mnist", "gaussian", "digits", "relu-teacher")),
    "--classes": ("classes", None, ("gaussian", "relu-teacher")),
    "--label-noise": ("label_noise", None, ("gaussian",)),
    "--teacher-width": ("teacher_width", None, ("relu-teacher",)),
    "--teacher-scale": ("teacher_scale", None, ("relu-teacher",)),
}

K_CLASS_GAUSSIAN_OPTIONS = {
    # options of --task gaussian that need --classes K: why
    "--task-seed": "the binary teacher is teacher_norm * e_1",
    "--label-noise": "labels of a K-class teacher",
}


def add_task_arguments(p: argparse.ArgumentParser, *, n_required: bool = False) -> None:
    """The task options.  Each applies to some tasks only (``TASK_OPTIONS``);
    ``task_from_args`` refuses one given for another task."""
    g = p.add_argument_group("task")
    g.add_argument("--task", choices=TASKS, default=DEFAULTS.task, help="input law and teacher (default: kappa)")
    g.add_argument("--kappa", type=finite_float("--kappa", gt=0.0), default=None,
                   help="kappa > 0 of the kappa-polynomial task (and the margin task's angle law); default 1")
    g.add_argument("--margin", type=finite_float("--margin", ge=0.0, lt=math.pi / 2), default=None,
                   help="angular margin beta0 in [0, pi/2) of the margin task (radians); default 0.2")
    g.add_argument("--d", type=int_at_least("--d", 2), default=None,
                   help=f"input dimension d >= 2 of the kappa, margin, gaussian and relu-teacher tasks (default "
                        f"{DEFAULTS.d}); pool and mnist/digits tasks take d from their data")
    g.add_argument("--teacher-norm", type=finite_float("--teacher-norm", gt=0.0), default=None,
                   help="||w*|| for the kappa, margin and gaussian tasks (default 1)")
    g.add_argument("--pool-file", default=None,
                   help="for --task pool: .npz with arrays 'inputs' [P, d] and a teacher, 'w_star' [d] or [K, d] "
                        "or 'teacher_logits' [P] or [P, K] (any model's logits); optionally 'test_inputs' [M, d] "
                        "(with 'test_teacher_logits'), ground-truth 'labels' [P] and 'test_labels' [M]")
    g.add_argument("--task-seed", type=nonnegative_int("--task-seed"), default=None,
                   help="for --task mnist and --task digits (8x8 digits, K = 10): seed of the teacher's training "
                        "split; for --task gaussian --classes K: seed of the K teacher rows; for --task relu-teacher: "
                        f"seed of the teacher network's weights (default {DEFAULTS.task_seed})")
    g.add_argument("--classes", type=int_at_least("--classes", 2), default=None,
                   help="for --task gaussian: K >= 2 classes (a linear softmax teacher with K rows drawn from "
                        "--task-seed; default: the binary task); for --task relu-teacher: K >= 2 outputs of the "
                        "teacher network (default 2: binary)")
    g.add_argument("--label-noise", type=finite_float("--label-noise", ge=0.0), default=None,
                   help="for --task gaussian --classes K: ground-truth labels y = argmax((W* + S W') x) with S >= 0 "
                        "this value and W' a second random teacher from --task-seed + 1 (an imperfect teacher, for "
                        "--targets mixed and the test error); default: no labels")
    g.add_argument("--teacher-width", type=positive_int("--teacher-width"), default=None,
                   help="for --task relu-teacher (required): H hidden units of the teacher, a random two-layer ReLU "
                        "network from --task-seed labelling x ~ N(0, I_d)")
    g.add_argument("--teacher-scale", type=finite_float("--teacher-scale", gt=0.0), default=None,
                   help="for --task relu-teacher: factor s > 0 of the teacher's logits (default 4: binary logits "
                        "of standard deviation about 2.3)")


def refuse_inapplicable(args, options: dict, applies: str, what: str) -> None:
    """Refuse every option of ``options`` ({option: (dest, default, values)})
    that was given although ``applies`` is not among its values."""
    from ..validation import DOCS_OPTIONS, JaxDistillError

    for opt, (dest, _, values) in options.items():
        if getattr(args, dest, None) is not None and applies not in values:
            raise JaxDistillError(f"{opt} applies only to {what} {', '.join(values)}; it has no effect with "
                                  f"{what} {applies}; see {DOCS_OPTIONS}")


def with_defaults(args, options: dict) -> argparse.Namespace:
    """A copy of the parsed options with the documented default of every
    option of ``options`` that was not given (``args`` itself is unchanged)."""
    filled = argparse.Namespace(**vars(args))
    for dest, default, _ in options.values():
        if getattr(filled, dest, None) is None:
            setattr(filled, dest, default)
    return filled


def task_from_args(args):
    """Build the Task named by the parsed options (refusing options that do
    not apply to it)."""
    from ..tasks import PoolTask, make_task
    from ..validation import JaxDistillError

    refuse_inapplicable(args, TASK_OPTIONS, args.task, "--task")
    if args.task == "gaussian" and getattr(args, "classes", None) is None:
        for opt, why in K_CLASS_GAUSSIAN_OPTIONS.items():
            if getattr(args, TASK_OPTIONS[opt][0], None) is not None:
                raise JaxDistillError(f"{opt} applies to --task gaussian only with --classes K ({why})")
    args = with_defaults(args, TASK_OPTIONS)
    if args.task == "pool":
        if not args.pool_file:
            raise JaxDistillError("--task pool needs --pool-file F.npz with arrays 'inputs' [P, d] and 'w_star' [d]")
        import numpy as np

        try:
            with np.load(args.pool_file, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:  # missing, truncated, not an .npz, pickled objects
            raise JaxDistillError(f"--pool-file {args.pool_file} could not be read as an .npz file "
                                  f"({type(e).__name__}: {e})") from None
        from ..multiclass.tasks import is_multiclass_pool, pool_task_from_arrays

        if is_multiclass_pool(arrays):  # K-class teacher, teacher logits or labels
            try:
                return pool_task_from_arrays(arrays, label=str(args.pool_file))
            except JaxDistillError as e:
                raise JaxDistillError(f"--pool-file {args.pool_file}: {e}") from None
        for k in ("inputs", "w_star"):
            if k not in arrays:
                raise JaxDistillError(f"--pool-file {args.pool_file} has no array {k!r} (found: {', '.join(arrays) or 'none'})")
        try:
            return PoolTask(arrays["inputs"], arrays["w_star"], test_inputs=arrays.get("test_inputs"),
                            label=str(args.pool_file))
        except JaxDistillError as e:
            raise JaxDistillError(f"--pool-file {args.pool_file}: {e}") from None
    if args.task == "mnist":
        from ..datasets import mnist01_task

        return mnist01_task(seed=args.task_seed)
    if args.task == "digits":
        from ..multiclass.datasets import digits_task

        return digits_task(seed=args.task_seed)
    if args.task == "relu-teacher":
        from ..nonlinear.tasks import DEFAULT_TEACHER_SCALE, ReluTeacherTask

        if args.teacher_width is None:
            raise JaxDistillError("--task relu-teacher needs --teacher-width H (hidden units of the teacher network)")
        return ReluTeacherTask(args.d, args.teacher_width, 2 if args.classes is None else args.classes,
                               seed=args.task_seed,
                               teacher_scale=DEFAULT_TEACHER_SCALE if args.teacher_scale is None else args.teacher_scale)
    if args.task == "gaussian" and getattr(args, "classes", None) is not None:
        from ..multiclass.tasks import MultiClassGaussianTask

        return MultiClassGaussianTask(args.d, args.classes, seed=args.task_seed, teacher_norm=args.teacher_norm,
                                      label_noise=args.label_noise)
    kwargs = {"kappa": args.kappa} if args.task in ("kappa", "margin") else {}
    if args.task == "margin":
        kwargs["margin"] = args.margin
    return make_task(args.task, d=args.d, teacher_norm=args.teacher_norm, **kwargs)


def task_label(task) -> str:
    cfg = task.config()
    params = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "task")
    return f"{cfg['task']} task ({params})"


def written_line(args) -> str:
    """The report line naming the files a run with ``--out`` wrote (students.npy with ``--save-students``)."""
    files = ["summary.json", "sets.csv"] + (["students.npy"] if getattr(args, "save_students", False) else [])
    return "  written                  " + ", ".join(f"{args.out}/{f}" for f in files)

