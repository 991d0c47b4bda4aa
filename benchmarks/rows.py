"""Benchmark rows.  ``python -m benchmarks.rows NAME JSON_ARGS`` runs one row
and prints one JSON line; ``benchmarks.__main__`` runs each in a subprocess.

Rows (peers measured in the same run):
  flow            jaxdistill gradient flow (reduced coords, implicit solver, Newton event)
  distill         jaxdistill.distill end to end (sampling + flow + exact risk)
  closed_form     Thm 1 closed form, batched QR in JAX (the floor)
  numpy_qr        closed form, batched numpy QR
  scipy_lsoda     scipy.integrate.solve_ivp(LSODA) on the d-dim flow, one set at a time
  sklearn         scikit-learn LogisticRegression(penalty=None) per set, soft labels as weighted rows
  naive_diffrax   diffrax Tsit5 on the plain d-dim flow, vmapped
  optax_gd        batched full-d gradient descent (optax.sgd)
  risk_exact / risk_mc   exact transfer risk vs 10,000-point Monte-Carlo risk
  deep_reduced / deep_full   deep linear students: reduced flow vs full W_1..W_N flow
  scaling         distill end to end (sampling + flow + exact risk) with one sampler (gram or inputs),
                  after compilation, at one (d, n): the points of the scaling plot
  profile         where the time of ``jaxdistill run`` goes (default workload, gram sampler):
                  sampling, the fit, statistics + exact risk + runner, CLI files
  kernel          kernel students (docs/design.md fact 9), d = 10, n = 40, ReLU-network teacher:
                  the function-space flow vs the closed-form interpolant on the same sets
  kclass          K-class students on the digits task (K = 10, d = 64): distill end to end, after compilation
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from .workload import closed_form_reference, make_sets, max_rel_err


def _timed(fn, *args, repeats: int = 1):
    """(first-call seconds, steady seconds per call, output)."""
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return first, best, out


def _compile_then_time(f, *args):
    """(compile seconds, one steady run's seconds, output as numpy) for a
    jitted function too slow to run twice: compile ahead of time, run once."""
    import jax

    t0 = time.perf_counter()
    f.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = np.asarray(jax.block_until_ready(f(*args)))
    return compile_s, time.perf_counter() - t0, out


def row_flow(B=1000, d=1000, n=20, **kw):
    import jax

    import jaxdistill as jd
    from jaxdistill import precision

    task, X, u = make_sets(B, d, n)
    if "solver" in kw:
        kw["solver"] = jd.solver_from_name(kw["solver"])
    cfg = jd.FlowConfig(**kw)
    with precision():
        f = jax.jit(jax.vmap(lambda a, b: jd.gradient_flow(a, b, cfg)))
        first, steady, res = _timed(f, X, u)
        W = np.asarray(res.w)
        status = np.asarray(res.status)
    ok = np.isin(status, (0,))
    return {"sets_per_s": B / steady, "compile_s": first - steady, "max_rel_err": max_rel_err(W, closed_form_reference(X, u)),
            "num_sets": B, "failed": int((~ok).sum()), "mean_steps": float(np.asarray(res.num_steps).mean())}


def row_distill(B=2000, d=1000, n=20, chunk_size=1000):
    """``distill`` end to end drawing the inputs and keeping the students
    [B, d] (the row's workload since it was first recorded; the default run,
    Gram sampler without students, is the ``scaling`` row)."""
    import jaxdistill as jd

    task = jd.KappaPolynomialTask(d, 1.0)
    kw = dict(chunk_size=chunk_size, sampler="inputs", keep_students=True)
    t0 = time.perf_counter()
    jd.distill(1, task, n, chunk_size, **kw)  # compile
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = jd.distill(0, task, n, B, **kw)
    steady = time.perf_counter() - t0
    s = res.summary()
    return {"sets_per_s": B / steady, "compile_s": max(first - steady * chunk_size / B, 0.0),
            "max_rel_err": s["max_rel_dist_closed_form"], "num_sets": B, "failed": s["num_failed"]}


def row_closed_form(B=1000, d=1000, n=20):
    import jax

    import jaxdistill as jd
    from jaxdistill import precision

    task, X, u = make_sets(B, d, n)
    with precision():
        f = jax.jit(jax.vmap(jd.closed_form))
        first, steady, W = _timed(f, X, u, repeats=3)
    return {"sets_per_s": B / steady, "compile_s": first - steady, "max_rel_err": max_rel_err(np.asarray(W), closed_form_reference(X, u)),
            "num_sets": B}


def row_numpy_qr(B=1000, d=1000, n=20):
    task, X, u = make_sets(B, d, n)
    t0 = time.perf_counter()
    Q, R = np.linalg.qr(np.swapaxes(X, 1, 2))  # batched: Q [B, d, n], R [B, n, n]
    b = np.linalg.solve(np.swapaxes(R, 1, 2), u[..., None])
    W = (Q @ b)[..., 0]
    steady = time.perf_counter() - t0
    return {"sets_per_s": B / steady, "compile_s": 0.0, "max_rel_err": max_rel_err(W, closed_form_reference(X, u)), "num_sets": B}


def _flow_rhs(X, y):
    n = X.shape[0]

    def f(t, w):
        z = X @ w
        return -(X.T @ (1.0 / (1.0 + np.exp(-z)) - y)) / n

    def jac(t, w):
        s = 1.0 / (1.0 + np.exp(-(X @ w)))
        return -(X.T * (s * (1 - s))) @ X / n

    return f, jac


def row_scipy_lsoda(B=3, d=1000, n=20, t_end=1e6, method="LSODA", rtol=1e-10, atol=1e-12):
    """scipy.integrate.solve_ivp (``method``: LSODA, BDF, Radau) on the d-dim
    flow with its exact Jacobian, one set at a time, to t_end; the error is
    measured against each set's closed form."""
    from scipy.integrate import solve_ivp

    task, X, u = make_sets(B, d, n)
    y = 1.0 / (1.0 + np.exp(-u))
    W = []
    t0 = time.perf_counter()
    for i in range(B):
        f, jac = _flow_rhs(X[i], y[i])
        sol = solve_ivp(f, (0.0, t_end), np.zeros(d), method=method, jac=jac, rtol=rtol, atol=atol)
        W.append(sol.y[:, -1])
    steady = time.perf_counter() - t0
    return {"sets_per_s": B / steady, "compile_s": 0.0, "max_rel_err": max_rel_err(np.stack(W), closed_form_reference(X, u)),
            "num_sets": B, "note": f"{method}, t_end={t_end:g}, rtol={rtol:g}, atol={atol:g}"}


def row_sklearn(B=50, d=1000, n=20):
    from sklearn.linear_model import LogisticRegression

    task, X, u = make_sets(B, d, n)
    y = 1.0 / (1.0 + np.exp(-u))
    W = []
    t0 = time.perf_counter()
    for i in range(B):
        Xi = np.concatenate([X[i], X[i]])
        yi = np.concatenate([np.ones(n), np.zeros(n)])
        wi = np.concatenate([y[i], 1.0 - y[i]])
        clf = LogisticRegression(penalty=None, fit_intercept=False, max_iter=10_000, tol=1e-12)
        clf.fit(Xi, yi, sample_weight=wi)
        W.append(clf.coef_[0])
    steady = time.perf_counter() - t0
    return {"sets_per_s": B / steady, "compile_s": 0.0, "max_rel_err": max_rel_err(np.stack(W), closed_form_reference(X, u)),
            "num_sets": B, "note": "lbfgs, tol=1e-12, max_iter=1e4"}


def row_naive_diffrax(B=4, d=1000, n=20, max_steps=20_000, solver="Tsit5"):
    """diffrax on the plain d-dim flow, vmapped, to diffrax's steady-state
    event (``solver``: Tsit5 explicit, or an implicit Kvaerno)."""
    import diffrax
    import jax
    import jax.numpy as jnp

    from jaxdistill import precision

    task, X, u = make_sets(B, d, n)

    def one(Xi, ui):
        y = jax.nn.sigmoid(ui)
        vf = lambda t, w, a: -(Xi.T @ (jax.nn.sigmoid(Xi @ w) - y)) / n
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(vf), getattr(diffrax, solver)(), 0.0, 1e6, None, jnp.zeros(d),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
            event=diffrax.Event(diffrax.steady_state_event(rtol=1e-8, atol=1e-10)),
            max_steps=max_steps, throw=False, adjoint=diffrax.ForwardMode(),
        )
        return sol.ys[-1]

    with precision():
        f = jax.jit(jax.vmap(one))
        compile_s, steady, W = _compile_then_time(f, X, u)
    return {"sets_per_s": B / steady, "compile_s": compile_s, "max_rel_err": max_rel_err(W, closed_form_reference(X, u)),
            "num_sets": B, "note": f"{solver}, steady-state event, max_steps={max_steps}"}


def row_optax_gd(B=200, d=1000, n=20, steps=20_000, lr=2.0):
    import jax

    import jaxdistill as jd
    from jaxdistill import precision

    task, X, u = make_sets(B, d, n)
    cfg = jd.GDConfig(learning_rate=lr, steps=steps)
    with precision():
        f = jax.jit(jax.vmap(lambda a, b: jd.gradient_descent(a, b, cfg).w))
        compile_s, steady, W = _compile_then_time(f, X, u)
    return {"sets_per_s": B / steady, "compile_s": compile_s, "max_rel_err": max_rel_err(W, closed_form_reference(X, u)),
            "num_sets": B, "note": f"sgd lr={lr}, {steps} steps"}


def _students(B, d, n):
    task, X, u = make_sets(B, d, n)
    return task, closed_form_reference(X, u)


def row_risk_exact(B=1000, d=1000, n=20):
    import jax

    from jaxdistill import precision
    from jaxdistill.analysis import exact_risk

    task, W = _students(B, d, n)
    with precision():
        f = jax.jit(lambda w: exact_risk(task, w))
        first, steady, r = _timed(f, W, repeats=3)
    err = _risk_quadrature_error(task, W[:20], np.asarray(r)[:20])
    return {"sets_per_s": B / steady, "compile_s": first - steady, "max_rel_err": err, "num_sets": B,
            "risk_mean": float(np.mean(r)), "note": "tanh-sinh quadrature; error vs scipy quad on 20 students"}


def _risk_quadrature_error(task, W, r) -> float:
    """Max relative error of the exact risk against scipy.integrate.quad of
    the same integral (docs/design.md fact 3), kappa task."""
    from scipy import integrate, special

    d, kappa = task.d, task.kappa
    w = np.asarray(task.w_star)
    al = (d - 2) / 2.0
    log_beta = 2 * special.gammaln(al) - special.gammaln(2 * al)
    errs = []
    for wi, ri in zip(W, r):
        cos = wi @ w / (np.linalg.norm(wi) * np.linalg.norm(w))
        phi = np.arccos(np.clip(cos, -1, 1))
        ph = min(phi, np.pi - phi)
        f = lambda s: np.exp((al - 1) * np.log1p(-s * s) - (2 * al - 1) * np.log(2) - log_beta) * (
            1 - (np.pi / 2 - np.arctan(s * np.tan(ph))) / (np.pi / 2)) ** kappa
        ref, _ = integrate.quad(f, 0, 1, epsabs=1e-15, epsrel=1e-12, limit=200, points=[min(1.0, 10 / np.sqrt(d))])
        ref = ref if phi <= np.pi / 2 else 1 - ref
        errs.append(abs(ri - ref) / ref)
    return float(np.max(errs))


def row_risk_mc(B=1000, d=1000, n=20, num_test=10_000):
    import jax

    from jaxdistill import precision
    from jaxdistill.analysis import mc_risk

    task, W = _students(B, d, n)
    with precision():
        X_test = task.sample(jax.random.PRNGKey(99), num_test)
        f = jax.jit(lambda w, xt: mc_risk(w, xt, task.w_star))
        first, steady, (r, se) = _timed(f, W, X_test, repeats=3)
    return {"sets_per_s": B / steady, "compile_s": first - steady, "max_rel_err": None, "num_sets": B,
            "risk_mean": float(np.mean(r)), "note": f"{num_test} held-out points, mean SE {float(np.mean(se)):.1e}"}


def row_deep(B=200, d=1000, n=20, depth=2, width=64, integrator="reduced", solver=None, max_steps=None):
    import jaxdistill as jd
    from jaxdistill.students.deep import DeepLearner, default_flow_config

    task = jd.KappaPolynomialTask(d, 1.0)
    flow_kw = {k: v for k, v in {"solver": jd.students.solver_from_name(solver) if solver else None,
                                 "max_steps": max_steps}.items() if v is not None}
    # reduced: the learner's own default (Kvaerno3); the full-parameterisation peer rows keep the
    # linear defaults (rtol 1e-2) with the solver and step limit they name
    flow = default_flow_config(integrator, **flow_kw) if integrator == "reduced" else jd.FlowConfig(**flow_kw)
    # the width of the factors: only the full integrator forms them (the others refuse a width)
    learner = DeepLearner(depth=depth, width=width if integrator == "full" else None, integrator=integrator, flow=flow)
    t0 = time.perf_counter()
    jd.distill(1, task, n, B, learner=learner, chunk_size=B, keep_students=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = jd.distill(0, task, n, B, learner=learner, chunk_size=B, keep_students=False)
    steady = time.perf_counter() - t0
    dist = res.extras.get("dist_w_hat")
    return {"sets_per_s": B / steady, "compile_s": max(first - steady, 0.0), "max_rel_err": None,
            "max_dist_w_hat": float(np.max(dist)) if dist is not None else None, "num_sets": B,
            "failed": int((~res.ok).sum()),
            "note": f"N={depth}, width={width}, {integrator}, d={d}" + (f", {solver}" if solver else "")}


def row_kernel(B=1024, d=10, n=40, method="flow", kernel="rbf", bandwidth=3.0, teacher_width=50, solver=None,
               chunk=None):
    """Kernel students on B transfer sets of a ReLU-network teacher (binary,
    soft targets): ``KernelLearner.fit_inputs`` vmapped over chunks of ``chunk``
    sets (default: the runner's ``default_chunk_size``, 256 here, as
    ``jaxdistill run`` uses), timed over all B sets after compilation; the
    error is the largest RKHS-relative distance of each set's student to
    its own closed-form interpolant."""
    import jax
    import jax.numpy as jnp

    import jaxdistill as jd
    from jaxdistill import precision
    from jaxdistill.multiclass import MultiTargetSpec, make_softmax_learner, target_log_probs
    from jaxdistill.nonlinear import KernelLearner, ReluTeacherTask, make_kernel
    from jaxdistill.runner import default_chunk_size

    chunk = min(B, default_chunk_size(n, d) if chunk is None else chunk)
    if B % chunk:
        raise ValueError(f"B = {B} must be a multiple of chunk = {chunk}")
    with precision():
        task = ReluTeacherTask(d, teacher_width)
        keys = jax.random.split(jax.random.PRNGKey(0), B)
        X, U, _ = jax.vmap(lambda k: task.sample_set(k, n))(keys)
        V = jax.vmap(lambda u: target_log_probs(u, None, MultiTargetSpec()))(U)
        base = (make_softmax_learner(method) if solver is None else
                make_softmax_learner(method, flow=jd.FlowConfig(solver=jd.solver_from_name(solver))))
        learner = KernelLearner(make_kernel(kernel, bandwidth=bandwidth if kernel == "rbf" else None), base)
        f = jax.jit(jax.vmap(learner.fit_inputs))
        parts = [(keys[i:i + chunk], X[i:i + chunk], V[i:i + chunk]) for i in range(0, B, chunk)]

        def all_chunks():
            outs = [f(*part) for part in parts]
            return jax.tree.map(lambda *a: jnp.concatenate(a), *outs)

        first, steady, out = _timed(all_chunks, repeats=1)
        W_hat = jax.jit(jax.vmap(learner.limit))(X, V)
        rel = np.linalg.norm(np.asarray(out.W - W_hat), axis=(1, 2)) / np.linalg.norm(np.asarray(W_hat), axis=(1, 2))
        status = np.asarray(out.status)
    return {"sets_per_s": B / steady, "compile_s": first - steady, "max_rel_err": float(rel.max()), "num_sets": B,
            "failed": int((status != 0).sum()), "mean_steps": float(np.asarray(out.num_steps).mean()),
            "note": f"{kernel} kernel, d={d}, n={n}, {method}, chunks of {chunk}" + (f", solver {solver}" if solver else "")}


def row_kclass(B=1024, n=20, method="flow", chunk=None, max_steps=None):
    """K-class students on the shipped digits task (K = 10, d = 64): ``distill``
    end to end (sampling, the fit, the exact limit, exact risk over the test
    images) in chunks of ``chunk`` (default: the runner's), after
    compilation (one chunk run first, as the ``scaling`` row); the error is
    the largest distance of a set's student to its own exact limit
    (``rel_dist_closed_form``).  ``max_steps`` caps the flow (a rate for
    sets that cannot converge, e.g. rank-deficient ones)."""
    import jaxdistill as jd
    from jaxdistill.runner import default_chunk_size

    task = jd.digits_task()
    kw = dict(method=method, keep_students=False)
    if chunk:
        kw["chunk_size"] = chunk
    if max_steps:
        kw["flow"] = jd.FlowConfig(max_steps=max_steps)
    warm = chunk or min(B, default_chunk_size(n, task.d))
    t0 = time.perf_counter()
    jd.distill(1, task, n, warm, **kw)
    first = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    res = jd.distill(0, task, n, B, **kw)
    steady, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = res.summary()
    steps = res.arrays.get("num_steps")
    # sets per CPU second of this process: less sensitive than the wall clock to other processes on a shared
    # machine (not immune: contention slows the CPU time too)
    return {"sets_per_s": B / steady, "sets_per_cpu_s": B / cpu, "compile_s": max(first - steady * warm / B, 0.0),
            "max_rel_err": s["max_rel_dist_closed_form"], "num_sets": B, "failed": s["num_failed"],
            "mean_steps": float(np.mean(steps)) if steps is not None else None, "risk_mean": s["risk_mean"],
            "d": task.d, "n": n,
            "note": f"digits K=10 d=64, n={n}, {method}, distill end to end, chunks of {warm}"
                    + (f", max_steps {max_steps}" if max_steps else "")}


INPUTS_SET_BYTES = 256 * 2**20
"""The inputs sampler's chunk holds at most this many bytes of inputs (chunk * n * d * 8)."""


def row_scaling(B=1000, d=1000, n=20, sampler="gram"):
    """``distill`` end to end with ``sampler`` after compilation (one chunk
    run first), exact risk, students not kept; the error is the largest
    distance of a set's flow to its own closed form."""
    import jaxdistill as jd

    task = jd.KappaPolynomialTask(d, 1.0)
    chunk = min(B, 256) if sampler == "gram" else max(1, min(B, 256, INPUTS_SET_BYTES // (8 * n * d)))
    kw = dict(keep_students=False, sampler=sampler, chunk_size=chunk)
    t0 = time.perf_counter()
    jd.distill(1, task, n, chunk, **kw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = jd.distill(0, task, n, B, **kw)
    steady = time.perf_counter() - t0
    s = res.summary()
    return {"sets_per_s": B / steady, "compile_s": max(first - steady * chunk / B, 0.0),
            "max_rel_err": s["max_rel_dist_closed_form"], "num_sets": B, "failed": s["num_failed"],
            "sampler": sampler, "note": f"distill end to end, sampler {sampler}, chunks of {chunk}"}


def row_memory(B=100_000, d=1000, n=20, chunk_size=1000, sampler="inputs"):
    import jaxdistill as jd

    task = jd.KappaPolynomialTask(d, 1.0)
    t0 = time.perf_counter()
    res = jd.distill(0, task, n, B, chunk_size=chunk_size, keep_students=False, sampler=sampler)
    el = time.perf_counter() - t0
    s = res.summary()
    return {"sets_per_s": B / el, "compile_s": None, "max_rel_err": s["max_rel_dist_closed_form"], "num_sets": B,
            "failed": s["num_failed"], "risk_mean": s["risk_mean"], "risk_se": s["risk_se"],
            "note": f"sampler {sampler}, chunks of {chunk_size}; time includes compilation"}


def _cli_seconds(args: list[str], *, command: str = "run", out: str | None = None) -> float:
    """Wall seconds of ``jaxdistill COMMAND ARGS --out OUT --quiet`` in a fresh
    process (start-up included); OUT is a temporary folder unless given."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jaxdistill.cli", command, *args, "--out", out or tmp + "/run",
                        "--quiet"], check=True, capture_output=True)
        return time.perf_counter() - t0


def row_run(B=2000, B0=200, d=1000, n=20, method="flow", sampler="auto", chunk_size=None, repeats=2):
    """``jaxdistill run`` end to end (exact risk, chunk files, sets.csv and
    summary written): start-up and compilation excluded by differencing two
    sizes B0 < B in separate processes (each the fastest of ``repeats``)."""
    import json as _json
    import tempfile

    base = ["--d", str(d), "--n", str(n), "--method", method, "--sampler", sampler]
    if chunk_size:
        base += ["--chunk-size", str(chunk_size)]
    t0 = min(_cli_seconds([*base, "--num-sets", str(B0)]) for _ in range(repeats))
    t1 = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            import subprocess

            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "jaxdistill.cli", "run", *base, "--num-sets", str(B), "--out",
                            tmp + "/r", "--quiet"], check=True, capture_output=True)
            t1 = min(t1, time.perf_counter() - t)
            s = _json.loads(open(tmp + "/r/summary.json").read())
    if t1 <= t0:
        return {"error": f"start-up differencing failed: B={B} took {t1:.2f} s, B0={B0} took {t0:.2f} s "
                         "(machine too noisy for this size)"}
    rate = (B - B0) / (t1 - t0)
    err = s.get("max_rel_dist_closed_form")
    return {"sets_per_s": rate, "compile_s": None, "max_rel_err": err if err is not None else 0.0, "num_sets": B,
            "failed": s["num_failed"], "risk_mean": s["risk_mean"], "risk_se": s["risk_se"],
            "sampler": s["config"].get("sampler", "inputs"),
            "note": f"{method}, sampler {s['config'].get('sampler', 'inputs')}, d={d}, n={n}; (B - B0)/(t_B - t_B0), "
                    f"B0={B0}; error = max distance to the closed form of its own sets"}


def row_profile(B=20_000, B0=2_000, d=1000, n=20, method="flow", chunk=256):
    """Where the time of ``jaxdistill run`` goes, default workload with the
    Gram sampler, after compilation, each stage measured on its own over the
    same B sets in chunks of ``chunk``: (1) drawing (G, u); (2) drawing +
    the fit; (3) ``distill`` in process (adds the angle, the closed-form
    check, exact risk, status, host transfers, the runner); (4) the CLI run
    (adds chunk files, sets.csv, summary; start-up excluded by differencing
    B0 < B, as the ``run`` row)."""
    import jax
    import jax.numpy as jnp

    import jaxdistill as jd
    from jaxdistill import precision
    from jaxdistill.keys import as_key, set_key_pair
    from jaxdistill.design import GramDesign, two_class_logits

    task = jd.KappaPolynomialTask(d, 1.0)
    learner = jd.make_learner(method)
    with precision():
        t64 = task.cast("float64")
        key = as_key(0)

        def sample(i):
            return t64.sample_gram(set_key_pair(key, i)[0], n)

        def fit(i):
            G, u = sample(i)
            return learner.fit(set_key_pair(key, i)[1], GramDesign(G, d), two_class_logits(u)).w

        stage = {}
        for name, fn in (("sample", sample), ("sample_fit", fit)):
            f = jax.jit(jax.vmap(fn))
            jax.block_until_ready(f(jnp.arange(chunk)))
            t0 = time.perf_counter()
            for lo in range(0, B, chunk):
                jax.block_until_ready(f(jnp.arange(lo, lo + chunk)))
            stage[name] = time.perf_counter() - t0
    kw = dict(method=method, keep_students=False, sampler="gram", chunk_size=chunk)
    jd.distill(1, task, n, chunk, **kw)
    t0 = time.perf_counter()
    jd.distill(0, task, n, B, **kw)
    stage["distill"] = time.perf_counter() - t0
    cli = row_run(B=B, B0=B0, d=d, n=n, method=method, sampler="gram", chunk_size=chunk, repeats=1)
    if "error" in cli:
        return cli
    shares = {"sampling": stage["sample"], "fit": stage["sample_fit"] - stage["sample"],
              "stats_risk_runner": stage["distill"] - stage["sample_fit"]}
    stage["cli"] = B / cli["sets_per_s"]
    shares["cli_files"] = stage["cli"] - stage["distill"]
    total = stage["cli"]
    return {"sets_per_s": B / total, "compile_s": None, "max_rel_err": cli["max_rel_err"], "num_sets": B,
            "seconds": stage, "shares": {k: v / total for k, v in shares.items()},
            "note": "share of run time: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in shares.items())}


def numpy_kappa_sets(rng, B, d, n):
    """The kappa = 1 task sampled in numpy: X [B, n, d], u [B, n] (w* = e_1)."""
    a = np.pi / 2 * (1 - rng.random((B, n)))  # angle to w*: kappa = 1 uniform
    g = rng.standard_normal((B, n, d))
    g[..., 0] = 0.0
    g /= np.linalg.norm(g, axis=2, keepdims=True)
    X = np.sin(a)[..., None] * g
    X[..., 0] = np.cos(a)
    X *= rng.standard_normal((B, n))[..., None]
    return X, X[..., 0].copy()


def row_numpy_pipeline(B=1000, d=1000, n=20, chunk=100):
    """A plain numpy pipeline: sample the kappa task and solve the closed form
    by batched QR, chunk by chunk; error of its students measured against
    lstsq on its own sets."""
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    t_sample = 0.0
    last = None
    for lo in range(0, B, chunk):
        ts = time.perf_counter()
        X, u = numpy_kappa_sets(rng, min(chunk, B - lo), d, n)
        t_sample += time.perf_counter() - ts
        Q, R = np.linalg.qr(np.swapaxes(X, 1, 2))
        b = np.linalg.solve(np.swapaxes(R, 1, 2), u[..., None])
        W = (Q @ b)[..., 0]
        last = (X, u, W)
    el = time.perf_counter() - t0
    X, u, W = last
    return {"sets_per_s": B / el, "compile_s": 0.0, "max_rel_err": max_rel_err(W, closed_form_reference(X, u)),
            "num_sets": B, "sampling_s_share": t_sample / el,
            "note": f"numpy sample + batched QR, chunks of {chunk}; sampling {100 * t_sample / el:.0f}% of the time"}


def row_sweep(kappas=(0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0), ns=(10, 15, 20, 25, 30), d=1000,
              num_sets=1000, method="flow", sampler="gram"):
    """A study against one run of the same total size, both end to end from
    the command line (start-up and every compilation included, as a user
    waits for them): ``jaxdistill sweep --grid kappa=... --grid n=...`` with
    ``num_sets`` sets a point, against ``jaxdistill run`` with
    len(kappas) * len(ns) * num_sets sets at n = mean(ns) (the same average
    cost per set: the flow's cost grows with n).  sets_per_s is the sweep's;
    ``ratio_to_one_run`` is its share of the single run's sets/s."""
    import json as _json
    import tempfile

    points = len(kappas) * len(ns)
    total = points * num_sets
    n_mean = round(sum(ns) / len(ns))
    common = ["--task", "kappa", "--d", str(d), "--method", method, "--sampler", sampler]
    with tempfile.TemporaryDirectory() as tmp:
        t_sweep = _cli_seconds([*common, "--num-sets", str(num_sets),
                                "--grid", "kappa=" + ",".join(f"{k:g}" for k in kappas),
                                "--grid", "n=" + ",".join(str(n) for n in ns)], command="sweep", out=tmp + "/sweep")
        info = _json.loads(open(tmp + "/sweep/sweep.json").read())
        t_run = _cli_seconds([*common, "--n", str(n_mean), "--num-sets", str(total)], out=tmp + "/run")
        s = _json.loads(open(tmp + "/run/summary.json").read())
    failed = sum(r["num_failed"] for r in info["table"])
    return {"sets_per_s": total / t_sweep, "compile_s": None, "max_rel_err": None, "num_sets": total,
            "failed": failed, "points": points, "sweep_s": t_sweep, "run_s": t_run, "run_sets_per_s": total / t_run,
            "ratio_to_one_run": t_run / t_sweep, "compilations": info.get("compilations"),
            "risk_mean": s["risk_mean"], "risk_se": s["risk_se"],
            "note": f"{points}-point sweep (kappa x n = {len(kappas)} x {len(ns)}, {num_sets} sets a point, {method}, "
                    f"sampler {sampler}, d={d}) vs one run of {total} sets at n={n_mean}: "
                    f"{t_run / t_sweep:.2f} of its sets/s, {info.get('compilations')} compilations; "
                    "both end to end from the command line"}


ROWS = {name[4:]: fn for name, fn in globals().items() if name.startswith("row_")}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    name, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    out = ROWS[name](**kwargs)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("BENCHROW " + json.dumps(out))


if __name__ == "__main__":
    main()
