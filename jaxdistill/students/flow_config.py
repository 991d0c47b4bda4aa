"""Settings of every gradient-flow learner (``FlowConfig``) and the CLI's
solver names.

``FlowConfig`` takes diffrax's own objects: any ODE solver
(``diffrax.AbstractSolver``; the default is this library's Rosenbrock solver
``rosenbrock.Rodas3``, itself a diffrax solver), any step-size controller
(``diffrax.AbstractStepSizeController``) and any adjoint
(``diffrax.AbstractAdjoint``).  Names such as ``"Kvaerno5"`` are only
command-line shortcuts: ``solver_from_name`` maps them to objects.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp

from .._precision import check_dtype
from ..validation import JaxDistillError, check_choice, check_int, check_real
from .rosenbrock import Rodas3

# Names the command line accepts for --solver: Rodas3 (jaxdistill's
# Rosenbrock solver, the default) and diffrax classes with no required
# argument.  Linearly implicit (Rodas3) and implicit (Kvaerno*, KenCarp*,
# ImplicitEuler) solvers suit the stiff flow; explicit ones need many more steps.
SOLVER_NAMES = ("Rodas3", "Kvaerno3", "Kvaerno4", "Kvaerno5", "KenCarp3", "KenCarp4", "KenCarp5", "ImplicitEuler",
                "Tsit5", "Dopri5", "Dopri8", "Heun", "Bosh3")
COORDINATES = ("reduced", "plain")

DEFAULT_RTOL = 1e-2
DEFAULT_ATOL = 1e-5

# A Newton step below float32 resolution certifies nothing: in float32 every
# flow stops at a relative distance of at least this (``FlowConfig.for_dtype``).
FLOAT32_MIN_NEWTON_TOL = 1e-5


def solver_from_name(name: str) -> diffrax.AbstractSolver:
    """The diffrax solver object for a command-line name (``SOLVER_NAMES``),
    e.g. ``solver_from_name("Kvaerno5") == diffrax.Kvaerno5()``,
    ``solver_from_name("Rodas3") == Rodas3()``."""
    check_choice("solver", name, SOLVER_NAMES)
    return Rodas3() if name == "Rodas3" else getattr(diffrax, name)()


def _describe(obj) -> str:
    """A one-line description of a diffrax/optax object for run configs."""
    return " ".join(repr(obj).split())


DEFAULT_T_MAX = 1e35
"""Default horizon of the flows.  The slowest rate of the logit flow is about
lambda_min(G) sigma'(z) / n, and the rank test (``min diag L > eps n max
diag L``) admits lambda_min / lambda_max down to (eps n)^2, about 2e-29 in
float64 at n = 20: an input of norm 6e-8 among inputs of norm ~1 (the kappa
task's Gaussian scale draws one about once in 300,000 sets at n = 20) needs
t ~ 1e18 per e-fold and t ~ 1e21 to converge.  1e35 covers every set the rank
test admits with room for the stopping test; with an implicit solver the
step grows geometrically, so a set that converges earlier costs nothing more,
and it stays below float32's largest number (3.4e38)."""

HARD_T_MAX = 1e20
"""Default horizon of hard-label flows (no steady state: the logits grow like
log t and the flow stops at the horizon, status "finite_horizon"); kept at
1e20 because reaching 1e35 would cost steps (some sets would hit max_steps)
and change nothing but the student's norm."""


class FlowConfig(eqx.Module):
    """Configuration of a gradient-flow learner (keyword-only, diffrax style).

    Attributes:
        solver: a diffrax ODE solver object (default ``Rodas3()``, an
            L-stable Rosenbrock solver for the stiff flow: one LU per step,
            1.85x (linear flow) to 3.12x (kernel flow) the sets/s of
            ``diffrax.Kvaerno3()`` in benchmarks/results/vm-2cpu-2026-11-30.md;
            docs/design.md fact 14).  Names are a command-line
            shortcut only: ``solver_from_name("Kvaerno5")``.
        stepsize_controller: a diffrax step-size controller object; default
            ``diffrax.PIDController(rtol=rtol, atol=atol)``.
        rtol, atol: tolerances of the default PID controller (1e-2, 1e-5).
            They apply only when ``stepsize_controller`` is not given (set
            them on the controller then); with a controller they are None.
            For a linear student (N = 1) the flow contracts to a unique limit,
            so the stopping test (``newton_tol``), not these, sets the
            accuracy of the limit.  That does not hold for deep students
            (N >= 2): their limit depends on the path (the orthogonal
            component, eq. 66), so trajectory errors change it: the deep
            learners' own defaults (``students.deep.default_flow_config``:
            Kvaerno5, rtol 1e-8, atol 1e-14 for the induced and full
            integrators) keep them within 1e-8 of the exact limit.  Use a
            tight rtol too whenever you record trajectories (``ts``).
        adjoint: a diffrax adjoint object; default ``diffrax.ForwardMode()``
            (forward-only solve: reverse-mode checkpointing is much slower
            under vmap on CPU and the students are never differentiated).
        dt0: initial step size; None lets the controller choose (required
            by constant step sizes, ``diffrax.ConstantStepSize()``).
        newton_tol: stop when the Newton step is below newton_tol * ||w||
            (relative distance to the limit, docs/design.md fact 5).
        max_steps: solver step limit; a set that hits it is reported with
            status "max_steps_reached".
        t_max: the integration horizon; soft-label sets that reach it
            without converging are "not_converged_by_t_max"; hard-label
            flows (no steady state) stop there with status "finite_horizon".
            Default: 1e35 for soft targets (``DEFAULT_T_MAX``: long enough for
            every set the rank test admits) and 1e20 for hard labels
            (``HARD_T_MAX``, the ``hard_t_max`` attribute); a given t_max
            applies to both.
        t_end: a finite training time: integrate to exactly t = t_end with
            no steady-state test (status "finite_horizon", a success); the
            student is the flow at that time, not its limit.  Cannot be
            combined with t_max.  Default None (train to the steady state).
        coordinates: "reduced" (default, docs/design.md fact 1) or "plain" (d-dim).

    Example:
        >>> FlowConfig(solver=diffrax.Kvaerno5(),
        ...            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10))
    """

    solver: diffrax.AbstractSolver
    stepsize_controller: diffrax.AbstractStepSizeController | None
    adjoint: diffrax.AbstractAdjoint
    rtol: float | None
    atol: float | None
    dt0: float | None
    newton_tol: float
    max_steps: int
    t_max: float
    hard_t_max: float
    t_end: float | None
    coordinates: str

    def __init__(
        self,
        *,
        solver: diffrax.AbstractSolver | None = None,
        stepsize_controller: diffrax.AbstractStepSizeController | None = None,
        adjoint: diffrax.AbstractAdjoint | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        dt0: float | None = None,
        newton_tol: float = 1e-9,
        max_steps: int = 4096,
        t_max: float | None = None,
        t_end: float | None = None,
        coordinates: str = "reduced",
    ):
        if solver is None:
            solver = Rodas3()
        elif isinstance(solver, str):
            raise JaxDistillError(
                f"solver must be a diffrax solver object, e.g. diffrax.{solver}(), got the string {solver!r} "
                "(names are command-line shortcuts: jaxdistill.students.solver_from_name maps them)")
        elif not isinstance(solver, diffrax.AbstractSolver):
            raise JaxDistillError(f"solver must be a diffrax solver object (diffrax.AbstractSolver, e.g. "
                                  f"diffrax.Kvaerno3()), got {solver!r}")
        if stepsize_controller is None:
            rtol = DEFAULT_RTOL if rtol is None else check_real("rtol", rtol, gt=0.0, lt=1.0)
            atol = DEFAULT_ATOL if atol is None else check_real("atol", atol, gt=0.0)
        else:
            if not isinstance(stepsize_controller, diffrax.AbstractStepSizeController):
                raise JaxDistillError("stepsize_controller must be a diffrax step-size controller object "
                                      f"(e.g. diffrax.PIDController(rtol=1e-8, atol=1e-10)), got {stepsize_controller!r}")
            given = [k for k, v in (("rtol", rtol), ("atol", atol)) if v is not None]
            if given:
                verb = "they apply" if len(given) > 1 else "it applies"
                raise JaxDistillError(
                    f"{' and '.join(given)} cannot be combined with stepsize_controller: {verb} only to the default "
                    "PIDController; set the tolerances on your controller (e.g. diffrax.PIDController(rtol=..., atol=...))")
        if adjoint is None:
            adjoint = diffrax.ForwardMode()
        elif not isinstance(adjoint, diffrax.AbstractAdjoint):
            raise JaxDistillError(f"adjoint must be a diffrax adjoint object (e.g. diffrax.ForwardMode()), got {adjoint!r}")
        self.solver = solver
        self.stepsize_controller = stepsize_controller
        self.adjoint = adjoint
        self.rtol = rtol
        self.atol = atol
        self.dt0 = None if dt0 is None else check_real("dt0", dt0, gt=0.0)
        self.newton_tol = check_real("newton_tol", newton_tol, gt=0.0, lt=1.0)
        self.max_steps = check_int("max_steps", max_steps, minimum=1)
        if t_end is not None and t_max is not None:
            raise JaxDistillError("t_end (a finite training time) cannot be combined with t_max (the horizon of a "
                                  "flow run to its steady state); give one of them")
        self.t_max = DEFAULT_T_MAX if t_max is None else check_real("t_max", t_max, gt=0.0)
        self.hard_t_max = HARD_T_MAX if t_max is None else self.t_max
        self.t_end = None if t_end is None else check_real("t_end", t_end, gt=0.0)
        self.coordinates = check_choice("coordinates", coordinates, COORDINATES)

    @property
    def finite_time(self) -> bool:
        """True when the flow runs to the fixed time ``t_end`` (no steady-state test)."""
        return self.t_end is not None

    def horizon(self, soft):
        """The end of the integration interval: ``t_end`` if given, else
        ``t_max`` for soft targets and ``hard_t_max`` for hard labels
        (``soft``: a traced boolean, so one compiled flow serves both)."""
        if self.t_end is not None:
            return self.t_end
        if self.hard_t_max == self.t_max:
            return self.t_max
        return jnp.where(soft, self.t_max, self.hard_t_max)

    @property
    def controller(self) -> diffrax.AbstractStepSizeController:
        """The step-size controller the solve uses."""
        if self.stepsize_controller is not None:
            return self.stepsize_controller
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol)

    def for_dtype(self, dtype: str) -> "FlowConfig":
        """This config as it runs in ``dtype``: unchanged in float64; in
        float32 ``newton_tol`` is raised to at least ``FLOAT32_MIN_NEWTON_TOL``."""
        if check_dtype(dtype) == "float32" and self.newton_tol < FLOAT32_MIN_NEWTON_TOL:
            return eqx.tree_at(lambda c: c.newton_tol, self, FLOAT32_MIN_NEWTON_TOL)
        return self

    def config(self) -> dict:
        """JSON-able description (objects as one-line reprs)."""
        return {
            "solver": _describe(self.solver),
            "stepsize_controller": _describe(self.controller),
            "adjoint": _describe(self.adjoint),
            "rtol": self.rtol,
            "atol": self.atol,
            "dt0": self.dt0,
            "newton_tol": self.newton_tol,
            "max_steps": self.max_steps,
            "t_max": self.t_max,
            "hard_t_max": self.hard_t_max,
            "t_end": self.t_end,
            "coordinates": self.coordinates,
        }


__all__ = ["FlowConfig", "solver_from_name", "SOLVER_NAMES", "COORDINATES", "FLOAT32_MIN_NEWTON_TOL"]
