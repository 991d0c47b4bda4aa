"""One stack, must-hold 2: one logit flow for every design and link
(``students.logit_flow``; docs/design.md facts 1, 8, 9, 13).

The same flow run on the inputs, on their Gram matrix and on the linear
kernel's design reaches the same student (in the design's own
coordinates) and the closed form of Thm 1; the K = 2 softmax link is the
sigmoid link on the logit difference at twice the speed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill import Status, precision
from jaxdistill.design import GramDesign, InputsDesign, two_class_logits
from jaxdistill.multiclass.learners import binary_time_config, softmax_closed_form, softmax_design_flow
from jaxdistill.nonlinear import KernelDesign, UserKernel
from jaxdistill.students.closed_form import closed_form
from jaxdistill.students.flow_config import FlowConfig
from jaxdistill.students.links import SigmoidLink, SoftmaxLink
from jaxdistill.students.logit_flow import LogitCoordinates, design_coordinates, logit_flow

LINEAR = UserKernel(lambda A, B: A @ B.T, "linear")


def _set(n, d, K=None, seed=0):
    key = jax.random.PRNGKey(seed)
    X = jax.random.normal(key, (n, d))
    if K is None:
        return X, 1.5 * X @ jax.random.normal(jax.random.fold_in(key, 1), (d,)) / np.sqrt(d)
    return X, X @ jax.random.normal(jax.random.fold_in(key, 1), (d, K)) / np.sqrt(d)


@pytest.mark.parametrize("K", [None, 3])
def test_one_flow_on_inputs_gram_and_linear_kernel_designs_agrees_with_the_closed_form(K):
    """Inputs (w = X^T L^{-T} c), Gram matrix and linear-kernel features (c
    itself): one student, the closed form of Thm 1 (fact 8 for K classes)."""
    with precision():
        n, d = 7, 11
        X, targets = _set(n, d, K)
        link = SigmoidLink(targets) if K is None else SoftmaxLink(targets)
        designs = {"inputs": InputsDesign(X), "gram": GramDesign(X @ X.T, d), "kernel": KernelDesign(LINEAR, X)}
        runs = {name: logit_flow(LogitCoordinates(des), link, FlowConfig()) for name, des in designs.items()}
        L_inv = designs["gram"].factor().L_inv
        # the kernel design's c in the inputs' basis X^T L^{-T}
        as_w = {name: (r.w if name == "inputs" else X.T @ (L_inv.T @ r.w)) for name, r in runs.items()}
        exact = closed_form(X, targets) if K is None else softmax_closed_form(X, targets)[0].T
        c_gram, c_kernel = np.asarray(runs["gram"].w), np.asarray(runs["kernel"].w)
        statuses = {name: int(r.status) for name, r in runs.items()}
    assert set(statuses.values()) == {0}, statuses
    # G and k(X, X) = X X^T (symmetrised) differ at most in rounding: the same flow
    np.testing.assert_allclose(c_kernel, c_gram, rtol=1e-10, atol=1e-12)
    for name, w in as_w.items():
        rel = float(jnp.linalg.norm(w - exact) / jnp.linalg.norm(exact))
        assert rel <= 1e-8, (name, rel)


@pytest.mark.parametrize("design_kind", ["inputs", "span", "kernel"])
def test_two_class_softmax_link_is_the_sigmoid_link_on_the_logit_difference(design_kind):
    """K = 2: the softmax flow of V = [0, u] with W = [-w/2, w/2] is the
    sigmoid flow of u at twice the speed; ``softmax_design_flow`` hands K = 2
    to the sigmoid link, and the softmax link itself lands on the same
    student (the closed form) with the same status."""
    with precision():
        n, d = (12, 5) if design_kind == "span" else (6, 9)
        X, u = _set(n, d, seed=3)
        V = two_class_logits(u)
        design = KernelDesign(LINEAR, X) if design_kind == "kernel" else InputsDesign(X)
        config = FlowConfig()
        handed = softmax_design_flow(design, V, config)
        binary_config = binary_time_config(config)  # the K = 2 flow at time t is the binary one at 2t
        binary = logit_flow(design_coordinates(design, binary_config), SigmoidLink(u), binary_config)
        W_binary = jnp.stack([-0.5 * binary.w, 0.5 * binary.w])
        softmax = logit_flow(design_coordinates(design, config), SoftmaxLink(V), config)
        # the limit in the design's coordinates: c_hat = L^{-1} u (kernel), w_hat (inputs)
        exact = design.factor().L_inv @ u if design_kind == "kernel" else closed_form(X, u)
        W_soft = softmax.w.T
        w_soft = W_soft[1] - W_soft[0]
        errors = [float(jnp.linalg.norm(w - exact) / jnp.linalg.norm(exact)) for w in (binary.w, w_soft)]
        class_sum = np.asarray(W_soft[0] + W_soft[1])
    # the hand-off is the sigmoid link's flow, to the bit
    np.testing.assert_array_equal(np.asarray(handed.W), np.asarray(W_binary))
    assert int(handed.status) == int(binary.status) == int(softmax.status) == 0
    # the softmax link on [0, u] reaches W = [-w_hat/2, w_hat/2], its class-difference the binary limit
    assert max(errors) <= 1e-8, errors
    np.testing.assert_allclose(class_sum, 0.0, atol=1e-12)
    np.testing.assert_allclose(float(handed.loss), float(softmax.loss), rtol=1e-6, atol=1e-14)


def test_kernel_design_keeps_the_kernel_rank_test():
    """A repeated input makes k(X, X) singular: the kernel design's factor
    reports it (the kernel students' own test), and the flow marks the set."""
    with precision():
        X, u = _set(5, 3, seed=4)
        X = X.at[4].set(X[3])
        design = KernelDesign(UserKernel(lambda A, B: jnp.exp(-0.5 * jnp.sum((A[:, None] - B[None]) ** 2, -1))), X)
        fac = design.factor()
        out = softmax_design_flow(design, two_class_logits(u), FlowConfig())
    assert not bool(fac.rank_ok)
    assert int(out.status) == Status.RANK_DEFICIENT
