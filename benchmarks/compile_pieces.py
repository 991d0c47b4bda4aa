"""Where compile time goes: the pieces of the vmapped paths, each compiled alone.

    python -m benchmarks.compile_pieces OUT.json [--small]

A slow first run (``--gpu-check``'s ``compile`` section) names a path, not
the operation inside it that compiles slowly.  This check compiles each
piece of the library's batched programs on its own, vmapped over B sets as
the runner does: the random draws (normal, gamma), the two samplers (inputs
and Gram), the factorisations (Householder QR of X^T as ``reduce_data``
calls it, its Cholesky-QR2 alternative, the pivoted QR of ``reveal_span``,
Cholesky, triangular solve, LU) and the exact risk from an angle.  For each:
the seconds of tracing and lowering, of XLA's compilation and of one run
once compiled.  Sizes: the default workload (B = 8192 sets of n = 20 inputs
in d = 1000, as a GPU chunk) or, with ``--small``, B = 64, n = 8, d = 50
(the tests run it on the CPU).

``qr_accuracy`` says whether Cholesky-QR2 (G = A^T A, R = chol(G)^T,
Q = A R^{-1}, done twice) could replace the Householder QR: the
orthogonality error ||Q^T Q - I||_F and the residual ||Q R - A||_F / ||A||_F
of both on sets with condition numbers 1e2, 1e6 and 1e10.  Cholesky-QR2 is
accurate while cond(A) stays below about eps^{-1/2} (1e8 in float64) and
breaks down above; the Householder QR is accurate at any condition number.

``benchmarks.gpu_check`` writes both sections into the accelerator check's
JSON (``pieces``, ``qr_accuracy``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .machine import machine_meta

FULL_SIZES = {"B": 8192, "n": 20, "d": 1000}
SMALL_SIZES = {"B": 64, "n": 8, "d": 50}
CONDITION_NUMBERS = (1e2, 1e6, 1e10)


def cholesky_qr2(A):
    """Q [m, k], R [k, k] of A [m, k] by two passes of Cholesky-QR."""
    import jax
    import jax.numpy as jnp

    def one_pass(A):
        R = jnp.linalg.cholesky(A.T @ A).T  # upper
        Q = jax.scipy.linalg.solve_triangular(R, A.T, trans=1, lower=False).T  # A R^{-1}
        return Q, R

    Q1, R1 = one_pass(A)
    Q, R2 = one_pass(Q1)
    return Q, R2 @ R1


def pieces(B: int, n: int, d: int) -> list[tuple[str, object, tuple]]:
    """(name, function of batched arguments, arguments) of every piece."""
    import jax
    import jax.numpy as jnp

    import jaxdistill as jd
    from jaxdistill.students.closed_form import reduce_data, reveal_span

    task = jd.KappaPolynomialTask(d, 1.0)
    keys = jax.random.split(jax.random.PRNGKey(0), B)
    X = jax.vmap(lambda k: task.sample(k, n))(keys)  # [B, n, d]
    A = jnp.swapaxes(X, 1, 2)  # [B, d, n]: X^T, what reduce_data factors
    G = X @ A  # [B, n, n]
    L = jnp.linalg.cholesky(G)
    # reveal_span's sets have more inputs than dimensions (the K-class flows' n > d): [B, 5 n, 4 n]
    wide = jax.vmap(lambda k: jax.random.normal(k, (5 * n, 4 * n), jnp.float64))(keys)
    alphas = (d - 1 - jnp.arange(n, dtype=jnp.float64)) / 2.0
    angles = jax.random.uniform(keys[0], (B,), jnp.float64, -1.5, 1.5)
    return [
        ("random normal [n, d]", jax.vmap(lambda k: jax.random.normal(k, (n, d), jnp.float64)), (keys,)),
        ("random gamma [n] (Bartlett diagonal)", jax.vmap(lambda k: jax.random.gamma(k, alphas, (n,), jnp.float64)),
         (keys,)),
        ("inputs sampler (kappa task)", jax.vmap(lambda k: task.sample(k, n)), (keys,)),
        ("Gram sampler (kappa task)", jax.vmap(lambda k: task.sample_gram(k, n)), (keys,)),
        ("Householder QR of X^T (reduce_data)", jax.vmap(lambda x: reduce_data(x)), (X,)),
        ("jnp.linalg.qr [d, n]", jax.vmap(lambda a: jnp.linalg.qr(a, mode="reduced")), (A,)),
        ("Cholesky-QR2 [d, n]", jax.vmap(cholesky_qr2), (A,)),
        ("pivoted QR [5 n, 4 n] (reveal_span)", jax.vmap(lambda x: reveal_span(x)), (wide,)),
        ("Cholesky [n, n]", jnp.linalg.cholesky, (G,)),
        ("triangular solve [n, n] x [n, n]",
         lambda L: jax.scipy.linalg.solve_triangular(L, jnp.broadcast_to(jnp.eye(n), L.shape), lower=True), (L,)),
        ("LU [n, n]", jax.scipy.linalg.lu_factor, (G,)),
        ("exact risk from the angle (kappa task)", lambda a: task.exact_risk_from_angle(a), (angles,)),
    ]


def time_piece(fn, args) -> dict:
    """Seconds to trace and lower, to compile, and of the best of two runs."""
    import jax

    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t)
    return {"lower_s": t1 - t0, "compile_s": t2 - t1, "run_s": best}


def qr_accuracy(m: int, k: int, conds=CONDITION_NUMBERS) -> list[dict]:
    """Orthogonality and residual of Householder QR and Cholesky-QR2 on an
    [m, k] matrix with singular values from 1 down to 1 / cond."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((m, k)))
    V, _ = np.linalg.qr(rng.standard_normal((k, k)))
    out = []
    for cond in conds:
        A = jnp.asarray((U * np.geomspace(1.0, 1.0 / cond, k)) @ V.T)
        row = {"cond": cond}
        for name, qr in (("householder", lambda a: jnp.linalg.qr(a, mode="reduced")), ("cholesky_qr2", cholesky_qr2)):
            Q, R = jax.jit(qr)(A)
            Q, R = np.asarray(Q), np.asarray(R)
            finite = bool(np.isfinite(Q).all() and np.isfinite(R).all())
            row[name] = {
                "finite": finite,
                "orthogonality": float(np.linalg.norm(Q.T @ Q - np.eye(k))) if finite else None,
                "residual": float(np.linalg.norm(Q @ R - np.asarray(A)) / np.linalg.norm(np.asarray(A)))
                if finite else None,
            }
        out.append(row)
    return out


def run_pieces(small: bool = False) -> tuple[list[dict], list[dict]]:
    """(pieces, qr_accuracy): every piece's seconds at the sizes of ``small``,
    and the QR accuracy table at [d, n]."""
    from jaxdistill import precision

    sizes = SMALL_SIZES if small else FULL_SIZES
    rows = []
    with precision("float64"):
        for name, fn, args in pieces(**sizes):
            row = {"piece": name, **sizes, **time_piece(fn, args)}
            rows.append(row)
            print(f"[pieces] {name}: compile {row['compile_s']:.2f} s (+ {row['lower_s']:.2f} s to lower), "
                  f"run {row['run_s'] * 1e3:.1f} ms", flush=True)
        accuracy = qr_accuracy(sizes["d"], sizes["n"])
    return rows, accuracy


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.compile_pieces",
                                description="Compile the operations of the vmapped paths one at a time (lowering, "
                                            "compile and run seconds) and compare Householder QR with Cholesky-QR2 "
                                            "at condition numbers 1e2, 1e6, 1e10; one JSON.")
    p.add_argument("out", metavar="OUT.json", help="the JSON file to write")
    p.add_argument("--small", action="store_true",
                   help=f"small sizes (B={SMALL_SIZES['B']}, n={SMALL_SIZES['n']}, d={SMALL_SIZES['d']}; seconds on "
                        f"a CPU) instead of B={FULL_SIZES['B']}, n={FULL_SIZES['n']}, d={FULL_SIZES['d']}")
    args = p.parse_args(argv)
    rows, accuracy = run_pieces(args.small)
    meta = {**machine_meta(), "small": args.small}
    Path(args.out).write_text(json.dumps({"meta": meta, "pieces": rows, "qr_accuracy": accuracy}, indent=2) + "\n")
    print(f"[pieces] written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
