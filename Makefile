# Two entry points that work on a fresh machine:
#   make demo   set up .venv, train on the bundled anime-tv data, print recommendations
#   make test   set up .venv, lint, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0

.PHONY: venv demo test lint bench studies clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,plot,serve,ann]"
	touch $@

demo: venv
	$(VENV)/bin/tripletrec train --out runs/demo
	$(VENV)/bin/tripletrec recommend runs/demo --user 1 -k 10

lint: venv
	$(PY) -m ruff check src tests benchmarks scripts

test: venv lint
	$(PY) -m pytest -q

# The benchmarks behind the README's figures (about 30 minutes on 2 cores; the index is
# benchmarks/README.md). LightFM is source-only and may fail to build: compare.py then goes
# on without it.
bench: venv
	$(PY) -m pip install --quiet -e ".[serve,ann]" "implicit>=0.7" "threadpoolctl>=3"
	-$(PY) -m pip install --quiet setuptools wheel && $(PY) -m pip install --quiet --no-use-pep517 lightfm==1.17
	$(PY) benchmarks/perf/reproduce_notebook.py
	$(PY) benchmarks/perf/compare.py
	$(PY) benchmarks/studies/default_choices.py
	$(PY) benchmarks/perf/cold_start.py
	$(PY) benchmarks/perf/throughput.py
	$(PY) benchmarks/perf/metrics_speed.py
	$(PY) benchmarks/perf/load_test.py
	$(PY) benchmarks/perf/retrieval.py
	$(PY) benchmarks/perf/growth.py

# The design studies that chose the defaults, on validation splits (about an hour on
# 2 cores; benchmarks/studies/README.md). hybrid_validation.py shows LightFM and implicit
# for reference when `make bench` has installed them.
STUDIES := default_choices user_batches hybrid_validation hybrid_weight hybrid_rule \
	history_aware user_history hybrid_data_size item_item_weighting ease_min_positives \
	ease_precision factor_cost decay_density factor_schedule
studies: venv
	set -e; for study in $(STUDIES); do $(PY) benchmarks/studies/$$study.py; done

clean:
	rm -rf $(VENV) runs build dist .pytest_cache .ruff_cache
