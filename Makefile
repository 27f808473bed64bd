# The course's commands. Every target creates .venv and installs the pins when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
# Olive 0.13's ModelBuilder pass calls the builder API of onnxruntime-genai <= 0.14.1, while
# the course generates with 0.18: a builder-only copy sits in .venv/olive-builder and only
# Olive's process sees it (slmlab.olive_pipeline.olive_env).
OLIVE_BUILDER := onnxruntime-genai==0.14.1
# No model hub here: libraries must not wait on the network, and telemetry stays off.
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: setup zoo course test lab labs bench bench-width variance results progress checkpoint drift-latest lint clean

setup: $(STAMP) $(LAB_SETTINGS) zoo

# JupyterLab asks on its first start whether to fetch Jupyter news from the web (a toast a
# learner must answer; offline there is nothing to fetch): "Never", for every JupyterLab of
# this .venv (`make lab`, the browser tests).
$(LAB_SETTINGS): $(STAMP)
	@mkdir -p $(dir $@)
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $@

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
	@$(BIN)/python -m slmlab.course.runner $(if $(QUICK),--quick) $(if $(JOBS),--jobs $(JOBS))

# Two pytest workers with one thread each use both cores better than one worker with two
# (kernel starts, imports and subprocesses are single-threaded); see conftest.py.
test: setup
	@$(BIN)/python -m pytest -n 2

# Speed, memory and headline figures of a full course run -> runs/bench.json (a benchmark,
# not a test). BENCH_TESTS=1 also times the test suite; JOBS=1 runs one lab at a time with
# every core's thread, as a learner does (the course map's compute times). `make results`
# merges it into docs/results.json.
bench: setup
	@$(BIN)/python -m slmlab.course.bench $(if $(BENCH_TESTS),--with-tests) $(if $(JOBS),--jobs $(JOBS))

# Containers and Codespaces often run as root, where JupyterLab refuses to start without
# --allow-root.
lab: setup
	@$(BIN)/jupyter lab --ip=0.0.0.0 --port=8888 --no-browser \
		$(if $(filter 0,$(shell id -u)),--allow-root) labs/

labs: $(STAMP)
	@$(BIN)/python -m slmlab.course.labgen

# The headline comparisons over seeds -> runs/variance.json (a benchmark, ~30 min per seed;
# LABS="02 08" runs only those labs, SEEDS="0 1" other seeds; JOBS=1 one lab at a time with
# every core's thread, as a learner's kernel runs it -> runs/variance_<N>threads.json).
variance: setup
	@$(BIN)/python -m slmlab.course.variance $(if $(SEEDS),--seeds $(SEEDS)) $(if $(LABS),--labs $(LABS)) $(if $(JOBS),--jobs $(JOBS))

# Lab 05's export at Phi-3-mini's full width: one decoder layer with random weights and the
# real vocabulary (over 1 GB of fp32 weights), fp32 and INT4 -> runs/real_width.json
bench-width: setup
	@$(BIN)/python -m slmlab.course.real_width

# Merge runs/variance*.json and runs/bench.json (when present) into docs/results.json, then
# regenerate docs/results.md and the README's and instructor guide's generated tables.
results: $(STAMP)
	@$(BIN)/python -m slmlab.course.results_page

# Your exercises from each lab's last run: done, wrong (with the message), not started.
# RUN=1 re-runs the labs you edited since their last run first;
# HTML=path also writes the table as a page.
progress: setup
	@$(if $(RUN),$(BIN)/python -m slmlab.course.runner --changed || true;)
	@$(BIN)/python -m slmlab.progress $(if $(HTML),--html $(HTML))

# What lab NN needs from earlier labs, built ahead (LAB=05): labs 01, 04-06 start from lab 03's
# adapter, which each would otherwise train itself on its first run. Built with every core's
# thread, as a JupyterLab kernel trains: `make course` (one thread per lab) trains its own.
checkpoint: setup
	@$(if $(LAB),,echo "usage: make checkpoint LAB=05"; exit 2;) $(BIN)/python -m slmlab.course.checkpoint $(LAB)

# For maintainers, before moving a pin: the API-drift test (tests/test_api_drift.py) against
# the newest releases of the libraries the course calls, in a separate .venv-latest (needs
# PyPI). torch stays at its pin: a newer one pulls several GB of CUDA packages, and pip
# then picks the newest release of each library that installs beside it (nbval: conftest.py
# imports it).
LATEST := .venv-latest
DRIFT_LIBRARIES := transformers tokenizers peft trl datasets huggingface_hub loralib \
	bitsandbytes onnxruntime-genai onnx onnx-ir papermill
drift-latest:
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	@$(LATEST)/bin/pip install --quiet --upgrade pip pytest nbval torch==2.13.0 $(DRIFT_LIBRARIES) \
		2>&1 | grep -v "^WARNING: Location" || true
	@$(LATEST)/bin/pip install --quiet --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
	@$(LATEST)/bin/python -c "from importlib.metadata import version; \
		print('newest here:', ', '.join(f'{n} {version(n)}' for n in 'torch $(DRIFT_LIBRARIES)'.split()))"
	@$(LATEST)/bin/python -m pytest tests/test_api_drift.py -p no:cacheprovider -o addopts=-ra

lint: $(STAMP)
	@$(BIN)/ruff check conftest.py lib tests solutions labs

clean:
	rm -rf runs .pytest_cache
