"""jaxdistill: exact, batched experiments on the theory of knowledge
distillation (Phuong & Lampert, *Towards Understanding Knowledge
Distillation*, ICML 2019).

    Task --sample--> transfer sets [B, n, d] --teacher--> logits [B, n]
         --learner--> students [B, d] --analysis--> risk, angles, bounds

Everything computes in float64 by default inside a local x64 context; the
caller's global JAX configuration is never changed (see ``_precision``).
"""

from . import analysis, students, tasks, teachers
from . import multiclass, nonlinear
from .defaults import DEFAULTS, RunDefaults
from .multiclass import (AbstractMultiClassTask, AbstractSoftmaxLearner, MultiClassGaussianTask, MultiClassPoolTask,
                         MultiTargetSpec, SoftmaxClosedFormLearner, SoftmaxFlowLearner, SoftmaxGDLearner, digits_task,
                         make_softmax_learner, pool_task_from_arrays)
from .nonlinear import (AbstractKernel, ArcCosKernel, KernelLearner, MLPLearner, NTKKernel, RBFKernel, ReluTeacherTask,
                        UserKernel, make_kernel, risk_monotonicity_index)
from .analysis import expected_risk, monotonicity_index
from ._precision import precision
from .simulate import (DistillProgram, RunSetup, distill, distill_chunks, iter_transfer_sets, sample_transfer_sets,
                       setup_run)
from .results import DistillResult, FailedSetsWarning, load
from .sweep import SweepResult, load_sweep, sweep
from .runner import ChunkPlan, RunOutput, SetProgram, run_program
from .status import Status, STATUS_NAMES, SUCCESS_CODES
from .checks import CheckResult, check_lemma1, check_thm3, format_report, run_checks
from .design import AbstractDesign, GramDesign, InputsDesign, two_class_logits
from .students import (
    AbstractBinaryLearner,
    AbstractLearner,
    DeepGDLearner,
    LearnerOutput,
    deep_learner,
    make_learner,
    solver_from_name,
    ClosedFormLearner,
    DeepLearner,
    HardTargetLearner,
    WDeltaLearner,
    FlowConfig,
    FlowLearner,
    FieldWithJacobian,
    Rodas3,
    GDConfig,
    GDLearner,
    closed_form,
    gradient_descent,
    gradient_flow,
    plain_gradient_flow,
)
from .tasks import (
    AbstractSymmetricTask,
    AbstractTask,
    AngularMarginTask,
    CustomTask,
    GaussianTask,
    IsotropicGaussianTask,
    KappaPolynomialTask,
    PoolTask,
    Task,
    make_task,
)
from .teachers import TargetSpec, hard_labels, soft_labels, teacher_logits
from .validation import JaxDistillError
from .datasets import load_mnist01, load_mnist_idx, mnist01_task

__version__ = "0.1.0"

__all__ = [
    "analysis",
    "students",
    "tasks",
    "teachers",
    "multiclass",
    "nonlinear",
    "DEFAULTS",
    "RunDefaults",
    "AbstractMultiClassTask",
    "AbstractSoftmaxLearner",
    "MultiClassGaussianTask",
    "MultiClassPoolTask",
    "MultiTargetSpec",
    "SoftmaxClosedFormLearner",
    "SoftmaxFlowLearner",
    "SoftmaxGDLearner",
    "digits_task",
    "make_softmax_learner",
    "pool_task_from_arrays",
    "AbstractKernel",
    "ArcCosKernel",
    "KernelLearner",
    "MLPLearner",
    "NTKKernel",
    "RBFKernel",
    "ReluTeacherTask",
    "UserKernel",
    "make_kernel",
    "risk_monotonicity_index",
    "expected_risk",
    "monotonicity_index",
    "precision",
    "DistillResult",
    "FailedSetsWarning",
    "load",
    "sweep",
    "SweepResult",
    "load_sweep",
    "RunSetup",
    "setup_run",
    "DistillProgram",
    "ChunkPlan",
    "RunOutput",
    "SetProgram",
    "run_program",
    "Status",
    "SUCCESS_CODES",
    "CheckResult",
    "check_lemma1",
    "check_thm3",
    "format_report",
    "run_checks",
    "distill",
    "distill_chunks",
    "iter_transfer_sets",
    "sample_transfer_sets",
    "AbstractLearner",
    "AbstractBinaryLearner",
    "AbstractDesign",
    "InputsDesign",
    "GramDesign",
    "two_class_logits",
    "DeepGDLearner",
    "LearnerOutput",
    "deep_learner",
    "make_learner",
    "solver_from_name",
    "AbstractTask",
    "AbstractSymmetricTask",
    "ClosedFormLearner",
    "DeepLearner",
    "HardTargetLearner",
    "WDeltaLearner",
    "FlowConfig",
    "FieldWithJacobian",
    "Rodas3",
    "FlowLearner",
    "GDConfig",
    "GDLearner",
    "STATUS_NAMES",
    "closed_form",
    "gradient_descent",
    "gradient_flow",
    "plain_gradient_flow",
    "AngularMarginTask",
    "CustomTask",
    "GaussianTask",
    "IsotropicGaussianTask",
    "KappaPolynomialTask",
    "PoolTask",
    "Task",
    "make_task",
    "TargetSpec",
    "hard_labels",
    "soft_labels",
    "teacher_logits",
    "JaxDistillError",
    "load_mnist01",
    "load_mnist_idx",
    "mnist01_task",
]
