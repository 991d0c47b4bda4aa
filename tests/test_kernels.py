"""Kernel students (jaxdistill.nonlinear; docs/design.md fact 9): the kernels'
formulas against independent Monte-Carlo expectations, Thm 1 in feature
space (flow = closed form, the limit interpolates the centred target
logits and does not depend on the kernel's scale), the linear kernel =
the linear student, K = 2 = the binary flow, finite training time, the
ReLU-network teacher, the pool-file done-means run and the CLI refusals."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxdistill as jd
from jaxdistill.design import InputsDesign
import pytest

from jaxdistill import precision
from jaxdistill.cli import main
from jaxdistill.multiclass import MultiTargetSpec, centre, target_log_probs
from jaxdistill.multiclass.learners import make_softmax_learner, softmax_closed_form
from jaxdistill.nonlinear import (ArcCosKernel, BinaryTaskAsMultiClass, KernelLearner, NTKKernel, RBFKernel,
                                  ReluTeacherTask, UserKernel, arccos_kernel, make_kernel, ntk_kernel)
from jaxdistill.status import Status
from jaxdistill.students import FlowConfig, GDConfig, gradient_flow
from jaxdistill.tasks import KappaPolynomialTask
from jaxdistill.validation import JaxDistillError

KERNELS = [RBFKernel(2.0), ArcCosKernel(), NTKKernel()]


def test_arccos_and_ntk_are_the_relu_network_expectations():
    """arccos = 2 E[relu(w.x) relu(w.x')] and ntk = E[relu relu] + x.x' E[1{w.x>0} 1{w.x'>0}]
    for w ~ N(0, I): Monte-Carlo with 400,000 draws, within 5 SE entrywise."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 6))
    W = rng.normal(size=(400_000, 6))
    H = W @ A.T  # [S, 4]
    relu, ind = np.maximum(H, 0), (H > 0).astype(float)
    pair_rr = relu[:, :, None] * relu[:, None, :]
    pair_ntk = pair_rr + (A @ A.T)[None] * ind[:, :, None] * ind[:, None, :]
    with precision():
        k_arc = np.asarray(arccos_kernel(jnp.asarray(A), jnp.asarray(A)))
        k_ntk = np.asarray(ntk_kernel(jnp.asarray(A), jnp.asarray(A)))
    for samples, exact in ((2 * pair_rr, k_arc), (pair_ntk, k_ntk)):
        mean, se = samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])
        assert np.all(np.abs(mean - exact) <= 5 * se + 1e-12), np.max(np.abs(mean - exact) / se)


def test_kernel_values_on_the_diagonal_and_symmetry():
    """k(x, x): rbf 1, arccos ||x||^2, ntk ||x||^2 (t = 0: 1/2 ||x||^2 + 1/2 ||x||^2); all symmetric."""
    with precision():
        X = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
        sq = jnp.sum(X * X, axis=1)
        for k, diag in ((RBFKernel(1.5), jnp.ones(7)), (ArcCosKernel(), sq), (NTKKernel(), sq)):
            Kxx = k(X, X)
            np.testing.assert_allclose(np.diag(np.asarray(Kxx)), np.asarray(diag), rtol=1e-12)
            np.testing.assert_allclose(np.asarray(Kxx), np.asarray(Kxx).T, rtol=1e-13, atol=1e-13)
            assert float(jnp.min(jnp.linalg.eigvalsh(Kxx))) > 0


def _problem(K=3, n=12, d=5, seed=0):
    task = ReluTeacherTask(d, 16, K, seed=seed)
    X, U, _ = task.sample_set(jax.random.PRNGKey(seed), n)
    return X, U


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_flow_reaches_the_interpolant(kernel, K):
    """Thm 1 in feature space: the flow's limit is the closed-form interpolant
    (<= 1e-6 relative in the RKHS norm); it interpolates the centred target
    logits on the transfer set.  (GD: see the finite-time test below.)"""
    with precision():
        X, U = _problem(K)
        V = target_log_probs(U, None, MultiTargetSpec())
        flow = KernelLearner(kernel, make_softmax_learner("flow"))
        out = flow.fit(jax.random.PRNGKey(0), InputsDesign(X), V)
        W_hat = flow.limit(X, V)
        assert int(out.status) == Status.CONVERGED
        assert float(jnp.linalg.norm(out.W - W_hat) / jnp.linalg.norm(W_hat)) <= 1e-6
        Z = flow.predict(W_hat, X, X)
        np.testing.assert_allclose(np.asarray(centre(Z)), np.asarray(centre(U)), atol=1e-9)


def test_limit_does_not_depend_on_the_kernel_scale():
    with precision():
        X, U = _problem(3)
        X_test = jax.random.normal(jax.random.PRNGKey(9), (30, 5))
        V = target_log_probs(U, None, MultiTargetSpec())
        preds = []
        for c in (1.0, 7.0, 0.01):
            learner = KernelLearner(UserKernel(lambda A, B, c=c: c * ntk_kernel(A, B)), make_softmax_learner("closed-form"))
            preds.append(learner.predict(learner.limit(X, V), X, X_test))
        np.testing.assert_allclose(np.asarray(preds[1]), np.asarray(preds[0]), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(np.asarray(preds[2]), np.asarray(preds[0]), rtol=1e-9, atol=1e-10)


def test_linear_kernel_is_the_linear_student():
    """k(x, x') = x.x' (n <= d): the kernel student's logits on new inputs
    are the linear student's, for the closed form and the flow."""
    with precision():
        X = jax.random.normal(jax.random.PRNGKey(3), (6, 9))
        X_test = jax.random.normal(jax.random.PRNGKey(4), (20, 9))
        W_star = jax.random.normal(jax.random.PRNGKey(5), (3, 9))
        V = target_log_probs(X @ W_star.T, None, MultiTargetSpec())
        lin = UserKernel(lambda A, B: A @ B.T, "linear")
        W_lin, _, _ = softmax_closed_form(X, V)
        for method in ("closed-form", "flow"):
            learner = KernelLearner(lin, make_softmax_learner(method))
            out = learner.fit(jax.random.PRNGKey(0), InputsDesign(X), V)
            np.testing.assert_allclose(np.asarray(learner.predict(out.W, X, X_test)), np.asarray(X_test @ W_lin.T),
                                       rtol=1e-6, atol=1e-8)


def test_k2_kernel_flow_is_the_binary_flow_on_the_features():
    with precision():
        X, U = _problem(2)
        V = target_log_probs(U, None, MultiTargetSpec())
        learner = KernelLearner(RBFKernel(2.0), make_softmax_learner("flow"))
        out = learner.fit(jax.random.PRNGKey(0), InputsDesign(X), V)
        L = jnp.linalg.cholesky(RBFKernel(2.0)(X, X))
        res = gradient_flow(L, U[:, 1] - U[:, 0], FlowConfig(t_max=2e35))
        np.testing.assert_allclose(np.asarray(out.W[1] - out.W[0]), np.asarray(res.w), rtol=1e-12, atol=1e-14)


def test_finite_training_time_matches_small_step_gd_and_tends_to_the_limit():
    """Three ways: the flow to t_end = 3 equals GD with step 1e-3 for 3,000
    steps to O(eta); the flow to t_end = 1e6 is the closed form."""
    with precision():
        X, U = _problem(3)
        V = target_log_probs(U, None, MultiTargetSpec())
        k = NTKKernel()
        fl = KernelLearner(k, make_softmax_learner("flow", flow=FlowConfig(t_end=3.0, rtol=1e-8, atol=1e-12)))
        out = fl.fit(jax.random.PRNGKey(0), InputsDesign(X), V)
        assert int(out.status) == Status.FINITE_HORIZON
        gd = KernelLearner(k, make_softmax_learner("gd", gd=GDConfig(learning_rate=1e-3, steps=3000)))
        W_gd = gd.fit(jax.random.PRNGKey(0), InputsDesign(X), V).W
        assert float(jnp.linalg.norm(out.W - W_gd) / jnp.linalg.norm(out.W)) <= 2e-3
        W_hat = fl.limit(X, V)
        assert float(jnp.linalg.norm(out.W - W_hat) / jnp.linalg.norm(W_hat)) >= 1e-2  # t = 3 is not the limit
        far = KernelLearner(k, make_softmax_learner("flow", flow=FlowConfig(t_end=1e8)))
        W_far = far.fit(jax.random.PRNGKey(0), InputsDesign(X), V).W
        assert float(jnp.linalg.norm(W_far - W_hat) / jnp.linalg.norm(W_hat)) <= 1e-6


def test_duplicate_inputs_are_rank_deficient_not_nan():
    with precision():
        X, U = _problem(2)
        X = X.at[1].set(X[0])
        V = target_log_probs(U, None, MultiTargetSpec())
        out = KernelLearner(RBFKernel(2.0), make_softmax_learner("flow")).fit(jax.random.PRNGKey(0), InputsDesign(X), V)
        assert int(out.status) == Status.RANK_DEFICIENT


def test_relu_teacher_logits_are_centred_and_reproducible():
    """E_x u(x) = 0 exactly by construction (Monte-Carlo within 5 SE); same seed, same teacher."""
    with precision():
        task = ReluTeacherTask(10, 32, seed=3)
        X, U, _ = task.held_out(jax.random.PRNGKey(0), 200_000)
        u = np.asarray(U[:, 1])
        assert abs(u.mean()) <= 5 * u.std() / math.sqrt(u.size)
        assert np.all(np.asarray(U[:, 0]) == 0)
        np.testing.assert_array_equal(np.asarray(ReluTeacherTask(10, 32, seed=3).W1), np.asarray(task.W1))
        assert not np.array_equal(np.asarray(ReluTeacherTask(10, 32, seed=4).W1), np.asarray(task.W1))
    with pytest.raises(JaxDistillError, match="teacher_width"):
        ReluTeacherTask(10, 0)


def test_kernel_students_through_distill_on_a_binary_task():
    """A binary kappa task as K = 2 (logits [0, w*.x]): kernel flow risk matches
    the closed form's set by set; same seed, same numbers."""
    task = BinaryTaskAsMultiClass(KappaPolynomialTask(5, 1.0))
    flow = KernelLearner(ArcCosKernel(), make_softmax_learner("flow"))
    r1 = jd.distill(0, task, 8, 16, learner=flow, num_test=2000)
    r2 = jd.distill(0, task, 8, 16, learner=flow, num_test=2000)
    cf = jd.distill(0, task, 8, 16, learner=KernelLearner(ArcCosKernel(), make_softmax_learner("closed-form")),
                            num_test=2000)
    np.testing.assert_array_equal(r1.arrays["risk"], r2.arrays["risk"])
    assert r1.summary()["max_rel_dist_closed_form"] <= 1e-6
    assert np.max(np.abs(r1.arrays["risk"] - cf.arrays["risk"])) <= 2 / 2000  # at most a boundary point or two


def test_cli_pool_of_relu_teacher_logits(tmp_path):
    """The issue's done-means run at small size: make-pool from a ReLU teacher,
    then kernel students (rbf, ntk, arccos) by flow on the pool."""
    pool = tmp_path / "pool.npz"
    assert main(["make-pool", "--task", "relu-teacher", "--d", "10", "--teacher-width", "20", "--size", "600",
                 "--test-size", "400", "--out", str(pool)]) == 0
    with np.load(pool) as z:
        assert z["inputs"].shape == (600, 10) and z["teacher_logits"].shape == (600,)
        assert z["test_inputs"].shape == (400, 10) and z["test_teacher_logits"].shape == (400,)
        task = ReluTeacherTask(10, 20)
        with precision():
            np.testing.assert_allclose(np.asarray(task.logits(jnp.asarray(z["inputs"][:5])))[:, 1],
                                       z["teacher_logits"][:5], rtol=1e-12)
    risks = {}
    for kernel, extra in (("rbf", ["--bandwidth", "3"]), ("ntk", []), ("arccos", [])):
        out = tmp_path / kernel
        assert main(["run", "--task", "pool", "--pool-file", str(pool), "--student", "kernel", "--kernel", kernel,
                     *extra, "--n", "40", "--num-sets", "24", "--method", "flow", "--out", str(out), "--quiet"]) == 0
        s = json.loads((out / "summary.json").read_text())
        assert s["max_rel_dist_closed_form"] <= 1e-6 and s["num_failed"] == 0
        assert 0 < s["risk_mean"] < 0.5 and s["risk_se"] > 0
        assert s["config"]["student"] == "kernel" and s["config"]["kernel"] == kernel
        risks[kernel] = s["risk_mean"]
    assert len(set(risks.values())) == 3  # three different students


@pytest.mark.parametrize("argv, message", [
    (["--student", "kernel", "--kernel", "rbf"], "--kernel rbf needs --bandwidth"),
    (["--student", "kernel", "--kernel", "ntk", "--bandwidth", "2"], "--bandwidth applies only to --kernel rbf"),
    (["--kernel", "ntk"], "--kernel applies only to --student kernel"),
    (["--student", "kernel", "--depth", "2"], "--depth >= 2 applies only to --student linear"),
    (["--student", "mlp", "--method", "flow"], "--method flow does not apply to --student mlp"),
    (["--student", "kernel", "--width", "8"], "a kernel student has no width"),
    (["--task", "relu-teacher", "--d", "5"], "--teacher-width"),
    (["--teacher-width", "5"], "--teacher-width applies only to --task relu-teacher"),
    (["--student", "kernel", "--learner", "wdelta", "--delta", "0.1"], "--learner wdelta applies only to --student linear"),
])
def test_cli_refuses_inapplicable_student_options(capsys, argv, message):
    base = ["run", "--d", "5", "--n", "3", "--num-sets", "2", "--quiet"]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_make_kernel_validation():
    with pytest.raises(JaxDistillError, match="bandwidth"):
        make_kernel("rbf")
    with pytest.raises(JaxDistillError, match="bandwidth applies only"):
        make_kernel("ntk", bandwidth=1.0)
    with pytest.raises(JaxDistillError, match="kernel"):
        make_kernel("poly")
    with pytest.raises(JaxDistillError, match="bandwidth"):
        RBFKernel(0.0)
