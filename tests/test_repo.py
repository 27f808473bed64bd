"""The repository's promises: pins, two-command quick start, CI, devcontainer, lint."""

import json
import re
import subprocess
import sys

from slmlab import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
MAKEFILE = (REPO_ROOT / "Makefile").read_text()


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", MAKEFILE, flags=re.M))


def test_every_requirement_is_pinned_and_torch_is_the_cpu_pin():
    lines = [line.strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert "-e ." in lines and "torch==2.13.0" in lines
    for line in lines:
        assert line == "-e ." or re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.+]+", line), line


def test_readme_quick_start_is_exactly_two_commands():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick_start, flags=re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert commands == ["make course", "make test"]
    assert {"course", "test", "lab", "labs"} <= make_targets()


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, flags=re.M)


def test_the_docs_describe_every_top_level_entry():
    # README names what a learner uses; the maintainer's guide lists every file
    development = REPO_ROOT / "docs" / "development.md"
    described = README + (development.read_text() if development.exists() else "")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True,
                             text=True).stdout.split()
    top_level = {path.split("/")[0] for path in tracked}
    missing = [name for name in top_level if f"`{name}" not in described]
    assert not missing, f"neither README nor docs/development.md describes: {missing}"


def test_lib_is_not_ignored():
    out = subprocess.run(["git", "check-ignore", "-q", "lib/slmlab/zoo.py"], cwd=REPO_ROOT)
    assert out.returncode == 1, "lib/ must not be git-ignored"


def test_devcontainer_is_valid_and_uses_make_targets():
    config = json.loads((REPO_ROOT / ".devcontainer" / "devcontainer.json").read_text())
    assert "python:1-3.11" in config["image"] or "3.11" in config["image"]
    assert 8888 in config["forwardPorts"]
    for command in (config["postCreateCommand"], config.get("postAttachCommand", "")):
        for target in re.findall(r"\bmake (\w+)", command):
            assert target in make_targets(), target
    extensions = config["customizations"]["vscode"]["extensions"]
    assert {"ms-python.python", "ms-toolsai.jupyter"} <= set(extensions)
    host = config["hostRequirements"]
    assert host["cpus"] <= 2 and int(host["memory"].rstrip("gb")) <= 8


def test_code_is_ruff_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "conftest.py", "lib", "tests",
                          "solutions", "labs"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_labs_import_slmlab_before_the_libraries_that_import_bitsandbytes():
    # bitsandbytes logs "pip install kernels" while it is imported (AVX512-BF16 CPUs only);
    # slmlab mutes that logger, which works only if slmlab is imported first
    pulls_in = re.compile(r"(from|import) (peft|trl|bitsandbytes)\b")
    for lab in sorted([*REPO_ROOT.glob("solutions/0*.ipynb"), *REPO_ROOT.glob("labs/0*.ipynb")]):
        cells = [c for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code"]
        imports = [line for cell in cells for line in "".join(cell["source"]).splitlines()
                   if line.startswith(("import ", "from "))]
        first = next((i for i, line in enumerate(imports) if pulls_in.match(line)), None)
        if first is not None:
            assert any(line.startswith("import slmlab ") for line in imports[:first]), lab
