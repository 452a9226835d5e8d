# Two commands for a newcomer: `make run` and `make test`. Both create or reuse
# .venv and install the project (with its test extras) from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test bench bench-ci fuzz clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/clearing-sim run scenarios/baseline.yaml

# Tests run in worker processes, one a logical CPU (at most four: each holds its own fixtures
# and numba's compiled kernels); benchmarks never do (pytest-benchmark turns itself off
# under xdist), so the workers are asked for here and not in pyproject.toml's addopts.
test: install
	$(BIN)/python -m pytest -n logical --maxprocesses=4

# The report compares each benchmark's fastest round with its reference's: on a shared
# machine a neighbour's burst only ever adds time, so the minimum is the steadiest figure.
bench: install
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json -p no:cacheprovider
	$(BIN)/python -m benchmarks.report benchmarks/results/latest.json benchmarks/results/latest.md --stat min

bench-ci: install
	$(BIN)/python -m pytest benchmarks -m "not full" --benchmark-only --benchmark-json=benchmarks/results/latest.json -p no:cacheprovider
	$(BIN)/python -m benchmarks.report benchmarks/results/latest.json benchmarks/results/latest.md --stat min

FUZZ_SECONDS ?= 60
fuzz: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,fuzz]'
	$(BIN)/python fuzz/fuzz_inputs.py scenario -max_total_time=$(FUZZ_SECONDS)
	$(BIN)/python fuzz/fuzz_inputs.py clearing -max_total_time=$(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
