# The two commands of the README: `make demo` and `make test`. Both create .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test test-fast benchmarks lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/bench demo --leaderboard leaderboard

test: $(VENV)/.installed
	$(PY) -m pytest

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow and not docker and not browser"

benchmarks: $(VENV)/.installed
	$(PY) -m benchmarks.bench_metrics
	$(PY) -m benchmarks.bench_score
	$(PY) -m benchmarks.bench_prepare
	$(PY) -m benchmarks.bench_cost
	$(PY) -m benchmarks.bench_ingest
	$(PY) -m benchmarks.bench_containers
	$(PY) -m benchmarks.bench_scaling
	$(PY) -m benchmarks.bench_snapshot

lint: $(VENV)/.installed
	$(PY) -m ruff check bench tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
