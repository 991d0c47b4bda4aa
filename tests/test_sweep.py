"""Issue 22: studies, not single runs (``jd.sweep``, ``jaxdistill sweep``).

One small study (the issue's Done-means command at d = 20, 8 sets a point)
is computed once; the other tests reuse its compiled chunks (same shapes
and static fields), so they compute sets but compile nothing new.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill.cli import main
from jaxdistill.sweep import CompileCounter, plot_table

KAPPAS, NS = (0.5, 2.0), (2, 5, 10)
COMMAND = ["sweep", "--task", "kappa", "--d", "20", "--method", "closed-form", "--num-sets", "8",
           "--grid", "kappa=0.5,2", "--grid", "n=2,5,10", "--quiet"]
COLUMNS = ["kappa", "n", "risk_mean", "risk_se", "risk_ci95_lo", "risk_ci95_hi", "error_mean", "error_se", "num_sets",
           "num_failed", "seconds"]


def _csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "s"
    assert main(COMMAND + ["--out", str(out)]) == 0
    return out


def test_the_issue_command_writes_the_table_the_json_and_the_figure(study):
    rows = _csv(study / "sweep.csv")
    assert len(rows) == 6 and list(rows[0]) == COLUMNS
    assert [(float(r["kappa"]), int(r["n"])) for r in rows] == [(k, n) for k in KAPPAS for n in NS]
    assert all(r["error_mean"] == "" and r["num_failed"] == "0" and r["num_sets"] == "8" for r in rows)
    info = json.loads((study / "sweep.json").read_text())
    assert info["axes"] == ["kappa", "n"] and len(info["points"]) == 6
    assert isinstance(info["compilations"], int) and info["compilations"] >= 1
    assert info["sets_computed"] == 48 and info["seconds"] > 0
    assert (study / "sweep.png").stat().st_size > 0
    for d in info["point_dirs"]:
        assert {"manifest.json", "summary.json", "sets.csv", "chunks"} <= {p.name for p in (study / d).iterdir()}


def test_each_row_is_distill_of_its_point_to_the_last_bit(study):
    rows = _csv(study / "sweep.csv")
    with CompileCounter() as compiles:
        for r in rows:
            res = jd.distill(0, jd.KappaPolynomialTask(20, float(r["kappa"])), int(r["n"]), 8, method="closed-form")
            assert float(r["risk_mean"]) == res.summary()["risk_mean"]
            assert float(r["risk_se"]) == res.summary()["risk_se"]
    assert compiles.count == 0  # the sweep's compiled chunks are the ones distill uses


def test_python_sweep_is_the_command_and_reloads(study):
    res = jd.sweep(grid={"kappa": [0.5, 2], "n": [2, 5, 10]}, task="kappa", d=20, method="closed-form", num_sets=8,
                   out=study, progress=False)
    assert res.info["sets_computed"] == 0 and res.info["compilations"] == 0  # finished: nothing computed
    assert [r["risk_mean"] for r in res.table] == [float(r["risk_mean"]) for r in _csv(study / "sweep.csv")]
    assert jd.load_sweep(study).table == res.table
    sets = res.sets_to_pandas()
    assert len(sets) == 48 and {"kappa", "n", "set", "risk", "status_name"} <= set(sets.columns)
    assert list(res.to_pandas().columns) == COLUMNS


def test_an_axis_that_does_not_apply_is_refused_naming_it(tmp_path, capsys):
    assert main(["sweep", "--task", "kappa", "--d", "20", "--grid", "margin=0.1,0.2", "--out", str(tmp_path)]) == 2
    assert "--margin applies only to --task margin" in capsys.readouterr().err
    with pytest.raises(jd.JaxDistillError, match="--margin"):
        jd.sweep(grid={"margin": [0.1]}, task="kappa", d=20, progress=False)
    with pytest.raises(jd.JaxDistillError, match="'colour' is not an option"):
        jd.sweep(grid={"colour": [1]}, d=20, progress=False)
    assert main(["sweep", "--d", "20", "--kappa", "2", "--grid", "kappa=1,2", "--out", str(tmp_path)]) == 2
    assert "--kappa is both an option and an axis" in capsys.readouterr().err
    assert not (tmp_path / "points").exists()


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_points_files(study, tmp_path, kind):
    f = tmp_path / f"points.{kind}"
    f.write_text(json.dumps([{"n": 10, "kappa": 2}, {"n": 2, "kappa": 0.5}]) if kind == "json"
                 else "n,kappa\n10,2\n2,0.5\n")
    out = tmp_path / "p"
    assert main(["sweep", "--d", "20", "--method", "closed-form", "--num-sets", "8", "--points", str(f), "--quiet",
                 "--out", str(out)]) == 0
    full = {(r["kappa"], r["n"]): r["risk_mean"] for r in _csv(study / "sweep.csv")}
    rows = _csv(out / "sweep.csv")
    assert [(r["n"], r["kappa"]) for r in rows] == [("10", "2.0"), ("2", "0.5")]
    assert [r["risk_mean"] for r in rows] == [full[("2.0", "10")], full[("0.5", "2")]]


def test_keep_students_writes_each_points_students_and_needs_out(tmp_path):
    res = jd.sweep(grid={"n": [2, 5]}, task="kappa", d=20, kappa=2, method="closed-form", num_sets=8,
                   keep_students=True, out=tmp_path / "k", progress=False)
    for row, point_dir in zip(res.table, json.loads((tmp_path / "k" / "sweep.json").read_text())["point_dirs"]):
        students = np.load(tmp_path / "k" / point_dir / "students.npy")
        assert students.shape == (8, 20) and np.isfinite(students).all()
        again = jd.distill(0, jd.KappaPolynomialTask(20, 2.0), row["n"], 8, method="closed-form", keep_students=True)
        np.testing.assert_array_equal(students, np.asarray(again.students))
        assert row["risk_mean"] == again.summary()["risk_mean"]  # the point is distill with keep_students
    with pytest.raises(jd.JaxDistillError, match="keep_students=True needs out="):
        jd.sweep(grid={"n": [2]}, d=20, method="closed-form", num_sets=8, keep_students=True, progress=False)
    assert main(["sweep", "--d", "20", "--method", "closed-form", "--num-sets", "8", "--grid", "n=2",
                 "--save-students", "--quiet", "--out", str(tmp_path / "c")]) == 0
    assert np.load(tmp_path / "c" / "points" / "n=2" / "students.npy").shape == (8, 20)


def test_a_killed_sweep_resumes_computing_only_what_is_missing(study, tmp_path):
    out = tmp_path / "s"
    shutil.copytree(study, out)
    (out / "sweep.csv").unlink()
    dirs = json.loads((out / "sweep.json").read_text())["point_dirs"]
    (out / dirs[-1] / "summary.json").unlink()  # killed inside the last point ...
    for chunk in (out / dirs[-1] / "chunks").iterdir():
        chunk.unlink()
    (out / dirs[-2] / "summary.json").unlink()  # ... and after the chunks of the one before
    assert main(COMMAND + ["--out", str(out)]) == 0
    info = json.loads((out / "sweep.json").read_text())
    assert info["sets_computed"] == 8
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(_csv(out / "sweep.csv")) == drop(_csv(study / "sweep.csv"))


def test_points_that_differ_only_in_the_seed_compile_nothing_new(study):
    res = jd.sweep(grid={"seed": [1, 2]}, d=20, kappa=0.5, n=2, method="closed-form", num_sets=8, progress=False)
    assert res.info["compilations"] == 0 and res.info["sets_computed"] == 16
    assert res.table[0]["risk_mean"] != res.table[1]["risk_mean"]


def test_sweep_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--grid" in text and "--points" in text and "--facet" in text and "--kappa" in text


def test_figure_has_title_labels_ticks_at_the_grid_and_at_most_six_lines(study):
    fig = jd.load_sweep(study).plot()
    ax = fig.axes[0]
    assert fig._suptitle.get_text() == "risk_mean vs kappa by n"
    assert ax.get_xlabel() == "kappa" and ax.get_ylabel().startswith("risk_mean")
    assert list(ax.get_xticks()) == [0.5, 2.0] and len(ax.get_lines()) >= 3
    table = [{"n": n, "seed": s, "d": d, "risk_mean": 0.1 / n, "risk_se": 0.01} for d in (10, 20)
             for s in range(8) for n in (1, 10, 100)]
    fig = plot_table(table, ["n", "seed", "d"], facet="d")
    assert len(fig.axes) == 4  # 2 facets x (8 lines -> 6 + 2)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_title() == "d=10 (1/2)"
    assert all(len(ax.get_legend().get_texts()) <= 6 for ax in fig.axes)


# --- one compile per shape: settings that change no shape are traced arguments (jaxdistill.traced) ------------------


def _same_arrays(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all((a[k] == b[k]).all() or (a[k] != a[k]).all() for k in a)


def test_a_kappa_sweep_compiles_as_often_as_one_point_and_each_point_is_distill(study):
    # shapes the other tests do not compile (n = 3 and 4 at d = 20); the study fixture warmed the rest
    one = jd.sweep(grid={"kappa": [0.7]}, d=20, n=3, method="closed-form", num_sets=8, progress=False)
    kappas = [0.5, 1.0, 2.0, 3.0, 1.3]  # 1, 2 and 3 (and 1/2) are the exponents XLA rewrites when compiled in
    res = jd.sweep(grid={"kappa": kappas}, d=20, n=4, method="closed-form", num_sets=8, progress=False)
    assert one.info["compilations"] >= 1 and res.info["compilations"] == one.info["compilations"]
    assert len({r["risk_mean"] for r in res.table}) == len(kappas)
    with CompileCounter() as compiles:
        for kappa, got in zip(kappas, res.results):
            want = jd.distill(0, jd.KappaPolynomialTask(20, kappa), 4, 8, method="closed-form")
            assert _same_arrays(got.arrays, want.arrays)
    assert compiles.count == 0


def test_a_temperature_sweep_compiles_as_often_as_one_point_and_each_point_is_distill(study):
    # the gradient flow (Gram sampler): it tends to the projection of w*/T, so its path depends on T
    settings = dict(d=20, n=3, method="flow", num_sets=8)
    one = jd.sweep(grid={"temperature": [1.0]}, **{**settings, "n": 4}, progress=False)
    temps = [0.5, 2.0, 3.0]
    res = jd.sweep(grid={"temperature": temps}, **settings, progress=False)
    assert one.info["compilations"] >= 1 and res.info["compilations"] == one.info["compilations"]
    with CompileCounter() as compiles:
        for t, got in zip(temps, res.results):
            want = jd.distill(0, jd.KappaPolynomialTask(20, 1.0), 3, 8, targets=jd.TargetSpec("soft", t))
            assert _same_arrays(got.arrays, want.arrays)
    assert compiles.count == 0
    loss = [r.arrays["loss"] for r in res.results]  # the temperature reached the compiled program
    assert not (loss[0] == loss[1]).all() and not (loss[1] == loss[2]).all()


def test_a_soft_ratio_sweep_compiles_as_often_as_one_point_and_each_point_is_distill():
    # mixed targets rho softmax(u / T) + (1 - rho) onehot(y) of a K-class task with ground-truth labels
    settings = dict(task="gaussian", classes=3, d=6, label_noise=0.5, targets="mixed", method="closed-form",
                    num_sets=4, num_test=500, progress=False)
    jd.sweep(grid={"soft_ratio": [0.6]}, **settings, n=4)  # the one-time compilations (teacher, test set, ...)
    one = jd.sweep(grid={"soft_ratio": [0.6]}, **settings, n=5)
    ratios = [1.0, 0.25, 0.5]  # rho = 1: soft targets through the mixed formula
    res = jd.sweep(grid={"soft_ratio": ratios}, **settings, n=3)
    assert one.info["compilations"] >= 1 and res.info["compilations"] == one.info["compilations"]
    assert len({r["risk_mean"] for r in res.table}) == len(ratios)
    task = jd.MultiClassGaussianTask(6, 3, label_noise=0.5)
    with CompileCounter() as compiles:
        for rho, got in zip(ratios, res.results):
            want = jd.distill(0, task, 3, 4, method="closed-form", num_test=500,
                              targets=jd.MultiTargetSpec("mixed", soft_ratio=rho))
            assert _same_arrays(got.arrays, want.arrays)
    assert compiles.count == 0


def test_traced_settings_keep_the_bits_and_the_working_dtype():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdistill._precision import precision
    from jaxdistill.traced import lift_traced, scalar_pow

    u = np.random.default_rng(0).uniform(size=4096)
    for p in (0.5, 1.0, 2.0, 3.0, 1 / 3, 1.3, 4.0):
        with precision("float64"):
            want = jax.jit(lambda x: x ** p)(u)
            got = jax.jit(scalar_pow)(u, jnp.asarray(p))
        assert np.array_equal(want, got), p
    task = jd.AngularMarginTask(20, 0.3, 2.0)
    for dtype in ("float64", "float32"):
        with precision(dtype):
            lifted = lift_traced(task.cast(dtype))
            assert lifted.kappa.dtype == lifted.w_star.dtype == jnp.dtype(dtype) and lifted.kappa.weak_type
            assert task.kappa == 2.0 and isinstance(task.kappa, float)  # Python code still sees the float
    spec = lift_traced(jd.TargetSpec("soft", 2.0))
    assert spec.kind == "soft" and isinstance(spec.temperature, jax.Array)
    with pytest.raises(jd.JaxDistillError, match="kappa"):
        jd.KappaPolynomialTask(20, -1.0)  # checked as a Python number at construction, as before


def test_a_program_compiled_ahead_is_the_one_the_run_uses():
    """``runner.compile_chunks`` compiles without running; the run then
    compiles nothing and gives the numbers of a run that compiled itself."""
    from jaxdistill.runner import compile_chunks, run_program
    from jaxdistill.simulate import setup_run

    task = jd.KappaPolynomialTask(20, 0.9)
    setup = setup_run(3, task, 7, 8, method="closed-form")  # n = 7: compiled by no other test of this module
    with CompileCounter() as ahead:
        compile_chunks(setup.program, setup.key, setup.plan, shared=setup.shared, dtype=setup.dtype)
    with CompileCounter() as run:
        out = run_program(setup.program, setup.key, setup.plan, shared=setup.shared, dtype=setup.dtype)
    assert ahead.count >= 1 and run.count == 0
    want = jd.distill(3, task, 7, 8, method="closed-form").arrays
    assert all((out.arrays[k] == want[k]).all() for k in ("risk", "angle", "status"))


def test_points_run_grouped_by_program_and_the_table_keeps_the_grid_order(tmp_path):
    """Points that share a compiled program (they differ only in traced
    settings) form one group; groups in order of first appearance; the
    table keeps the order of the grid."""
    from jaxdistill.cli.sweep import grid_points, program_groups, settings_args, validate_points

    points = grid_points({"kappa": [0.5, 2.0, 1.0], "n": [3, 4]})
    base = settings_args(dict(d=20, method="closed-form", num_sets=8))
    assert program_groups(validate_points(base, points)) == [[0, 2, 4], [1, 3, 5]]
    seeds = grid_points({"n": [3, 4], "seed": [0, 1]})  # the seed is traced too
    assert program_groups(validate_points(base, seeds)) == [[0, 1], [2, 3]]
    res = jd.sweep(grid={"kappa": [0.5, 2.0, 1.0], "n": [3, 4]}, d=20, method="closed-form", num_sets=8,
                   progress=False)
    assert [(r["kappa"], r["n"]) for r in res.table] == [(p["kappa"], p["n"]) for p in points]
    for r, got in zip(res.table, res.results):
        want = jd.distill(0, jd.KappaPolynomialTask(20, r["kappa"]), r["n"], 8, method="closed-form")
        assert _same_arrays(got.arrays, want.arrays)


# --- input validation: every bad input refused naming it, before anything is computed -----------------------------

TINY = dict(task="kappa", d=5, method="closed-form", num_sets=4, progress=False)
TINY_CLI = ["sweep", "--quiet", "--d", "5", "--method", "closed-form", "--num-sets", "4"]


def test_an_axis_named_as_a_result_column_is_refused(tmp_path, capsys):
    with pytest.raises(jd.JaxDistillError, match="'num_sets' cannot be an axis of a sweep: the table's num_sets "
                                                  "column counts the sets.*give num_sets as a setting"):
        jd.sweep(grid={"num_sets": [4]}, task="kappa", d=5, method="closed-form", progress=False)
    with pytest.raises(jd.JaxDistillError, match="'monotonicity' cannot be an axis.*monotonicity column"):
        jd.sweep(grid={"monotonicity": [True]}, **TINY)
    assert main(["sweep", "--quiet", "--d", "5", "--grid", "num-sets=2,4", "--out", str(tmp_path)]) == 2
    assert "'num-sets' cannot be an axis of a sweep" in capsys.readouterr().err
    assert not (tmp_path / "points").exists()


def test_a_points_file_with_a_short_row_or_a_repeated_column_is_refused(tmp_path, capsys):
    cases = {"short.csv": ("n,kappa\n2,1.0\n3\n", "short.csv: row 2 (line 3) has no value for column 'kappa'"),
             "long.csv": ("n,kappa\n2,1.0,7\n", "long.csv: row 1 (line 2) has 3 values for 2 columns"),
             "twice.csv": ("n,n\n2,3\n", "twice.csv: column 'n' is named twice in the header"),
             "twice.json": ('[{"n": 2, "n": 3}]', "twice.json: a point gives 'n' twice")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(TINY_CLI + ["--points", str(tmp_path / name), "--out", str(tmp_path / "o")]) == 2, name
        assert message in capsys.readouterr().err, name
    assert not (tmp_path / "o").exists()


def test_two_spellings_of_one_option_are_refused_naming_both(tmp_path, capsys):
    assert main(TINY_CLI[:-2] + ["--grid", "num-sets=2", "--grid", "num_sets=3", "--out", str(tmp_path)]) == 2
    assert "axes 'num-sets' and 'num_sets' are both the option --num-sets" in capsys.readouterr().err
    with pytest.raises(jd.JaxDistillError, match="axes 'soft-ratio' and 'soft_ratio' are both the option "
                                                  "--soft-ratio"):
        jd.sweep(points=[{"soft-ratio": 0.2, "soft_ratio": 0.3}], **TINY)
    with pytest.raises(jd.JaxDistillError, match="settings 'soft-ratio' and 'soft_ratio' are both the option"):
        jd.sweep(grid={"n": [2]}, **{"soft-ratio": 0.2, "soft_ratio": 0.3}, **TINY)
    with pytest.raises(jd.JaxDistillError, match="'soft_ratio' is both a setting and an axis"):
        jd.sweep(grid={"soft_ratio": [0.5]}, **{"soft-ratio": 0.3}, **TINY)
    assert not (tmp_path / "points").exists()


def test_points_may_give_their_axes_in_any_order_and_grid_values_any_iterable(tmp_path):
    res = jd.sweep(points=[{"n": 2, "kappa": 1.0}, {"kappa": 2.0, "n": 3}], out=tmp_path / "p", **TINY)
    assert res.axes == ["n", "kappa"] and [list(r)[:2] for r in res.table] == [["n", "kappa"]] * 2
    assert [(r["n"], r["kappa"]) for r in res.table] == [(2, 1.0), (3, 2.0)]
    assert json.loads((tmp_path / "p" / "sweep.json").read_text())["point_dirs"] == ["points/n=2,kappa=1",
                                                                                     "points/n=3,kappa=2"]
    f = tmp_path / "points.json"
    f.write_text(json.dumps([{"n": 2, "kappa": 1.0}, {"kappa": 2.0, "n": 3}]))
    assert main(TINY_CLI + ["--points", str(f), "--out", str(tmp_path / "c")]) == 0
    assert [(r["n"], r["kappa"]) for r in _csv(tmp_path / "c" / "sweep.csv")] == [("2", "1.0"), ("3", "2.0")]
    gen = jd.sweep(grid={"n": (x for x in [2, 3])}, kappa=1.0, **TINY)  # a generator, read once
    assert [r["n"] for r in gen.table] == [2, 3]
    assert gen.table[0]["risk_mean"] == res.table[0]["risk_mean"]
    with pytest.raises(jd.JaxDistillError, match=r"grid must be a dict \{axis: \[values\]\}, got list"):
        jd.sweep(grid=[("n", [2])], **TINY)
    with pytest.raises(jd.JaxDistillError, match="grid axis 'n' needs a non-empty list of values, got set"):
        jd.sweep(grid={"n": {2, 3}}, **TINY)
    with pytest.raises(jd.JaxDistillError, match="grid axis 'n' needs a non-empty list of values, got no values"):
        jd.sweep(grid={"n": iter([])}, **TINY)


@pytest.mark.parametrize("option", [["--n", "20"], ["--n=20"], ["--num-s", "4", "--n", "5"]])
def test_an_axis_given_as_an_option_is_refused_even_at_its_default(tmp_path, capsys, option):
    assert main(TINY_CLI + ["--grid", "n=3,4", *option, "--out", str(tmp_path)]) == 2  # 20: --n's default
    assert "--n is both an option and an axis of the sweep" in capsys.readouterr().err
    assert main(TINY_CLI + ["--grid", "kappa=1,2", "--kap=1", "--out", str(tmp_path)]) == 2  # an abbreviation
    assert "--kappa is both an option and an axis of the sweep" in capsys.readouterr().err
    with pytest.raises(jd.JaxDistillError, match="'n' is both a setting and an axis"):
        jd.sweep(grid={"n": [3]}, n=20, **TINY)
    assert not (tmp_path / "points").exists()


def test_bound_metric_and_facet_are_refused_before_anything_is_computed(tmp_path, capsys):
    cli = TINY_CLI[:4] + ["--num-sets", "4", "--grid", "n=3,4", "--out", str(tmp_path)]
    assert main(cli + ["--student", "kernel", "--with-bound"]) == 2
    err = capsys.readouterr().err
    assert "--with-bound applies only to binary tasks with a teacher vector" in err
    assert "this sweep has a kernel student (--student kernel" in err and "K-class task" not in err
    assert main(cli + ["--task", "gaussian", "--classes", "3", "--with-bound"]) == 2
    assert "this sweep has a K-class task (--task gaussian --classes 3)" in capsys.readouterr().err
    assert main(cli + ["--method", "closed-form", "--metric", "bound"]) == 2
    assert "metric 'bound' is not a column of this sweep" in capsys.readouterr().err
    assert main(cli + ["--method", "closed-form", "--facet", "kappa"]) == 2
    assert "--facet kappa is not an axis of this sweep (axes: n)" in capsys.readouterr().err
    with pytest.raises(jd.JaxDistillError, match="this sweep has a kernel student"):
        jd.sweep(grid={"n": [3]}, task="kappa", d=5, student="kernel", with_bound=True, num_sets=4, progress=False)
    assert not (tmp_path / "points").exists()


def test_an_axis_named_like_a_per_set_column_keeps_both_in_the_long_table():
    """The risk method as an axis against each set's risk: the long table names the axis risk_axis."""
    res = jd.sweep(grid={"risk": ["exact", "mc"]}, task="kappa", d=5, n=3, num_sets=4, method="closed-form",
                   progress=False)
    df = res.sets_to_pandas()
    assert list(df["risk_axis"]) == ["exact"] * 4 + ["mc"] * 4
    assert df["risk"].dtype.kind == "f" and (df["risk"] > 0).all()
    assert [r["risk"] for r in res.table] == ["exact", "mc"]


def test_integer_valued_floats_are_integer_axes():
    """np.linspace's 2.0 is n = 2 (as jd.distill accepts it); 2.5 is refused naming --n."""
    res = jd.sweep(grid={"n": list(np.linspace(2, 4, 2))}, task="kappa", d=5, num_sets=4, method="closed-form",
                   progress=False)
    assert [r["n"] for r in res.table] == [2, 4] and all(type(r["n"]) is int for r in res.table)
    with pytest.raises(jd.JaxDistillError, match="--n must be an integer >= 1, got '2.5'"):
        jd.sweep(grid={"n": [2.5]}, task="kappa", d=5, num_sets=4, method="closed-form", progress=False)


def test_programs_from_the_persistent_compilation_cache_are_not_counted_as_compilations(tmp_path):
    """With JAX's persistent cache (JAX_COMPILATION_CACHE_DIR), a second process running the same sweep loads
    every program from the cache: sweep.json says 0 compilations and as many programs loaded as the first process
    compiled, and every number is the same."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla-cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    command = [sys.executable, "-m", "jaxdistill", *COMMAND[:-5], "--grid", "kappa=0.5,2", "--grid", "n=3", "--quiet"]
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        done = subprocess.run(command + ["--out", str(out)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    info = [json.loads((out / "sweep.json").read_text()) for out in (first, second)]
    assert info[0]["compilations"] >= 2 and info[0]["programs_loaded_from_cache"] == 0
    assert info[1]["compilations"] == 0 and info[1]["programs_loaded_from_cache"] == info[0]["compilations"]
    assert "programs loaded from the compilation cache" in done.stdout
    assert [r["risk_mean"] for r in _csv(first / "sweep.csv")] == [r["risk_mean"] for r in _csv(second / "sweep.csv")]
