"""One stack: one ``distill`` for every task and student, one result, the
same defaults in Python and on the command line, every ``--help``, honest
references and refusals that name the way out."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill.cli import SUBCOMMANDS, build_parser, main
from jaxdistill.cli.common import targets_of
from jaxdistill.defaults import DEFAULTS
from jaxdistill.nonlinear.tasks import BinaryTaskAsMultiClass
from jaxdistill.validation import JaxDistillError


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_prints_its_options(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jaxdistill " + command) and "--help" in out and "options" in out


def test_python_dash_m_jaxdistill_is_the_command():
    out = subprocess.run([sys.executable, "-m", "jaxdistill", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and all(c in out.stdout for c in SUBCOMMANDS)


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in SUBCOMMANDS)


def test_python_and_cli_read_their_defaults_from_one_place():
    args = build_parser().parse_args(["run"])
    sig = inspect.signature(jd.distill).parameters
    assert (args.n, args.seed, args.num_sets, args.sampler, args.risk, args.dtype, targets_of(args)) == (
        DEFAULTS.n, DEFAULTS.seed, DEFAULTS.num_sets, DEFAULTS.sampler, DEFAULTS.risk, DEFAULTS.dtype, DEFAULTS.targets)
    assert args.targets is None  # --targets defaults to None so that a given value can be told apart
    assert args.save_students is DEFAULTS.keep_students is False
    for name in ("sampler", "keep_students", "risk", "dtype"):
        assert sig[name].default == getattr(DEFAULTS, name), name


def test_monotonicity_index_defaults_to_the_runs_sampler_and_matches_the_cli(capsys):
    from jaxdistill.analysis.monotonicity import monotonicity_index

    assert inspect.signature(monotonicity_index).parameters["sampler"].default == DEFAULTS.sampler
    d, n, num_sets = 40, 5, 24
    assert main(["run", "--d", str(d), "--n", str(n), "--num-sets", str(num_sets), "--method", "closed-form",
                 "--monotonicity", "--json", "--quiet"]) == 0
    cli = json.loads(capsys.readouterr().out)
    est = monotonicity_index(DEFAULTS.seed, jd.KappaPolynomialTask(d, DEFAULTS.kappa), n, num_sets,
                             jd.ClosedFormLearner())
    assert cli["monotonicity"] == est.index and cli["monotonicity_se"] == est.se
    inputs = monotonicity_index(DEFAULTS.seed, jd.KappaPolynomialTask(d, DEFAULTS.kappa), n, num_sets,
                                jd.ClosedFormLearner(), sampler="inputs")
    assert not np.array_equal(np.asarray(inputs.angle_changes), np.asarray(est.angle_changes))  # other draws


def test_python_default_run_equals_the_cli_default_run_to_the_last_bit(tmp_path, capsys):
    d, n, num_sets = 60, DEFAULTS.n, 48
    assert main(["run", "--d", str(d), "--num-sets", str(num_sets), "--json", "--quiet"]) == 0
    cli = json.loads(capsys.readouterr().out)
    res = jd.distill(DEFAULTS.seed, jd.KappaPolynomialTask(d, DEFAULTS.kappa), n, num_sets)
    assert res.summary()["risk_mean"] == cli["risk_mean"]
    assert res.config == cli["config"] and res.config["sampler"] == "gram"


def test_load_returns_the_result_whose_summary_is_summary_json(tmp_path):
    out = tmp_path / "run"
    res = jd.distill(1, jd.KappaPolynomialTask(30, 2.0), 5, 12, method="closed-form", keep_students=True, out=str(out))
    on_disk = json.loads((out / "summary.json").read_text())
    loaded = jd.load(out)
    assert loaded.summary() == on_disk == res.summary()
    np.testing.assert_array_equal(loaded.arrays["risk"], res.arrays["risk"])
    np.testing.assert_array_equal(np.load(out / "students.npy"), res.students)
    assert (out / "sets.csv").read_text().splitlines()[0].startswith("index,status_name,status")


def test_to_pandas_is_the_per_set_table_of_sets_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "t"
    res = jd.distill(0, jd.KappaPolynomialTask(20, 1.0), 4, 6, out=str(out))
    df, csv = res.to_pandas(), pd.read_csv(out / "sets.csv", index_col="index", float_precision="round_trip")
    assert set(df.columns) == set(csv.columns) and len(df) == 6
    np.testing.assert_array_equal(df["risk"].to_numpy(), csv["risk"].to_numpy())
    assert list(df["status_name"]) == ["converged"] * 6


def test_python_out_writes_the_files_of_the_cli(tmp_path, capsys):
    cli_dir, py_dir = tmp_path / "cli", tmp_path / "py"
    assert main(["run", "--task", "gaussian", "--classes", "3", "--d", "6", "--n", "4", "--num-sets", "8",
                 "--quiet", "--out", str(cli_dir)]) == 0
    jd.distill(0, jd.MultiClassGaussianTask(6, 3), 4, 8, out=str(py_dir))
    cli, py = (json.loads((p / "summary.json").read_text()) for p in (cli_dir, py_dir))
    assert set(cli) == set(py)
    for k in ("risk_mean", "risk_se", "num_sets", "max_rel_dist_closed_form", "config"):
        assert cli[k] == py[k], k
    assert (cli_dir / "sets.csv").read_text() == (py_dir / "sets.csv").read_text()
    assert jd.load(cli_dir).summary() == cli


def test_kernel_student_on_the_kappa_task_is_the_k2_run():
    task, learner = jd.KappaPolynomialTask(20, 1.0), jd.KernelLearner(jd.RBFKernel(3.0))
    res = jd.distill(0, task, 10, 16, learner=learner)
    wrapped = jd.distill(0, BinaryTaskAsMultiClass(task), 10, 16, learner=learner)
    np.testing.assert_array_equal(res.arrays["risk"], wrapped.arrays["risk"])
    s = res.summary()
    assert s["num_classes"] == 2 and s["num_failed"] == 0 and s["max_rel_dist_closed_form"] < 1e-8
    assert set(res.arrays) >= {"status", "num_steps", "loss", "risk", "risk_se", "rel_dist_closed_form"}


def test_linear_students_on_k_class_tasks():
    gauss = jd.distill(0, jd.MultiClassGaussianTask(d=10, num_classes=3), 5, 16, keep_students=True)
    assert gauss.students.shape == (16, 3, 10) and gauss.summary()["num_failed"] == 0
    np.testing.assert_allclose(gauss.students.sum(axis=1), 0.0, atol=1e-12)  # class-sum 0 (fact 8)
    rng = np.random.default_rng(0)
    pool = jd.MultiClassPoolTask(rng.normal(size=(60, 8)), rng.normal(size=(3, 8)))
    cf = jd.distill(0, pool, 5, 16, learner=jd.ClosedFormLearner())  # the binary learner's K-class form
    flow = jd.distill(0, pool, 5, 16, learner=jd.FlowLearner())
    assert cf.config["method"] == "closed-form" and flow.summary()["max_rel_dist_closed_form"] < 1e-8
    np.testing.assert_array_equal(cf.arrays["risk"], flow.arrays["risk"])  # the same limit, the same argmax


def test_binary_only_learners_are_refused_on_k_class_tasks_by_name():
    with pytest.raises(JaxDistillError, match="WDeltaLearner.*binary tasks"):
        jd.distill(0, jd.MultiClassGaussianTask(6, 3), 4, 4, learner=jd.WDeltaLearner(0.5))


def test_k_class_sampler_gram_is_refused_naming_the_option(capsys):
    assert main(["run", "--task", "gaussian", "--classes", "3", "--d", "10", "--n", "5", "--num-sets", "16",
                 "--sampler", "gram"]) == 2
    assert "--sampler" in capsys.readouterr().err
    with pytest.raises(JaxDistillError, match="sampler"):
        jd.distill(0, jd.MultiClassGaussianTask(10, 3), 5, 4, sampler="gram")


def test_k_class_save_students_writes_b_k_d(tmp_path, capsys):
    out = tmp_path / "k3"
    assert main(["run", "--task", "gaussian", "--classes", "3", "--d", "10", "--n", "5", "--num-sets", "16",
                 "--save-students", "--quiet", "--out", str(out)]) == 0
    W = np.load(out / "students.npy")
    assert W.shape == (16, 3, 10)
    np.testing.assert_allclose(W.sum(axis=1), 0.0, atol=1e-12)


def test_float32_newton_tol_is_refused_on_the_k_class_path_too(capsys):
    for extra in ([], ["--task", "gaussian", "--classes", "3"], ["--student", "kernel"]):
        assert main(["run", "--d", "10", "--n", "4", "--num-sets", "4", "--dtype", "float32", "--newton-tol", "1e-9",
                     *extra]) == 2
        assert "--newton-tol" in capsys.readouterr().err


def test_num_test_is_refused_where_the_risk_is_exact():
    with pytest.raises(JaxDistillError, match="num_test"):
        jd.distill(0, jd.KappaPolynomialTask(20, 1.0), 5, 4, num_test=100)
    rng = np.random.default_rng(0)
    pool = jd.MultiClassPoolTask(rng.normal(size=(40, 5)), rng.normal(size=(3, 5)))
    with pytest.raises(JaxDistillError, match="num_test"):
        jd.distill(0, pool, 5, 4, num_test=100)


def test_hard_target_flows_need_a_horizon_naming_both_ways_out(capsys):
    task = jd.KappaPolynomialTask(20, 1.0)
    with pytest.raises(JaxDistillError, match=r"t_end.*max-margin"):
        jd.distill(0, task, 5, 4, targets=jd.TargetSpec("hard"))
    with pytest.raises(JaxDistillError, match="t_end"):
        jd.distill(0, jd.MultiClassGaussianTask(6, 3), 4, 4, targets=jd.MultiTargetSpec("hard"))
    assert main(["run", "--d", "20", "--n", "5", "--num-sets", "4", "--targets", "hard"]) == 2
    assert "--t-end" in capsys.readouterr().err
    res = jd.distill(0, task, 5, 8, targets=jd.TargetSpec("hard"), flow=jd.FlowConfig(t_end=1e3))
    assert res.summary()["num_failed"] == 0 and set(res.arrays["status"]) == {int(jd.Status.FINITE_HORIZON)}


def test_closed_form_is_refused_where_no_closed_form_exists():
    task = jd.ReluTeacherTask(4, 16, 3)
    with pytest.raises(JaxDistillError, match="no closed form"):
        jd.distill(0, task, 10, 4, method="closed-form")
    # a linear teacher: it exists, and is the flow's limit (Thm 1's K-class analogue, fact 8)
    exact = jd.distill(0, jd.MultiClassGaussianTask(4, 3), 10, 4, method="closed-form", keep_students=True)
    flow = jd.distill(0, jd.MultiClassGaussianTask(4, 3), 10, 4, method="flow", keep_students=True)
    np.testing.assert_allclose(flow.students, exact.students, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(exact.students.sum(axis=1), 0.0, atol=1e-12)  # centred classes


def test_failed_sets_warn_with_their_count_and_printed_lists_are_truncated(tmp_path, capsys):
    task = jd.KappaPolynomialTask(30, 1.0)
    with pytest.warns(jd.FailedSetsWarning, match=r"^12 of 12 transfer sets failed .*and 2 more"):
        res = jd.distill(0, task, 5, 12, flow=jd.FlowConfig(max_steps=2))
    assert len(res.failed_sets()) == 12
    out = tmp_path / "f"
    assert main(["run", "--d", "30", "--n", "5", "--num-sets", "12", "--max-steps", "2", "--json", "--quiet",
                 "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["failed_sets"]) == DEFAULTS.failed_sets_shown and "failed_sets_listed" in printed
    assert len(json.loads((out / "summary.json").read_text())["failed_sets"]) == 12


def test_every_public_name_is_reachable_from_import_jaxdistill():
    assert all(hasattr(jd, name) for name in jd.__all__)
    for name in ("distill", "load", "KernelLearner", "RBFKernel", "NTKKernel", "MLPLearner", "MultiClassGaussianTask",
                 "MultiClassPoolTask", "ReluTeacherTask", "MultiTargetSpec", "nonlinear", "DEFAULTS"):
        assert name in jd.__all__, name
    assert not hasattr(jd, "distill_multiclass")


def _spec(*argv):
    from jaxdistill.cli.spec import run_spec

    return run_spec(build_parser().parse_args(["run", "--d", "6", "--n", "3", *argv]))


def test_deep_gd_options_apply_over_the_deep_defaults():
    """One of --lr / --steps given for a deep student keeps the deep default of the other (learning_rate 0.5,
    20,000 steps: ``students.deep.DEEP_GD_SETTINGS``), as its --help says; depth 1 keeps the linear GDConfig's."""
    from jaxdistill.students.deep import DEEP_GD_SETTINGS, DeepGDLearner

    assert (DeepGDLearner().gd.learning_rate, DeepGDLearner().gd.steps) == (0.5, 20_000) == tuple(
        DEEP_GD_SETTINGS[k] for k in ("learning_rate", "steps"))
    deep = ["--depth", "2", "--method", "gd"]
    assert (_spec(*deep).learner.gd.learning_rate, _spec(*deep).learner.gd.steps) == (0.5, 20_000)
    assert (_spec(*deep, "--steps", "50").learner.gd.learning_rate, _spec(*deep, "--steps", "50").learner.gd.steps) == (
        0.5, 50)
    assert (_spec(*deep, "--lr", "0.3").learner.gd.learning_rate, _spec(*deep, "--lr", "0.3").learner.gd.steps) == (
        0.3, 20_000)
    assert _spec(*deep, "--optimizer", "adam").learner.gd.optimizer == "adam"
    linear = _spec("--method", "gd", "--steps", "50").learner.gd
    assert (linear.learning_rate, linear.steps) == (1.0, 50)


def test_flow_help_states_the_deep_defaults(capsys):
    """--solver and --max-steps name the deep integrators' own defaults, which are the code's."""
    from jaxdistill.students.deep import DeepLearner

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    induced = DeepLearner(depth=2, integrator="induced").flow
    assert f"deep --integrator induced/full: {induced.max_steps})" in out and induced.max_steps == 16384
    assert f"(default {jd.FlowConfig().max_steps};" in out
    assert type(DeepLearner(depth=2).flow.solver).__name__ == "Kvaerno3" and "Kvaerno3 (--integrator reduced)" in out
    assert type(induced.solver).__name__ == "Kvaerno5" and "Kvaerno5 (induced/full)" in out


@pytest.mark.parametrize("argv, needle", [
    (["--learner", "hard-max-margin", "--targets", "soft"], "--targets soft does not apply"),
    (["--learner", "hard-gd", "--targets", "mixed"], "--targets mixed does not apply"),
    (["--learner", "hard-gd", "--temperature", "2"], "--temperature does not apply"),
    (["--method", "closed-form", "--monotonicity", "--coupling", "independent"],
     "--coupling applies only to a randomised learner"),
    (["--targets", "mixed", "--temperature", "2"], "--temperature applies to --targets soft"),
    (["--depth", "2", "--width", "8"], "--width applies to deep students with --integrator full or --method gd"),
    (["--depth", "2", "--integrator", "induced", "--width", "8"], "the induced integrator never forms them"),
])
def test_options_a_path_ignores_are_refused(argv, needle):
    with pytest.raises(JaxDistillError, match=needle):
        _spec(*argv)


def test_deep_width_takes_effect_where_the_factors_are_trained():
    assert _spec("--depth", "2", "--integrator", "full", "--width", "8").learner.width == 8
    assert _spec("--depth", "2", "--method", "gd", "--width", "8").learner.width == 8


def test_hard_target_learners_accept_their_own_targets():
    assert _spec("--learner", "hard-max-margin", "--targets", "hard").targets.kind == "hard"
    assert _spec("--learner", "hard-max-margin").targets.kind == "hard"
    assert _spec("--learner", "wdelta", "--delta", "0.1", "--monotonicity", "--coupling", "independent"
                 ).learner.randomised


def test_bad_python_inputs_are_named():
    with pytest.raises(JaxDistillError, match="no training images of digit 7"):
        jd.mnist01_task(digits=(0, 7))
    with pytest.raises(JaxDistillError, match="two different digits"):
        jd.mnist01_task(digits=(1, 1))
    with pytest.raises(JaxDistillError, match="out .* must be a folder path"):
        jd.distill(0, jd.KappaPolynomialTask(5, 1.0), 3, 4, out=123)
    with pytest.raises(JaxDistillError, match="targets must be a TargetSpec"):
        jd.monotonicity_index(0, jd.KappaPolynomialTask(5, 1.0), 3, 4, targets="soft")
    with pytest.raises(JaxDistillError, match="coupling='independent' applies only to a randomised learner"):
        jd.monotonicity_index(0, jd.KappaPolynomialTask(5, 1.0), 3, 4, coupling="independent")
    # a set larger than the machine's memory: refused before compiling (XLA would fail allocating it)
    with pytest.raises(JaxDistillError, match=r"one transfer set of n = 10000000000 inputs needs .* reduce n"):
        jd.distill(0, jd.KappaPolynomialTask(5, 1.0), 10**10, 4)


def test_python_options_that_a_path_ignores_are_refused():
    """The Python API refuses, naming it, what would change nothing on its path (as the command line does)."""
    from jaxdistill.students.deep.integrators import default_flow_config

    with pytest.raises(JaxDistillError, match="temperature applies only to targets with a soft part"):
        jd.TargetSpec("hard", temperature=2.0)
    with pytest.raises(JaxDistillError, match="temperature applies only to targets with a soft part"):
        jd.MultiTargetSpec("hard", temperature=2.0)
    assert jd.MultiTargetSpec("mixed", 3.0, 0.0).temperature == 3.0  # rho = 0: the end of a family of soft ratios
    with pytest.raises(JaxDistillError, match="coordinates='plain'\\) applies to deep students only with"):
        jd.DeepLearner(depth=2, flow=default_flow_config("reduced", coordinates="plain"))
    with pytest.raises(JaxDistillError, match="eq11_fraction applies only when init_scale is None"):
        jd.DeepLearner(depth=2, init_scale=0.01, eq11_fraction=0.2)
    pool = jd.PoolTask(np.random.default_rng(0).normal(size=(12, 5)), np.ones(5))
    with pytest.raises(JaxDistillError, match="num_test does not apply to a pool task"):
        jd.distill(0, pool, 4, 4, method="closed-form", risk="mc", num_test=50)
    with pytest.raises(JaxDistillError, match="num_test applies only to Monte-Carlo risk"):
        jd.monotonicity_index(0, jd.KappaPolynomialTask(6, 1.0), 3, 8, jd.ClosedFormLearner(), num_test=50)


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own refusals
        return e.code


def test_other_subcommands_refuse_what_takes_no_effect(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [
        (["bound", "--d", "10", "--n", "5", "--teacher-norm", "5"], "--teacher-norm has no effect on jaxdistill bound"),
        (["bound", "--d", "10", "--n", "5", "--simulate", "10", "--seed", "-1"], "--seed must be an integer in [0,"),
        (["reproduce", "fig2", "--quick", "--seed", str(2**64)], "--seed must be an integer in [0,"),
        (["reproduce", "fig2", "--quick", "--out", str(afile)], f"--out {afile} is a file"),
        (["bench", "--timeout", "-5"], "--timeout must be a finite real number > 0.0"),
    ]
    for argv, needle in cases:
        assert _exit_code(argv) == 2, argv
        assert needle in capsys.readouterr().err, argv


def test_make_pool_writes_exactly_at_out_with_the_labels_of_a_task_that_has_them(tmp_path, capsys):
    out = tmp_path / "pool"  # no .npz suffix: written there all the same
    assert main(["make-pool", "--task", "gaussian", "--d", "5", "--classes", "3", "--label-noise", "0.5", "--size", "50",
                 "--test-size", "20", "--out", str(out)]) == 0
    assert out.is_file() and not (tmp_path / "pool.npz").exists()
    z = np.load(out)
    assert sorted(z.files) == ["inputs", "labels", "teacher_logits", "test_inputs", "test_labels",
                               "test_teacher_logits"]
    assert z["labels"].shape == (50,) and set(np.unique(z["labels"])) <= {0, 1, 2}
    # the labels are the task's ground truth: argmax of W* + S W' (not the teacher's argmax everywhere)
    assert np.mean(z["labels"] != np.argmax(z["teacher_logits"], axis=1)) > 0
    capsys.readouterr()
    assert main(["make-pool", "--task", "gaussian", "--d", "5", "--classes", "3", "--size", "50", "--test-size", "20",
                 "--out", str(tmp_path / "plain.npz")]) == 0
    assert "labels" not in np.load(tmp_path / "plain.npz").files
