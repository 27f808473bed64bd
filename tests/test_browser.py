"""Pages a person reads, opened in a real browser: Debian's headless Chromium, driven by
Playwright (no browser download: it runs /usr/bin/chromium). `.ci/run` installs Chromium;
without it these tests are skipped with the command that installs it."""

import json
from pathlib import Path

import pytest

from slmlab import RUNS_DIR, progress
from slmlab.report import write_report
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
