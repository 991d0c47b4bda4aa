"""The two samplers of a binary run: which design a task draws, and how a
student fitted on it is measured.

One binary set program serves both samplers (``simulate.DistillProgram``
for one transfer set, ``analysis.monotonicity.NestedSetProgram`` for the
nested pairs X, [X; x] of eq. 34).  Their static ``sampler`` field only
chooses which design the task draws; the learner is then called the same
way, ``learner.fit(k_learn, design, two_class_logits(u))`` (``DrawnSet.V``).
The K-class piece of ``simulate.DistillProgram``, with the same interface
(``draw``, ``measure``, ``finish``, ``width``, ``finite_outputs``), is
``multiclass.program.MultiClassSampler`` (a higher layer; ``simulate.set_piece``
chooses among the three):

* "inputs": X [n, d] (``task.sample``; nested: ``task.sample_nested``),
  ``design.InputsDesign(X)``, teacher logits u = ``teacher_logits(X, w*)``;
  the students w [d] are kept and measured after the batch (``finish``):
  signed angle to w* (eq. 28), exact or Monte-Carlo transfer risk (eq. 4),
  and the distance to the closed form of Thm 1 per set;
* "gram": (G = X X^T, X w*) drawn directly in O(n^2) (``task.sample_gram``,
  docs/design.md fact 13), ``design.GramDesign(G, d)``, u from X w*
  (``students.gram.logits_from_raw``); the students are coordinates c in
  span X (w_delta: two more), so the angle and the distance to the closed
  form are measured per set from (G, X w*) (``students.gram.gram_student_stats``)
  and the exact risk follows from the angle (fact 3).

:class:`InputsSampler` and :class:`GramSampler` are those two pieces, each
with the draw (one set or a nested pair, non-finite sets replaced by a
stand-in, ``finite.replace_non_finite``) and the measurement (per set and
per batch).  Every measurement that factorises after a fit is sequenced
behind it (``sequencing.after``): two independent batched LAPACK calls
deadlock jaxlib on small CPUs (docs/design.md fact 11).

Which sampler a run uses (``distill(..., sampler=)``, ``jaxdistill run
--sampler``, ``monotonicity_index(..., sampler=)``;
``students.gram.resolve_sampler``):

* "inputs": always applies;
* "gram": refused, with the reason, where it does not apply: a task
  without ``supports_gram``, n >= d, a learner without a Gram-space version
  (deep, gd, hard-target max margin, the plain flow; w_delta on nested
  sets), Monte-Carlo risk (needs the students), or ``keep_students=True``
  (the students w [B, d] cannot be formed without the inputs);
* "auto": "gram" where it applies, else "inputs".

Sets drawn by the two samplers are not bit-identical (the directions of the
inputs are drawn differently); each sampler is reproducible (set i depends
only on the seed and i) and both have the same law (tests/test_gram.py).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .design import GramDesign, InputsDesign, two_class_logits
from .finite import replace_non_finite
from .sequencing import after
from .students.closed_form import closed_form
from .students.gram import gram_student_stats, logits_from_raw
from .tasks import Task
from .tasks.riskmath import mc_risk, signed_angle, unsigned_angle
from .teachers import TargetSpec, teacher_logits
from .validation import JaxDistillError, check_choice


class DrawnSet(eqx.Module):
    """One binary transfer set as a sampler drew it.

    Attributes:
        design: ``InputsDesign(X)`` [n, d] or ``GramDesign(G, d)`` [n, n].
        u: the teacher logits the student is trained on, [n] (+-inf for hard labels).
        u_raw: X w* [n] (Gram sampler: the teacher's coordinates in span X); None for inputs.
    """

    design: InputsDesign | GramDesign
    u: Float[Array, " n"]
    u_raw: Float[Array, " n"] | None = None

    @property
    def V(self) -> Float[Array, "n 2"]:
        """What the learner is fitted on: the two-class log targets of u (``design.two_class_logits``)."""
        return two_class_logits(self.u)


class InputsSampler(eqx.Module):
    """Draw the inputs X [n, d]; keep the students w [d] and measure them batched."""

    finite_outputs = ("risk", "angle")

    def width(self, task: Task, rows: int) -> int:
        """Numbers per row of a drawn set (``runner.plan_chunks``): d."""
        return task.d

    def draw(self, task: Task, key: PRNGKeyArray, n: int, targets: TargetSpec) -> tuple[Bool[Array, ""], DrawnSet]:
        """X = ``task.sample(key, n)`` and its teacher logits; a non-finite
        set becomes the stand-in X = I [n, d] (hard labels: +-inf logits allowed)."""
        X = task.sample(key, n)
        u = teacher_logits(X, task.w_star, targets)
        stand_in = jnp.eye(n, task.d, dtype=X.dtype)
        finite, (X, u) = replace_non_finite((X, u), (stand_in, teacher_logits(stand_in, task.w_star, targets)),
                                            allow_inf=(False, not targets.is_soft))
        return finite, DrawnSet(InputsDesign(X), u)

    def draw_nested(self, task: Task, key: PRNGKeyArray, n: int,
                    targets: TargetSpec) -> tuple[Bool[Array, ""], DrawnSet, DrawnSet]:
        """X [n, d] and [X; x] [n + 1, d] (``task.sample_nested``: X is the set
        ``draw`` gives for this key); a non-finite pair becomes the stand-in
        I [n + 1, d] (X: its first n rows)."""
        w_star = jnp.asarray(task.w_star)
        X, x = task.sample_nested(key, n)
        Xp = jnp.concatenate([X, x[None, :]], axis=0)
        u, up = teacher_logits(X, w_star, targets), teacher_logits(Xp, w_star, targets)
        stand_in = jnp.eye(n + 1, Xp.shape[1], dtype=Xp.dtype)  # its first n rows stand in for X
        finite, (X, u, Xp, up) = replace_non_finite(
            (X, u, Xp, up), (stand_in[:n], teacher_logits(stand_in[:n], w_star, targets), stand_in,
                             teacher_logits(stand_in, w_star, targets)), allow_inf=(False, not targets.is_soft) * 2)
        return finite, DrawnSet(InputsDesign(X), u), DrawnSet(InputsDesign(Xp), up)

    def sequenced(self, s: DrawnSet, *done) -> DrawnSet:
        """``s`` whose inputs exist only once ``done`` does (``sequencing.after``)."""
        return DrawnSet(InputsDesign(after(s.design.X, *done)), s.u, s.u_raw)

    def measure(self, task: Task, learner, s: DrawnSet, out, targets: TargetSpec) -> dict[str, Array]:
        """Per set: the student w = ``out.w`` and, for soft targets, ||w - w_hat|| / ||w_hat||
        with w_hat the closed form of Thm 1 (after the fit; NaN for hard targets)."""
        X, w = s.design.X, out.w
        if targets.is_soft:
            w_hat = closed_form(after(X, w), s.u)
            rel = jnp.linalg.norm(w - w_hat) / jnp.linalg.norm(w_hat)
        else:
            rel = jnp.asarray(jnp.nan, X.dtype)
        return {"students": w, "rel_dist_closed_form": rel}

    def finish(self, task: Task, learner, batch: dict[str, Array], X_test: Float[Array, "M d"] | None,
               risk_method: str, keep_students: bool) -> dict[str, Array]:
        """Per batch: signed angle (eq. 28) and transfer risk (eq. 4: exact, or
        Monte-Carlo on ``X_test`` with its standard error) of the students."""
        W = batch["students"]
        batch["angle"] = signed_angle(W, task.w_star)
        if risk_method == "exact":
            batch["risk"] = task.exact_risk(W)
            batch["risk_se"] = jnp.zeros_like(batch["risk"])
        else:
            batch["risk"], batch["risk_se"] = mc_risk(W, X_test, task.w_star)
        if not keep_students:
            del batch["students"]
        return batch

    def measure_pair(self, task: Task, s0: DrawnSet, s1: DrawnSet, w0: Float[Array, " d"],
                     w1: Float[Array, " d"]) -> dict[str, Array]:
        """Per nested pair: the two students, measured batched (``finish_pair``)."""
        return {"w_X": w0, "w_plus": w1}

    def finish_pair(self, task: Task, batch: dict[str, Array], X_test: Float[Array, "M d"] | None,
                    risk_method: str, both_risks: bool) -> dict[str, Array]:
        """Per batch of pairs: unsigned angles (eq. 16) of w(X) and w([X; x]) to
        w*, the risk of w(X) and, with ``both_risks``, of w([X; x]) (exact, or
        on the same held-out inputs)."""
        w_star = jnp.asarray(task.w_star)
        w0 = batch.pop("w_X")
        w1 = batch.pop("w_plus")
        batch["angle_X"] = unsigned_angle(w0, w_star)
        batch["angle_plus"] = unsigned_angle(w1, w_star)
        students = (("risk_X", w0), ("risk_plus", w1)) if both_risks else (("risk_X", w0),)
        for name, w in students:
            if risk_method == "exact":
                batch[name] = task.exact_risk(w)
            else:
                batch[name], _ = mc_risk(w, X_test, w_star)
        return batch


def refuse_inputs_only(risk_method: str, keep_students: bool) -> None:
    """The measurements only the inputs sampler makes (``students.gram.gram_problem``
    refuses them before a run; this guards a program built by hand)."""
    if risk_method != "exact" or keep_students:
        raise JaxDistillError(f"the Gram sampler measures exact risk without forming the students; got "
                              f"risk_method={risk_method!r}, keep_students={keep_students}: use sampler 'inputs'")


class GramSampler(eqx.Module):
    """Draw (G, X w*) (docs/design.md fact 13); measure each student's signed
    angle per set in Gram space, its exact risk from the angle."""

    finite_outputs = ("risk", "angle")

    def width(self, task: Task, rows: int) -> int:
        """Numbers per row of a drawn set (``runner.plan_chunks``): rows + 1 (G and X w*)."""
        return rows + 1

    def draw(self, task: Task, key: PRNGKeyArray, n: int, targets: TargetSpec) -> tuple[Bool[Array, ""], DrawnSet]:
        """(G, X w*) = ``task.sample_gram(key, n)``; a non-finite set becomes
        the stand-in G = I, X w* = 0."""
        G, u_raw = task.sample_gram(key, n)
        finite, (G, u_raw) = replace_non_finite((G, u_raw), (jnp.eye(n, dtype=G.dtype), jnp.zeros_like(u_raw)))
        return finite, DrawnSet(GramDesign(G, task.d), logits_from_raw(u_raw, targets), u_raw)

    def draw_nested(self, task: Task, key: PRNGKeyArray, n: int,
                    targets: TargetSpec) -> tuple[Bool[Array, ""], DrawnSet, DrawnSet]:
        """The (n + 1) x (n + 1) Gram of [X; x] and its X w*, drawn once; X's
        are its leading n x n block and first n entries (same law as
        ``InputsSampler.draw_nested``, not the same draws)."""
        Gp, up_raw = task.sample_gram(key, n + 1)
        finite, (Gp, up_raw) = replace_non_finite((Gp, up_raw), (jnp.eye(n + 1, dtype=Gp.dtype), jnp.zeros_like(up_raw)))
        G, u_raw = Gp[:n, :n], up_raw[:n]
        return (finite, DrawnSet(GramDesign(G, task.d), logits_from_raw(u_raw, targets), u_raw),
                DrawnSet(GramDesign(Gp, task.d), logits_from_raw(up_raw, targets), up_raw))

    def sequenced(self, s: DrawnSet, *done) -> DrawnSet:
        """``s`` whose Gram matrix exists only once ``done`` does (``sequencing.after``)."""
        return DrawnSet(GramDesign(after(s.design.G, *done), s.design.d), s.u, s.u_raw)

    def measure(self, task: Task, learner, s: DrawnSet, out, targets: TargetSpec) -> dict[str, Array]:
        """Per set: the signed angle (eq. 28) of the student with coordinates c = ``out.w``
        and its distance to the closed form (``gram_student_stats``, after the fit)."""
        G, c = s.design.G, out.w
        stats = gram_student_stats(after(G, c), c, s.u, s.u_raw, jnp.linalg.norm(task.w_star), targets.is_soft)
        return {"angle": stats.angle, "rel_dist_closed_form": stats.rel_dist_closed_form}

    def finish(self, task: Task, learner, batch: dict[str, Array], shared, risk_method: str,
               keep_students: bool) -> dict[str, Array]:
        """Per batch: the exact risk from the angle (fact 3; the only risk
        method, and the students are never formed)."""
        refuse_inputs_only(risk_method, keep_students)
        batch["risk"] = task.exact_risk_from_angle(batch["angle"])
        batch["risk_se"] = jnp.zeros_like(batch["risk"])
        return batch

    def measure_pair(self, task: Task, s0: DrawnSet, s1: DrawnSet, c0: Float[Array, " m"],
                     c1: Float[Array, " m"]) -> dict[str, Array]:
        """Per nested pair: the signed angles of both students, measured after
        both fits and one after the other (fact 11)."""
        w_norm = jnp.linalg.norm(task.w_star)
        a0 = gram_student_stats(after(s0.design.G, c1), c0, s0.u_raw, s0.u_raw, w_norm, False).angle
        a1 = gram_student_stats(after(s1.design.G, a0), c1, s1.u_raw, s1.u_raw, w_norm, False).angle
        return {"signed_X": a0, "signed_plus": a1}

    def finish_pair(self, task: Task, batch: dict[str, Array], shared, risk_method: str,
                    both_risks: bool) -> dict[str, Array]:
        """Per batch of pairs: unsigned angles (eq. 16) from the signed ones,
        exact risks from the signed angles (fact 3)."""
        refuse_inputs_only(risk_method, False)
        a0, a1 = batch.pop("signed_X"), batch.pop("signed_plus")
        batch["angle_X"] = jnp.minimum(a0, jnp.pi - a0)
        batch["angle_plus"] = jnp.minimum(a1, jnp.pi - a1)
        batch["risk_X"] = task.exact_risk_from_angle(a0)
        if both_risks:
            batch["risk_plus"] = task.exact_risk_from_angle(a1)
        return batch


BinarySampler = InputsSampler | GramSampler

SAMPLER_KINDS: dict[str, BinarySampler] = {"inputs": InputsSampler(), "gram": GramSampler()}


def sampler_kind(sampler: str) -> BinarySampler:
    """The piece of a resolved sampler name ("inputs" or "gram")."""
    return SAMPLER_KINDS[check_choice("sampler", sampler, tuple(SAMPLER_KINDS))]


__all__ = ["DrawnSet", "InputsSampler", "GramSampler", "BinarySampler", "SAMPLER_KINDS", "sampler_kind"]
