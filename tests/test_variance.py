"""make variance: figures over seeds, and each stated comparison as a paired difference."""

from slmlab.course.variance import COMPARISONS, markdown, numbers, summarize


def test_numbers_flattens_a_metrics_file():
    metrics = {"a": 0.5, "runs": {"QLoRA, nf4 base": {"accuracy": 0.9, "steps": 150}},
               "ok": True, "name": "x"}
    assert numbers(metrics) == {"a": 0.5, "runs/QLoRA, nf4 base/accuracy": 0.9,
                                "runs/QLoRA, nf4 base/steps": 150.0}


def test_comparisons_are_paired_per_seed_and_say_whether_the_sign_held():
    def lab04(fp32, nf4):
        return {"04_qlora": {"runs": {"LoRA, fp32 base": {"accuracy": fp32},
                                      "QLoRA, nf4 base": {"accuracy": nf4}}}}
    result = summarize({0: lab04(0.95, 0.92), 1: lab04(0.90, 0.94), 2: lab04(0.96, 0.95)})
    spread = result["figures"]["04_qlora"]["runs/LoRA, fp32 base/accuracy"]
    assert spread["values"] == [0.95, 0.90, 0.96] and spread["min"] == 0.90
    assert abs(spread["mean"] - 0.9367) < 1e-4 and spread["std"] > 0
    (qlora,) = [c for c in result["comparisons"] if c["lab"] == "04_qlora"]
    assert [round(d, 2) for d in qlora["a_minus_b"]["values"]] == [0.03, -0.04, 0.01]
    assert not qlora["a_higher_on_every_seed"] and not qlora["b_higher_on_every_seed"]
    table = markdown(result)
    assert "| 04 |" in table and "| no |" in table


def test_every_comparison_names_figures_its_lab_writes():
    from slmlab import REPO_ROOT

    for lab, a, b in COMPARISONS:
        source = (REPO_ROOT / "solutions" / f"{lab}.ipynb").read_text()
        for figure in (a, b):
            first_key = figure.split("/")[0].split("_accuracy")[0]
            assert first_key.split(" (")[0] in source, (lab, figure)


def test_a_partial_run_adds_its_labs_to_the_stored_runs_of_the_others(tmp_path, capsys):
    import json

    from test_course import tiny_lab

    from slmlab.course.variance import run

    labs_dir, runs_dir = tmp_path / "labs", tmp_path / "runs" / "variance"
    labs_dir.mkdir()
    # lab 02 as a stub: accuracy after training grows with the seed, before stays 0.1
    tiny_lab(labs_dir / "02_loralib_layer_swaps.ipynb",
             "import json, pathlib\npathlib.Path(output_dir, 'metrics.json').write_text("
             "json.dumps({'accuracy_after': 0.5 + seed / 10, 'accuracy_before': 0.1}))")
    earlier = runs_dir / "seed_0" / "01_distillation"   # a lab 01 run from an earlier call
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text(json.dumps({"teacher_accuracy": 0.9}))
    result = run([0, 1], ["02_loralib_layer_swaps"], runs_dir, labs_dir)
    assert result["figures"]["02_loralib_layer_swaps"]["accuracy_after"]["values"] == [0.5, 0.6]
    assert result["figures"]["01_distillation"]["teacher_accuracy"]["values"] == [0.9]
    (lift,) = [c for c in result["comparisons"] if c["a"] == "accuracy_after"]
    assert lift["a_higher_on_every_seed"] and lift["a_minus_b"]["n"] == 2
    assert json.loads((tmp_path / "runs" / "variance.json").read_text()) == result
    assert "[2/2] 02_loralib_layer_swaps" in capsys.readouterr().out


def test_the_parameters_variance_sets_are_the_labs_own():
    """A renamed lab parameter must not leave `make variance` setting a name papermill only
    warns about (lab 02 would then skip the projection comparison it is run for)."""
    from slmlab.course.variance import LABS
    from slmlab.parameters import lab_defaults

    for lab, parameters in LABS.items():
        defaults = lab_defaults(lab)
        for name, value in parameters.items():
            assert name in defaults and type(value) is type(defaults[name]), (lab, name)


def test_runs_with_another_thread_count_are_kept_apart(tmp_path, monkeypatch, capsys):
    """`--jobs 1` (a learner's thread count) writes and reads its own runs and summary, never
    the default ones: the thread count changes every training run."""
    import json

    import pytest

    from slmlab.course import variance
    from slmlab.course.runner import COURSE_JOBS, threads_per_job

    monkeypatch.setattr(variance, "RUNS_DIR", tmp_path)
    assert variance.variance_dir(COURSE_JOBS) == tmp_path / "variance"
    apart = variance.variance_dir(1)
    if threads_per_job(1) != threads_per_job(COURSE_JOBS):
        assert apart == tmp_path / f"variance_{threads_per_job(1)}threads"
    summary = variance.summarize({0: {"02_loralib_layer_swaps": {
        "accuracy_after": 0.9, "accuracy_before": 0.2}}})
    apart.with_suffix(".json").write_text(json.dumps(summary))
    variance.main(["--jobs", "1", "--markdown"])
    assert "accuracy_after − accuracy_before | +70.0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        variance.main(["--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err
