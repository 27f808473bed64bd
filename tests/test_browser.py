"""Pages a person reads, opened in a real browser: Debian's headless Chromium, driven by
Playwright (no browser download: it runs /usr/bin/chromium). `.ci/run` installs Chromium;
without it these tests are skipped with the command that installs it."""

import json
from pathlib import Path

import pytest

from slmlab import RUNS_DIR, progress
from slmlab.course.report import write_report
from slmlab.targets import goal

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = RUNS_DIR / "screenshots"
# as root in a container; no background connections (the machine has no internet)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not "
                                "installed: `apt-get install chromium` (.ci/run does)")


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser.new_page(viewport={"width": 1200, "height": 900})
        browser.close()


def test_the_course_report_leads_with_the_targets_and_shows_its_plots(page, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lab = tmp_path / "03_peft_lora_sft"
    lab.mkdir()
    targets = [goal("held-out accuracy after fine-tuning", 0.93, ">=", 0.8),
               goal("trainable % of the parameters", 2.4, "<=", 2.0)]
    (lab / "metrics.json").write_text(json.dumps({"accuracy_after": 0.93, "targets": targets}))
    figure, axis = plt.subplots(figsize=(4, 2.5))
    axis.plot([2.0, 1.1, 0.6, 0.4], label="train loss")
    axis.legend()
    figure.savefig(lab / "loss_curves.png", dpi=80)
    plt.close(figure)
    report = write_report(tmp_path, failed=["06_olive_pipeline"])

    page.goto(report.as_uri())
    rows = page.locator("h2:has-text('Headline targets') + table tr")
    assert rows.count() == 3, "a header and one row per target"
    assert rows.nth(2).locator("td").last.inner_text() == "MISSED"
    assert page.locator(".failed").inner_text().startswith("06_olive_pipeline: FAILED")
    plot = page.locator("img[alt='loss_curves.png']")
    assert plot.evaluate("img => img.complete && img.naturalWidth") == 320, "the plot renders"
    figures = page.locator("details").first
    assert not figures.locator("table").is_visible(), "every figure: folded until asked"
    figures.locator("summary").click()
    assert figures.locator("td", has_text="accuracy_after").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)


def test_the_progress_page_an_instructor_collects(page, tmp_path):
    table = {"00_setup_tour": [{"exercise": "render_chat", "status": "done", "message": ""}],
             "01_distillation": [{"exercise": "kd_loss", "status": "wrong",
                                  "message": "✗ kd_loss(...) returned 0.1, expected 0.4"},
                                 {"exercise": "soften", "status": "not run", "message": ""}]}
    path = tmp_path / "progress.html"
    path.write_text(progress.page(table))
    page.goto(path.as_uri())
    cells = [row.locator("td").all_inner_texts() for row in page.locator("tr").all()[1:]]
    assert cells == [["00_setup_tour", "1", "0", "0", "0", ""],
                     ["01_distillation", "0", "1", "0", "1",
                      "kd_loss: ✗ kd_loss(...) returned 0.1, expected 0.4"]]
    page.screenshot(path=str(SCREENSHOTS / "progress.png"), full_page=True)


# --- The labs in JupyterLab ----------------------------------------------------------------

@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 (a free port, a token) serving copies of labs 02, 05 and 07 with
    `course.QUICK_PARAMETERS` injected, as papermill would: the widgets, not the training,
    are under test here."""
    import os
    import secrets
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from slmlab import REPO_ROOT
    from slmlab.course.runner import QUICK_PARAMETERS

    root = tmp_path_factory.mktemp("jupyterlab")
    for stem in ("02_loralib_layer_swaps", "05_merge_int4_export", "07_tuning_and_evaluation"):
        notebook = load_notebook_node(str(REPO_ROOT / "labs" / f"{stem}.ipynb"))
        parameters = QUICK_PARAMETERS[stem] | {"output_dir": str(root / "runs" / stem)}
        nbformat.write(parameterize_notebook(notebook, parameters), root / f"{stem}.ipynb")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}",
               "--ServerApp.open_browser=False"]
    command += ["--allow-root"] if os.geteuid() == 0 else []
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            assert server.poll() is None, (root / "jupyterlab.log").read_text()[-2000:]
            time.sleep(0.5)
    yield lambda stem: f"{base}/lab/tree/{stem}.ipynb?token={token}"
    server.terminate()
    server.wait(timeout=30)
    log.close()


def run_all_cells(page, url: str, notebook: str) -> None:
    """Open `notebook` alone (`reset`: no tabs restored from the last page) and run it all."""
    page.goto(url + "&reset")
    page.wait_for_function("name => { const w = window.jupyterapp?.shell.currentWidget;"
                           " return w?.context?.path === name"
                           " && w.sessionContext?.session?.kernel?.connectionStatus"
                           " === 'connected'; }", arg=notebook, timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


@pytest.mark.slow
def test_lab_02_slider_in_jupyterlab_shows_the_count_for_the_new_rank(page, jupyterlab):
    from slmlab import presets, zoo
    from slmlab.course.runner import QUICK_PARAMETERS
    from slmlab.parameters import lab_defaults

    lab = "02_loralib_layer_swaps"   # the page runs it with these parameters (fixture above)
    model = zoo.load_model((lab_defaults(lab) | QUICK_PARAMETERS[lab])["model_id"])
    run_all_cells(page, jupyterlab("02_loralib_layer_swaps"), "02_loralib_layer_swaps.ipynb")
    table = page.locator("table.lora-budget")
    table.wait_for(timeout=300_000)  # the lab's cells above it run first
    zoo_row = table.locator("tr", has_text="this zoo model").locator("td")
    targets = ["qkv_proj", "o_proj"]
    before = presets.lora_footprint(model, 8, 16, targets)["trainable"]
    assert zoo_row.nth(1).inner_text() == f"{before:,}"
    slider = page.locator(".widget-slider", has_text="rank r")
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")  # rank 8 -> 9
    expected = f"{presets.lora_footprint(model, 9, 16, targets)['trainable']:,}"
    page.wait_for_function("e => [...document.querySelectorAll('table.lora-budget td')]"
                           ".some(td => td.textContent === e)", arg=expected, timeout=30_000)
    assert slider.locator(".widget-readout").inner_text() == "9"
    assert not page.get_by_text("Loading widget").count()
    # make setup's settings override: JupyterLab never asks a learner about fetching news
    assert not page.get_by_text("notified about official Jupyter news").count()
    table.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab02_lora_budget.png"))


@pytest.mark.slow
def test_lab_05_playground_in_jupyterlab_answers_a_typed_prompt(page, jupyterlab):
    run_all_cells(page, jupyterlab("05_merge_int4_export"), "05_merge_int4_export.ipynb")
    box = page.locator(".widget-textarea textarea")
    try:
        box.wait_for(timeout=300_000)
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / "lab05_failed.png"), full_page=True)
        raise
    box.fill("The storm last night frightened me.")
    page.locator(".widget-dropdown select").select_option("ONNX INT4")
    page.get_by_role("button", name="Generate").click()
    figures = page.locator(".playground-figures")
    figures.wait_for(timeout=60_000)
    assert "tokens/s after the first (ONNX INT4)" in figures.inner_text()
    assert "tone of your text" in figures.inner_text()
    assert page.locator(".playground-answer").inner_text().strip(), "an answer appeared"
    assert not page.get_by_text("Loading widget").count()
    figures.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "lab05_playground.png"))


@pytest.mark.slow
def test_lab_07_explorer_in_jupyterlab_shows_the_stored_trials_for_a_picked_rank(page,
                                                                                 jupyterlab):
    from slmlab import hyperparameter_search

    run_all_cells(page, jupyterlab("07_tuning_and_evaluation"), "07_tuning_and_evaluation.ipynb")
    table = page.locator("table.sweep-explorer")
    table.wait_for(timeout=300_000)  # the search above it runs first
    stored = hyperparameter_search.stored_trials()   # what the explorer reads, nothing retrained
    rank = page.locator(".widget-dropdown", has_text="rank").locator("select")
    rank.select_option(label="16")
    nearest = hyperparameter_search.nearest_trials(stored, 3e-3, rank=16)
    expected = f"{nearest[0]['learning_rate']:.1e}"
    page.wait_for_function("e => document.querySelector('table.sweep-explorer tr:nth-child(2) "
                           "td')?.textContent === e", arg=expected, timeout=30_000)
    shown = table.locator("tr").nth(1).locator("td")
    # text_content: JupyterLab may hide an output scrolled out of view (its innerText is "")
    assert shown.nth(1).text_content() == "16"
    assert shown.nth(3).text_content().startswith(f"{nearest[0]['validation_accuracy']:.1%}")
    assert table.locator("tr").count() == 1 + len(nearest)
    table.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab07_sweep_explorer.png"))
