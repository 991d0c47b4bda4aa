"""``jaxdistill make-pool``: write a pool file (.npz) whose teacher logits
come from a task's teacher, e.g. a random ReLU network
(``--task relu-teacher``), for ``jaxdistill run --task pool --pool-file F``.

The file holds ``inputs`` [P, d], ``teacher_logits`` [P] (binary) or
[P, K], ``test_inputs`` [M, d] and ``test_teacher_logits`` (float64).
"""

from __future__ import annotations

import sys

from .common import add_task_arguments, nonnegative_int, positive_int, task_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("make-pool", help="write a pool file (.npz) labelled by a task's teacher",
                       description="Draw a pool of inputs and test inputs from a task and store its teacher's "
                                   "logits: a pool file for --task pool (any teacher given as logits); a task with "
                                   "ground-truth labels (--task gaussian --classes K --label-noise S) also stores "
                                   "them ('labels', 'test_labels': --targets mixed on the pool).")
    add_task_arguments(p)
    p.add_argument("--size", type=positive_int("--size"), required=True, help="pool size P (transfer sets are drawn from it)")
    p.add_argument("--test-size", type=positive_int("--test-size"), required=True,
                   help="number M of test inputs (the risk is exact over them)")
    p.add_argument("--seed", type=nonnegative_int("--seed", maximum=2**63 - 1), default=0,
                   help="seed of the drawn inputs (the teacher's own seed is --task-seed)")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.set_defaults(func=main)


def main(args) -> int:
    from pathlib import Path

    import jax
    import numpy as np

    from .._precision import precision
    from ..nonlinear.tasks import teacher_pool_arrays
    from ..validation import JaxDistillError
    from ..nonlinear.tasks import as_multiclass_task

    if args.task == "pool":
        raise JaxDistillError("--task pool is already a pool; make-pool draws a new pool from a task with a teacher")
    target = Path(args.out)
    if not target.parent.is_dir():
        raise JaxDistillError(f"--out {args.out} cannot be written: its folder {target.parent} does not exist or is "
                              "not a folder")
    task = task_from_args(args)
    with precision("float64"):
        arrays = teacher_pool_arrays(as_multiclass_task(task).cast("float64"), jax.random.PRNGKey(args.seed),
                                     args.size, args.test_size)
    with open(target, "wb") as f:  # exactly at --out (np.savez would append .npz to a path without it)
        np.savez(f, **arrays)
    labels = f", labels {arrays['labels'].shape}" if "labels" in arrays else ""
    print(f"jaxdistill make-pool: wrote {args.out} (inputs {arrays['inputs'].shape}, teacher_logits "
          f"{arrays['teacher_logits'].shape}, test_inputs {arrays['test_inputs'].shape}{labels})")
    sys.stdout.flush()
    return 0
