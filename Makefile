# The course's commands. Every target creates .venv and installs the pins when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Olive 0.13's ModelBuilder pass calls the builder API of onnxruntime-genai <= 0.14.1, while
# the course generates with 0.18: a builder-only copy sits in .venv/olive-builder and only
# Olive's process sees it (slmlab.olive_pipeline.olive_env).
OLIVE_BUILDER := onnxruntime-genai==0.14.1
# No model hub here: libraries must not wait on the network, and telemetry stays off.
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: setup zoo course test lab labs bench variance progress lint clean

setup: $(STAMP) zoo

$(STAMP): requirements.txt pyproject.toml
	@echo ">> creating $(VENV) and installing the pinned requirements (about 2 minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/olive-builder $(OLIVE_BUILDER) \
		2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c "import slmlab, torch, transformers" \
		|| { echo "install failed: see the pip output above"; exit 1; }
	@touch $(STAMP)

# Zoo models ship in models/; this rebuilds any that are missing (about 9 minutes).
zoo: $(STAMP)
	@$(BIN)/python -m slmlab.pretrain

# QUICK=1: every lab with a few training steps and its headline checks off (a few minutes)
course: setup
	@$(BIN)/python -m slmlab.course $(if $(QUICK),--quick) $(if $(JOBS),--jobs $(JOBS))

# Two pytest workers with one thread each use both cores better than one worker with two
# (kernel starts, imports and subprocesses are single-threaded); see conftest.py.
test: setup
	@$(BIN)/python -m pytest -n 2

# Speed, memory and headline figures of a full course run -> runs/bench.json (a benchmark,
# not a test). BENCH_TESTS=1 also times the test suite.
bench: setup
	@$(BIN)/python -m slmlab.bench $(if $(BENCH_TESTS),--with-tests)

# Containers and Codespaces often run as root, where JupyterLab refuses to start without
# --allow-root.
lab: setup
	@$(BIN)/jupyter lab --ip=0.0.0.0 --port=8888 --no-browser \
		$(if $(filter 0,$(shell id -u)),--allow-root) labs/

labs: $(STAMP)
	@$(BIN)/python -m slmlab.labgen

# The headline comparisons over seeds -> runs/variance.json (a benchmark, ~12 min per seed;
# LABS="02 08" runs only those labs, SEEDS="0 1" other seeds).
variance: setup
	@$(BIN)/python -m slmlab.variance $(if $(SEEDS),--seeds $(SEEDS)) $(if $(LABS),--labs $(LABS))

# Your exercises from each lab's last run: done, wrong (with the message), not started.
# RUN=1 re-runs the labs you edited since their last run first;
# HTML=path also writes the table as a page.
progress: setup
	@$(if $(RUN),$(BIN)/python -m slmlab.course --changed || true;)
	@$(BIN)/python -m slmlab.progress $(if $(HTML),--html $(HTML))

lint: $(STAMP)
	@$(BIN)/ruff check conftest.py lib tests solutions labs

clean:
	rm -rf runs .pytest_cache
