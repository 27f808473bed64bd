"""The results data file, its reader and `make results` (merge runs, render pages)."""

import json
import os

import pytest

from slmlab import results
from slmlab.course import course_map, results_merge, results_page

MACHINE = {"cpu": "Test CPU", "cores": 2, "avx512": True, "avx512_bf16": False}
CONDITIONS = {"seeds": [0, 1, 2, 3, 4], **MACHINE, "threads_per_lab": 1,
              "labs_side_by_side": 2, "command": "make variance LABS=06",
              "date": "2026-01-02"}
OLIVE, HAND = ("olive_vs_hand/Olive config (olive run)/accuracy",
               "olive_vs_hand/hand-made (PEFT, builder 0.18)/accuracy")


def stored() -> dict:
    return {"figures": {"06_olive_pipeline": {OLIVE: {
                "mean": 0.955, "std": 0.017, "min": 0.93, "max": 0.97, "n": 5,
                "conditions": CONDITIONS}}},
            "comparisons": [{"lab": "06_olive_pipeline", "a": OLIVE, "b": HAND,
                             "a_minus_b": {"mean": 0.014, "std": 0.013, "min": -0.005,
                                           "max": 0.03, "n": 5},
                             "a_higher_on_every_seed": False,
                             "b_higher_on_every_seed": False, "conditions": CONDITIONS}],
            "timings": []}


@pytest.fixture
def results_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(stored()))
    return path


def test_describe_renders_points_percent_and_conditions(results_file):
    data = results.load(results_file)
    assert results.describe_comparison("06_olive_pipeline", OLIVE, HAND, data) == (
        "+1.4 ± 1.3 points (−0.5 … +3.0) over seeds 0–4, 2-core AVX512 CPU, 1 thread per lab")
    assert results.describe_figure("06_olive_pipeline", OLIVE, results=data) == (
        "95.5 ± 1.7 % (93.0 … 97.0), seeds 0–4, 2-core AVX512 CPU, 1 thread per lab")


def test_a_missing_or_broken_file_or_key_is_one_clear_line(tmp_path, results_file):
    with pytest.raises(FileNotFoundError, match="make results"):
        results.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        results.load(tmp_path / "bad.json")
    data = results.load(results_file)
    with pytest.raises(KeyError, match="it has: olive_vs_hand"):
        results.comparison("06_olive_pipeline", "x", "y", data)
    with pytest.raises(KeyError, match="none for this lab"):
        results.figure("09_none", "accuracy", data)


def test_a_series_is_read_by_size(results_file):
    data = results.load(results_file)
    for size, name, mean in ((16, "gold only", 0.7), (8, "gold only", 0.6), (16, "KD", 0.9)):
        data["figures"]["06_olive_pipeline"][f"gold_curve/{size}/{name}/accuracy"] = {
            "mean": mean, "std": 0.01, "n": 5, "conditions": CONDITIONS}
    data["figures"]["06_olive_pipeline"]["gold_curve/16/KD/unseen_word_accuracy"] = {
        "mean": 0.5, "std": 0.01, "n": 5, "conditions": CONDITIONS}
    gold = results.series("06_olive_pipeline", "gold_curve/{size}/gold only/accuracy", data)
    assert {size: spread["mean"] for size, spread in gold.items()} == {8: 0.6, 16: 0.7}
    assert list(gold) == [8, 16]
    kd = results.series("06_olive_pipeline", "gold_curve/{size}/KD/accuracy", data)
    assert list(kd) == [16]
    with pytest.raises(KeyError, match="make variance"):
        results.series("06_olive_pipeline", "gold_curve/{size}/other/accuracy", data)


def test_a_live_point_is_measured_against_the_stored_spread_with_a_margin():
    spread = {"mean": 0.7, "std": 0.04, "min": 0.65, "max": 0.76}
    assert results.outside_spread(0.70, spread) == 0.0
    assert results.outside_spread(0.58, spread) == 0.0                   # within 2 std of min
    assert results.outside_spread(0.50, spread) == pytest.approx(0.07)   # 0.57 - 0.50
    assert results.outside_spread(0.90, spread) == pytest.approx(0.06)   # 0.90 - 0.84
    flat = {"mean": 0.25, "std": 0.0, "min": 0.25, "max": 0.25}          # chance on every seed
    assert results.outside_spread(0.27, flat) == 0.0 < results.outside_spread(0.31, flat)
    assert results.outside_spread(0.8, {"mean": 0.8, "std": None}) == 0.0   # no range stored


def test_the_shipped_file_has_what_the_readme_table_quotes():
    data = results.load()
    for lab, a, b, _ in results_page.HEADLINES:
        entry = results.figure(lab, a, data) if b is None else results.comparison(lab, a, b, data)
        assert {"seeds", "cpu", "threads_per_lab", "command", "date"} <= set(entry["conditions"])


def variance_summary(mean: float) -> dict:
    values = [mean - 0.01, mean, mean + 0.01]
    spread = {"mean": mean, "std": 0.01, "min": values[0], "max": values[-1], "n": 3,
              "values": values}
    return {"seeds": [0, 1, 2],
            "figures": {"06_olive_pipeline": {OLIVE: spread, "cli_seconds": {
                **spread, "mean": 40.0}}},
            "comparisons": [{"lab": "06_olive_pipeline", "a": OLIVE, "b": HAND,
                             "a_minus_b": spread, "a_higher_on_every_seed": True,
                             "b_higher_on_every_seed": False}]}


def test_update_merges_variance_and_bench_runs_and_renders_the_pages(tmp_path, results_file):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "variance.json").write_text(json.dumps(variance_summary(0.9)))
    newer = runs / "variance_2threads.json"
    newer.write_text(json.dumps(variance_summary(0.8)))
    os.utime(newer, (2e9, 2e9))   # merged last: its entries win
    bench = {"machine": {**MACHINE, "torch_threads": 2, "python": "3.11", "torch": "2",
                         "labs_side_by_side": 2},
             "course_seconds": 300.0, "lab_seconds": {"00_setup_tour": 5.0},
             "test_seconds": 420.0, "lora_acc_after": 0.95}
    (runs / "bench.json").write_text(json.dumps(bench))
    readme, page = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text("intro\n<!-- times:begin -->\nold\n<!-- times:end -->\nend\n")
    merged = results_page.update(results_file, runs, page, readme, None, MACHINE)
    assert [p.name for p in merged] == ["variance.json", "variance_2threads.json", "bench.json"]

    data = results.load(results_file)
    assert len(data["comparisons"]) == 1   # replaced, not appended
    entry = data["comparisons"][0]
    assert entry["a_minus_b"]["mean"] == 0.8 and entry["a_higher_on_every_seed"]
    assert entry["conditions"]["threads_per_lab"] == 2
    assert entry["conditions"]["command"] == "make variance JOBS=1"
    assert entry["conditions"]["cpu"] == "Test CPU" and entry["conditions"]["seeds"] == [0, 1, 2]
    assert data["figures"]["06_olive_pipeline"]["cli_seconds"]["mean"] == 40.0
    (run,) = data["timings"]
    assert run["command"] == "make bench" and run["course_seconds"] == 300.0
    assert run["conditions"]["threads_per_lab"] == 1

    text = page.read_text()
    assert "Test CPU, 2 cores, AVX512; 2 threads per lab, 1 lab at a time; seeds 0–2" in text
    assert "| +80.0 ± 1.0 | +79.0 … +81.0 | yes, a higher |" in text
    assert "| cli_seconds | 40 ± 0.01 | 0.79 … 0.81 | 3 |" in text
    assert "`lora_acc_after` | 0.95" in text
    assert readme.read_text() == (
        "intro\n<!-- times:begin -->\nMeasured on a 2-core CPU: `make course` about 5 min of "
        "labs (plus the install on a fresh clone), `make test` about 7 min; a busier or slower "
        "machine can take twice as long ([run times](docs/results.md#run-times)).\n"
        "<!-- times:end -->\nend\n")

    # the same bench merged again is one run, not two
    results_page.update(results_file, runs, page, readme, None, MACHINE)
    assert len(results.load(results_file)["timings"]) == 1


def test_with_no_runs_it_only_renders(tmp_path, results_file):
    before = results_file.read_text()
    page = tmp_path / "results.md"
    assert results_page.update(results_file, tmp_path / "no-runs", page, tmp_path / "none.md",
                               None, MACHINE) == []
    assert results_file.read_text() == before
    assert "## Lab 06 — Olive pipeline" in page.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp left


def test_the_full_width_export_is_merged_and_described_with_its_arithmetic(tmp_path):
    parts = {"fp32": {"embedding": 400, "decoder layers": 1000, "lm_head": 400, "other": 0},
             "int4": {"embedding": 64, "decoder layers": 160, "lm_head": 64, "other": 0}}
    measured = {"layers": 2, "hidden_size": 3072, "vocab_size": 32064, "parts": parts,
                "fp32_parity": True, "int4_over_fp32": 0.16, "int4_over_fp32_at_32_layers": 0.16,
                "bytes_at_32_layers": {"fp32": 16800, "int4": 2688}}
    (tmp_path / "real_width.json").write_text(json.dumps(measured))
    data = {"figures": {}, "comparisons": []}
    machine = {"cpu": "test CPU", "cores": 2, "avx512": False, "avx512_bf16": False}
    assert results_merge.merge_runs(data, tmp_path, machine) == [tmp_path / "real_width.json"]
    assert data["real_width"]["conditions"]["command"] == "make bench-width"
    text = results.describe_real_width(data)
    # 32 layers from 2 built: the per-layer bytes are half of the decoder's
    assert "+ 32 x 0.0 MB per decoder layer" in text and "fp32 export's greedy tokens equal " \
        "PyTorch's: True" in text and "2-core non-AVX512 CPU" in text
    assert "INT4 / fp32 = 0.160 (6.2x smaller; 0.32 of fp16)" in text
    with pytest.raises(KeyError, match="make bench-width"):
        results.real_width({"figures": {}, "comparisons": []})


def test_course_map_times_come_from_runs_one_lab_at_a_time():
    data = {"figures": {}, "comparisons": [], "timings": [
        {"command": "make course JOBS=1", "lab_seconds": {"03_peft_lora_sft": 50.0},
         "conditions": {"cores": 2, "labs_side_by_side": 1}},
        {"command": "make course JOBS=1", "lab_seconds": {"03_peft_lora_sft": 130.0},
         "conditions": {"cores": 2, "labs_side_by_side": 1}},
        {"command": "make course", "lab_seconds": {"03_peft_lora_sft": 900.0},
         "conditions": {"cores": 2, "labs_side_by_side": 2}}]}
    assert course_map.compute_seconds("03_peft_lora_sft", data) == (50.0, 130.0)
    assert course_map.time_line("03", data) == (
        "**Time:** 1–3 min of compute on a 2-core CPU; 45–60 min to work through.")
    assert course_map.compute_text("00_setup_tour", data) == "not measured yet"
    assert course_map.minutes_text((20.0, 40.0)) == "under 1 min"


def test_a_bench_run_one_lab_at_a_time_feeds_the_course_map():
    data = {"figures": {}, "comparisons": [], "timings": []}
    bench = {"machine": {**MACHINE, "labs_side_by_side": 1}, "course_seconds": 400.0,
             "lab_seconds": {"07_tuning_and_evaluation": 150.0}}
    for _ in range(2):   # merged twice: still one run
        results_merge.merge_bench(data, bench, "2026-01-03")
    (run,) = data["timings"]
    assert run["command"] == "make bench JOBS=1" and run["conditions"]["threads_per_lab"] == 2
    assert course_map.compute_text("07", data) == "2–3 min"   # 2.5 min


def test_a_series_is_drawn_as_its_mean_and_a_band_of_one_std():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spreads = {100: {"mean": 0.5, "std": 0.1}, 400: {"mean": 0.8, "std": None}}
    fig, axis = plt.subplots()
    results.draw_spread(axis, spreads, "tab:blue", label="IA3")
    (line,) = axis.get_lines()
    assert list(line.get_xdata()) == [100, 400] and list(line.get_ydata()) == [0.5, 0.8]
    assert line.get_label() == "IA3"
    band = axis.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.4) and band[:, 1].max() == pytest.approx(0.8)
    results.draw_spread(axis, spreads, "tab:red", mean_line=False)
    assert len(axis.get_lines()) == 1 and len(axis.collections) == 2
    plt.close(fig)
