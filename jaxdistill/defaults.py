"""The defaults of a run, in one place: ``jd.distill`` and ``jaxdistill run``
both read them from here, so the same call and the same command give the
same numbers (tests/test_defaults.py checks it to the last bit).

Each default is documented where the option is (``simulate.distill``'s
docstring, ``jaxdistill run --help``); the values live only here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunDefaults:
    """Default settings of one run.

    Attributes:
        task, d, kappa, margin, teacher_norm, task_seed: the command's default
            task (``--task kappa --d 1000 --kappa 1``); Python takes a task object.
        n, num_sets, seed: transfer-set size, number of sets, PRNG seed.
        method: the learner of ``--method`` ("flow": gradient flow, eq. 3).
        targets, temperature: soft targets sigma(w*.x / T) at T = 1.
        sampler: "auto": draw each set's Gram matrix where that is exact
            (docs/design.md fact 13), else the inputs.
        keep_students: False: the students are not kept (nor stored); the
            statistics are computed inside the compiled chunk.
        risk: "auto": exact where the task has it, else Monte-Carlo.
        num_test: held-out inputs of Monte-Carlo risk.
        dtype: "float64".
        student, kernel, mlp_width, deep_width: the linear student; kernel
            students default to the NTK; network and deep widths.
        failed_sets_shown: failed sets listed in printed reports and
            warnings (summary.json keeps them all).
    """

    task: str = "kappa"
    d: int = 1000
    kappa: float = 1.0
    margin: float = 0.2
    teacher_norm: float = 1.0
    task_seed: int = 0
    n: int = 20
    num_sets: int = 1000
    seed: int = 0
    method: str = "flow"
    targets: str = "soft"
    temperature: float = 1.0
    sampler: str = "auto"
    keep_students: bool = False
    risk: str = "auto"
    num_test: int = 10_000
    dtype: str = "float64"
    student: str = "linear"
    kernel: str = "ntk"
    mlp_width: int = 512
    deep_width: int = 64
    failed_sets_shown: int = 10


DEFAULTS = RunDefaults()

__all__ = ["RunDefaults", "DEFAULTS"]
