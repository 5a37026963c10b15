# graduation: `make demo` and `make test` set up everything they need in .venv on their own.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := verifiers,policy,reasoning-gym,postgres,train,ray,dev
# A CPU build of torch; users with their own CUDA build install the package into their environment instead.
TORCH  ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup demo test test-fast bench schema clean experiment

help:
	@echo "make demo   - set up .venv and run the lifecycle demo on the embedded registry"
	@echo "make test   - set up .venv (and a throwaway PostgreSQL) and run the whole test suite"
	@echo "make bench  - run the benchmarks in benchmarks/ (ratios against baselines run side by side)"
	@echo "make experiment - the photocopier experiment (SFT vs GRPO on contaminated data; CPU, 3 seeds)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	bash scripts/test.sh

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow"

experiment: $(STAMP)
	$(PY) experiments/photocopier/make_data.py --check
	$(PY) experiments/photocopier/photocopier.py

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

schema: $(STAMP)
	$(VENV)/bin/registry schema --out registry/domain.schema.json

clean:
	rm -rf $(VENV) registry/registry.db* registry/jobs registry/reports .pytest_cache
