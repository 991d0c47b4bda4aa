"""Finite-width two-layer ReLU students (jaxdistill.nonlinear.mlp; docs/design.md fact 9).

The width-convergence check of the nonlinear-student issue, three ways:
closed form = steady state of the ``ntk`` kernel flow; kernel flow at t_end
= small-step GD on the kernel features (error O(eta)); the finite-width
network trained by GD (eta S = t_end) -> the kernel student as the width
grows (error O(M^{-1/2})).
"""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import jaxdistill as jd
from jaxdistill.design import InputsDesign
import pytest

from jaxdistill import precision
from jaxdistill.multiclass import MultiTargetSpec
from jaxdistill.multiclass.learners import make_softmax_learner
from jaxdistill.multiclass.tasks import MultiClassGaussianTask
from jaxdistill.nonlinear import KernelLearner, MLPLearner, NTKKernel, make_mlp_learner, mlp_init, mlp_logits, ntk_kernel
from jaxdistill.status import Status
from jaxdistill.students.discrete import GDConfig
from jaxdistill.students.flow_config import FlowConfig
from jaxdistill.validation import JaxDistillError

D, N, K = 5, 10, 3
T_END = 5.0
ETA = 0.05  # GD step; ETA * STEPS = T_END
STEPS = 100


def _rel(A, B):
    return float(jnp.linalg.norm(A - B) / jnp.linalg.norm(B))


@pytest.fixture(scope="module")
def problem():
    """One transfer set (d = 5, n = 10, K = 3) labelled by a random ReLU
    network's logits (soft targets), test inputs, and the ``ntk`` kernel
    student's test logits after the flow to T_END (tight tolerances) and
    after GD with (ETA, STEPS)."""
    with precision():
        k = jax.random.PRNGKey(0)
        X = jax.random.normal(jax.random.fold_in(k, 1), (N, D))
        X_test = jax.random.normal(jax.random.fold_in(k, 2), (50, D))
        H = 20
        W1 = jax.random.normal(jax.random.fold_in(k, 3), (H, D))
        A1 = jax.random.normal(jax.random.fold_in(k, 4), (H, K))
        V = 2.0 * jax.nn.relu(X @ W1.T) @ A1 / math.sqrt(H)  # teacher logits = soft log targets (T = 1)
        flow = FlowConfig(t_end=T_END, solver=diffrax.Tsit5(), rtol=1e-9, atol=1e-12)
        kflow = KernelLearner(NTKKernel(), make_softmax_learner("flow", flow=flow))
        out = jax.jit(kflow.fit_inputs)(k, X, V)
        assert int(out.status) == Status.FINITE_HORIZON
        Z_flow = kflow.predict(out.W, X, X_test)
        kgd = KernelLearner(NTKKernel(), make_softmax_learner("gd", gd=GDConfig(learning_rate=ETA, steps=STEPS)))
        Z_gd = kgd.predict(jax.jit(kgd.fit_inputs)(k, X, V).W, X, X_test)
    return {"X": X, "V": V, "X_test": X_test, "Z_flow": Z_flow, "Z_gd": Z_gd}


def test_init_is_zero_and_empirical_ntk_approaches_ntk_kernel():
    """At init f = 0 exactly, and the empirical NTK J J^T (J the Jacobian of
    the logits in the parameters; the M^{-1/2} of the NTK parameterisation
    is the whole normalisation) -> ntk_kernel (x) I_K, error ~ M^{-1/2}.

    measured (mean of 3 seeds, 6 inputs): M = 64: 0.273, 1024: 0.0850,
    16384: 0.0215 (16x the width: 3.2x and 4.0x smaller; M^{-1/2} predicts 4x)."""
    with precision():
        X = jax.random.normal(jax.random.PRNGKey(1), (6, D))
        ref = jnp.einsum("ab,kl->akbl", ntk_kernel(X, X), jnp.eye(K))

        @jax.jit
        def empirical_ntk(p):
            J = jax.jacobian(lambda q: mlp_logits(q, X))(p).reshape(6 * K, -1)
            return (J @ J.T).reshape(6, K, 6, K)

        init = jax.jit(mlp_init, static_argnums=(1, 2, 3, 4))
        errs = {}
        for M in (64, 1024, 16384):
            e = []
            for seed in range(3):
                p = init(jax.random.PRNGKey(seed), M, D, K, X.dtype)
                assert p.shape == (M, D + K)
                assert float(jnp.max(jnp.abs(mlp_logits(p, X)))) == 0.0
                e.append(_rel(empirical_ntk(p), ref))
            errs[M] = float(np.mean(e))
    print("empirical NTK relative error:", errs)
    assert errs[64] > 2.5 * errs[1024] > 2.5 * 2.5 * errs[16384]
    assert errs[16384] < 0.06


def test_kernel_three_way_closed_form_flow_discrete(problem):
    """The ``ntk`` kernel student: the flow's steady state is the closed form
    (rel <= 1e-6); the flow at t_end and GD on the kernel features with
    eta S = t_end differ by O(eta).

    measured: steady state vs closed form 7.5e-11; test-logit distance GD vs
    flow(t_end = 5): eta = 0.05: 3.36e-3, eta = 0.025: 1.68e-3 (exactly first order)."""
    X, V, X_test = problem["X"], problem["V"], problem["X_test"]
    with precision():
        kss = KernelLearner(NTKKernel(), make_softmax_learner("flow"))
        out = jax.jit(kss.fit_inputs)(jax.random.PRNGKey(0), X, V)
        assert int(out.status) == Status.CONVERGED
        assert _rel(out.W, kss.limit(X, V)) <= 1e-6
        d_half = _rel(problem["Z_gd"], problem["Z_flow"])
        kgd = KernelLearner(NTKKernel(), make_softmax_learner(
            "gd", gd=GDConfig(learning_rate=ETA / 2, steps=2 * STEPS)))
        d_quarter = _rel(kgd.predict(jax.jit(kgd.fit_inputs)(jax.random.PRNGKey(0), X, V).W, X, X_test), problem["Z_flow"])
    print(f"kernel GD vs flow at t_end={T_END}: eta={ETA}: {d_half:.3g}, eta={ETA / 2}: {d_quarter:.3g}")
    assert d_half < 1e-2
    assert 1.8 < d_half / d_quarter < 2.2


def test_mlp_approaches_ntk_kernel_student_as_width_grows(problem):
    """The network trained by plain GD (eta = 0.05, 100 steps, so t = eta S = 5)
    vs the ``ntk`` kernel student by the flow to t_end = 5: relative
    distance of the test logits (mean over 3 init seeds) falls like M^{-1/2}.

    measured (to kernel flow / to kernel GD with the same eta, S):
    M = 64: 0.251 / 0.251, 256: 0.120 / 0.120, 1024: 0.0577 / 0.0571,
    4096: 0.0307 / 0.0300 (a factor ~2 per 4x width, 8.2x from 64 to 4096;
    the flow's O(eta) floor, 3.4e-3, lies below)."""
    X, V, X_test = problem["X"], problem["V"], problem["X_test"]
    widths = (64, 256, 1024, 4096)
    to_flow, to_gd = {}, {}
    with precision():
        keys = jax.random.split(jax.random.PRNGKey(7), 3)
        for M in widths:
            learner = make_mlp_learner(M, gd=GDConfig(learning_rate=ETA, steps=STEPS))
            Z = jax.jit(jax.vmap(lambda key: learner.predict(learner.fit(key, InputsDesign(X), V).W, X, X_test)))(keys)
            to_flow[M] = float(np.mean([_rel(z, problem["Z_flow"]) for z in Z]))
            to_gd[M] = float(np.mean([_rel(z, problem["Z_gd"]) for z in Z]))
    print("MLP vs ntk kernel flow:", to_flow, "vs kernel GD:", to_gd)
    for a, b in zip(widths, widths[1:]):
        assert to_flow[b] < 0.7 * to_flow[a]
        assert to_gd[b] < 0.7 * to_gd[a]
    assert to_flow[widths[0]] / to_flow[widths[-1]] > 4.0
    assert to_flow[widths[-1]] < 0.06


def test_mlp_through_distill():
    """Batched over sets by the program: risk in [0, 1], finite, status
    finite_horizon, no closed form (NaN), and the same seed gives the same numbers."""
    task = MultiClassGaussianTask(d=D, num_classes=3)
    learner = make_mlp_learner(64, gd=GDConfig(learning_rate=0.5, steps=200))
    runs = [jd.distill(3, task, N, 4, learner=learner, targets=targets, num_test=2000, keep_students=True)
            for targets in (MultiTargetSpec(), MultiTargetSpec(), MultiTargetSpec("hard"))]
    for r in runs:
        a = r.arrays
        assert np.all(a["status"] == Status.FINITE_HORIZON)
        assert np.all(np.isfinite(a["risk"])) and np.all((a["risk"] >= 0) & (a["risk"] <= 1))
        assert np.all(np.isnan(a["rel_dist_closed_form"]))
        assert a["students"].shape == (4, 64, D + 3)
        assert r.config["student"] == "mlp" and r.config["width"] == 64 and r.config["steps"] == 200
        assert r.summary()["max_rel_dist_closed_form"] is None
    for k in ("risk", "loss", "students"):
        np.testing.assert_array_equal(runs[0].arrays[k], runs[1].arrays[k])
    assert np.mean(runs[0].arrays["risk"]) < 0.5  # learns something (chance is 2/3)


@pytest.mark.parametrize("width", [3, 1, 0, -2])
def test_bad_width(width):
    with pytest.raises(JaxDistillError, match="width"):
        make_mlp_learner(width)


def test_bad_width_type_and_gd():
    with pytest.raises(JaxDistillError, match="width"):
        MLPLearner(4.5)
    with pytest.raises(JaxDistillError, match="gd"):
        MLPLearner(4, gd={"steps": 3})
