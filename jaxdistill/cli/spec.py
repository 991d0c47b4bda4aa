"""``jaxdistill run``'s options resolved once into a :class:`RunSpec`: the
task, the learner, the targets and the path (binary or K-class) the run
takes, the same objects ``jd.distill`` takes.

The choices that other options depend on are made first and passed along
(the training method, whose default depends on the student and the
learner; the kind of targets, hard for the hard-target learners; which
student a ``--width`` belongs to); the parsed options are never modified.
Every option is then either used or refused, naming it and where it
applies, before anything is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..defaults import DEFAULTS
from ..students.flow_config import FLOAT32_MIN_NEWTON_TOL
from ..validation import DOCS_OPTIONS
from .common import refuse_inapplicable, targets_of, task_from_args
from .run_estimands import HARD_LEARNERS, check_estimand_task, estimand_learner
from .run_nonlinear import nonlinear_learner

FLOW_OPTIONS = {
    "--solver": ("solver", None, ("flow",)),
    "--rtol": ("rtol", None, ("flow",)),
    "--atol": ("atol", None, ("flow",)),
    "--newton-tol": ("newton_tol", None, ("flow",)),
    "--max-steps": ("max_steps", None, ("flow",)),
    "--coordinates": ("coordinates", None, ("flow",)),
    "--t-end": ("t_end", None, ("flow",)),
}
GD_OPTIONS = {
    "--lr": ("lr", None, ("gd",)),
    "--steps": ("steps", None, ("gd",)),
    "--optimizer": ("optimizer", None, ("gd",)),
}
DEEP_OPTIONS = {
    "--width": ("width", DEFAULTS.deep_width, ("depth >= 2",)),
    "--init-scale": ("init_scale", None, ("depth >= 2",)),
    "--epsilon": ("epsilon", None, ("depth >= 2",)),
    "--integrator": ("integrator", "reduced", ("depth >= 2",)),
}


@dataclass(frozen=True)
class RunSpec:
    """A ``jaxdistill run`` command, resolved.

    Attributes:
        task: the task object (binary or K-class).
        learner: the final learner object (linear, deep, w_delta,
            hard-target, kernel or network).
        targets: ``TargetSpec`` (binary path) or ``MultiTargetSpec`` (K-class path).
        multiclass: True when the run takes the K-class program (a K-class
            task, or a kernel / network student).
        method: the training method ("closed-form", "flow", "gd"; None for
            the hard-target learners, which fix their own).
    """

    task: object
    learner: object
    targets: object
    multiclass: bool
    method: str | None


def method_of(args) -> str | None:
    """The training method the options ask for; its default depends on the
    student (a network is trained by its optimiser) and the learner (w_delta
    takes w_hat from the closed form; the hard-target learners fix their own)."""
    from ..validation import JaxDistillError

    if args.student == "mlp":
        if args.method not in (None, "gd"):
            raise JaxDistillError(f"--method {args.method} does not apply to --student mlp (a finite-width network "
                                  "has no closed form and is trained by the optimiser of --lr/--steps/--optimizer: "
                                  f"--method gd, the default); see {DOCS_OPTIONS}")
        return "gd"
    if args.learner == "distill":
        return DEFAULTS.method if args.method is None else args.method
    if args.learner == "wdelta":
        return "closed-form" if args.method is None else args.method
    if args.method is not None:
        raise JaxDistillError(f"--method applies only to --learner distill and wdelta; --learner {args.learner} "
                              f"fixes its own training; see {DOCS_OPTIONS}")
    return None


def targets_kind_of(args) -> str:
    """``--targets``, or "hard" for the hard-target learners (which train on the teacher's hard labels)."""
    return "hard" if args.learner in HARD_LEARNERS else targets_of(args)


def linear_learner(args, method: str):
    """The linear (depth 1) or deep linear learner of ``--method`` / ``--depth``,
    after refusing the options that do not apply to them."""
    from ..students import FlowConfig, GDConfig, deep_learner, make_learner, solver_from_name
    from ..students.deep import default_flow_config, default_gd_config
    from ..validation import JaxDistillError

    refuse_inapplicable(args, FLOW_OPTIONS, method, "--method")
    refuse_inapplicable(args, GD_OPTIONS, method, "--method")
    if args.depth > 1 and method == "closed-form":
        raise JaxDistillError("--method closed-form applies only to --depth 1 (a deep student has no closed form; "
                              f"use --method flow or gd); see {DOCS_OPTIONS}")
    if args.depth > 1 and method == "gd" and args.integrator is not None:
        raise JaxDistillError("--integrator applies only to --method flow (with --method gd the factors are trained "
                              f"by the optimiser); see {DOCS_OPTIONS}")
    if args.width is not None and args.depth > 1 and method == "flow" and args.integrator != "full":
        raise JaxDistillError(f"--width applies to deep students with --integrator full or --method gd, which train "
                              f"the factors themselves; the {args.integrator or 'reduced'} integrator never forms them "
                              "(and from the balanced initialisation the learned w does not depend on the width, "
                              f"Thm 2); see {DOCS_OPTIONS}")
    if args.coordinates == "plain" and args.depth > 1 and args.integrator != "full":
        raise JaxDistillError(f"--coordinates applies to deep students only with --integrator full; see {DOCS_OPTIONS}")
    flow = gd = None
    if method == "flow":
        kw = {k: v for k, v in {"rtol": args.rtol, "atol": args.atol, "newton_tol": args.newton_tol,
                                "max_steps": args.max_steps, "coordinates": args.coordinates,
                                "t_end": args.t_end}.items() if v is not None}
        if args.solver is not None:
            kw["solver"] = solver_from_name(args.solver)
        flow = FlowConfig(**kw) if args.depth == 1 else (
            default_flow_config(args.integrator or "reduced", **kw) if kw else None)  # deep: over its own default
    if method == "gd":
        kw = {k: v for k, v in {"learning_rate": args.lr, "steps": args.steps, "optimizer": args.optimizer}.items()
              if v is not None}
        if args.depth == 1:
            gd = GDConfig(**kw)
        else:  # deep: over its own default (learning_rate 0.5, 20,000 steps)
            gd = default_gd_config(**kw) if kw else None
    if args.depth == 1:
        return make_learner(method, flow=flow, gd=gd)
    return deep_learner(depth=args.depth, width=args.width,
                        init_scale=args.init_scale, epsilon=args.epsilon, integrator=args.integrator, method=method,
                        flow=flow, gd=gd)


def learner_from_args(args):
    """The learner object named by the options (``RunSpec.learner``)."""
    from ..validation import JaxDistillError

    method = method_of(args)
    if args.student == "kernel" and args.width is not None:
        raise JaxDistillError("--width applies to --student mlp (hidden units) and to deep linear students "
                              f"(--depth >= 2); a kernel student has no width; see {DOCS_OPTIONS}")
    # --width is the network's with --student mlp, a deep student's otherwise
    deep_options = {k: v for k, v in DEEP_OPTIONS.items() if not (k == "--width" and args.student == "mlp")}
    refuse_inapplicable(args, deep_options, "depth >= 2" if args.depth > 1 else "depth 1", "students of")
    learner = estimand_learner(args, method, FLOW_OPTIONS, GD_OPTIONS)  # --learner wdelta / hard-*
    if learner is None:
        learner = linear_learner(args, method)
    return nonlinear_learner(args, learner) or learner


def check_common_options(args) -> None:
    """Options whose relevance is the same on every path (binary, K-class,
    kernel, network)."""
    from ..validation import JaxDistillError

    if args.dtype == "float32" and args.newton_tol is not None and args.newton_tol < FLOAT32_MIN_NEWTON_TOL:
        raise JaxDistillError(f"--newton-tol must be >= {FLOAT32_MIN_NEWTON_TOL:g} with --dtype float32 "
                              f"(float32 cannot certify a smaller relative distance), got {args.newton_tol:g}")
    if args.save_students and not args.out:
        raise JaxDistillError("--save-students needs --out (the students are stored in the output folder)")


def check_binary_options(args, task) -> None:
    """Options of a binary run whose relevance depends on the targets or the risk."""
    from ..validation import JaxDistillError
    from .run_multiclass import refuse_mixed_without_labels

    if args.temperature is not None and targets_of(args) != "soft":
        raise JaxDistillError("--temperature applies to --targets soft (on K-class tasks also to --targets mixed); "
                              f"see {DOCS_OPTIONS}")
    if targets_of(args) == "mixed" or args.soft_ratio is not None:
        refuse_mixed_without_labels(args)
    if args.num_test is not None and (args.risk == "exact" or (args.risk == "auto" and task.has_exact_risk)):
        raise JaxDistillError(f"--num-test applies only to Monte-Carlo risk (--risk mc, or --risk auto on a task "
                              f"without exact risk); --task {args.task} uses exact risk here; see {DOCS_OPTIONS}")


def run_spec(args) -> RunSpec:
    """Resolve the options of ``jaxdistill run`` into a ``RunSpec`` (refusing
    every option that does not apply, before anything is computed)."""
    from ..multiclass.learners import AbstractSoftmaxLearner
    from ..multiclass.targets import MultiTargetSpec
    from ..multiclass.tasks import AbstractMultiClassTask
    from ..teachers import TargetSpec
    from ..validation import JaxDistillError
    from .run_multiclass import check_multiclass_options

    task = task_from_args(args)
    learner = learner_from_args(args)
    if args.coupling is not None and not learner.randomised:
        raise JaxDistillError(f"--coupling applies only to a randomised learner (--learner wdelta, deep students with "
                              f"--depth >= 2, --student mlp): {type(learner).__name__} ignores its random key, so both "
                              f"couplings give the same index; see {DOCS_OPTIONS}")
    multiclass = isinstance(task, AbstractMultiClassTask) or isinstance(learner, AbstractSoftmaxLearner)
    check_estimand_task(args, task, multiclass)
    check_common_options(args)
    if multiclass:
        check_multiclass_options(args)
    else:
        check_binary_options(args, task)
    temperature = DEFAULTS.temperature if args.temperature is None else args.temperature
    kind = targets_kind_of(args)
    targets = (MultiTargetSpec(kind=kind, temperature=temperature, soft_ratio=args.soft_ratio) if multiclass
               else TargetSpec(kind=kind, temperature=temperature))
    return RunSpec(task, learner, targets, multiclass, method_of(args))


__all__ = ["RunSpec", "run_spec", "method_of", "targets_kind_of", "learner_from_args", "linear_learner",
           "check_common_options", "check_binary_options", "FLOW_OPTIONS", "GD_OPTIONS", "DEEP_OPTIONS"]
