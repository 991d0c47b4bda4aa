"""The Gram sampler of ``distill``: one transfer set in O(n^2), whatever d.

For the rotationally symmetric tasks (kappa, margin, isotropic Gaussian) a
linear student trained from zero (gradient flow or the closed form of
Thm 1) and everything ``distill`` reports about it (status, steps, loss,
angle to w*, exact risk, distance to the closed form) depend on the transfer
set only through G = X X^T and u = X w*; ``task.sample_gram`` draws both
directly (docs/design.md fact 13) and ``students.gram`` trains and measures
the student from them.  The reduced-bias learner w_delta (section 5.2) adds
a random direction of the complement of span X, of which the angle needs
only the component along w* - P_X w*: one more draw from the set's learner
key (``students.gram.gram_w_delta``), exact in law.
:class:`GramDistillProgram` is that computation as a ``runner.SetProgram``.

The sampler choice (``distill(..., sampler=)``, ``jaxdistill run --sampler``):

* "inputs": draw X [n, d] (``task.sample``), as always;
* "gram": draw (G, u); refused, with the reason, where it does not apply:
  a task without ``supports_gram``, n >= d, a learner without a Gram-space
  version (deep, gd, hard-target max margin, the plain flow),
  Monte-Carlo risk (needs the students), or ``keep_students=True`` (the
  students w [B, d] cannot be formed without the inputs);
* "auto": "gram" where it applies, else "inputs".

Sets drawn by the two samplers are not bit-identical (the directions of the
inputs are drawn differently); each sampler is reproducible (set i depends
only on the seed and i) and both have the same law (tests/test_gram.py).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .design import GramDesign, two_class_logits
from .finite import replace_non_finite
from .keys import set_key_pair
from .runner import SetProgram
from .sequencing import after
from .status import Status
from .students.base import AbstractLearner
from .students.gram import (SAMPLERS, gram_problem, gram_student_stats, logits_from_raw,
                             resolve_sampler)
from .tasks import Task
from .teachers import TargetSpec

class GramDistillProgram(SetProgram):
    """One transfer set of ``distill`` with the Gram sampler: draw (G, u)
    from the set's data key, fit in Gram space (w_delta draws its direction
    from the set's learner key, as ``WDeltaLearner.fit`` does), measure
    angle, exact risk and distance to the closed form.  Outputs as
    ``simulate.DistillProgram`` without ``students``.

    A set with a non-finite G or u is replaced by a stand-in (G = I, u = 0)
    and marked ``NON_FINITE``; the measurement after the fit is sequenced
    behind it (``sequencing.after``: two independent batched factorisations
    deadlock jaxlib on small CPUs, docs/design.md fact 11).
    """

    task: Task
    learner: AbstractLearner
    targets: TargetSpec  # a pytree: its temperature is traced (jaxdistill.traced)
    n: int = eqx.field(static=True)
    risk_method: str = eqx.field(static=True, default="exact")  # the only one (the students are never formed)

    finite_outputs = ("risk", "angle")

    def one_set(self, key, index, shared):
        task, n, targets = self.task, self.n, self.targets
        k_data, k_learn = set_key_pair(key, index)
        G, u_raw = task.sample_gram(k_data, n)
        finite, (G, u_raw) = replace_non_finite((G, u_raw), (jnp.eye(n, dtype=G.dtype), jnp.zeros_like(u_raw)))
        u = logits_from_raw(u_raw, targets)
        out = self.learner.fit(k_learn, GramDesign(G, task.d), two_class_logits(u))  # the learner key: w_delta's direction
        status = jnp.where(finite, out.status, Status.NON_FINITE).astype(out.status.dtype)
        stats = gram_student_stats(after(G, out.w), out.w, u, u_raw, jnp.linalg.norm(task.w_star), targets.is_soft)
        outputs = {"status": status, "num_steps": out.num_steps, "loss": out.loss, "angle": stats.angle,
                   "rel_dist_closed_form": stats.rel_dist_closed_form}
        outputs.update({"extra_" + k: v for k, v in out.extras.items()})
        return outputs

    def finish(self, batch, shared):
        batch["risk"] = self.task.exact_risk_from_angle(batch["angle"])
        batch["risk_se"] = jnp.zeros_like(batch["risk"])
        return batch


__all__ = ["SAMPLERS", "GramDistillProgram", "gram_problem", "resolve_sampler", "logits_from_raw"]
