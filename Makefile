# est: set-up, tests and the end-to-end demo. `make test` and `make demo` set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.est-setup-done

.PHONY: setup test demo bench bench-quick example clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if ! command -v iverilog >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq iverilog; \
	  else echo "est: Icarus Verilog is missing; run 'sudo apt-get install iverilog' and retry" >&2; exit 1; fi; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	$(PY) -m est.toolenv
	touch $(STAMP)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -n 2 --dist loadscope --durations=25

demo: setup
	$(PY) -m est.demo

# Every benchmark (37 min on 2 cores) -> bench/results/*.json and summary.json;
# `make bench-quick` shrinks every budget -> bench/results/quick/.
bench: setup
	$(PY) bench/run_all.py

bench-quick: setup
	$(PY) bench/run_all.py --quick

# Re-train the example EST checkpoints (about 50 minutes for est_small, most of it the GLM
# grid with slow means its readouts start from, 2 for est_tiny, on 2 cores) and refresh examples/:
# est_small (d_model 16, 2 blocks) and est_tiny (d_model 8, 1 block); both run on an iCEBreaker's core.
example: setup
	for name in est_small est_tiny; do \
	  $(VENV)/bin/est-train --config examples/$$name.toml --out build/$$name && \
	  cp build/$$name/model.pt examples/$$name.pt && \
	  cp build/$$name/metrics.json examples/$$name.metrics.json || exit 1; \
	done

clean:
	rm -rf build .pytest_cache sim_build
