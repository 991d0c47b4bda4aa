"""``jaxdistill run`` options for students beyond linear (docs/design.md
fact 9): ``--student {linear,kernel,mlp}``, ``--kernel``, ``--bandwidth``.

A kernel student is the K-class linear learner of ``--method`` (closed
form, flow, gd) run on the kernel features; binary tasks with a teacher
vector are seen as K = 2 tasks with logits [0, w*.x]
(``nonlinear.tasks.BinaryTaskAsMultiClass``), so every task works.  A
finite-width network (``--student mlp --width M``) is trained by the optax
optimiser of ``--lr``/``--steps``/``--optimizer``.
"""

from __future__ import annotations

import argparse

from ..defaults import DEFAULTS
from .common import finite_float

STUDENTS = ("linear", "kernel", "mlp")
DEFAULT_MLP_WIDTH = DEFAULTS.mlp_width
KERNEL_OPTIONS = {"--kernel": "kernel", "--bandwidth": "bandwidth"}


def add_student_arguments(p: argparse.ArgumentParser) -> None:
    from ..nonlinear.kernels import KERNEL_NAMES

    g = p.add_argument_group("students beyond linear (docs/design.md fact 9)")
    g.add_argument("--student", choices=STUDENTS, default="linear",
                   help="linear (default): the linear student of the paper; kernel: f(x) = sum_i alpha_i k(x, x_i) "
                        "trained by --method (closed-form interpolant, flow in function space, or gd) from f = 0; "
                        "mlp: a two-layer ReLU network in the NTK parameterisation, --width M (default 512, even), "
                        "trained by --lr/--steps/--optimizer (full batch, --method gd) from a seeded init with "
                        "f = 0")
    g.add_argument("--kernel", choices=KERNEL_NAMES, default=None,
                   help="kernel of --student kernel: rbf (needs --bandwidth), arccos (Cho & Saul, order 1) or ntk "
                        "(two-layer ReLU network, both layers trained); default ntk")
    g.add_argument("--bandwidth", type=finite_float("--bandwidth", gt=0.0), default=None,
                   help="bandwidth l > 0 of --kernel rbf, k = exp(-||x - x'||^2 / (2 l^2)) (required there)")


def nonlinear_learner(args, linear_learner):
    """The kernel or network learner of ``--student`` (None for linear),
    after refusing options that do not apply.  ``linear_learner`` is the
    learner the other options built (its method and configs are reused)."""
    from ..validation import JaxDistillError

    if args.student != "kernel":
        for opt, dest in KERNEL_OPTIONS.items():
            if getattr(args, dest) is not None:
                raise JaxDistillError(f"{opt} applies only to --student kernel; it has no effect with "
                                      f"--student {args.student}")
    if args.student == "linear":
        return None
    if args.depth > 1:
        raise JaxDistillError(f"--depth >= 2 applies only to --student linear (deep linear students); "
                              f"--student {args.student} has its own architecture")
    if args.learner != "distill":
        raise JaxDistillError(f"--learner {args.learner} applies only to --student linear")
    from ..dispatch import multiclass_learner

    base = multiclass_learner(linear_learner, None, None, None)
    if args.student == "kernel":
        from ..nonlinear.kernels import make_kernel
        from ..nonlinear.learners import KernelLearner

        name = DEFAULTS.kernel if args.kernel is None else args.kernel
        if name == "rbf" and args.bandwidth is None:
            raise JaxDistillError("--kernel rbf needs --bandwidth L > 0 (k = exp(-||x - x'||^2 / (2 L^2)))")
        if name != "rbf" and args.bandwidth is not None:
            raise JaxDistillError(f"--bandwidth applies only to --kernel rbf; --kernel {name} has no bandwidth")
        return KernelLearner(make_kernel(name, bandwidth=args.bandwidth), base)
    from ..nonlinear.mlp import make_mlp_learner

    return make_mlp_learner(DEFAULT_MLP_WIDTH if args.width is None else args.width, gd=base.gd)


__all__ = ["STUDENTS", "DEFAULT_MLP_WIDTH", "add_student_arguments", "nonlinear_learner"]
