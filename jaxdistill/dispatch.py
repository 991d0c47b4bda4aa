"""Which program a (task, learner, targets) triple runs, and the refusals
that apply to every path (``simulate.setup_run``, used by ``jd.distill`` and
``jaxdistill run`` alike).

Binary = K = 2 in logit-difference coordinates: a binary task with a
teacher vector runs the one set program (``simulate.DistillProgram``) with
a binary sampler piece ("inputs" or "gram") for the linear, deep, w_delta
and hard-target learners, whose students w [d] have an angle to w* (eq. 28)
and an exact risk; K-class tasks, and kernel or network students on any
task (a binary task seen as the K = 2 task with logits [0, w*.x]), run it
with the K-class piece (sampler "multiclass",
``multiclass.program.MultiClassSampler``).  The linear learners of Thm 1
run on both: ``ClosedFormLearner``, ``FlowLearner`` and ``GDLearner`` are
mapped to their K-class forms, which reproduce the binary ones bit for bit
at K = 2 (docs/design.md fact 8).
"""

from __future__ import annotations

from .multiclass.learners import AbstractSoftmaxLearner, SoftmaxFlowLearner, make_softmax_learner, softmax_form
from .multiclass.targets import MultiTargetSpec
from .multiclass.tasks import AbstractMultiClassTask
from .students.base import AbstractLearner, FlowLearner, make_learner
from .students.deep import DeepLearner
from .students.flow_config import FlowConfig
from .tasks import Task
from .teachers import TargetSpec
from .validation import DOCS_HARD_TARGETS, JaxDistillError

HARD_TARGETS_DOC = DOCS_HARD_TARGETS  # the way out, explained


def is_multiclass_run(task, learner) -> bool:
    """True when the run takes the K-class path (sampler "multiclass"): a K-class task, or a
    K-class student (kernel, network, softmax) on any task."""
    if isinstance(task, AbstractMultiClassTask):
        return True
    if not isinstance(task, Task):
        raise JaxDistillError("task must be a jaxdistill task: a binary one (e.g. KappaPolynomialTask(d, kappa)) or "
                              f"a K-class one (e.g. MultiClassGaussianTask(d, num_classes)), got {type(task).__name__}")
    return isinstance(learner, AbstractSoftmaxLearner)


def binary_learner(learner, method: str | None, flow, gd) -> AbstractLearner:
    """The learner of a binary run: ``learner`` itself (checked by
    ``simulate.check_learner`` in ``setup_distill``), or the one
    ``method``/``flow``/``gd`` describe; refuses both at once."""
    if learner is not None:
        refuse_method_with_learner(method, flow, gd)
        return learner
    return make_learner("flow" if method is None else method, flow=flow, gd=gd)


def multiclass_learner(learner, method: str | None, flow, gd) -> AbstractSoftmaxLearner:
    """The K-class learner of a run: a K-class learner itself, the K-class
    form of a linear learner of Thm 1 (``multiclass.learners.softmax_form``),
    or the one ``method`` names; the binary-only learners (deep, w_delta,
    hard-target) are refused by name."""
    if learner is None:
        return make_softmax_learner("flow" if method is None else method, flow=flow, gd=gd)
    refuse_method_with_learner(method, flow, gd)
    return softmax_form(learner)


def refuse_method_with_learner(method, flow, gd) -> None:
    given = [name for name, v in (("method", method), ("flow", flow), ("gd", gd)) if v is not None]
    if given:
        raise JaxDistillError(f"{', '.join(given)} cannot be combined with learner=: the learner object carries its "
                              "own method and settings")


def binary_targets(targets) -> TargetSpec:
    """The binary ``TargetSpec`` of ``targets`` (None: soft at T = 1)."""
    if targets is None:
        return TargetSpec()
    if isinstance(targets, TargetSpec):
        return targets
    if isinstance(targets, MultiTargetSpec):
        if targets.kind == "mixed":
            raise JaxDistillError("targets='mixed' needs ground-truth labels: a K-class pool with 'labels' or a task "
                                  "with a labelling teacher; this binary task has only its teacher vector")
        return TargetSpec(targets.kind, targets.temperature)
    raise JaxDistillError(f"targets must be a TargetSpec (e.g. TargetSpec('soft', temperature=2.0)) or a "
                          f"MultiTargetSpec, got {targets!r}")


def multiclass_targets(targets) -> MultiTargetSpec:
    """The K-class ``MultiTargetSpec`` of ``targets`` (None: soft at T = 1)."""
    if targets is None:
        return MultiTargetSpec()
    if isinstance(targets, MultiTargetSpec):
        return targets
    if isinstance(targets, TargetSpec):
        return MultiTargetSpec(targets.kind, targets.temperature)
    raise JaxDistillError(f"targets must be a TargetSpec or a MultiTargetSpec (e.g. MultiTargetSpec('mixed', "
                          f"soft_ratio=0.5)), got {targets!r}")


def training_flow(learner) -> FlowConfig | None:
    """The ``FlowConfig`` of a learner trained by gradient flow to its
    steady state or to a time t_end (None for the other learners)."""
    from .nonlinear.learners import KernelLearner

    if isinstance(learner, (FlowLearner, SoftmaxFlowLearner, DeepLearner)):
        return learner.flow
    if isinstance(learner, KernelLearner):
        return training_flow(learner.base)
    return None


def refuse_flow_without_horizon(learner, has_steady_state: bool, *, multiclass: bool) -> None:
    """Hard targets (and mixed ones with soft_ratio 0) have no steady state:
    the logits grow like log t, so "the flow's student" is defined only at a
    chosen time.  Refuse a flow without ``t_end``, naming both ways out."""
    flow = training_flow(learner)
    if has_steady_state or flow is None or flow.t_end is not None:
        return
    other = ("method 'gd' (an optax optimiser for a fixed number of steps)" if multiclass else
             "the max-margin learner, the direction the flow tends to as t -> infinity (HardTargetLearner(), "
             "--learner hard-max-margin)")
    raise JaxDistillError(
        "a gradient flow on hard targets has no steady state (its logits grow like log t): give it a training time, "
        f"FlowConfig(t_end=T) in Python or --t-end T on the command line, or use {other}; see {HARD_TARGETS_DOC}")


__all__ = ["is_multiclass_run", "binary_learner", "multiclass_learner", "binary_targets", "multiclass_targets",
           "training_flow", "refuse_flow_without_horizon", "refuse_method_with_learner", "HARD_TARGETS_DOC"]
